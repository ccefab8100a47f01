//! The writer task: the only code that writes the socket once the session runs.
//!
//! Invariants:
//! - Chunks are written in the order the session task sent them; each chunk holds whole
//!   encoded frames, in order.
//! - Everything available is batched into one vectored write (up to `MAX_BATCH` chunks), so a
//!   burst of frames costs one system call, and a slow write never blocks the session task's
//!   reads: it only stops taking more once `Shared::pending` is over the limit.
//! - `Shared::pending` counts bytes encoded by the session task and not yet written; the writer
//!   subtracts what each write took and signals `Shared::progress` after every write.
//! - When the queue closes, the writer writes what is left, flushes and shuts the write side
//!   down; the session task bounds that with the drain timeout.
//! - Nothing is allocated for an idle connection beyond `Shared`: the queue (a `VecDeque` behind
//!   a mutex, not a channel whose first block is allocated up front) and the writer's batch
//!   grow on first use and keep their capacity, so a busy connection allocates no more per
//!   chunk than before.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

/// Chunks gathered into one write at most (below every platform's `IOV_MAX`).
const MAX_BATCH: usize = 64;
/// Bytes copied into one buffer per write when the stream cannot write vectored.
const COALESCE_BYTES: usize = 64 * 1024;

/// State the session task and the writer share.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Encoded bytes not yet written.
    pub(crate) pending: AtomicUsize,
    /// Write calls made.
    pub(crate) writes: AtomicU64,
    /// Bytes written.
    pub(crate) bytes: AtomicU64,
    /// Signalled after every write that made progress.
    pub(crate) progress: Notify,
    /// Chunks handed to the writer and not yet taken, in order.
    queue: Mutex<Queue>,
    /// Signalled when a chunk is queued or the queue closes.
    queued: Notify,
}

#[derive(Debug, Default)]
struct Queue {
    chunks: VecDeque<Bytes>,
    /// No more chunks will come (the session task closed it) or be written (the writer ended).
    closed: bool,
}

impl Shared {
    pub(crate) fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        // Pushes and takes leave the queue consistent whatever panicked while holding it.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands a chunk to the writer; dropped if the writer has ended (the session task learns
    /// why from the writer's handle).
    pub(crate) fn send(&self, chunk: Bytes) {
        let mut queue = self.queue();
        if queue.closed {
            return;
        }
        queue.chunks.push_back(chunk);
        drop(queue);
        self.queued.notify_one();
    }

    /// Tells the writer no more chunks come: it drains, flushes and shuts down.
    pub(crate) fn close(&self) {
        self.queue().closed = true;
        self.queued.notify_one();
    }

    /// Moves queued chunks into `batch`, up to `MAX_BATCH` in all. Returns false once the queue
    /// is closed and empty.
    fn take(&self, batch: &mut VecDeque<Bytes>) -> bool {
        let mut queue = self.queue();
        let room = MAX_BATCH.saturating_sub(batch.len());
        let taken = queue.chunks.len().min(room);
        batch.extend(queue.chunks.drain(..taken));
        !(queue.closed && queue.chunks.is_empty())
    }

    /// The writer ended: later chunks are dropped, queued ones freed now.
    fn abandon(&self) {
        let mut queue = self.queue();
        queue.closed = true;
        queue.chunks = VecDeque::new();
    }

    fn wrote(&self, bytes: usize) {
        self.pending.fetch_sub(bytes, Ordering::AcqRel);
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.progress.notify_one();
    }
}

/// Writes the chunks queued in `shared` to `io` until the queue closes, then shuts `io` down.
pub(crate) async fn writer_loop<W: AsyncWrite + Unpin>(
    io: W,
    shared: std::sync::Arc<Shared>,
) -> io::Result<()> {
    let result = write_all_queued(io, &shared).await;
    shared.abandon();
    result
}

async fn write_all_queued<W: AsyncWrite + Unpin>(mut io: W, shared: &Shared) -> io::Result<()> {
    let mut batch: VecDeque<Bytes> = VecDeque::new();
    let vectored = io.is_write_vectored();
    loop {
        if batch.is_empty() {
            // Idle: make sure buffering layers (TLS) put everything on the wire before waiting.
            io.flush().await?;
            loop {
                let open = shared.take(&mut batch);
                if !batch.is_empty() {
                    break;
                }
                if !open {
                    io.flush().await?;
                    return io.shutdown().await;
                }
                shared.queued.notified().await;
            }
        } else {
            shared.take(&mut batch);
        }
        let written = if vectored {
            let slices: Vec<IoSlice<'_>> = batch.iter().map(|chunk| IoSlice::new(chunk)).collect();
            io.write_vectored(&slices).await?
        } else {
            coalesce(&mut batch);
            match batch.front() {
                Some(chunk) => io.write(chunk).await?,
                None => 0,
            }
        };
        if written == 0 && batch.iter().any(|chunk| !chunk.is_empty()) {
            return Err(io::ErrorKind::WriteZero.into());
        }
        shared.wrote(written);
        consume(&mut batch, written);
    }
}

/// Drops `written` bytes from the front of the batch.
fn consume(batch: &mut VecDeque<Bytes>, mut written: usize) {
    while let Some(front) = batch.front_mut() {
        if written < front.len() {
            front.advance(written);
            return;
        }
        written -= front.len();
        batch.pop_front();
    }
}

/// Copies small leading chunks into one, so a stream without vectored writes still writes many
/// frames per call.
fn coalesce(batch: &mut VecDeque<Bytes>) {
    if batch.len() < 2
        || batch
            .front()
            .is_some_and(|chunk| chunk.len() >= COALESCE_BYTES)
    {
        return;
    }
    let mut joined = BytesMut::with_capacity(COALESCE_BYTES);
    while let Some(front) = batch.front() {
        if !joined.is_empty() && joined.len() + front.len() > COALESCE_BYTES {
            break;
        }
        joined.extend_from_slice(front);
        batch.pop_front();
    }
    batch.push_front(joined.freeze());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(chunks: &[&'static [u8]]) -> VecDeque<Bytes> {
        chunks
            .iter()
            .map(|chunk| Bytes::from_static(chunk))
            .collect()
    }

    #[test]
    fn consume_drops_whole_and_partial_chunks() {
        let mut chunks = batch(&[b"abc", b"de", b"fgh"]);
        consume(&mut chunks, 4);
        assert_eq!(chunks, batch(&[b"e", b"fgh"]));
        consume(&mut chunks, 4);
        assert!(chunks.is_empty());
    }

    #[test]
    fn coalesce_joins_small_chunks_in_order() {
        let mut chunks = batch(&[b"ab", b"cd", b"ef"]);
        coalesce(&mut chunks);
        assert_eq!(chunks, batch(&[b"abcdef"]));
    }

    #[tokio::test]
    async fn writer_writes_everything_in_order_then_shuts_down() {
        let (client, mut server) = tokio::io::duplex(16);
        let shared = std::sync::Arc::new(Shared::default());
        shared.pending.store(12, Ordering::Release);
        for chunk in ["hello ", "world", "!"] {
            shared.send(Bytes::from_static(chunk.as_bytes()));
        }
        shared.close();
        let writer = tokio::spawn(writer_loop(client, shared.clone()));
        let mut received = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut server, &mut received)
            .await
            .unwrap();
        writer.await.unwrap().unwrap();
        assert_eq!(received, b"hello world!");
        assert_eq!(shared.pending(), 0);
        assert_eq!(shared.bytes.load(Ordering::Relaxed), 12);
    }
}
