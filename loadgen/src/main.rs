//! `mqgate-bench`, the load generator of mqgate's benchmark harness.
//!
//! Flow: the command line ([`cli`]) names a scenario; [`scenario`] turns a message scenario
//! into a [`run::Plan`] of publishers and subscribers on logical keys; [`run`] connects them
//! through the protocol clients of [`client`], publishes payloads stamped by [`payload`],
//! and checks every delivery in an [`inbox`] (a [`tracker`] per receiver, a latency
//! histogram); [`report`] prints the result and writes it as JSON. [`idle`] (connections
//! that do nothing) and [`selfcheck`] (the generator against an in-process [`sink`]) have
//! their own flows. [`broker`] reads the broker's CPU time and memory from /proc.
//!
//! Every run stops by itself: the deadline (`--timeout-s`) bounds each phase, and a backstop
//! ends the process a little after it.

mod broker;
mod cli;
mod client;
mod idle;
mod inbox;
mod payload;
mod report;
mod run;
mod scenario;
mod selfcheck;
mod sink;
mod target;
mod tracker;

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use tokio::time::Instant;

use crate::broker::Broker;
use crate::cli::{Cli, Scenario};
use crate::client::Options;
use crate::report::{Params, Report};
use crate::run::Limits;

/// Time past the deadline before the process gives up on a run that did not end.
const BACKSTOP: Duration = Duration::from_secs(15);
/// Longest login (and subscribe) of one client.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A short id for this run's keys and client ids: [0-9a-f] only, so it is a valid word in
/// every protocol's names.
fn run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    format!(
        "{:x}",
        (nanos as u64 ^ u64::from(std::process::id())) & 0xffff_ffff
    )
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("mqgate-bench: no runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let timeout =
        Duration::from_secs_f64(cli.timeout_s.unwrap_or_else(
            || match scenario::load(&cli).duration {
                Some(duration) => duration.as_secs_f64() + 60.0,
                None => 120.0,
            },
        ));
    let outcome = runtime.block_on(async {
        match tokio::time::timeout(timeout + BACKSTOP, execute(&cli, timeout)).await {
            Ok(result) => result,
            Err(_) => Err(anyhow::anyhow!("the run did not end within its bound")),
        }
    });
    // Clients still closing are not waited for.
    runtime.shutdown_timeout(Duration::from_millis(200));
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        // The run ended but found loss, duplicates or client errors.
        Ok(false) => ExitCode::from(2),
        Err(error) => {
            eprintln!("mqgate-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the scenario; true if the report says OK.
async fn execute(cli: &Cli, timeout: Duration) -> anyhow::Result<bool> {
    let deadline = Instant::now() + timeout;
    let broker = cli.broker_pid.map(Broker::new).transpose()?;
    let options = Options {
        qos: cli.qos,
        window: cli.window.max(1),
        user: cli.user.clone(),
        password: cli.password.clone(),
        connect_timeout: CONNECT_TIMEOUT.min(timeout),
    };
    let run = run_id();
    let load = scenario::load(cli);
    let mut params = Params {
        publishers: 0,
        subscribers: 0,
        messages: load.messages,
        duration_s: load.duration.map(|d| d.as_secs_f64()),
        size: load.size.max(payload::HEADER_LEN),
        qos: cli.qos,
        rate: load.rate,
        window: options.window,
        timeout_s: timeout.as_secs_f64(),
        connections: None,
    };
    let report = match cli.scenario {
        Scenario::Selfcheck => {
            return selfcheck::run(cli, &options, deadline).await;
        }
        Scenario::Idle => {
            let hold = Duration::from_secs_f64(cli.duration_s.unwrap_or(2.0).max(0.0));
            let outcome = idle::run(
                &cli.target,
                &run,
                cli.connections,
                cli.connect_concurrency,
                hold,
                &options,
                deadline,
                broker.as_ref(),
            )
            .await;
            params.connections = Some(cli.connections);
            params.messages = None;
            params.duration_s = Some(hold.as_secs_f64());
            report::idle_report(cli.target.to_string(), params, &outcome)
        }
        _ => {
            let plan = scenario::plan(cli, &run)?;
            params.publishers = plan.publishers.len();
            params.subscribers = plan.subscribers.len();
            let out_targets = if cli.scenario == Scenario::Cross {
                scenario::out_targets(cli)?
                    .iter()
                    .map(ToString::to_string)
                    .collect()
            } else {
                Vec::new()
            };
            let limits = Limits {
                deadline,
                quiet: Duration::from_millis(cli.quiet_ms),
                connect_concurrency: cli.connect_concurrency,
            };
            let outcome = run::run(plan, &options, &limits, broker.as_ref()).await?;
            Report::of_run(
                cli.scenario.name(),
                cli.target.to_string(),
                out_targets,
                params,
                &outcome,
            )
        }
    };
    report.print(&mut report::human_output(cli.json.as_deref()))?;
    if let Some(path) = &cli.json {
        report::write_json(path, &report)?;
    }
    Ok(report.ok)
}
