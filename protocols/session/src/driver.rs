//! The connection driver: handshake, then the session between a reader and a writer.
//!
//! Invariants:
//! - One task (the caller's) reads the socket, decodes, runs the session and encodes; a spawned
//!   writer task writes. The session task never waits on a write, so reads that carry acks keep
//!   flowing while a write is slow.
//! - Encoded-but-unwritten bytes are bounded: while they exceed `max_outbound_bytes` the session
//!   task neither takes events nor decodes frames, and if the writer makes no progress for
//!   `write_stall_timeout` meanwhile, the connection closes as a slow consumer. The excess is at
//!   most one callback's output (one frame, or one event of a batch).
//! - The read buffer is bounded by the session's `max_frame_size` (see `read.rs`); while
//!   `reads_paused` holds, no frame is decoded and the socket is not read.
//! - Every close, whatever its cause, goes through `finish`: the frames the last callback pushed
//!   are sent, the writer flushes and shuts the write side down within `drain_timeout` (none for
//!   a slow consumer), then `on_close` runs once and the reason is returned and logged.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf};
use tokio::task::JoinError;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_util::codec::Encoder;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

use crate::close::{CloseReason, ConnectionReport, DriverStats};
use crate::config::DriverConfig;
use crate::framed::FramedIo;
use crate::handshake::{Accepted, CodecOf, Handshake};
use crate::inbox::Inbox;
use crate::read::FrameReader;
use crate::session::{Outbound, Session, Step};
use crate::writer::{writer_loop, Shared};

/// Events taken from the inbox per wake-up at most, so their frames are encoded together and
/// frames and ticks are not starved.
pub const EVENT_BATCH: usize = 64;

/// The shortest tick interval honoured, so a session answering `Some(Duration::ZERO)` cannot
/// spin the task.
const MIN_TICK: Duration = Duration::from_millis(1);

/// Runs one connection from its first byte to its close and reports why it closed.
///
/// `io` is any byte stream (TCP, TLS); `codec` frames it for the handshake and then the session.
/// The handshake runs under `config.handshake_timeout`; an accepted handshake's session then runs
/// until it, the peer, an error or `shutdown` ends it. On `shutdown` the session says goodbye in
/// its protocol (`Session::on_shutdown`) and the reason is [`CloseReason::Shutdown`].
///
/// The close is logged at `info` with the reason and counters; run this future inside a span
/// naming the connection (its id and peer address) so the log says which one closed.
///
/// The future is what an idle connection costs, so it holds only the running session: the
/// handshake runs in a boxed future of its own, freed once the session starts.
pub fn run_connection<T, H>(
    io: T,
    codec: CodecOf<H>,
    handshake: H,
    config: DriverConfig,
    shutdown: CancellationToken,
) -> impl Future<Output = ConnectionReport> + Send
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Handshake,
{
    // Built here rather than inside an `async fn`: the arguments would otherwise stay stored in
    // the connection's future after the handshake took them.
    let start = Box::pin(start(io, codec, handshake, config, shutdown.clone()));
    drive::<T, H>(start, shutdown)
}

/// A session ready to serve, and its writer task. Boxed: moved out of the handshake's future,
/// an unboxed connection would be sized twice into the connection's future.
type Started<T, H> = (
    Box<Connection<<H as Handshake>::Session, <H as Handshake>::Inbox, ReadHalf<T>>>,
    AbortOnDropHandle<io::Result<()>>,
);

async fn drive<T, H>(
    start: Pin<Box<impl Future<Output = Result<Started<T, H>, ConnectionReport>>>>,
    shutdown: CancellationToken,
) -> ConnectionReport
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Handshake,
{
    let report = match start.await {
        Err(report) => report,
        Ok((mut connection, mut writer)) => {
            let (reason, writer_done) = match connection.serve(&shutdown, &mut writer).await {
                Ok(never) => match never {},
                Err(stop) => stop,
            };
            connection.finish(reason, writer, writer_done).await
        }
    };
    let stats = &report.stats;
    tracing::info!(
        reason = %report.reason,
        frames_in = stats.frames_in,
        frames_out = stats.frames_out,
        events = stats.events,
        writes = stats.writes,
        bytes_out = stats.bytes_out,
        peak_outbound_bytes = stats.peak_outbound_bytes,
        "connection closed"
    );
    report
}

