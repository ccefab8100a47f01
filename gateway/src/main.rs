//! The `mqgate` binary: run the gateway, hash a password, or check a config file.
//!
//! `mqgate [--config PATH]` loads the config (default `config/mqgate.yaml`), sets up logging,
//! starts the gateway, logs `mqgate ready` once every listener is bound, and on SIGINT or
//! SIGTERM drains connections up to `shutdown.drain_timeout_ms` and exits 0. A second signal
//! exits at once with status 1.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use mqgate::config::{self, DEFAULT_CONFIG_PATH};
use mqgate::Gateway;
use tracing_subscriber::EnvFilter;

/// mqgate: an MQTT, STOMP and AMQP gateway on one queue engine.
#[derive(Debug, Parser)]
#[command(name = "mqgate", version, about)]
struct Cli {
    /// The config file (YAML); `MQGATE_...` environment variables override its keys.
    #[arg(long, global = true, value_name = "PATH", default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// What to do; without one, run the gateway.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Run,
    /// Print the argon2id PHC hash of a password, for `users[].password_hash`. The password is
    /// the first line of standard input, or `--password` (visible to other local users in the
    /// process list: prefer standard input).
    HashPassword {
        /// The password, instead of reading standard input.
        #[arg(long)]
        password: Option<String>,
    },
    /// Check the config file, including its pre-declarations; exit 0 if it is good, 1 if not.
    CheckConfig,
}

fn main() -> ExitCode {
    let started = Instant::now();
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(&cli.config, started),
        Command::HashPassword { password } => hash_password(password),
        Command::CheckConfig => check_config(&cli.config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("mqgate: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn hash_password(password: Option<String>) -> anyhow::Result<()> {
    let password = match password {
        Some(password) => password,
        None => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("cannot read the password from standard input")?;
            let trimmed = line.strip_suffix('\n').unwrap_or(&line);
            trimmed.strip_suffix('\r').unwrap_or(trimmed).to_owned()
        }
    };
    anyhow::ensure!(!password.is_empty(), "the password is empty");
    println!("{}", mqgate_core::auth::hash_password(&password)?);
    Ok(())
}

fn check_config(path: &Path) -> anyhow::Result<()> {
    let settings = config::load(path)?;
    // Declare the definitions on a throwaway broker: what the core would refuse at start.
    let broker = mqgate_core::broker::Broker::new(mqgate_core::broker::BrokerConfig::default());
    mqgate::definitions::declare(&broker, &settings.definitions)?;
    println!(
        "config OK: {} ({} listeners, {} users, {} vhosts, {} exchanges, {} queues, {} bindings)",
        path.display(),
        settings.listeners.len(),
        settings.users.len(),
        settings.definitions.vhosts.len(),
        settings.definitions.exchanges.len(),
        settings.definitions.queues.len(),
        settings.definitions.bindings.len(),
    );
    Ok(())
}

/// Logs to standard output; `RUST_LOG`, when set, replaces `log.level`.
fn init_logging(level: &str) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() => {
            EnvFilter::try_new(&directives).context("RUST_LOG is not a valid log filter")?
        }
        _ => EnvFilter::try_new(level).context("log.level is not a valid log filter")?,
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal())
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}

fn run(path: &Path, started: Instant) -> anyhow::Result<()> {
    let settings = config::load(path)?;
    init_logging(&settings.log_filter)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(settings, path, started))
}

async fn serve(settings: mqgate::Settings, path: &Path, started: Instant) -> anyhow::Result<()> {
    // Installed before the listeners are bound, so a signal sent as soon as `mqgate ready`
    // shows is never taken with the default action.
    let mut signals = signals::Signals::install()?;
    let running = Gateway::start(settings).await?;
    let listeners = running
        .listeners()
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>();
    let listeners = if listeners.is_empty() {
        "none".to_owned()
    } else {
        listeners.join(", ")
    };
    tracing::info!(
        config = %path.display(),
        listeners = %listeners,
        startup_ms = started.elapsed().as_millis() as u64,
        "mqgate ready"
    );
    let handle = running.shutdown_handle();
    tokio::spawn(async move {
        let signal = signals.next().await;
        tracing::info!(signal, "shutting down");
        handle.shutdown();
        let signal = signals.next().await;
        tracing::warn!(
            signal,
            "second signal: exiting without waiting for the drain"
        );
        std::process::exit(1);
    });
    // The report's cut-off connections are logged by the drain itself.
    running.wait().await;
    Ok(())
}

mod signals {
    //! SIGINT and SIGTERM (Ctrl-C elsewhere) as a stream of names.

    /// The installed signal listeners.
    pub struct Signals {
        #[cfg(unix)]
        terminate: tokio::signal::unix::Signal,
        #[cfg(unix)]
        interrupt: tokio::signal::unix::Signal,
    }

    impl Signals {
        /// Replaces the default actions of SIGINT and SIGTERM.
        pub fn install() -> anyhow::Result<Self> {
            #[cfg(unix)]
            {
                use anyhow::Context as _;
                use tokio::signal::unix::{signal, SignalKind};
                Ok(Self {
                    terminate: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
                    interrupt: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
                })
            }
            #[cfg(not(unix))]
            {
                Ok(Self {})
            }
        }

        /// Waits for the next signal and names it.
        pub async fn next(&mut self) -> &'static str {
            #[cfg(unix)]
            {
                tokio::select! {
                    _ = self.terminate.recv() => "SIGTERM",
                    _ = self.interrupt.recv() => "SIGINT",
                }
            }
            #[cfg(not(unix))]
            {
                match tokio::signal::ctrl_c().await {
                    Ok(()) => "ctrl-c",
                    Err(_) => std::future::pending().await,
                }
            }
        }
    }
}
