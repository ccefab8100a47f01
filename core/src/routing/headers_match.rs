//! Headers exchange matching, with RabbitMQ's semantics.
//!
//! A binding's arguments name the headers a message must carry. `x-match` chooses the rule:
//! `all` (the default: every named header matches), `any` (at least one does), and `all-with-x` /
//! `any-with-x`, which also consider arguments whose names start with `x-`; the plain variants
//! ignore those. `x-match` itself is never a condition.
//!
//! One argument matches when the message has that header and either the argument's value is
//! `Void` (presence is enough) or the values are equal. Equality is by value, not by wire type,
//! for the cases where AMQP clients disagree on the type they send: integers of any width are
//! equal when their values are, and a string equals bytes holding the same UTF-8 text (arrays
//! compare element by element with the same rule). Other types compare exactly; a timestamp is
//! not an integer.
//!
//! Consequences worth naming: `all` with no conditions matches every message, `any` with none
//! matches no message.
//!
//! Invariant: a [`HeadersBinding`] is parsed once at bind time and keeps only its conditions, so
//! matching never fails and never looks at `x-` arguments it was told to ignore.

use crate::message::{FieldValue, Headers};

/// The argument that selects the match rule.
pub const X_MATCH: &str = "x-match";

/// Why binding arguments were rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeadersBindingError {
    /// `x-match` is a string but not one of the four rules.
    #[error("Invalid x-match field value '{value}'; expected all, any, all-with-x, or any-with-x")]
    InvalidXMatch {
        /// The value given.
        value: String,
    },
    /// `x-match` is not a string.
    #[error("Invalid x-match field type (value {value}); expected a string")]
    XMatchNotString {
        /// The value given, as text.
        value: String,
    },
}

/// Whether every condition must hold or just one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    All,
    Any,
}

/// A headers-exchange binding's conditions, parsed from its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadersBinding {
    rule: Rule,
    /// The arguments that are conditions, in the order given.
    conditions: Vec<(String, FieldValue)>,
}

impl HeadersBinding {
    /// Parses binding arguments: `x-match` (absent means `all`) and the conditions.
    pub fn parse(arguments: &Headers) -> Result<Self, HeadersBindingError> {
        let (rule, with_x) = match arguments.get(X_MATCH) {
            None => (Rule::All, false),
            Some(value) => match value.as_str() {
                Some("all") => (Rule::All, false),
                Some("any") => (Rule::Any, false),
                Some("all-with-x") => (Rule::All, true),
                Some("any-with-x") => (Rule::Any, true),
                Some(other) => {
                    return Err(HeadersBindingError::InvalidXMatch {
                        value: other.to_owned(),
                    })
                }
                None => {
                    return Err(HeadersBindingError::XMatchNotString {
                        value: value.to_text(),
                    })
                }
            },
        };
        let conditions = arguments
            .iter()
            .filter(|(key, _)| *key != X_MATCH && (with_x || !key.starts_with("x-")))
            .map(|(key, value)| (key.to_owned(), value.clone()))
            .collect();
        Ok(Self { rule, conditions })
    }

    /// True if `headers` satisfy the binding's rule.
    pub fn matches(&self, headers: &Headers) -> bool {
        let mut satisfied = self
            .conditions
            .iter()
            .map(|(key, expected)| condition_holds(expected, headers.get(key)));
        match self.rule {
            Rule::All => satisfied.all(|holds| holds),
            Rule::Any => satisfied.any(|holds| holds),
        }
    }
}

fn condition_holds(expected: &FieldValue, actual: Option<&FieldValue>) -> bool {
    match (expected, actual) {
        (_, None) => false,
        (FieldValue::Void, Some(_)) => true,
        (expected, Some(actual)) => loosely_equal(expected, actual),
    }
}