/// The handshake under its timeout, then the session's connection and its writer; or, if the
/// handshake failed, the report after its refusal was flushed.
async fn start<T, H>(
    io: T,
    codec: CodecOf<H>,
    handshake: H,
    config: DriverConfig,
    shutdown: CancellationToken,
) -> Result<Started<T, H>, ConnectionReport>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Handshake,
{
    let mut framed = FramedIo::new(
        io,
        codec,
        config.handshake_max_frame_size,
        config.read_buffer_size,
    );
    let outcome = tokio::select! {
        biased;
        () = shutdown.cancelled() => Err(CloseReason::Shutdown),
        result = timeout(config.handshake_timeout, handshake.run(&mut framed)) => {
            result.unwrap_or(Err(CloseReason::HandshakeTimeout))
        }
    };
    let accepted = match outcome {
        Ok(accepted) => accepted,
        Err(reason) => {
            // The refusal the handshake fed goes out first; a peer that does not read it does
            // not hold the connection past the drain timeout.
            let _ = timeout(config.drain_timeout, framed.close()).await;
            return Err(ConnectionReport {
                reason,
                stats: framed.stats(),
            });
        }
    };
    let Accepted { session, inbox } = accepted;
    let (io, codec, reader, handshake_out, stats) = framed.into_parts();
    let (read_half, write_half) = tokio::io::split(io);
    let shared = Arc::new(Shared::default());
    let writer = AbortOnDropHandle::new(tokio::spawn(
        writer_loop(write_half, Arc::clone(&shared)).instrument(tracing::Span::current()),
    ));
    let mut connection = Box::new(Connection {
        session: SessionSlot::new(session),
        codec,
        reader,
        read_half,
        inbox,
        inbox_open: true,
        out: Outbound::new(),
        encoded: handshake_out,
        shared,
        stats,
        config,
    });
    connection.account_encoded(connection.encoded.len());
    Ok((connection, writer))
}

/// One running session and the reader side of its connection.
struct Connection<S: Session, I, R> {
    session: SessionSlot<S>,
    codec: S::Codec,
    reader: FrameReader,
    read_half: R,
    inbox: I,
    inbox_open: bool,
    out: Outbound<S::OutFrame>,
    /// Frames encoded since the last chunk was handed to the writer.
    encoded: BytesMut,
    /// What the session task and the writer share, the queue of chunks included.
    shared: Arc<Shared>,
    stats: DriverStats,
    config: DriverConfig,
}

/// Why `serve` stopped, and whether the writer task has already ended.
type Stop = (CloseReason, bool);

impl<S, I, T> Connection<S, I, ReadHalf<T>>
where
    S: Session,
    I: Inbox<Event = S::Event>,
    T: AsyncRead + Unpin + Send,
{
    /// The session loop; returns only to close.
    async fn serve(
        &mut self,
        shutdown: &CancellationToken,
        writer: &mut AbortOnDropHandle<io::Result<()>>,
    ) -> Result<Infallible, Stop> {
        let mut next_tick: Option<Instant> = None;
        let mut stall_deadline: Option<Instant> = None;
        loop {
            self.process_buffered().map_err(open_writer)?;
            // Everything ready has been handled (the frames above, the events of the last
            // wake-up): the session settles what it deferred per batch.
            self.session.on_batch_end();
            self.hand_to_writer();
            if next_tick.is_none() {
                next_tick = self.next_tick(Instant::now());
            }
            let over = self.over_limit();
            if !over {
                stall_deadline = None;
            } else if stall_deadline.is_none() {
                stall_deadline = Some(Instant::now() + self.config.write_stall_timeout);
            }
            let can_read = !over && !self.reader.is_eof() && !self.session.reads_paused();
            let can_recv = !over && self.inbox_open;
            let limit = self.session.max_frame_size();
            tokio::select! {
                biased;
                () = shutdown.cancelled() => {
                    self.session.on_shutdown(&mut self.out);
                    self.encode().map_err(open_writer)?;
                    return Err(open_writer(CloseReason::Shutdown));
                }
                result = &mut *writer => return Err((writer_failure(result), true)),
                () = sleep_until_some(stall_deadline) => {
                    return Err(open_writer(CloseReason::SlowConsumer));
                }
                () = self.shared.progress.notified(), if over => {
                    // The writer moved: the stall clock restarts if we are still over the limit.
                    stall_deadline = None;
                }
                () = sleep_until_some(next_tick) => {
                    let now = Instant::now();
                    let step = self.session.on_tick(now, &mut self.out);
                    self.after(step).map_err(open_writer)?;
                    next_tick = self.next_tick(now);
                }
                event = self.inbox.recv(), if can_recv => match event {
                    Some(event) => self.handle_events(event).map_err(open_writer)?,
                    None => self.inbox_open = false,
                },
                read = self.reader.fill(&mut self.read_half, limit), if can_read => {
                    read.map_err(open_writer)?;
                }
            }
        }
    }

    /// Decodes and handles the frames already buffered, while reads are allowed. At end of
    /// stream, once nothing is left, the peer has closed.
    fn process_buffered(&mut self) -> Result<(), CloseReason> {
        while !self.over_limit() && !self.session.reads_paused() {
            let limit = self.session.max_frame_size();
            match self.reader.decode(&mut self.codec, limit)? {
                Some(frame) => {
                    self.stats.frames_in += 1;
                    let step = self.session.on_frame(frame, &mut self.out);
                    self.after(step)?;
                }
                None if self.reader.is_eof() => return Err(CloseReason::PeerClosed),
                None => break,
            }
        }
        Ok(())
    }

    /// Handles one event and up to `EVENT_BATCH - 1` more that are ready, while under the limit.
    fn handle_events(&mut self, first: S::Event) -> Result<(), CloseReason> {
        self.handle_event(first)?;
        for _ in 1..EVENT_BATCH {
            if self.over_limit() {
                break;
            }
            match self.inbox.try_recv() {
                Some(event) => self.handle_event(event)?,
                None => break,
            }
        }
        Ok(())
    }

    fn handle_event(&mut self, event: S::Event) -> Result<(), CloseReason> {
        self.stats.events += 1;
        let step = self.session.on_event(event, &mut self.out);
        self.after(step)
    }
}

