//! MQTT topic names and filters, and their translation to the core's one topic syntax.
//!
//! The core routes on `amq.topic` with `.`-separated words and `*`/`#` wildcards (RabbitMQ's
//! topic exchange); MQTT uses `/`-separated levels and `+`/`#`. This module is the only place
//! that translates between them (model: nats-server `mqttToNATSSubjectConversion`).
//!
//! Rules (RabbitMQ's MQTT plugin conventions, which migrating users rely on):
//! - **Topic -> routing key**: every `/` becomes `.` and every `.` becomes `/`. Levels become
//!   words, and a `.` inside a level survives as a `/` inside a word, so the translation is a
//!   bijection: `a.b/c` <-> `a/b.c` round-trips exactly both ways (RabbitMQ's swap; the design's
//!   "pick and document an escape" for dots in levels).
//! - **Filter -> binding pattern**: the same swap, and the level `+` becomes the word `*`; `#`
//!   stays `#`. Both wildcards cover the same things on each side: `+`/`*` match exactly one
//!   level/word, possibly empty; `a/#` and `a.#` match their parent `a` too.
//! - **Routing key -> topic** (deliveries from any protocol): the inverse swap.
//!
//! Known limits, as in RabbitMQ: a filter level that is a literal `*` becomes a core wildcard, so
//! the filter `a/*` also matches `a/x`; and a routing key published by AMQP or STOMP may contain
//! `+`, `#` or be empty, which gives an MQTT topic that [`validate_topic_name`] refuses (the
//! session decides whether to deliver it). The core also lets `#` and `+` match topics starting
//! with `$`; the session applies MQTT's `$` rule with [`topic_matches`] at delivery.
//!
//! The translations allocate only when the text contains something to change; they assume their
//! input was validated ([`validate_topic_name`], [`parse_filter`]).

use std::borrow::Cow;

/// The first level of a shared subscription's filter: `$share/{group}/{filter}`.
pub const SHARE_LEVEL: &str = "$share";

/// A topic name or filter that breaks MQTT's rules. Each variant names the text and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// A PUBLISH topic name is empty (allowed only with a v5 topic alias, which the session
    /// resolves before validating).
    #[error("topic name is empty")]
    EmptyTopic,
    /// A SUBSCRIBE or UNSUBSCRIBE filter is empty.
    #[error("topic filter is empty")]
    EmptyFilter,
    /// A topic name contains `+` or `#`, which only filters may hold.
    #[error("topic name '{topic}' contains a wildcard ('+' or '#')")]
    WildcardInTopic {
        /// The topic name.
        topic: String,
    },
    /// A topic name or filter contains U+0000.
    #[error("topic '{text}' contains the character U+0000")]
    NullCharacter {
        /// The topic name or filter.
        text: String,
    },
    /// `#` is not a whole level or not the last level.
    #[error("topic filter '{filter}': '#' must be a whole level and the last one")]
    MisplacedMultiLevelWildcard {
        /// The filter.
        filter: String,
    },
    /// `+` is not a whole level.
    #[error("topic filter '{filter}': '+' must be a whole level")]
    MisplacedSingleLevelWildcard {
        /// The filter.
        filter: String,
    },
    /// `$share/{group}/...` with a group that is empty or holds `+` or `#`.
    #[error("shared subscription '{filter}': the share name must be non-empty without '+' or '#'")]
    InvalidShareName {
        /// The whole filter as the client sent it.
        filter: String,
    },
    /// `$share` or `$share/{group}` with no filter after the group.
    #[error("shared subscription '{filter}' has no topic filter after its share name")]
    MissingSharedFilter {
        /// The whole filter as the client sent it.
        filter: String,
    },
}

/// A validated SUBSCRIBE filter: plain, or shared by a group (`$share/{group}/{filter}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedFilter {
    /// The share name of a shared subscription; `None` for a plain one.
    pub group: Option<String>,
    /// The MQTT filter itself, without the `$share/{group}/` prefix.
    pub filter: String,
}

impl ParsedFilter {
    /// The core binding pattern for [`ParsedFilter::filter`].
    pub fn binding_pattern(&self) -> Cow<'_, str> {
        filter_to_binding_pattern(&self.filter)
    }
}

