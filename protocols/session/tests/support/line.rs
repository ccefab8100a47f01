//! A tiny line protocol for driving the connection driver in tests.
//!
//! Handshake: `HELLO <name>` is answered `WELCOME <name>`; anything else `DENIED`, then close.
//! Session: `ECHO x` -> `x`; `QUIT` -> `BYE` and close; `PAUSE` -> `PAUSED` and reads pause until
//! the event `RESUME` (-> `RESUMED`); event `CLOSE` ends the session; any other event `x` ->
//! `EVENT x`; on shutdown -> `GOODBYE`. The codec does not limit line length on purpose: the
//! driver's frame size backstop is what the tests exercise.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use mqgate_session::{Accepted, CloseReason, FramedIo, Handshake, Outbound, Session, Step};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::{Decoder, Encoder};

/// Newline-delimited UTF-8 lines, without a length limit.
#[derive(Debug, Default)]
pub struct LineCodec {
    /// Bytes already searched for a newline.
    searched: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum LineError {
    #[error("line is not UTF-8")]
    NotUtf8,
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl Decoder for LineCodec {
    type Item = String;
    type Error = LineError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<String>, LineError> {
        let Some(offset) = buf[self.searched..].iter().position(|b| *b == b'\n') else {
            self.searched = buf.len();
            return Ok(None);
        };
        let line = buf.split_to(self.searched + offset + 1);
        self.searched = 0;
        let line = &line[..line.len() - 1];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        String::from_utf8(line.to_vec())
            .map(Some)
            .map_err(|_| LineError::NotUtf8)
    }
}

impl Encoder<String> for LineCodec {
    type Error = LineError;

    fn encode(&mut self, line: String, buf: &mut BytesMut) -> Result<(), LineError> {
        buf.reserve(line.len() + 1);
        buf.put_slice(line.as_bytes());
        buf.put_u8(b'\n');
        Ok(())
    }
}

/// What the test can observe of a session from outside.
#[derive(Debug, Default)]
pub struct Probe {
    /// How many times `on_close` ran.
    pub closes: AtomicUsize,
    /// The reason `on_close` was given last.
    pub reason: Mutex<Option<CloseReason>>,
}

impl Probe {
    pub fn closes(&self) -> usize {
        self.closes.load(Ordering::SeqCst)
    }

    pub fn reason(&self) -> Option<CloseReason> {
        self.reason.lock().unwrap().clone()
    }
}

/// Per-connection settings of the line protocol.
#[derive(Debug, Clone, Copy)]
pub struct LineSettings {
    pub max_line: usize,
    /// Close with `KeepaliveTimeout` after this long without a frame.
    pub keepalive: Option<Duration>,
}

pub struct LineHandshake {
    pub settings: LineSettings,
    pub events: mpsc::Receiver<String>,
    pub probe: Arc<Probe>,
}

impl Handshake for LineHandshake {
    type Session = LineSession;
    type Inbox = mpsc::Receiver<String>;

    async fn run<T>(
        self,
        io: &mut FramedIo<T, LineCodec>,
    ) -> Result<Accepted<LineSession, mpsc::Receiver<String>>, CloseReason>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let line = io.read_frame().await?;
        match line.strip_prefix("HELLO ") {
            Some(name) => {
                // Fed, not flushed: the driver must send it before the session's first frame.
                io.feed(format!("WELCOME {name}"))?;
                Ok(Accepted {
                    session: LineSession {
                        settings: self.settings,
                        paused: false,
                        last_frame: Instant::now(),
                        probe: self.probe,
                    },
                    inbox: self.events,
                })
            }
            None => {
                io.feed("DENIED".to_string())?;
                Err(CloseReason::HandshakeRejected(format!(
                    "expected HELLO, got {line:?}"
                )))
            }
        }
    }
}

pub struct LineSession {
    settings: LineSettings,
    paused: bool,
    last_frame: Instant,
    probe: Arc<Probe>,
}

impl Session for LineSession {
    type Codec = LineCodec;
    type InFrame = String;
    type OutFrame = String;
    type Event = String;

    fn on_frame(&mut self, line: String, out: &mut Outbound<String>) -> Step {
        self.last_frame = Instant::now();
        if let Some(text) = line.strip_prefix("ECHO ") {
            out.push(text.to_string());
            return Step::Continue;
        }
        match line.as_str() {
            "QUIT" => {
                out.push("BYE".to_string());
                Step::Close(CloseReason::Disconnected)
            }
            "PAUSE" => {
                self.paused = true;
                out.push("PAUSED".to_string());
                Step::Continue
            }
            other => {
                out.push(format!("ERROR unknown command {other:?}"));
                Step::Close(CloseReason::Protocol(format!("unknown command {other:?}")))
            }
        }
    }

    fn on_event(&mut self, event: String, out: &mut Outbound<String>) -> Step {
        match event.as_str() {
            "RESUME" => {
                self.paused = false;
                out.push("RESUMED".to_string());
                Step::Continue
            }
            "CLOSE" => Step::Close(CloseReason::SessionEnded("closed by event".to_string())),
            _ => {
                out.push(format!("EVENT {event}"));
                Step::Continue
            }
        }
    }

    fn on_tick(&mut self, now: Instant, _out: &mut Outbound<String>) -> Step {
        match self.settings.keepalive {
            Some(keepalive) if now.duration_since(self.last_frame) > keepalive => {
                Step::Close(CloseReason::KeepaliveTimeout)
            }
            _ => Step::Continue,
        }
    }

    fn tick_interval(&self) -> Option<Duration> {
        self.settings.keepalive.map(|keepalive| keepalive / 4)
    }

    fn reads_paused(&self) -> bool {
        self.paused
    }

    fn max_frame_size(&self) -> usize {
        self.settings.max_line
    }

    fn on_shutdown(&mut self, out: &mut Outbound<String>) {
        out.push("GOODBYE".to_string());
    }

    fn on_close(&mut self, reason: &CloseReason) {
        self.probe.closes.fetch_add(1, Ordering::SeqCst);
        *self.probe.reason.lock().unwrap() = Some(reason.clone());
    }
}