impl<S, I, R> Connection<S, I, R>
where
    S: Session,
{
    /// Encodes what a callback pushed, then applies its step.
    fn after(&mut self, step: Step) -> Result<(), CloseReason> {
        self.encode()?;
        match step {
            Step::Continue => Ok(()),
            Step::Close(reason) => Err(reason),
        }
    }

    /// Encodes every pushed frame into the pending chunk and counts its bytes as outbound.
    fn encode(&mut self) -> Result<(), CloseReason> {
        let before = self.encoded.len();
        let mut result = Ok(());
        for frame in self.out.drain() {
            if let Err(error) = self.codec.encode(frame, &mut self.encoded) {
                result = Err(CloseReason::Encode(error.to_string()));
                break;
            }
            self.stats.frames_out += 1;
        }
        // Frames after a failed one are dropped with the connection.
        self.out.drain().for_each(drop);
        self.account_encoded(self.encoded.len() - before);
        result
    }

    fn account_encoded(&mut self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let pending = self
            .shared
            .pending
            .fetch_add(bytes, std::sync::atomic::Ordering::AcqRel)
            + bytes;
        self.stats.peak_outbound_bytes = self.stats.peak_outbound_bytes.max(pending);
    }

    /// Hands the encoded frames to the writer as one chunk.
    fn hand_to_writer(&mut self) {
        if !self.encoded.is_empty() {
            // Dropped if the writer has ended; `serve` learns why from its handle.
            self.shared.send(self.encoded.split().freeze());
        }
    }

    fn over_limit(&self) -> bool {
        self.shared.pending() > self.config.max_outbound_bytes
    }

    fn next_tick(&self, now: Instant) -> Option<Instant> {
        self.session
            .tick_interval()
            .map(|interval| now + interval.max(MIN_TICK))
    }

    /// Sends what is left, lets the writer drain and shut down within the drain timeout, runs
    /// `on_close` and reports.
    async fn finish(
        &mut self,
        reason: CloseReason,
        mut writer: AbortOnDropHandle<io::Result<()>>,
        writer_done: bool,
    ) -> ConnectionReport {
        self.hand_to_writer();
        // Closing the queue tells the writer to drain, flush and shut the write side down.
        self.shared.close();
        if !writer_done {
            // A slow consumer will not read what is queued: waiting would only hold memory.
            let drain = if reason == CloseReason::SlowConsumer {
                Duration::ZERO
            } else {
                self.config.drain_timeout
            };
            if timeout(drain, &mut writer).await.is_err() {
                writer.abort();
            }
        }
        self.session.close(&reason);
        let mut stats = self.stats;
        let ordering = std::sync::atomic::Ordering::Relaxed;
        stats.writes += self.shared.writes.load(ordering);
        stats.bytes_out += self.shared.bytes.load(ordering);
        ConnectionReport { reason, stats }
    }
}

/// A close decided while the writer still runs.
fn open_writer(reason: CloseReason) -> Stop {
    (reason, false)
}

fn writer_failure(result: Result<io::Result<()>, JoinError>) -> CloseReason {
    match result {
        Ok(Err(error)) => CloseReason::from_io(&error),
        // The writer ends on its own only on error: anything else is a failure we cannot name.
        Ok(Ok(())) | Err(_) => CloseReason::Io(io::ErrorKind::Other),
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Owns the session and guarantees `on_close` runs exactly once, even if the driver's future is
/// dropped mid-connection.
struct SessionSlot<S: Session> {
    session: S,
    closed: bool,
}

impl<S: Session> SessionSlot<S> {
    fn new(session: S) -> Self {
        Self {
            session,
            closed: false,
        }
    }

    fn close(&mut self, reason: &CloseReason) {
        if !self.closed {
            self.closed = true;
            self.session.on_close(reason);
        }
    }
}

impl<S: Session> std::ops::Deref for SessionSlot<S> {
    type Target = S;

    fn deref(&self) -> &S {
        &self.session
    }
}

impl<S: Session> std::ops::DerefMut for SessionSlot<S> {
    fn deref_mut(&mut self) -> &mut S {
        &mut self.session
    }
}

impl<S: Session> Drop for SessionSlot<S> {
    fn drop(&mut self) {
        self.close(&CloseReason::Dropped);
    }
}
