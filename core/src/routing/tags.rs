//! Tag filters, RocketMQ style: a binding may accept only messages carrying one of some tags.
//!
//! Syntax: `TagA || TagB` (alternatives separated by `||`, each trimmed), or `*` or the empty
//! expression for every message. A message's tags are read from the `x-tags` header by
//! [`Message::tags`].
//!
//! Choices where RocketMQ is silent or surprising, written down here:
//! - an empty alternative (`A || `, `|| B`) is an error rather than skipped, since it is almost
//!   certainly a typo;
//! - `*` as one alternative (`A || *`) accepts every message, as a union with "all" should;
//! - a tag containing `|` or `,` is an error: those characters separate a message's tags, so such
//!   a filter could never match.
//!
//! Invariant: a filter that is not "all" holds at least one tag, sorted and without duplicates,
//! so equal filters compare equal whatever order they were written in.

use crate::message::Message;

/// Why a tag filter expression was rejected. The message names the expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TagFilterError {
    /// An alternative between `||` separators is empty, as in `A || ` or `A |||| B`.
    #[error("invalid tag filter '{expression}': empty alternative")]
    EmptyAlternative {
        /// The whole expression as given.
        expression: String,
    },
    /// An alternative contains `|` or `,`, which separate a message's tags, so it could never match.
    #[error("invalid tag filter '{expression}': tag '{tag}' contains '|' or ','")]
    SeparatorInTag {
        /// The whole expression as given.
        expression: String,
        /// The offending alternative.
        tag: String,
    },
}

/// Which message tags a binding accepts: all, or any of a set of tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagFilter {
    /// `None` for all; otherwise sorted and deduplicated, never empty.
    tags: Option<Vec<String>>,
}

impl TagFilter {
    /// Parses `TagA || TagB`; `*` or an empty (or all-blank) expression accepts every message.
    pub fn parse(expression: &str) -> Result<Self, TagFilterError> {
        let trimmed = expression.trim();
        if trimmed.is_empty() || trimmed == "*" {
            return Ok(Self::all());
        }
        let mut tags = Vec::new();
        let mut accepts_all = false;
        for alternative in trimmed.split("||").map(str::trim) {
            if alternative.is_empty() {
                return Err(TagFilterError::EmptyAlternative {
                    expression: expression.to_owned(),
                });
            }
            if alternative.contains(['|', ',']) {
                return Err(TagFilterError::SeparatorInTag {
                    expression: expression.to_owned(),
                    tag: alternative.to_owned(),
                });
            }
            // Keep validating the rest even after `*`, so a typo later on is still reported.
            if alternative == "*" {
                accepts_all = true;
            } else {
                tags.push(alternative.to_owned());
            }
        }
        if accepts_all {
            return Ok(Self::all());
        }
        tags.sort_unstable();
        tags.dedup();
        Ok(Self { tags: Some(tags) })
    }

    /// The filter that accepts every message, tagged or not.
    pub fn all() -> Self {
        Self { tags: None }
    }

    /// True for the filter that accepts every message.
    pub fn is_all(&self) -> bool {
        self.tags.is_none()
    }

    /// True if the filter is "all", or if any of `tags` is one of the filter's tags. An empty
    /// `tags` (an untagged message) matches only "all".
    pub fn matches<'a>(&self, tags: impl IntoIterator<Item = &'a str>) -> bool {
        match &self.tags {
            None => true,
            Some(accepted) => tags.into_iter().any(|tag| {
                accepted
                    .binary_search_by(|candidate| candidate.as_str().cmp(tag))
                    .is_ok()
            }),
        }
    }

    /// [`TagFilter::matches`] on the message's tags ([`Message::tags`]).
    pub fn matches_message(&self, message: &Message) -> bool {
        self.is_all() || self.matches(message.tags())
    }
}

impl Default for TagFilter {
    /// The filter that accepts every message.
    fn default() -> Self {
        Self::all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::TAGS_HEADER;
    use crate::names::ExchangeName;

    fn message_with_tags(tags: Option<&str>) -> Message {
        let mut message = Message::new(ExchangeName::default_exchange(), "k", "body");
        if let Some(tags) = tags {
            message.headers.insert(TAGS_HEADER, tags);
        }
        message
    }

    #[test]
    fn star_and_empty_accept_everything() {
        for expression in ["*", "", "   ", " * "] {
            let filter = TagFilter::parse(expression).unwrap();
            assert!(filter.is_all(), "{expression:?}");
            assert!(filter.matches([]));
            assert!(filter.matches(["x"]));
            assert!(filter.matches_message(&message_with_tags(None)));
        }
        assert_eq!(TagFilter::all(), TagFilter::default());
    }

    #[test]
    fn alternatives_are_trimmed_and_any_one_matches() {
        let filter = TagFilter::parse("  TagA ||TagB||  TagC ").unwrap();
        assert!(!filter.is_all());
        assert!(filter.matches(["TagB"]));
        assert!(filter.matches(["X", "TagC"]));
        assert!(!filter.matches(["TagD"]));
        assert!(!filter.matches(["taga"]), "tags are case sensitive");
        assert_eq!(
            filter,
            TagFilter::parse("TagC || TagB || TagA || TagA").unwrap()
        );
    }

    #[test]
    fn untagged_message_matches_only_all() {
        let filter = TagFilter::parse("TagA").unwrap();
        assert!(!filter.matches([]));
        assert!(!filter.matches_message(&message_with_tags(None)));
        assert!(!filter.matches_message(&message_with_tags(Some(" , "))));
        assert!(TagFilter::all().matches_message(&message_with_tags(None)));
    }

    #[test]
    fn matches_message_reads_x_tags() {
        let filter = TagFilter::parse("TagB || TagZ").unwrap();
        assert!(filter.matches_message(&message_with_tags(Some("TagA || TagB"))));
        assert!(filter.matches_message(&message_with_tags(Some("TagZ"))));
        assert!(!filter.matches_message(&message_with_tags(Some("TagA,TagC"))));
    }

    #[test]
    fn star_among_alternatives_accepts_everything() {
        assert!(TagFilter::parse("TagA || *").unwrap().is_all());
    }

    #[test]
    fn empty_alternative_is_an_error_naming_the_expression() {
        for expression in ["A || ", "|| B", "A |||| B", "A ||  || B", "||"] {
            let error = TagFilter::parse(expression).unwrap_err();
            assert_eq!(
                error,
                TagFilterError::EmptyAlternative {
                    expression: expression.to_owned()
                }
            );
            assert!(error.to_string().contains(expression), "{error}");
        }
        // Reported even after a `*` alternative.
        assert!(TagFilter::parse("* || ").is_err());
    }

    #[test]
    fn separator_inside_a_tag_is_an_error() {
        let error = TagFilter::parse("A | B").unwrap_err();
        assert!(matches!(error, TagFilterError::SeparatorInTag { ref tag, .. } if tag == "A | B"));
        assert!(error.to_string().contains("'A | B'"), "{error}");
        assert!(TagFilter::parse("A || B,C").is_err());
    }
}
