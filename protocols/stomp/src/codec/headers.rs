//! Header lines to `(name, value)` pairs and back: the per-version escaping.
//!
//! | version | escapes |
//! |---|---|
//! | 1.0; CONNECT, STOMP, CONNECTED in every version | none: bytes as they are, `\` included |
//! | 1.1 | `\n` (LF), `\c` (`:`), `\\` (`\`) |
//! | 1.2 | 1.1's and `\r` (CR) |
//!
//! Any other escape, or a `\` ending a name or value, is [`CodecError::InvalidEscape`]. A line is
//! split at its first colon: a raw colon later in the value is kept (1.0 needs it; 1.1 and 1.2
//! clients ought to write `\c`, and RabbitMQ tolerates it too).

use super::error::CodecError;
use super::frame::StompVersion;
use super::framing::quote;

/// Which escaping applies to a frame's headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Escaping {
    /// Bytes as they are.
    None,
    /// STOMP 1.1.
    V1_1,
    /// STOMP 1.2.
    V1_2,
}

impl Escaping {
    /// The escaping of a frame in `version` (1.0 rules while none is negotiated); `raw` for
    /// CONNECT, STOMP and CONNECTED frames.
    pub(super) fn of(version: Option<StompVersion>, raw: bool) -> Self {
        match version {
            _ if raw => Self::None,
            None | Some(StompVersion::V1_0) => Self::None,
            Some(StompVersion::V1_1) => Self::V1_1,
            Some(StompVersion::V1_2) => Self::V1_2,
        }
    }
}

/// The header lines of a head (command line first, blank line last, as the scanner checked it).
pub(super) fn parse(head: &[u8], escaping: Escaping) -> Result<Vec<(String, String)>, CodecError> {
    let mut headers = Vec::new();
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = match line.split_last() {
            Some((b'\r', rest)) => rest,
            _ => line,
        };
        if line.is_empty() {
            break;
        }
        let line = std::str::from_utf8(line).map_err(|_| CodecError::NotUtf8)?;
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| CodecError::MissingColon(quote(line.as_bytes())))?;
        let name = unescape(name, escaping).ok_or_else(|| invalid(name))?;
        let value = unescape(value, escaping).ok_or_else(|| invalid(name.as_str()))?;
        headers.push((name, value));
    }
    Ok(headers)
}

fn invalid(name: &str) -> CodecError {
    CodecError::InvalidEscape(quote(name.as_bytes()))
}

/// `text` with its escapes decoded, or `None` for an escape `escaping` does not define.
fn unescape(text: &str, escaping: Escaping) -> Option<String> {
    if escaping == Escaping::None || !text.contains('\\') {
        return Some(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next()? {
            'n' => '\n',
            'c' => ':',
            '\\' => '\\',
            'r' if escaping == Escaping::V1_2 => '\r',
            _ => return None,
        });
    }
    Some(out)
}

/// Appends `text` escaped for `escaping`; `name` says whether it is a header name.
///
/// Where there is no escape for a character, it is replaced so the frame stays well-formed: with
/// no escaping, LF and CR become a space (a line end would split the header) and a colon in a name
/// becomes `_` (it would end the name); in 1.1, which has no `\r`, a CR is written as it is.
pub(super) fn escape_into(out: &mut Vec<u8>, text: &str, escaping: Escaping, name: bool) {
    for &b in text.as_bytes() {
        match (escaping, b) {
            (Escaping::None, b'\n' | b'\r') => out.push(b' '),
            (Escaping::None, b':') if name => out.push(b'_'),
            (Escaping::None, _) => out.push(b),
            (_, b'\n') => out.extend_from_slice(b"\\n"),
            (_, b':') => out.extend_from_slice(b"\\c"),
            (_, b'\\') => out.extend_from_slice(b"\\\\"),
            (Escaping::V1_2, b'\r') => out.extend_from_slice(b"\\r"),
            (_, _) => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn head(lines: &str) -> Vec<u8> {
        format!("SEND\n{lines}\n").into_bytes()
    }

    #[test]
    fn unescape_table() {
        for (escaping, raw, expected) in [
            (Escaping::V1_1, "a\\nb\\cc\\\\d", Some("a\nb:c\\d")),
            (Escaping::V1_2, "a\\rb", Some("a\rb")),
            (Escaping::V1_1, "a\\rb", None),
            (Escaping::V1_2, "a\\tb", None),
            (Escaping::V1_2, "a\\", None),
            (Escaping::V1_2, "\\\\\\\\", Some("\\\\")),
            (Escaping::None, "a\\tb\\", Some("a\\tb\\")),
        ] {
            assert_eq!(
                unescape(raw, escaping).as_deref(),
                expected,
                "{escaping:?} {raw}"
            );
        }
    }

    #[test]
    fn escaping_of_frames() {
        assert_eq!(Escaping::of(None, false), Escaping::None);
        assert_eq!(
            Escaping::of(Some(StompVersion::V1_0), false),
            Escaping::None
        );
        assert_eq!(
            Escaping::of(Some(StompVersion::V1_1), false),
            Escaping::V1_1
        );
        assert_eq!(
            Escaping::of(Some(StompVersion::V1_2), false),
            Escaping::V1_2
        );
        assert_eq!(Escaping::of(Some(StompVersion::V1_2), true), Escaping::None);
    }

    #[test]
    fn parse_names_the_header_with_a_bad_escape() {
        assert_eq!(
            parse(&head("ok:1\nbad\\cname:x\\ty\n"), Escaping::V1_2),
            Err(CodecError::InvalidEscape("bad:name".into())),
            "the value is bad: its header is named decoded"
        );
    }

    proptest! {
        #[test]
        fn escape_then_parse_round_trips_in_1_2(
            pairs in proptest::collection::vec((".*", ".*"), 0..8)
        ) {
            let mut wire = b"SEND\n".to_vec();
            for (name, value) in &pairs {
                escape_into(&mut wire, name, Escaping::V1_2, true);
                wire.push(b':');
                escape_into(&mut wire, value, Escaping::V1_2, false);
                wire.push(b'\n');
            }
            wire.push(b'\n');
            prop_assert_eq!(parse(&wire, Escaping::V1_2), Ok(pairs));
        }

        #[test]
        fn escape_then_parse_round_trips_in_1_1_without_cr(
            pairs in proptest::collection::vec(("[^\r]*", "[^\r]*"), 0..8)
        ) {
            let mut wire = b"SEND\n".to_vec();
            for (name, value) in &pairs {
                escape_into(&mut wire, name, Escaping::V1_1, true);
                wire.push(b':');
                escape_into(&mut wire, value, Escaping::V1_1, false);
                wire.push(b'\n');
            }
            wire.push(b'\n');
            prop_assert_eq!(parse(&wire, Escaping::V1_1), Ok(pairs));
        }

        #[test]
        fn unescaped_output_is_always_one_well_formed_line(
            name in ".*", value in ".*"
        ) {
            let mut wire = Vec::new();
            escape_into(&mut wire, &name, Escaping::None, true);
            prop_assert!(!wire.contains(&b':'));
            wire.push(b':');
            escape_into(&mut wire, &value, Escaping::None, false);
            prop_assert!(!wire.contains(&b'\n') && !wire.contains(&b'\r'));
        }
    }
}
