//! A small STOMP 1.2 client over tokio: a reader over the socket's read half (frames parsed by
//! [`super::stomp_frame`]) and a writer task that batches queued frames into few writes.
//!
//! Publishing at QoS 1 asks for a RECEIPT on every SEND; up to `--window` SENDs are
//! unanswered at once (pipelined) and each RECEIPT frees one slot. At QoS 0 a SEND counts once
//! the writer wrote it. Subscribing at QoS 1 uses `ack:client` with a `prefetch-count` of
//! `--window` and cumulative ACKs every half window (or after a short idle), at QoS 0
//! `ack:auto`. No heart-beats are asked for (a run lasts less than any broker's idle limit).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::stomp_frame::{encode, parse, Frame};
use super::{Confirms, Options, Subscription};
use crate::inbox::Inbox;
use crate::target::Target;

/// Largest frame accepted from the broker: a 16 MiB body and its headers.
const MAX_FRAME: usize = 16 * 1024 * 1024 + 64 * 1024;
/// Frames queued for the writer task.
const QUEUE: usize = 1024;
/// Bytes the writer gathers into one write at most.
const BATCH_BYTES: usize = 256 * 1024;
/// A subscriber with unacknowledged messages and nothing new for this long ACKs them.
const ACK_IDLE: Duration = Duration::from_millis(5);

/// The read side: the socket half and the bytes not yet framed.
pub struct Reader {
    half: OwnedReadHalf,
    buf: BytesMut,
}

impl Reader {
    /// The next frame, or `None` once the broker closed the connection. Cancel-safe.
    pub async fn next(&mut self) -> anyhow::Result<Option<Frame>> {
        loop {
            if let Some(frame) = parse(&mut self.buf, MAX_FRAME)? {
                return Ok(Some(frame));
            }
            self.buf.reserve(64 * 1024);
            if self.half.read_buf(&mut self.buf).await? == 0 {
                return Ok(None);
            }
        }
    }
}

/// A frame for the writer task; `counted` frames are counted into the confirms once written
/// (QoS 0 SENDs).
struct Outbound {
    bytes: Bytes,
    counted: bool,
}

/// Writes queued frames, many per write, until the queue closes or a write fails.
fn spawn_writer(
    mut half: OwnedWriteHalf,
    written: Option<Arc<Confirms>>,
) -> (mpsc::Sender<Outbound>, JoinHandle<()>) {
    let (sender, mut queue) = mpsc::channel::<Outbound>(QUEUE);
    let task = tokio::spawn(async move {
        let mut batch = BytesMut::with_capacity(BATCH_BYTES);
        while let Some(first) = queue.recv().await {
            let mut counted = u64::from(first.counted);
            batch.extend_from_slice(&first.bytes);
            while batch.len() < BATCH_BYTES {
                match queue.try_recv() {
                    Ok(next) => {
                        counted += u64::from(next.counted);
                        batch.extend_from_slice(&next.bytes);
                    }
                    Err(_) => break,
                }
            }
            if let Err(error) = half.write_all(&batch).await {
                if let Some(confirms) = &written {
                    confirms.fail(format!("STOMP write: {error}"));
                }
                return;
            }
            batch.clear();
            if let (Some(confirms), true) = (&written, counted > 0) {
                confirms.confirm(counted);
            }
        }
        let _ = half.shutdown().await;
    });
    (sender, task)
}

/// CONNECT for STOMP 1.2 on vhost `/`, no heart-beats; without login headers when the user
/// name is empty (the broker's anonymous login).
pub fn connect_frame(options: &Options) -> Bytes {
    let mut headers = vec![
        ("accept-version", "1.2"),
        ("host", "/"),
        ("heart-beat", "0,0"),
    ];
    if !options.user.is_empty() {
        headers.push(("login", &options.user));
        headers.push(("passcode", &options.password));
    }
    encode("CONNECT", &headers, b"")
}

/// Connects, sends CONNECT and waits for CONNECTED.
async fn open(target: &Target, options: &Options) -> anyhow::Result<(Reader, OwnedWriteHalf)> {
    let stream = TcpStream::connect(target.authority())
        .await
        .with_context(|| format!("connect {target}"))?;
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    write.write_all(&connect_frame(options)).await?;
    let mut reader = Reader {
        half: read,
        buf: BytesMut::with_capacity(64 * 1024),
    };
    let frame = reader
        .next()
        .await?
        .context("the broker closed before CONNECTED")?;
    match frame.command.as_str() {
        "CONNECTED" => Ok((reader, write)),
        _ => anyhow::bail!("STOMP login refused: {}", describe(&frame)),
    }
}

/// An ERROR frame (or anything unexpected) in one line.
fn describe(frame: &Frame) -> String {
    format!(
        "{} {} {}",
        frame.command,
        frame.header("message").unwrap_or(""),
        String::from_utf8_lossy(&frame.body[..frame.body.len().min(200)]).trim()
    )
}

