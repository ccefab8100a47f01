//! The message scenarios as [`Plan`]s: who publishes where, who listens, and what each
//! listener must receive. Defaults live here, next to the shape they belong to.

use std::time::Duration;

use crate::cli::{Cli, Scenario};
use crate::run::{Load, Plan, PublisherSpec, SubscriberSpec};
use crate::target::Target;

/// A scenario's defaults: clients and load.
struct Defaults {
    publishers: usize,
    subscribers: usize,
    messages: Option<u64>,
    duration_s: Option<f64>,
    rate: f64,
}

fn defaults(scenario: Scenario) -> Defaults {
    let counted = |publishers, subscribers, messages| Defaults {
        publishers,
        subscribers,
        messages: Some(messages),
        duration_s: None,
        rate: 0.0,
    };
    match scenario {
        Scenario::FanIn => counted(4, 1, 100_000),
        Scenario::FanOut => counted(1, 100, 10_000),
        Scenario::Cross => counted(1, 1, 10_000),
        Scenario::Selfcheck => counted(4, 1, 200_000),
        Scenario::Latency => Defaults {
            publishers: 1,
            subscribers: 1,
            messages: None,
            duration_s: Some(10.0),
            rate: 1000.0,
        },
        Scenario::Pairs => Defaults {
            publishers: 1000,
            subscribers: 1000,
            messages: None,
            duration_s: Some(10.0),
            rate: 10.0,
        },
        Scenario::Idle => counted(0, 0, 0),
    }
}

/// The load of `cli`'s scenario: a given duration wins over a given message count, which wins
/// over the scenario's default.
pub fn load(cli: &Cli) -> Load {
    let defaults = defaults(cli.scenario);
    let (messages, duration_s) = match (cli.duration_s, cli.messages) {
        (Some(duration), _) => (None, Some(duration)),
        (None, Some(messages)) => (Some(messages), None),
        (None, None) => (defaults.messages, defaults.duration_s),
    };
    Load {
        messages,
        duration: duration_s.map(Duration::from_secs_f64),
        rate: cli.rate.unwrap_or(defaults.rate).max(0.0),
        size: cli.size,
    }
}

/// The out-targets of `cross`: as given, else STOMP and AMQP on the in-target's host.
pub fn out_targets(cli: &Cli) -> anyhow::Result<Vec<Target>> {
    if !cli.out_targets.is_empty() {
        return Ok(cli.out_targets.clone());
    }
    let host = &cli.target.host;
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    Ok(vec![
        format!("stomp://{host}:61613").parse()?,
        format!("amqp://{host}:5672").parse()?,
    ])
}

/// The logical key of stream `n` of run `run`.
pub fn key(run: &str, n: usize) -> String {
    format!("bench.{run}.{n}")
}

/// The plan of `cli`'s message scenario (not `idle` or `selfcheck`).
pub fn plan(cli: &Cli, run: &str) -> anyhow::Result<Plan> {
    let defaults = defaults(cli.scenario);
    let publishers = cli.publishers.unwrap_or(defaults.publishers);
    let subscribers = cli.subscribers.unwrap_or(defaults.subscribers);
    let load = load(cli);
    match cli.scenario {
        Scenario::FanIn | Scenario::FanOut | Scenario::Latency => Ok(one_topic(
            run,
            &cli.target,
            publishers,
            &vec![cli.target.clone(); subscribers],
            load,
        )),
        Scenario::Cross => {
            anyhow::ensure!(
                cli.target.protocol.is_mqtt(),
                "cross publishes over MQTT: --target must be mqtt:// or mqtt5://"
            );
            let outs = out_targets(cli)?;
            let listeners: Vec<Target> = outs
                .iter()
                .flat_map(|out| std::iter::repeat_n(out.clone(), subscribers))
                .collect();
            Ok(one_topic(run, &cli.target, publishers, &listeners, load))
        }
        Scenario::Pairs => {
            let pairs = cli
                .publishers
                .or(cli.subscribers)
                .unwrap_or(defaults.publishers);
            Ok(Plan {
                run: run.to_owned(),
                publishers: (0..pairs)
                    .map(|n| PublisherSpec {
                        id: n as u64,
                        target: cli.target.clone(),
                        key: key(run, n),
                    })
                    .collect(),
                subscribers: (0..pairs)
                    .map(|n| SubscriberSpec {
                        target: cli.target.clone(),
                        key: key(run, n),
                        sources: vec![n as u64],
                    })
                    .collect(),
                load,
            })
        }
        Scenario::Idle | Scenario::Selfcheck => {
            anyhow::bail!("{} is not a message scenario", cli.scenario.name())
        }
    }
}

/// `publishers` on `target` and one subscriber per entry of `listeners`, all on one key;
/// every subscriber must get every message.
pub fn one_topic(
    run: &str,
    target: &Target,
    publishers: usize,
    listeners: &[Target],
    load: Load,
) -> Plan {
    let key = key(run, 0);
    let ids: Vec<u64> = (0..publishers as u64).collect();
    Plan {
        run: run.to_owned(),
        publishers: ids
            .iter()
            .map(|&id| PublisherSpec {
                id,
                target: target.clone(),
                key: key.clone(),
            })
            .collect(),
        subscribers: listeners
            .iter()
            .map(|listener| SubscriberSpec {
                target: listener.clone(),
                key: key.clone(),
                sources: ids.clone(),
            })
            .collect(),
        load,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cli(args: &str) -> Cli {
        Cli::parse_from(std::iter::once("mqgate-bench").chain(args.split_whitespace()))
    }

    #[test]
    fn fan_in_defaults() {
        let plan = plan(&cli("fan-in"), "r1").unwrap();
        assert_eq!(plan.publishers.len(), 4);
        assert_eq!(plan.subscribers.len(), 1);
        assert_eq!(plan.subscribers[0].sources, vec![0, 1, 2, 3]);
        assert_eq!(plan.load.messages, Some(100_000));
        assert_eq!(plan.subscribers[0].key, "bench.r1.0");
    }

    #[test]
    fn pairs_each_have_their_key() {
        let plan = plan(&cli("pairs --publishers 3 --duration-s 2"), "r").unwrap();
        assert_eq!(plan.subscribers.len(), 3);
        assert_eq!(plan.subscribers[2].key, "bench.r.2");
        assert_eq!(plan.subscribers[2].sources, vec![2]);
        assert_eq!(plan.load.duration, Some(Duration::from_secs(2)));
        assert_eq!(plan.load.rate, 10.0);
    }

    #[test]
    fn cross_defaults_to_stomp_and_amqp() {
        let plan = plan(&cli("cross --target mqtt://127.0.0.1:21883"), "r").unwrap();
        let outs: Vec<String> = plan
            .subscribers
            .iter()
            .map(|s| s.target.to_string())
            .collect();
        assert_eq!(
            outs,
            vec!["stomp://127.0.0.1:61613", "amqp://127.0.0.1:5672"]
        );
        assert!(super::plan(&cli("cross --target stomp://h"), "r").is_err());
    }

    #[test]
    fn duration_wins_over_messages() {
        let load = load(&cli("latency --messages 5 --duration-s 1"));
        assert_eq!((load.messages, load.rate), (None, 1000.0));
        let load = super::load(&cli("latency --messages 5"));
        assert_eq!((load.messages, load.duration), (Some(5), None));
    }
}
