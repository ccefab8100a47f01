//! The idle-connections scenario: open N connections that log in and then say nothing, and
//! measure how fast the broker accepted them and how much resident memory each one costs it.
//!
//! RSS is read before the first connect and again once every connection is open and a short
//! settle time (the hold, `--duration-s`, default 2 s) has passed; the growth divided by the
//! connections open is the per-connection figure. It includes whatever the broker allocates
//! per connection lazily or keeps after a burst (allocator caches), which is what an operator
//! pays. Connections that fail are counted, not retried.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::broker::Broker;
use crate::client::{idle, Options};
use crate::target::Target;

/// What the scenario measured.
#[derive(Debug)]
pub struct IdleOutcome {
    /// Connections logged in.
    pub open: u64,
    /// Logins per second while connecting.
    pub connects_per_s: f64,
    /// Time from the first connect to the last login, seconds.
    pub connect_s: f64,
    /// Broker RSS before, bytes.
    pub rss_before: Option<u64>,
    /// Broker RSS with everything open, bytes.
    pub rss_after: Option<u64>,
    /// Broker CPU seconds spent while connecting and holding.
    pub broker_cpu_s: Option<f64>,
    /// Failures, one line per failed connection.
    pub errors: Vec<String>,
}

/// Opens `count` connections to `target`, `concurrency` logins at a time, holds them for
/// `hold`, measures, and closes them; nothing goes past `deadline`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    target: &Target,
    run_id: &str,
    count: usize,
    concurrency: usize,
    hold: Duration,
    options: &Options,
    deadline: Instant,
    broker: Option<&Broker>,
) -> IdleOutcome {
    let rss_before = broker.and_then(|broker| broker.rss_bytes().ok());
    let cpu_before = broker.and_then(|broker| broker.cpu_seconds().ok());
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(count);
    for index in 0..count {
        let (permits, target, options) = (permits.clone(), target.clone(), options.clone());
        let name = format!("bench-{run_id}-i{index}");
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await?;
            let login = idle::login(&target, &name, &options);
            match tokio::time::timeout(options.connect_timeout, login).await {
                Ok(result) => result,
                Err(_) => anyhow::bail!("no login within {:?}", options.connect_timeout),
            }
        }));
    }
    let mut open: Vec<TcpStream> = Vec::with_capacity(count);
    let mut errors = Vec::new();
    for task in tasks {
        let abort = task.abort_handle();
        match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(Ok(stream))) => open.push(stream),
            Ok(Ok(Err(error))) => errors.push(format!("{error:#}")),
            Ok(Err(join)) => errors.push(format!("login task: {join}")),
            Err(_) => {
                abort.abort();
                errors.push("login not done by the deadline".to_owned());
            }
        }
    }
    let connecting = started.elapsed().as_secs_f64();
    tokio::time::sleep_until((Instant::now() + hold).min(deadline)).await;
    let rss_after = broker.and_then(|broker| broker.rss_bytes().ok());
    let cpu_after = broker.and_then(|broker| broker.cpu_seconds().ok());
    let opened = open.len() as u64;
    drop(open);
    IdleOutcome {
        open: opened,
        connects_per_s: if connecting > 0.0 {
            opened as f64 / connecting
        } else {
            0.0
        },
        connect_s: connecting,
        rss_before,
        rss_after,
        broker_cpu_s: cpu_before
            .zip(cpu_after)
            .map(|(before, after)| after - before),
        errors,
    }
}
