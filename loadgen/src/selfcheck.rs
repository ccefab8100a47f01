//! `mqgate-bench selfcheck`: the generator's own MQTT publish and receive paths against the
//! in-process [`Sink`], to show how far they go when the broker costs (almost) nothing.
//!
//! What it measures, and what it does not:
//! - Publish path: `--publishers` rumqttc clients (MQTT 3.1.1, or 5 with an `mqtt5://`
//!   --target) publish `--messages` each, unpaced, exactly as in fan-in (payload stamping,
//!   the QoS 1 window, waiting for every PUBACK); the sink only parses and acknowledges. The
//!   rate is publishes confirmed per second.
//! - Receive path: one subscriber takes `--messages` stamped QoS 0 messages that the sink
//!   writes as fast as the socket accepts them, through the same decode, sequence tracking and
//!   latency histogram as every run; the rate is distinct messages per second.
//! - Both share the machine's cores with the sink, so they are lower bounds of the generator's
//!   capacity here. A broker measured well below them is the bottleneck; near them, the
//!   generator may be. STOMP and AMQP clients are not covered (no sink for them).

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cli::Cli;
use crate::client::{self, Options};
use crate::inbox::{Inbox, Percentiles};
use crate::payload::HEADER_LEN;
use crate::report;
use crate::run::{self, Limits, Load};
use crate::scenario;
use crate::sink::{Sink, Stream};
use crate::target::{Protocol, Target};

/// The publish path's figures.
#[derive(Debug, Serialize)]
struct PublishPath {
    publishers: usize,
    sent: u64,
    confirmed: u64,
    sink_received: u64,
    seconds: f64,
    msgs_per_s: f64,
    mb_per_s: f64,
}

/// The receive path's figures.
#[derive(Debug, Serialize)]
struct ReceivePath {
    messages: u64,
    received: u64,
    lost: u64,
    duplicates: u64,
    seconds: f64,
    msgs_per_s: f64,
    mb_per_s: f64,
    /// Mostly time queued behind the sink's burst in socket buffers: a sanity check of the
    /// stamping, not a latency figure.
    latency_us: Percentiles,
}

/// The self-check's report.
#[derive(Debug, Serialize)]
struct SelfcheckReport {
    scenario: &'static str,
    protocol: &'static str,
    size: usize,
    qos: u8,
    window: u16,
    publish: PublishPath,
    receive: ReceivePath,
    measures: &'static str,
    ok: bool,
}

const MEASURES: &str = "generator MQTT publish and receive paths against an in-process \
                        loopback sink sharing the same cores: lower bounds of the generator's \
                        capacity on this machine";

