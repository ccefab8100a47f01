//! Runs a [`Plan`]: subscribers first (each confirmed subscribed), then publishers, then the
//! coordinator that decides when the run is over.
//!
//! Invariants worth naming:
//! - Every wait is bounded by the run's deadline: connects, each publish, the confirmations,
//!   the wait for deliveries, the subscribers' shutdown. A publisher task still running at
//!   the deadline is aborted; its sent count lives outside the task, so nothing is lost from
//!   the books.
//! - The run ends when every expected message arrived (complete), when nothing new arrived
//!   for the quiet period after the publishers were done (quiet: the rest is lost), or at the
//!   deadline.
//! - Broker CPU is read just before the first publish and once the run ended, so connection
//!   setup is not counted.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::client::{self, Options, Publisher};
use crate::inbox::{latency_histogram, Inbox};
use crate::payload::{nanos_since_origin, Stamp};
use crate::target::Target;
use crate::tracker::Tally;

/// How publishers publish.
#[derive(Debug, Clone)]
pub struct Load {
    /// Messages per publisher; `None` with a duration.
    pub messages: Option<u64>,
    /// How long publishers publish; wins over `messages`.
    pub duration: Option<Duration>,
    /// Messages per second per publisher; 0 for as fast as the client takes them.
    pub rate: f64,
    /// Payload bytes.
    pub size: usize,
}

/// One publishing client.
#[derive(Debug, Clone)]
pub struct PublisherSpec {
    /// Its id in every payload, unique in the run.
    pub id: u64,
    /// Where it connects.
    pub target: Target,
    /// The logical key it publishes on.
    pub key: String,
}

/// One subscribing client.
#[derive(Debug, Clone)]
pub struct SubscriberSpec {
    /// Where it connects.
    pub target: Target,
    /// The logical key it subscribes to.
    pub key: String,
    /// The publishers whose every message it must receive.
    pub sources: Vec<u64>,
}

/// A scenario, resolved into clients.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The run's id (in client ids).
    pub run: String,
    /// The publishers.
    pub publishers: Vec<PublisherSpec>,
    /// The subscribers.
    pub subscribers: Vec<SubscriberSpec>,
    /// How publishers publish.
    pub load: Load,
}

/// Bounds of a run.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Nothing of the run goes past this.
    pub deadline: Instant,
    /// After the publishers are done, the longest wait for a new message.
    pub quiet: Duration,
    /// Connections opened at once during setup.
    pub connect_concurrency: usize,
}

/// Why the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Every expected message arrived.
    Complete,
    /// Nothing new arrived for the quiet period after the publishers were done.
    Quiet,
    /// The deadline came first (publishers were cut short, or deliveries still missing).
    Deadline,
}

impl StopReason {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            StopReason::Complete => "complete",
            StopReason::Quiet => "quiet",
            StopReason::Deadline => "deadline",
        }
    }
}

/// What a run measured.
#[derive(Debug)]
pub struct Outcome {
    /// Messages handed to the publishing clients.
    pub sent: u64,
    /// Of those, confirmed by the broker (QoS 1) or written (QoS 0).
    pub confirmed: u64,
    /// Of those, refused by the broker (MQTT 5 PUBACK error, AMQP nack).
    pub refused: u64,
    /// Deliveries expected: each subscriber, every message of its sources.
    pub expected: u64,
    /// Receivers' counts, summed.
    pub tally: Tally,
    /// Bodies that were not benchmark payloads.
    pub corrupt: u64,
    /// End-to-end latency of every delivery, microseconds.
    pub latency: Histogram<u64>,
    /// How late paced sends went out against their schedule, microseconds (empty when
    /// unpaced).
    pub send_lag: Histogram<u64>,
    /// First publish to the last one confirmed (QoS 1) or written out (QoS 0).
    pub publish_time: Duration,
    /// First publish to the last delivery (or to the end of publishing if nothing arrived).
    pub elapsed: Duration,
    /// Why the run ended.
    pub stop: StopReason,
    /// Failures of clients, "reason (xN)".
    pub errors: Vec<String>,
    /// Broker CPU seconds from the first publish to the end.
    pub broker_cpu_s: Option<f64>,
    /// The generator's own CPU seconds over the same time: next to the broker's, it shows
    /// whether the generator, not the broker, was the limit.
    pub generator_cpu_s: Option<f64>,
}