/// Swaps `/` and `.`, leaving every other character; borrowed when there is neither.
fn swap_separators(text: &str, wildcard: Option<(char, char)>) -> Cow<'_, str> {
    let changes = |c: char| c == '/' || c == '.' || wildcard.is_some_and(|(from, _)| c == from);
    if !text.contains(changes) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| match c {
                '/' => '.',
                '.' => '/',
                c => match wildcard {
                    Some((from, to)) if c == from => to,
                    _ => c,
                },
            })
            .collect(),
    )
}

/// The core routing key for an MQTT topic name: `/` <-> `.` swapped (`a.b/c` -> `a/b.c`).
///
/// Borrowed when the topic holds neither `/` nor `.`. Inverse of [`routing_key_to_topic`].
pub fn topic_to_routing_key(topic: &str) -> Cow<'_, str> {
    swap_separators(topic, None)
}

/// The MQTT topic name for a core routing key: `.` <-> `/` swapped (`a/b.c` -> `a.b/c`).
///
/// Borrowed when the key holds neither `/` nor `.`. Inverse of [`topic_to_routing_key`].
pub fn routing_key_to_topic(routing_key: &str) -> Cow<'_, str> {
    swap_separators(routing_key, None)
}

/// The core binding pattern for a valid MQTT filter (without any `$share/{group}/` prefix):
/// `/` <-> `.` swapped and `+` -> `*` (`a.b/+/#` -> `a/b.*.#`).
///
/// Borrowed when the filter holds no `/`, `.` or `+`. A literal `*` level becomes a core
/// wildcard (a known limit, as in RabbitMQ).
pub fn filter_to_binding_pattern(filter: &str) -> Cow<'_, str> {
    swap_separators(filter, Some(('+', '*')))
}

/// Checks a PUBLISH topic name (or a will topic): non-empty, no `+` or `#`, no U+0000.
pub fn validate_topic_name(topic: &str) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::EmptyTopic);
    }
    if topic.contains('\0') {
        return Err(TopicError::NullCharacter {
            text: topic.to_owned(),
        });
    }
    if topic.contains(['+', '#']) {
        return Err(TopicError::WildcardInTopic {
            topic: topic.to_owned(),
        });
    }
    Ok(())
}

/// Checks a topic filter (without a `$share/{group}/` prefix): non-empty, `#` only as the last
/// whole level, `+` only as a whole level, no U+0000.
pub fn validate_filter(filter: &str) -> Result<(), TopicError> {
    if filter.is_empty() {
        return Err(TopicError::EmptyFilter);
    }
    if filter.contains('\0') {
        return Err(TopicError::NullCharacter {
            text: filter.to_owned(),
        });
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err(TopicError::MisplacedMultiLevelWildcard {
                filter: filter.to_owned(),
            });
        }
        if level.contains('+') && level != "+" {
            return Err(TopicError::MisplacedSingleLevelWildcard {
                filter: filter.to_owned(),
            });
        }
    }
    Ok(())
}

/// Parses and validates a SUBSCRIBE filter, splitting off a shared subscription's group.
///
/// A filter whose first level is `$share` is a shared subscription and must have the form
/// `$share/{group}/{filter}` with a non-empty group free of `+` and `#` (it cannot hold `/`)
/// and a valid `{filter}`. Whether shared subscriptions are allowed (MQTT 3.1.1 has none in the
/// standard) is the session's decision.
pub fn parse_filter(filter: &str) -> Result<ParsedFilter, TopicError> {
    let Some(rest) = filter
        .strip_prefix(SHARE_LEVEL)
        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
    else {
        validate_filter(filter)?;
        return Ok(ParsedFilter {
            group: None,
            filter: filter.to_owned(),
        });
    };
    let Some((group, inner)) = rest.get(1..).and_then(|rest| rest.split_once('/')) else {
        return Err(TopicError::MissingSharedFilter {
            filter: filter.to_owned(),
        });
    };
    if group.is_empty() || group.contains(['+', '#']) {
        return Err(TopicError::InvalidShareName {
            filter: filter.to_owned(),
        });
    }
    if inner.is_empty() {
        return Err(TopicError::MissingSharedFilter {
            filter: filter.to_owned(),
        });
    }
    validate_filter(inner)?;
    Ok(ParsedFilter {
        group: Some(group.to_owned()),
        filter: inner.to_owned(),
    })
}

