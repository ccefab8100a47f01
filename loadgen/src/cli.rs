//! The command line: a scenario and its knobs. A knob left out takes the scenario's default
//! (see [`Scenario`]); `--messages` and `--duration-s` are alternatives (the duration wins).

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use crate::target::Target;

/// Load generator of mqgate's benchmark harness: runs one scenario against a broker over
/// MQTT 3.1.1/5, STOMP 1.2 or AMQP 0-9-1, checks that every message sent arrived exactly
/// once, and reports throughput, latency percentiles and the broker's CPU time.
#[derive(Debug, Parser)]
#[command(name = "mqgate-bench", version)]
pub struct Cli {
    /// What to run.
    #[arg(value_enum)]
    pub scenario: Scenario,

    /// The broker: mqtt://, mqtt5://, stomp:// or amqp://HOST[:PORT]. In `cross`, where the
    /// MQTT publishers connect.
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    pub target: Target,

    /// `cross` only: where subscribers connect (repeat the flag for several protocols).
    /// Default: stomp://127.0.0.1:61613 and amqp://127.0.0.1:5672.
    #[arg(long = "out-target")]
    pub out_targets: Vec<Target>,

    /// The broker's process id: its CPU seconds (and RSS in `idle`) are read from /proc.
    #[arg(long)]
    pub broker_pid: Option<u32>,

    /// Publishing clients (`pairs`: the number of pairs). Default per scenario.
    #[arg(long)]
    pub publishers: Option<usize>,

    /// Subscribing clients (`cross`: per out-target). Default per scenario.
    #[arg(long)]
    pub subscribers: Option<usize>,

    /// Messages each publisher sends. Default per scenario.
    #[arg(long)]
    pub messages: Option<u64>,

    /// Publish for this many seconds instead of a message count (`idle`: how long to hold
    /// the connections).
    #[arg(long)]
    pub duration_s: Option<f64>,

    /// Payload bytes per message (at least 24: the header).
    #[arg(long, default_value_t = 100)]
    pub size: usize,

    /// 0: fire and forget; 1: publishes confirmed (MQTT PUBACK, STOMP receipt, AMQP
    /// confirm) and deliveries acknowledged.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub qos: u8,

    /// Messages per second per publisher, open loop (sends follow a schedule, not the
    /// broker's answers; how late they went out is reported as send_lag_us). 0: as fast as
    /// possible. Default per scenario.
    #[arg(long)]
    pub rate: Option<f64>,

    /// Unconfirmed publishes in flight per client at QoS 1, and the consumers' prefetch.
    #[arg(long, default_value_t = 256)]
    pub window: u16,

    /// Hard bound on the whole run, seconds. Default: 120, or the duration + 60.
    #[arg(long)]
    pub timeout_s: Option<f64>,

    /// Once publishers are done, stop waiting after this long without a new message (ms).
    #[arg(long, default_value_t = 2000)]
    pub quiet_ms: u64,

    /// Connections opened at once while setting up (and in `idle`).
    #[arg(long, default_value_t = 100)]
    pub connect_concurrency: usize,

    /// `idle`: connections to open.
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,

    /// Write the report as one JSON object to this file ("-": standard output).
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// Login name; "" logs MQTT and STOMP clients in anonymously (no password check at the
    /// broker). AMQP always logs in.
    #[arg(long, default_value = "guest")]
    pub user: String,

    /// Password.
    #[arg(long, default_value = "guest")]
    pub password: String,
}

/// The scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// N publishers (default 4), 1 subscriber, one topic; 100,000 messages each.
    FanIn,
    /// 1 publisher, N subscribers (default 100) of its topic; 10,000 messages.
    FanOut,
    /// 1 publisher, 1 subscriber, open loop at a fixed rate (default 1000/s for 10 s).
    Latency,
    /// N pairs (default 1000), each a publisher and a subscriber on a topic of their own,
    /// each publishing slowly (default 10/s for 10 s).
    Pairs,
    /// N connections (default 10,000) that log in and do nothing: connect rate and the
    /// broker's RSS per connection.
    Idle,
    /// MQTT publishers, subscribers over STOMP and AMQP (--out-target), one topic.
    Cross,
    /// The generator against an in-process MQTT sink: how fast it can publish and receive
    /// when the broker costs nothing.
    Selfcheck,
}

impl Scenario {
    /// The scenario's name as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::FanIn => "fan-in",
            Scenario::FanOut => "fan-out",
            Scenario::Latency => "latency",
            Scenario::Pairs => "pairs",
            Scenario::Idle => "idle",
            Scenario::Cross => "cross",
            Scenario::Selfcheck => "selfcheck",
        }
    }
}
