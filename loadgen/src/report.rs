//! The report of a run: a few human lines, and one JSON object for the comparison script.
//!
//! Rates: `msgs_per_s` counts deliveries (a message received by 100 subscribers counts 100
//! times), distinct and expected ones only, over the time from the first publish to the last
//! delivery; `mb_per_s` is the same in payload megabytes (10^6 bytes); `sent_per_s` counts
//! publishes over the publishing time. `msgs_per_cpu_s` is deliveries per broker CPU second.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::idle::IdleOutcome;
use crate::inbox::Percentiles;
use crate::run::{Outcome, StopReason};

/// The knobs a run used.
#[derive(Debug, Clone, Serialize)]
pub struct Params {
    /// Publishing clients.
    pub publishers: usize,
    /// Subscribing clients.
    pub subscribers: usize,
    /// Messages per publisher (absent with a duration).
    pub messages: Option<u64>,
    /// Publishing time, seconds (absent with a message count).
    pub duration_s: Option<f64>,
    /// Payload bytes.
    pub size: usize,
    /// 0 or 1.
    pub qos: u8,
    /// Messages per second per publisher (0: unthrottled).
    pub rate: f64,
    /// Confirmation window and prefetch.
    pub window: u16,
    /// The run's bound, seconds.
    pub timeout_s: f64,
    /// `idle`: connections asked for.
    pub connections: Option<usize>,
}

/// One run's report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Where publishers (and, except in `cross`, subscribers) connected.
    pub target: String,
    /// `cross`: where subscribers connected.
    pub out_targets: Vec<String>,
    /// The knobs.
    pub params: Params,
    /// Messages handed to publishing clients.
    pub sent: u64,
    /// Of those, confirmed by the broker (QoS 1) or written out (QoS 0).
    pub confirmed: u64,
    /// Of those, refused by the broker.
    pub refused: u64,
    /// Deliveries expected (every subscriber, every message of its publishers).
    pub expected: u64,
    /// Deliveries received, duplicates included.
    pub received: u64,
    /// Expected deliveries that never came.
    pub lost: u64,
    /// Extra copies received.
    pub duplicates: u64,
    /// Deliveries that came after a later message of the same publisher.
    pub out_of_order: u64,
    /// Distinct deliveries nobody expected (and bodies that were not payloads).
    pub unexpected: u64,
    /// complete, quiet or deadline.
    pub stop_reason: String,
    /// First publish to last delivery, seconds (`idle`: first connect to last login).
    pub elapsed_s: f64,
    /// First publish to the last one confirmed (QoS 1) or written (QoS 0), seconds.
    pub publish_s: f64,
    /// Publishes per second over `publish_s`.
    pub sent_per_s: f64,
    /// Distinct expected deliveries per second.
    pub msgs_per_s: f64,
    /// The same in payload MB (10^6 bytes) per second.
    pub mb_per_s: f64,
    /// End-to-end latency, microseconds.
    pub latency_us: Percentiles,
    /// How late paced sends left against their schedule, microseconds (paced runs only).
    pub send_lag_us: Option<Percentiles>,
    /// Broker CPU seconds during the run (with --broker-pid).
    pub broker_cpu_s: Option<f64>,
    /// Deliveries per broker CPU second.
    pub msgs_per_cpu_s: Option<f64>,
    /// The generator's own CPU seconds during the run.
    pub generator_cpu_s: Option<f64>,
    /// `idle`: connections that logged in.
    pub connections_open: Option<u64>,
    /// `idle`: logins per second.
    pub connects_per_s: Option<f64>,
    /// `idle`: broker RSS growth per open connection, bytes.
    pub rss_per_conn_bytes: Option<f64>,
    /// `idle`: broker RSS before connecting, bytes.
    pub rss_before_bytes: Option<u64>,
    /// `idle`: broker RSS with every connection open, bytes.
    pub rss_after_bytes: Option<u64>,
    /// Client failures, grouped.
    pub errors: Vec<String>,
    /// Not cut short by the deadline, no client error, no corrupt body, and at QoS 1 no loss,
    /// duplicate or unexpected message (at QoS 0 loss is the broker's right).
    pub ok: bool,
}