/// A STOMP publisher.
pub struct Publisher {
    out: mpsc::Sender<Outbound>,
    destination: String,
    receipts: bool,
    window: Arc<Semaphore>,
    next_receipt: u64,
    closing: Arc<AtomicBool>,
    /// What the broker (QoS 1) or the socket (QoS 0) took.
    pub confirms: Arc<Confirms>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Publisher {
    /// Connects and logs in, to SEND to `destination`.
    pub async fn connect(
        target: &Target,
        destination: String,
        options: &Options,
    ) -> anyhow::Result<Self> {
        let (mut reader, write) = open(target, options).await?;
        let receipts = options.qos > 0;
        let confirms = Arc::new(Confirms::default());
        let (out, writer) = spawn_writer(write, (!receipts).then(|| confirms.clone()));
        let window = Arc::new(Semaphore::new(usize::from(options.window.max(1))));
        let closing = Arc::new(AtomicBool::new(false));
        let reader = {
            let (confirms, window, closing) = (confirms.clone(), window.clone(), closing.clone());
            tokio::spawn(async move {
                let failure = loop {
                    match reader.next().await {
                        Ok(Some(frame)) if frame.command == "RECEIPT" => {
                            confirms.confirm(1);
                            window.add_permits(1);
                        }
                        Ok(Some(frame)) if frame.command == "ERROR" => break describe(&frame),
                        Ok(Some(_)) => {}
                        Ok(None) => break "the broker closed the connection".to_owned(),
                        Err(error) => break format!("STOMP read: {error}"),
                    }
                };
                window.close();
                if !closing.load(Ordering::Relaxed) {
                    confirms.fail(failure);
                }
            })
        };
        Ok(Self {
            out,
            destination,
            receipts,
            window,
            next_receipt: 0,
            closing,
            confirms,
            reader,
            writer,
        })
    }

    /// Queues one SEND (at QoS 1, once a receipt slot is free).
    pub async fn publish(&mut self, body: Bytes) -> anyhow::Result<()> {
        let frame = if self.receipts {
            self.window
                .acquire()
                .await
                .map_err(|_| anyhow::anyhow!("STOMP connection closed"))?
                .forget();
            self.next_receipt += 1;
            let receipt = self.next_receipt.to_string();
            encode(
                "SEND",
                &[("destination", &self.destination), ("receipt", &receipt)],
                &body,
            )
        } else {
            encode("SEND", &[("destination", &self.destination)], &body)
        };
        self.out
            .send(Outbound {
                bytes: frame,
                counted: !self.receipts,
            })
            .await
            .map_err(|_| anyhow::anyhow!("STOMP connection closed"))
    }

    /// Sends DISCONNECT, lets the writer finish, and drops the connection.
    pub async fn close(self) {
        self.closing.store(true, Ordering::Relaxed);
        let _ = self
            .out
            .send(Outbound {
                bytes: encode("DISCONNECT", &[], b""),
                counted: false,
            })
            .await;
        drop(self.out);
        let _ = tokio::time::timeout(Duration::from_secs(1), self.writer).await;
        self.reader.abort();
    }
}

/// Connects, SUBSCRIBEs to `destination` and waits for the subscription's RECEIPT; then a task
/// feeds `inbox` (acknowledging at QoS 1) until `stop`, and says DISCONNECT.
pub async fn subscribe(
    target: &Target,
    destination: String,
    options: &Options,
    mut inbox: Inbox,
    stop: CancellationToken,
) -> anyhow::Result<Subscription> {
    let (mut reader, write) = open(target, options).await?;
    let (out, writer) = spawn_writer(write, None);
    let acking = options.qos > 0;
    let prefetch = options.window.max(1).to_string();
    let mut headers = vec![
        ("id", "0"),
        ("destination", destination.as_str()),
        ("receipt", "subscribed"),
    ];
    if acking {
        headers.push(("ack", "client"));
        headers.push(("prefetch-count", &prefetch));
    } else {
        headers.push(("ack", "auto"));
    }
    let subscribe = encode("SUBSCRIBE", &headers, b"");
    out.send(Outbound {
        bytes: subscribe,
        counted: false,
    })
    .await
    .map_err(|_| anyhow::anyhow!("STOMP connection closed"))?;
    loop {
        let frame = reader
            .next()
            .await?
            .context("the broker closed before the subscription's RECEIPT")?;
        match frame.command.as_str() {
            "RECEIPT" if frame.header("receipt-id") == Some("subscribed") => break,
            "ERROR" => anyhow::bail!("SUBSCRIBE refused: {}", describe(&frame)),
            _ => {}
        }
    }
    let batch = u32::from(options.window.max(2) / 2);
    Ok(tokio::spawn(async move {
        let mut pending = 0u32;
        let mut last_ack: Option<String> = None;
        let mut error = None;
        loop {
            let read = tokio::select! {
                _ = stop.cancelled() => break,
                read = tokio::time::timeout(ACK_IDLE, reader.next()) => read,
            };
            let frame = match read {
                Err(_idle) => {
                    if pending > 0 {
                        if let Some(id) = last_ack.take() {
                            let ack = encode("ACK", &[("id", &id)], b"");
                            let _ = out
                                .send(Outbound {
                                    bytes: ack,
                                    counted: false,
                                })
                                .await;
                        }
                        pending = 0;
                    }
                    continue;
                }
                Ok(Ok(Some(frame))) => frame,
                Ok(Ok(None)) => {
                    error = Some("the broker closed the connection".to_owned());
                    break;
                }
                Ok(Err(read_error)) => {
                    error = Some(format!("STOMP read: {read_error}"));
                    break;
                }
            };
            match frame.command.as_str() {
                "MESSAGE" => {
                    inbox.accept(&frame.body);
                    if acking {
                        pending += 1;
                        last_ack = frame.header("ack").map(str::to_owned);
                        if pending >= batch {
                            if let Some(id) = last_ack.take() {
                                let ack = encode("ACK", &[("id", &id)], b"");
                                let _ = out
                                    .send(Outbound {
                                        bytes: ack,
                                        counted: false,
                                    })
                                    .await;
                            }
                            pending = 0;
                        }
                    }
                }
                "ERROR" => {
                    error = Some(describe(&frame));
                    break;
                }
                _ => {}
            }
        }
        let _ = out
            .send(Outbound {
                bytes: encode("DISCONNECT", &[], b""),
                counted: false,
            })
            .await;
        drop(out);
        let _ = tokio::time::timeout(Duration::from_millis(500), writer).await;
        (inbox, error)
    }))
}