/// Runs `make(i)` for every `i` below `count`, at most `concurrency` at once, within
/// `deadline`; the results in order, or the first error.
pub async fn bounded_all<T, F, Fut>(
    count: usize,
    concurrency: usize,
    deadline: Instant,
    make: F,
) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<T>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::with_capacity(count);
    for index in 0..count {
        let permits = permits.clone();
        let future = make(index);
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await?;
            future.await
        }));
    }
    let mut results = Vec::with_capacity(count);
    let mut failure = None;
    for (index, task) in tasks.into_iter().enumerate() {
        if failure.is_some() {
            task.abort();
            continue;
        }
        let abort = task.abort_handle();
        let result = tokio::time::timeout_at(deadline, task).await;
        if result.is_err() {
            abort.abort();
        }
        match result {
            Ok(Ok(Ok(value))) => results.push(value),
            Ok(Ok(Err(error))) => failure = Some(error),
            Ok(Err(join)) => failure = Some(anyhow::anyhow!("setup task failed: {join}")),
            Err(_) => {
                failure = Some(anyhow::anyhow!(
                    "connection {index} not set up by the deadline"
                ))
            }
        }
    }
    match failure {
        Some(error) => Err(error),
        None => Ok(results),
    }
}

/// What one publisher task reports.
struct Published {
    error: Option<String>,
    /// The deadline stopped it before its load was done.
    cut_short: bool,
    finished_at: Instant,
    lag: Histogram<u64>,
}

/// Publishes per `load`, waits for every confirmation (the publisher is done then), closes.
#[allow(clippy::too_many_arguments)]
async fn publish(
    mut publisher: Publisher,
    id: u64,
    slot: usize,
    of: usize,
    load: Load,
    start: Instant,
    deadline: Instant,
    sent: Arc<AtomicU64>,
) -> Published {
    let paced = load.rate > 0.0;
    // Paced publishers start spread over one interval, so they do not all send at once.
    let first = if paced {
        start + Duration::from_secs_f64(slot as f64 / of.max(1) as f64 / load.rate)
    } else {
        start
    };
    let end = load
        .duration
        .map_or(deadline, |d| (start + d).min(deadline));
    let limit = if load.duration.is_some() {
        u64::MAX
    } else {
        load.messages.unwrap_or(u64::MAX)
    };
    let mut lag = latency_histogram();
    let mut error = None;
    tokio::time::sleep_until(first).await;
    let mut sequence = 0u64;
    let mut cut_short = false;
    while sequence < limit {
        let now = Instant::now();
        let due = if paced {
            first + Duration::from_secs_f64(sequence as f64 / load.rate)
        } else {
            now
        };
        if due >= end || now >= deadline {
            cut_short = due >= deadline || now >= deadline;
            break;
        }
        if due > now {
            tokio::time::sleep_until(due).await;
        }
        let sent_at = Instant::now();
        if paced {
            let late = sent_at.saturating_duration_since(due).as_micros();
            let _ = lag.record(u64::try_from(late).unwrap_or(u64::MAX).clamp(1, 60_000_000));
        }
        let body = Stamp {
            publisher: id,
            sequence,
            sent_ns: nanos_since_origin(sent_at.into_std()),
        }
        .encode(load.size);
        if let Err(failed) = publisher.publish(body).await {
            error = Some(format!("publish: {failed:#}"));
            break;
        }
        sequence += 1;
        sent.store(sequence, Ordering::Relaxed);
    }
    let confirms = publisher.confirms();
    confirms.wait_for(sequence, deadline).await;
    let finished_at = Instant::now();
    let error = error.or_else(|| confirms.failure());
    publisher.close().await;
    Published {
        error,
        cut_short,
        finished_at,
        lag,
    }
}