/// Whether a valid MQTT `filter` (without `$share/{group}/`) matches a topic name, by MQTT's
/// rules: `+` matches one level (possibly empty), `#` the rest including the parent (`a/#`
/// matches `a`), and a filter starting with `+` or `#` does not match a topic starting with `$`.
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut filter_levels = filter.split('/');
    let mut topic_levels = topic.split('/');
    loop {
        match (filter_levels.next(), topic_levels.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(wanted), Some(level)) if wanted == level => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn levels_become_words_and_dots_become_slashes() {
        assert_eq!(topic_to_routing_key("cities/london"), "cities.london");
        assert_eq!(topic_to_routing_key("a.b/c"), "a/b.c");
        assert_eq!(routing_key_to_topic("a/b.c"), "a.b/c");
        assert_eq!(topic_to_routing_key("/"), ".");
        assert_eq!(routing_key_to_topic("cities.london"), "cities/london");
    }

    #[test]
    fn nothing_to_change_borrows() {
        assert!(matches!(
            topic_to_routing_key("plain"),
            Cow::Borrowed("plain")
        ));
        assert!(matches!(
            routing_key_to_topic("plain"),
            Cow::Borrowed("plain")
        ));
        assert!(matches!(filter_to_binding_pattern("#"), Cow::Borrowed("#")));
        assert!(matches!(filter_to_binding_pattern("+"), Cow::Owned(_)));
    }

    #[test]
    fn filters_become_binding_patterns() {
        assert_eq!(filter_to_binding_pattern("cities/+"), "cities.*");
        assert_eq!(filter_to_binding_pattern("cities/#"), "cities.#");
        assert_eq!(filter_to_binding_pattern("a.b/+/c.d/#"), "a/b.*.c/d.#");
        // A literal `*` level is a core wildcard: the documented limit.
        assert_eq!(filter_to_binding_pattern("a/*"), "a.*");
    }

    #[test]
    fn topic_names_are_validated() {
        assert_eq!(validate_topic_name(""), Err(TopicError::EmptyTopic));
        assert!(validate_topic_name("a/b").is_ok());
        assert!(validate_topic_name("/").is_ok());
        assert!(validate_topic_name("$SYS/x").is_ok());
        for bad in ["a/+", "a/#", "a+b", "#"] {
            assert!(
                matches!(
                    validate_topic_name(bad),
                    Err(TopicError::WildcardInTopic { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            validate_topic_name("a\0b"),
            Err(TopicError::NullCharacter { .. })
        ));
    }

    #[test]
    fn filters_are_validated() {
        for good in [
            "#", "+", "a/#", "+/+", "a/+/b", "/", "a//b", "+/#", "$SYS/#",
        ] {
            assert!(validate_filter(good).is_ok(), "{good:?}");
        }
        assert_eq!(validate_filter(""), Err(TopicError::EmptyFilter));
        for bad in ["a/#/b", "a#", "a/b#", "#/", "##"] {
            assert!(
                matches!(
                    validate_filter(bad),
                    Err(TopicError::MisplacedMultiLevelWildcard { .. })
                ),
                "{bad:?}"
            );
        }
        for bad in ["a+", "a/+b", "++"] {
            assert!(
                matches!(
                    validate_filter(bad),
                    Err(TopicError::MisplacedSingleLevelWildcard { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            validate_filter("a/\0"),
            Err(TopicError::NullCharacter { .. })
        ));
    }

    #[test]
    fn error_names_the_topic_and_the_rule() {
        let error = validate_filter("a/#/b").unwrap_err();
        assert_eq!(
            error.to_string(),
            "topic filter 'a/#/b': '#' must be a whole level and the last one"
        );
    }

    #[test]
    fn shared_subscriptions_are_parsed() {
        assert_eq!(
            parse_filter("$share/g1/sensors/+").unwrap(),
            ParsedFilter {
                group: Some("g1".into()),
                filter: "sensors/+".into()
            }
        );
        assert_eq!(
            parse_filter("$share/g/#").unwrap().binding_pattern(),
            "#".to_owned()
        );
        assert_eq!(
            parse_filter("a/b").unwrap(),
            ParsedFilter {
                group: None,
                filter: "a/b".into()
            }
        );
        // `$shared` is an ordinary first level, not the share prefix.
        assert_eq!(parse_filter("$shared/x").unwrap().group, None);
        for missing in ["$share", "$share/", "$share/g", "$share/g/"] {
            assert!(
                matches!(
                    parse_filter(missing),
                    Err(TopicError::MissingSharedFilter { .. })
                ),
                "{missing:?}"
            );
        }
        for bad_group in ["$share//a", "$share/+/a", "$share/g#/a"] {
            assert!(
                matches!(
                    parse_filter(bad_group),
                    Err(TopicError::InvalidShareName { .. })
                ),
                "{bad_group:?}"
            );
        }
        assert!(matches!(
            parse_filter("$share/g/a/#/b"),
            Err(TopicError::MisplacedMultiLevelWildcard { .. })
        ));
    }

    #[test]
    fn mqtt_matching() {
        assert!(topic_matches("a/b", "a/b"));
        assert!(!topic_matches("a/b", "a/b/c"));
        assert!(!topic_matches("a/b/c", "a/b"));
        assert!(topic_matches("a/+", "a/b"));
        assert!(topic_matches("a/+", "a/"));
        assert!(!topic_matches("a/+", "a"));
        assert!(!topic_matches("a/+", "a/b/c"));
        assert!(topic_matches("a/#", "a"));
        assert!(topic_matches("a/#", "a/b/c"));
        assert!(topic_matches("#", "a/b"));
        assert!(topic_matches("+/+", "/"));
        assert!(topic_matches("+/b/#", "x/b"));
        assert!(!topic_matches("b/#", "a/b"));
    }

    #[test]
    fn wildcards_at_the_start_skip_dollar_topics() {
        assert!(!topic_matches("#", "$SYS/uptime"));
        assert!(!topic_matches("+/uptime", "$SYS/uptime"));
        assert!(topic_matches("$SYS/#", "$SYS/uptime"));
        assert!(topic_matches("$SYS/+", "$SYS/uptime"));
        assert!(topic_matches("a/#", "a/$b"));
    }

    /// A naive per-level matcher of core patterns, to check that the translation keeps matching.
    fn core_matches(pattern: &[&str], key: &[&str]) -> bool {
        match (pattern.split_first(), key.split_first()) {
            (None, None) => true,
            (Some((&"#", rest)), _) => {
                core_matches(rest, key) || (!key.is_empty() && core_matches(pattern, &key[1..]))
            }
            (Some((&"*", rest)), Some((_, key_rest))) => core_matches(rest, key_rest),
            (Some((word, rest)), Some((first, key_rest))) => {
                word == first && core_matches(rest, key_rest)
            }
            _ => false,
        }
    }

    fn topic() -> impl Strategy<Value = String> {
        "[ab./]{1,8}"
    }

    fn filter() -> impl Strategy<Value = String> {
        (
            prop::collection::vec(prop_oneof!["[ab.]{0,2}", Just("+".to_owned())], 1..4),
            any::<bool>(),
        )
            .prop_map(|(mut levels, hash)| {
                if hash {
                    levels.push("#".to_owned());
                }
                levels.join("/")
            })
    }

    proptest! {
        #[test]
        fn topic_round_trips(topic in topic()) {
            let key = topic_to_routing_key(&topic);
            prop_assert_eq!(routing_key_to_topic(&key), topic.as_str());
        }

        #[test]
        fn routing_key_round_trips(key in topic()) {
            let topic = routing_key_to_topic(&key);
            prop_assert_eq!(topic_to_routing_key(&topic), key.as_str());
        }

        #[test]
        fn translation_keeps_matching(filter in filter(), topic in topic()) {
            prop_assume!(validate_filter(&filter).is_ok());
            let pattern = filter_to_binding_pattern(&filter);
            let key = topic_to_routing_key(&topic);
            let pattern: Vec<&str> = pattern.split('.').collect();
            let key: Vec<&str> = key.split('.').collect();
            prop_assert_eq!(core_matches(&pattern, &key), topic_matches(&filter, &topic));
        }
    }
}