/// Runs both paths; true if every message was accounted for.
/// The sink's count once it reaches `expected`, or once it has not moved for `quiet`, or at
/// `deadline`.
async fn sink_count_after(
    counter: &AtomicU64,
    expected: u64,
    quiet: Duration,
    deadline: Instant,
) -> u64 {
    let mut last = (counter.load(Ordering::Relaxed), Instant::now());
    loop {
        let now_count = counter.load(Ordering::Relaxed);
        if now_count >= expected || Instant::now() >= deadline {
            return now_count;
        }
        if now_count != last.0 {
            last = (now_count, Instant::now());
        } else if last.1.elapsed() >= quiet {
            return now_count;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub async fn run(cli: &Cli, options: &Options, deadline: Instant) -> anyhow::Result<bool> {
    let load = scenario::load(cli);
    let messages = load.messages.unwrap_or(200_000);
    let size = cli.size.max(HEADER_LEN);
    let protocol = if cli.target.protocol == Protocol::Mqtt5 {
        Protocol::Mqtt5
    } else {
        Protocol::Mqtt3
    };
    let sink = Sink::start(Stream { messages, size }).await?;
    let scheme = if protocol == Protocol::Mqtt5 {
        "mqtt5"
    } else {
        "mqtt"
    };
    let target: Target = format!("{scheme}://{}", sink.addr).parse()?;
    let run_id = "selfcheck";

    // Publish path: a fan-in with no subscriber.
    let publishers = cli.publishers.unwrap_or(4);
    let plan = scenario::one_topic(
        run_id,
        &target,
        publishers,
        &[],
        Load {
            messages: Some(messages),
            duration: None,
            rate: 0.0,
            size,
        },
    );
    let limits = Limits {
        deadline,
        quiet: Duration::from_millis(cli.quiet_ms),
        connect_concurrency: cli.connect_concurrency,
    };
    let outcome = run::run(plan, options, &limits, None).await?;
    let seconds = outcome.publish_time.as_secs_f64();
    let rate = |count: u64, seconds: f64| {
        if seconds > 0.0 {
            count as f64 / seconds
        } else {
            0.0
        }
    };
    let publish = PublishPath {
        publishers,
        sent: outcome.sent,
        confirmed: outcome.confirmed,
        // At QoS 0 the clients are done once they have written; the sink may still be reading.
        sink_received: sink_count_after(&sink.received, outcome.sent, limits.quiet, deadline).await,
        seconds,
        msgs_per_s: rate(outcome.confirmed, seconds),
        mb_per_s: rate(outcome.confirmed, seconds) * size as f64 / 1e6,
    };

    // Receive path: the sink streams to one subscriber.
    let progress = Arc::new(AtomicU64::new(0));
    let stop = CancellationToken::new();
    let subscription = client::subscribe(
        &target,
        "bench-selfcheck-s0",
        &scenario::key(run_id, 1),
        options,
        Inbox::new(progress.clone()),
        stop.clone(),
    )
    .await?;
    let started = std::time::Instant::now();
    let mut last = (0, Instant::now());
    while progress.load(Ordering::Relaxed) < messages && Instant::now() < deadline {
        let count = progress.load(Ordering::Relaxed);
        if count != last.0 {
            last = (count, Instant::now());
        } else if last.1.elapsed() >= limits.quiet {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    stop.cancel();
    let (inbox, error) = subscription.await?;
    let tally = inbox.tracker.tally(&[(0, messages)]);
    let seconds = inbox.last_at.map_or(0.0, |at| {
        at.saturating_duration_since(started).as_secs_f64()
    });
    let distinct = tally.received - tally.duplicates;
    let receive = ReceivePath {
        messages,
        received: tally.received,
        lost: tally.lost,
        duplicates: tally.duplicates,
        seconds,
        msgs_per_s: rate(distinct, seconds),
        mb_per_s: rate(distinct, seconds) * size as f64 / 1e6,
        latency_us: Percentiles::of(&inbox.latency),
    };

    let ok = outcome.errors.is_empty()
        && error.is_none()
        && publish.confirmed == publish.sent
        && publish.sink_received >= publish.sent
        && receive.lost == 0
        && receive.duplicates == 0;
    let mut out = report::human_output(cli.json.as_deref());
    writeln!(
        out,
        "selfcheck ({scheme}, {size} B, qos {}, window {}): {MEASURES}",
        cli.qos, options.window
    )?;
    writeln!(
        out,
        "  publish: {} publishers, {} sent, {} confirmed, {} at the sink in {:.3} s: \
         {:.0} msgs/s, {:.2} MB/s",
        publish.publishers,
        publish.sent,
        publish.confirmed,
        publish.sink_received,
        publish.seconds,
        publish.msgs_per_s,
        publish.mb_per_s
    )?;
    writeln!(
        out,
        "  receive: {} of {} (lost {}, duplicates {}) in {:.3} s: {:.0} msgs/s, {:.2} MB/s",
        receive.received,
        receive.messages,
        receive.lost,
        receive.duplicates,
        receive.seconds,
        receive.msgs_per_s,
        receive.mb_per_s
    )?;
    for problem in outcome.errors.iter().chain(error.iter()) {
        writeln!(out, "  error: {problem}")?;
    }
    writeln!(out, "  {}", if ok { "OK" } else { "NOT OK" })?;
    if let Some(path) = &cli.json {
        report::write_json(
            path,
            &SelfcheckReport {
                scenario: "selfcheck",
                protocol: scheme,
                size,
                qos: cli.qos,
                window: options.window,
                publish,
                receive,
                measures: MEASURES,
                ok,
            },
        )?;
    }
    Ok(ok)
}