/// Equality by value across the types clients mix up (see the module docs).
fn loosely_equal(left: &FieldValue, right: &FieldValue) -> bool {
    if let (Some(left), Some(right)) = (FieldValue::as_integer(left), FieldValue::as_integer(right))
    {
        return left == right;
    }
    match (left, right) {
        (FieldValue::Str(text), FieldValue::Bytes(bytes) | FieldValue::BinaryStr(bytes))
        | (FieldValue::Bytes(bytes) | FieldValue::BinaryStr(bytes), FieldValue::Str(text)) => {
            text.as_bytes() == bytes.as_ref()
        }
        (
            FieldValue::Bytes(left) | FieldValue::BinaryStr(left),
            FieldValue::Bytes(right) | FieldValue::BinaryStr(right),
        ) => left == right,
        (FieldValue::Array(left), FieldValue::Array(right)) => {
            left.len() == right.len()
                && left
                    .iter()
                    .zip(right)
                    .all(|(left, right)| loosely_equal(left, right))
        }
        (left, right) => left == right,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn headers(entries: &[(&str, FieldValue)]) -> Headers {
        entries
            .iter()
            .map(|(key, value)| ((*key).to_owned(), value.clone()))
            .collect()
    }

    fn binding(entries: &[(&str, FieldValue)]) -> HeadersBinding {
        HeadersBinding::parse(&headers(entries)).unwrap()
    }

    fn s(text: &str) -> FieldValue {
        FieldValue::from(text)
    }

    #[test]
    fn all_is_the_default_and_needs_every_condition() {
        let binding = binding(&[("format", s("pdf")), ("type", s("report"))]);
        assert!(binding.matches(&headers(&[
            ("type", s("report")),
            ("format", s("pdf")),
            ("extra", s("ignored")),
        ])));
        assert!(!binding.matches(&headers(&[("format", s("pdf"))])));
        assert!(!binding.matches(&headers(&[("format", s("pdf")), ("type", s("log"))])));
    }

    #[test]
    fn any_needs_one_condition() {
        let binding = binding(&[
            ("x-match", s("any")),
            ("format", s("pdf")),
            ("type", s("report")),
        ]);
        assert!(binding.matches(&headers(&[("type", s("report"))])));
        assert!(binding.matches(&headers(&[("format", s("pdf")), ("type", s("log"))])));
        assert!(!binding.matches(&headers(&[("format", s("zip"))])));
        assert!(!binding.matches(&Headers::new()));
    }

    #[test]
    fn no_conditions_all_matches_everything_any_nothing() {
        assert!(binding(&[]).matches(&Headers::new()));
        assert!(binding(&[("x-match", s("all"))]).matches(&headers(&[("a", s("b"))])));
        let any = binding(&[("x-match", s("any"))]);
        assert!(!any.matches(&Headers::new()));
        assert!(!any.matches(&headers(&[("a", s("b"))])));
    }

    #[test]
    fn x_arguments_are_ignored_unless_with_x() {
        let plain = binding(&[("x-match", s("all")), ("x-tenant", s("t1"))]);
        // The only argument is an x- one, so `all` has no conditions.
        assert!(plain.matches(&Headers::new()));
        let plain_any = binding(&[("x-match", s("any")), ("x-tenant", s("t1"))]);
        assert!(!plain_any.matches(&headers(&[("x-tenant", s("t1"))])));

        let with_x = binding(&[("x-match", s("all-with-x")), ("x-tenant", s("t1"))]);
        assert!(!with_x.matches(&Headers::new()));
        assert!(with_x.matches(&headers(&[("x-tenant", s("t1"))])));
        let any_with_x = binding(&[
            ("x-match", s("any-with-x")),
            ("x-tenant", s("t1")),
            ("k", s("v")),
        ]);
        assert!(any_with_x.matches(&headers(&[("x-tenant", s("t1"))])));
        assert!(!any_with_x.matches(&headers(&[("x-tenant", s("t2"))])));
    }

    #[test]
    fn x_match_itself_is_never_a_condition() {
        let with_x = binding(&[("x-match", s("all-with-x"))]);
        // A message lacking an `x-match` header still matches.
        assert!(with_x.matches(&Headers::new()));
        let any_with_x = binding(&[("x-match", s("any-with-x"))]);
        assert!(!any_with_x.matches(&headers(&[("x-match", s("any-with-x"))])));
    }

    #[test]
    fn void_means_present_with_any_value() {
        let binding = binding(&[("trace", FieldValue::Void)]);
        assert!(binding.matches(&headers(&[("trace", s("yes"))])));
        assert!(binding.matches(&headers(&[("trace", FieldValue::I32(0))])));
        assert!(binding.matches(&headers(&[("trace", FieldValue::Void)])));
        assert!(!binding.matches(&headers(&[("other", s("yes"))])));
    }

    #[test]
    fn integers_of_different_widths_compare_by_value() {
        let binding = binding(&[("n", FieldValue::I64(7))]);
        for value in [
            FieldValue::I8(7),
            FieldValue::U8(7),
            FieldValue::I16(7),
            FieldValue::U16(7),
            FieldValue::I32(7),
            FieldValue::U32(7),
            FieldValue::I64(7),
        ] {
            assert!(
                binding.matches(&headers(&[("n", value.clone())])),
                "{value:?}"
            );
        }
        assert!(!binding.matches(&headers(&[("n", FieldValue::I8(-7))])));
        assert!(!binding.matches(&headers(&[("n", s("7"))])));
        assert!(!binding.matches(&headers(&[("n", FieldValue::Timestamp(7))])));
        assert!(!binding.matches(&headers(&[("n", FieldValue::F64(7.0))])));
    }

    #[test]
    fn strings_equal_utf8_bytes() {
        let text = binding(&[("k", s("héllo"))]);
        assert!(text.matches(&headers(&[("k", FieldValue::Bytes(Bytes::from("héllo")))])));
        assert!(!text.matches(&headers(&[("k", FieldValue::Bytes(Bytes::from("hello")))])));
        let bytes_binding = binding(&[("k", FieldValue::Bytes(Bytes::from("v")))]);
        assert!(bytes_binding.matches(&headers(&[("k", s("v"))])));
    }

    #[test]
    fn other_types_compare_exactly() {
        let array = FieldValue::Array(vec![FieldValue::I8(1), s("a")]);
        let binding = binding(&[("flag", FieldValue::Bool(true)), ("list", array)]);
        assert!(binding.matches(&headers(&[
            ("flag", FieldValue::Bool(true)),
            (
                "list",
                FieldValue::Array(vec![
                    FieldValue::I64(1),
                    FieldValue::Bytes(Bytes::from("a"))
                ])
            ),
        ])));
        assert!(!binding.matches(&headers(&[
            ("flag", FieldValue::Bool(false)),
            ("list", FieldValue::Array(vec![FieldValue::I64(1), s("a")])),
        ])));
        assert!(!binding.matches(&headers(&[
            ("flag", FieldValue::Bool(true)),
            ("list", FieldValue::Array(vec![FieldValue::I64(1)])),
        ])));
    }

    #[test]
    fn x_match_may_be_utf8_bytes() {
        let arguments = headers(&[("x-match", FieldValue::Bytes(Bytes::from("any")))]);
        assert!(HeadersBinding::parse(&arguments).is_ok());
    }

    #[test]
    fn bad_x_match_value_is_an_error_naming_it() {
        let error = HeadersBinding::parse(&headers(&[("x-match", s("some"))])).unwrap_err();
        assert_eq!(
            error,
            HeadersBindingError::InvalidXMatch {
                value: "some".to_owned()
            }
        );
        assert!(error
            .to_string()
            .starts_with("Invalid x-match field value 'some'"));
        // Rule names are exact, as in RabbitMQ.
        assert!(HeadersBinding::parse(&headers(&[("x-match", s("ALL"))])).is_err());
    }

    #[test]
    fn non_string_x_match_is_an_error() {
        let error =
            HeadersBinding::parse(&headers(&[("x-match", FieldValue::I32(1))])).unwrap_err();
        assert!(matches!(error, HeadersBindingError::XMatchNotString { .. }));
        assert!(error.to_string().contains("x-match"), "{error}");
    }
}