/// `numerator / seconds`, 0 for no time.
fn per_second(numerator: f64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        numerator / seconds
    } else {
        0.0
    }
}

impl Report {
    /// The report of a message run.
    pub fn of_run(
        scenario: &str,
        target: String,
        out_targets: Vec<String>,
        params: Params,
        outcome: &Outcome,
    ) -> Self {
        let tally = &outcome.tally;
        let delivered = outcome.expected.saturating_sub(tally.lost);
        let elapsed_s = outcome.elapsed.as_secs_f64();
        let publish_s = outcome.publish_time.as_secs_f64();
        let qos1 = params.qos > 0;
        let clean = tally.lost == 0 && tally.duplicates == 0 && tally.unexpected == 0;
        let ok = outcome.errors.is_empty()
            && outcome.corrupt == 0
            && outcome.stop != StopReason::Deadline
            && (!qos1 || clean);
        let msgs_per_cpu_s = outcome
            .broker_cpu_s
            .filter(|&cpu| cpu > 0.0)
            .map(|cpu| delivered as f64 / cpu);
        Self {
            scenario: scenario.to_owned(),
            target,
            out_targets,
            sent: outcome.sent,
            confirmed: outcome.confirmed,
            refused: outcome.refused,
            expected: outcome.expected,
            received: tally.received,
            lost: tally.lost,
            duplicates: tally.duplicates,
            out_of_order: tally.out_of_order,
            unexpected: tally.unexpected + outcome.corrupt,
            stop_reason: outcome.stop.name().to_owned(),
            elapsed_s,
            publish_s,
            sent_per_s: per_second(outcome.sent as f64, publish_s),
            msgs_per_s: per_second(delivered as f64, elapsed_s),
            mb_per_s: per_second(delivered as f64 * params.size as f64 / 1e6, elapsed_s),
            latency_us: Percentiles::of(&outcome.latency),
            send_lag_us: (!outcome.send_lag.is_empty()).then(|| Percentiles::of(&outcome.send_lag)),
            broker_cpu_s: outcome.broker_cpu_s,
            msgs_per_cpu_s,
            generator_cpu_s: outcome.generator_cpu_s,
            connections_open: None,
            connects_per_s: None,
            rss_per_conn_bytes: None,
            rss_before_bytes: None,
            rss_after_bytes: None,
            errors: outcome.errors.clone(),
            ok,
            params,
        }
    }

