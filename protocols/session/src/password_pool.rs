//! The threads that check passwords: a fixed few, shared by every adapter.
//!
//! Argon2 is memory-hard: each check allocates its whole memory cost (19 MiB with the default
//! parameters) and burns tens of milliseconds of CPU. On Tokio's blocking pool a burst of logins
//! ran hundreds of checks at once, each on its own thread and malloc arena, and a load test of
//! 1000 logins took the gateway to 24 GB and the OOM killer (unknown users are checked too,
//! against a dummy hash, so this needs no valid account).
//!
//! Invariants:
//! - At most [`threads`] checks run at once (one per core, up to 8), so the memory logins can
//!   hold is bounded by that many argon2 blocks, however many clients log in.
//! - A check whose client gave up (its handshake timed out, its connection dropped) is skipped
//!   when its turn comes, so abandoned logins cost no CPU.
//! - Waiting checks are small closures; their number is bounded by the connections in their
//!   handshake (the gateway's connection limit).

use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

type Job = Box<dyn FnOnce() + Send>;

/// The pool could not run a check (its threads could not be started).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the password check threads are not running")]
pub struct PoolUnavailable;

/// The most checks that run at once: the machine's cores, between 1 and 8.
pub fn threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, 8)
}

fn sender() -> Option<&'static Mutex<mpsc::Sender<Job>>> {
    static SENDER: OnceLock<Option<Mutex<mpsc::Sender<Job>>>> = OnceLock::new();
    SENDER
        .get_or_init(|| {
            let (sender, receiver) = mpsc::channel::<Job>();
            let receiver = Arc::new(Mutex::new(receiver));
            let mut started = 0;
            for index in 0..threads() {
                let receiver = Arc::clone(&receiver);
                let spawned = std::thread::Builder::new()
                    .name(format!("mqgate-login-{index}"))
                    .spawn(move || loop {
                        // The lock is held only to take the next job, not while it runs.
                        let next = match receiver.lock() {
                            Ok(receiver) => receiver.recv(),
                            Err(_) => return,
                        };
                        match next {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    });
                if spawned.is_ok() {
                    started += 1;
                }
            }
            (started > 0).then(|| Mutex::new(sender))
        })
        .as_ref()
}

/// Runs `check` on one of the pool's threads and returns its result.
pub async fn run<T, F>(check: F) -> Result<T, PoolUnavailable>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (reply, result) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        if !reply.is_closed() {
            let _ = reply.send(check());
        }
    });
    let sender = sender().ok_or(PoolUnavailable)?;
    sender
        .lock()
        .map_err(|_| PoolUnavailable)?
        .send(job)
        .map_err(|_| PoolUnavailable)?;
    result.await.map_err(|_| PoolUnavailable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn at_most_threads_checks_run_at_once() {
        static RUNNING: AtomicUsize = AtomicUsize::new(0);
        static PEAK: AtomicUsize = AtomicUsize::new(0);
        let checks = (0..32).map(|n| {
            run(move || {
                let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
                PEAK.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(2));
                RUNNING.fetch_sub(1, Ordering::SeqCst);
                n * 2
            })
        });
        let results: Vec<_> = futures_join_all(checks).await;
        assert_eq!(results, (0..32).map(|n| Ok(n * 2)).collect::<Vec<_>>());
        assert!(PEAK.load(Ordering::SeqCst) <= threads());
    }

    async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let handles: Vec<_> = futures.map(tokio::spawn).collect();
        let mut outputs = Vec::new();
        for handle in handles {
            outputs.push(handle.await.unwrap());
        }
        outputs
    }
}