/// Errors grouped: "reason (xN)", most frequent first, at most 10.
fn group_errors(errors: Vec<String>) -> Vec<String> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for error in errors {
        *counts.entry(error).or_default() += 1;
    }
    let mut grouped: Vec<(String, usize)> = counts.into_iter().collect();
    grouped.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    grouped
        .into_iter()
        .take(10)
        .map(|(error, count)| format!("{error} (x{count})"))
        .collect()
}

/// Runs `plan` with `options` within `limits`; `broker`, when given, is measured.
pub async fn run(
    plan: Plan,
    options: &Options,
    limits: &Limits,
    broker: Option<&Broker>,
) -> anyhow::Result<Outcome> {
    let progress = Arc::new(AtomicU64::new(0));
    let stop = CancellationToken::new();
    let _stop_on_return = stop.clone().drop_guard();

    let subscribers = {
        let specs = Arc::new(plan.subscribers.clone());
        let (options, progress, stop, run) = (
            options.clone(),
            progress.clone(),
            stop.clone(),
            plan.run.clone(),
        );
        bounded_all(
            specs.len(),
            limits.connect_concurrency,
            limits.deadline,
            move |index| {
                let (specs, options, progress, stop) = (
                    specs.clone(),
                    options.clone(),
                    progress.clone(),
                    stop.clone(),
                );
                let name = format!("bench-{run}-s{index}");
                async move {
                    let spec = &specs[index];
                    client::subscribe(
                        &spec.target,
                        &name,
                        &spec.key,
                        &options,
                        Inbox::new(progress),
                        stop,
                    )
                    .await
                    .with_context(|| format!("subscriber {index} at {}", spec.target))
                }
            },
        )
        .await?
    };

    let publishers = {
        let specs = Arc::new(plan.publishers.clone());
        let (options, run) = (options.clone(), plan.run.clone());
        bounded_all(
            specs.len(),
            limits.connect_concurrency,
            limits.deadline,
            move |index| {
                let (specs, options) = (specs.clone(), options.clone());
                let name = format!("bench-{run}-p{index}");
                async move {
                    let spec = &specs[index];
                    Publisher::connect(&spec.target, &name, &spec.key, &options)
                        .await
                        .with_context(|| format!("publisher {index} at {}", spec.target))
                }
            },
        )
        .await?
    };

    let cpu_before = broker.and_then(|broker| broker.cpu_seconds().ok());
    let own_before = crate::broker::own_cpu_seconds();
    let start = Instant::now() + Duration::from_millis(20);
    let count = publishers.len();
    let mut tasks = Vec::with_capacity(count);
    let mut tallies = Vec::with_capacity(count);
    for (slot, (publisher, spec)) in publishers.into_iter().zip(&plan.publishers).enumerate() {
        let sent = Arc::new(AtomicU64::new(0));
        let confirms = publisher.confirms();
        tallies.push((spec.id, sent.clone(), confirms));
        tasks.push(tokio::spawn(publish(
            publisher,
            spec.id,
            slot,
            count,
            plan.load.clone(),
            start,
            limits.deadline,
            sent,
        )));
    }

    let mut errors = Vec::new();
    let mut send_lag = latency_histogram();
    let mut publishing_done = start;
    let mut cut_short = false;
    for task in tasks {
        let abort = task.abort_handle();
        match tokio::time::timeout_at(limits.deadline + Duration::from_secs(1), task).await {
            Ok(Ok(published)) => {
                publishing_done = publishing_done.max(published.finished_at);
                cut_short |= published.cut_short;
                let _ = send_lag.add(&published.lag);
                errors.extend(published.error);
            }
            Ok(Err(join)) => errors.push(format!("publisher task: {join}")),
            Err(_) => {
                abort.abort();
                cut_short = true;
                publishing_done = publishing_done.max(limits.deadline);
                errors.push("publisher still busy at the deadline".to_owned());
            }
        }
    }
    let sent: HashMap<u64, u64> = tallies
        .iter()
        .map(|(id, sent, _)| (*id, sent.load(Ordering::Relaxed)))
        .collect();
    let expected: u64 = plan
        .subscribers
        .iter()
        .flat_map(|spec| spec.sources.iter())
        .map(|source| sent.get(source).copied().unwrap_or(0))
        .sum();

    let mut seen = progress.load(Ordering::Relaxed);
    let mut last_change = Instant::now();
    let stop_reason = loop {
        let now = Instant::now();
        let count = progress.load(Ordering::Relaxed);
        if count >= expected {
            // Everything sent arrived, but a load the deadline cut short is not complete.
            break if cut_short {
                StopReason::Deadline
            } else {
                StopReason::Complete
            };
        }
        if count != seen {
            seen = count;
            last_change = now;
        }
        if now >= limits.deadline {
            break StopReason::Deadline;
        }
        if now.saturating_duration_since(last_change.max(publishing_done)) >= limits.quiet {
            break StopReason::Quiet;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let cpu_after = broker.and_then(|broker| broker.cpu_seconds().ok());
    let own_after = crate::broker::own_cpu_seconds();
    stop.cancel();

    let mut tally = Tally::default();
    let mut latency = latency_histogram();
    let mut corrupt = 0;
    let mut last_delivery: Option<std::time::Instant> = None;
    let grace = Instant::now() + Duration::from_secs(5);
    for (subscription, spec) in subscribers.into_iter().zip(&plan.subscribers) {
        let abort = subscription.abort_handle();
        let (inbox, error) = match tokio::time::timeout_at(grace, subscription).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => {
                errors.push(format!("subscriber task: {join}"));
                continue;
            }
            Err(_) => {
                abort.abort();
                errors.push("subscriber did not stop".to_owned());
                continue;
            }
        };
        errors.extend(error);
        let sources: Vec<(u64, u64)> = spec
            .sources
            .iter()
            .map(|source| (*source, sent.get(source).copied().unwrap_or(0)))
            .collect();
        tally.add(&inbox.tracker.tally(&sources));
        let _ = latency.add(&inbox.latency);
        corrupt += inbox.corrupt;
        last_delivery = last_delivery.max(inbox.last_at);
    }

    let start_std = start.into_std();
    let last = last_delivery.map_or(publishing_done.into_std(), |at| at.max(start_std));
    Ok(Outcome {
        sent: sent.values().sum(),
        confirmed: tallies.iter().map(|(_, _, c)| c.confirmed()).sum(),
        refused: tallies.iter().map(|(_, _, c)| c.refused()).sum(),
        expected,
        tally,
        corrupt,
        latency,
        send_lag,
        publish_time: publishing_done.saturating_duration_since(start),
        elapsed: last.saturating_duration_since(start_std),
        stop: stop_reason,
        errors: group_errors(errors),
        broker_cpu_s: cpu_before
            .zip(cpu_after)
            .map(|(before, after)| after - before),
        generator_cpu_s: own_before
            .zip(own_after)
            .map(|(before, after)| after - before),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_grouped_by_frequency() {
        let grouped = group_errors(vec!["b".into(), "a".into(), "b".into()]);
        assert_eq!(grouped, vec!["b (x2)", "a (x1)"]);
    }

    #[tokio::test]
    async fn bounded_all_keeps_order_and_fails_fast() {
        let deadline = Instant::now() + Duration::from_secs(5);
        let values = bounded_all(20, 3, deadline, |index| async move {
            tokio::time::sleep(Duration::from_millis((20 - index as u64) % 4)).await;
            Ok(index * 2)
        })
        .await
        .unwrap();
        assert_eq!(values, (0..20).map(|i| i * 2).collect::<Vec<_>>());
        let failed = bounded_all(5, 2, deadline, |index| async move {
            anyhow::ensure!(index != 3, "number {index}");
            Ok(index)
        })
        .await;
        assert_eq!(failed.unwrap_err().to_string(), "number 3");
    }
}