    /// The human summary.
    pub fn print(&self, out: &mut impl Write) -> std::io::Result<()> {
        let p = &self.params;
        writeln!(
            out,
            "{} on {}{}: {} pub, {} sub, {} B, qos {}, rate {}/s, window {}",
            self.scenario,
            self.target,
            if self.out_targets.is_empty() {
                String::new()
            } else {
                format!(" -> {}", self.out_targets.join(", "))
            },
            p.publishers,
            p.subscribers,
            p.size,
            p.qos,
            p.rate,
            p.window
        )?;
        if let Some(open) = self.connections_open {
            writeln!(
                out,
                "  connections: {open} open of {}, {:.0} connects/s",
                p.connections.unwrap_or(0),
                self.connects_per_s.unwrap_or(0.0)
            )?;
            if let (Some(before), Some(after)) = (self.rss_before_bytes, self.rss_after_bytes) {
                writeln!(
                    out,
                    "  broker RSS: {:.1} MiB -> {:.1} MiB, {:.0} bytes per connection",
                    before as f64 / 1048576.0,
                    after as f64 / 1048576.0,
                    self.rss_per_conn_bytes.unwrap_or(0.0)
                )?;
            }
        } else {
            writeln!(
                out,
                "  sent {} (confirmed {}, refused {}), expected {}, received {}: lost {}, \
                 duplicates {}, out of order {}, unexpected {} [{}]",
                self.sent,
                self.confirmed,
                self.refused,
                self.expected,
                self.received,
                self.lost,
                self.duplicates,
                self.out_of_order,
                self.unexpected,
                self.stop_reason
            )?;
            writeln!(
                out,
                "  {:.0} msgs/s delivered, {:.2} MB/s, {:.0} msgs/s sent; elapsed {:.3} s \
                 (publishing {:.3} s)",
                self.msgs_per_s, self.mb_per_s, self.sent_per_s, self.elapsed_s, self.publish_s
            )?;
            let l = &self.latency_us;
            writeln!(
                out,
                "  latency us: p50 {} p90 {} p99 {} p99.9 {} max {} (n {})",
                l.p50, l.p90, l.p99, l.p999, l.max, l.count
            )?;
            if let Some(lag) = &self.send_lag_us {
                writeln!(
                    out,
                    "  send lag us: p50 {} p99 {} p99.9 {} max {}",
                    lag.p50, lag.p99, lag.p999, lag.max
                )?;
            }
        }
        if let Some(cpu) = self.broker_cpu_s {
            match self.msgs_per_cpu_s {
                Some(rate) => writeln!(
                    out,
                    "  broker CPU {cpu:.2} s, {rate:.0} msgs per CPU second"
                )?,
                None => writeln!(out, "  broker CPU {cpu:.2} s")?,
            }
        }
        if let Some(cpu) = self.generator_cpu_s {
            writeln!(
                out,
                "  generator CPU {cpu:.2} s ({:.0}% of a core over the run)",
                100.0 * cpu / self.elapsed_s.max(1e-9)
            )?;
        }
        for error in &self.errors {
            writeln!(out, "  error: {error}")?;
        }
        writeln!(out, "  {}", if self.ok { "OK" } else { "NOT OK" })
    }
}

/// Where the human summary goes: standard output, or standard error when the JSON report
/// takes standard output (`--json -`).
pub fn human_output(json: Option<&Path>) -> Box<dyn Write> {
    if json.is_some_and(|path| path.as_os_str() == "-") {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    }
}

/// Writes `value` as JSON to `path` ("-": standard output).
pub fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    if path.as_os_str() == "-" {
        println!("{text}");
    } else {
        std::fs::write(path, text + "\n")?;
    }
    Ok(())
}

/// The report of the idle-connections scenario.
pub fn idle_report(target: String, params: Params, outcome: &IdleOutcome) -> Report {
    let rss_per_conn_bytes = match (outcome.rss_before, outcome.rss_after, outcome.open) {
        (Some(before), Some(after), open) if open > 0 => {
            Some((after as f64 - before as f64) / open as f64)
        }
        _ => None,
    };
    let mut errors = outcome.errors.clone();
    if errors.len() > 10 {
        let more = errors.len() - 10;
        errors.truncate(10);
        errors.push(format!("... and {more} more failed connections"));
    }
    Report {
        scenario: "idle".to_owned(),
        target,
        out_targets: Vec::new(),
        sent: 0,
        confirmed: 0,
        refused: 0,
        expected: 0,
        received: 0,
        lost: 0,
        duplicates: 0,
        out_of_order: 0,
        unexpected: 0,
        stop_reason: "complete".to_owned(),
        elapsed_s: outcome.connect_s,
        publish_s: 0.0,
        sent_per_s: 0.0,
        msgs_per_s: 0.0,
        mb_per_s: 0.0,
        latency_us: Percentiles::default(),
        send_lag_us: None,
        broker_cpu_s: outcome.broker_cpu_s,
        msgs_per_cpu_s: None,
        generator_cpu_s: None,
        connections_open: Some(outcome.open),
        connects_per_s: Some(outcome.connects_per_s),
        rss_per_conn_bytes,
        rss_before_bytes: outcome.rss_before,
        rss_after_bytes: outcome.rss_after,
        ok: outcome.errors.is_empty(),
        errors,
        params,
    }
}
