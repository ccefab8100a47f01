//! The `expiration` property: RabbitMQ's parse and the exact text of its refusals.
//!
//! RabbitMQ (3.10) reads the short string with Erlang's `string:to_integer/1` (an optional `+`
//! or `-`, then ASCII digits; no spaces), refuses any text after the digits, then refuses a
//! negative value or one above ten years. Its reply text names the reason as
//! an Erlang term (`no_integer`, `{value_negative,-1}`, `{leftover_string,".5"}`); we write the
//! same terms on one line (RabbitMQ's pretty-printer breaks very long ones over lines, which we
//! do not copy), and quote a leftover string as Rust's `Debug` does.

use super::ConvertError;

/// The largest `expiration` RabbitMQ accepts: ten years in milliseconds.
pub const MAX_EXPIRATION_MS: u64 = 315_360_000_000;

/// Why RabbitMQ refuses an expiration: its reason term.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal<'a> {
    /// `no_integer`: no digits where the number should start.
    NoInteger,
    /// `{value_negative,N}`: the normalised integer, with its `-`.
    ValueNegative(String),
    /// `{value_too_large,N}`: the normalised integer.
    ValueTooLarge(String),
    /// `{leftover_string,S}`: the text after the digits.
    LeftoverString(&'a str),
}

/// The `expiration` property as milliseconds, as RabbitMQ reads it: `+5`, `0005` and `-0` are
/// accepted (5, 5, 0); `""`, `" 5"`, `"abc"`, `"1.5"`, `"-1"` and anything above
/// [`MAX_EXPIRATION_MS`] are refused with [`ConvertError::InvalidExpiration`].
pub fn parse_expiration(text: &str) -> Result<u64, ConvertError> {
    parse(text).map_err(|_| ConvertError::InvalidExpiration {
        value: text.to_owned(),
    })
}

fn parse(text: &str) -> Result<u64, Refusal<'_>> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let digit_count = unsigned.bytes().take_while(u8::is_ascii_digit).count();
    if digit_count == 0 {
        return Err(Refusal::NoInteger);
    }
    // The digits are ASCII, so the split is on a character boundary.
    let Some((digits, leftover)) = unsigned.split_at_checked(digit_count) else {
        return Err(Refusal::NoInteger);
    };
    if !leftover.is_empty() {
        return Err(Refusal::LeftoverString(leftover));
    }
    let magnitude = match digits.trim_start_matches('0') {
        "" => "0",
        significant => significant,
    };
    if negative && magnitude != "0" {
        return Err(Refusal::ValueNegative(format!("-{magnitude}")));
    }
    match magnitude.parse::<u64>() {
        Ok(ms) if ms <= MAX_EXPIRATION_MS => Ok(ms),
        _ => Err(Refusal::ValueTooLarge(magnitude.to_owned())),
    }
}

/// RabbitMQ's explanation for refusing `value`: `invalid expiration '<value>': <reason>`.
pub(super) fn refusal_text(value: &str) -> String {
    let reason = match parse(value) {
        Ok(_) => "ok".to_owned(),
        Err(Refusal::NoInteger) => "no_integer".to_owned(),
        Err(Refusal::ValueNegative(n)) => format!("{{value_negative,{n}}}"),
        Err(Refusal::ValueTooLarge(n)) => format!("{{value_too_large,{n}}}"),
        Err(Refusal::LeftoverString(rest)) => format!("{{leftover_string,{rest:?}}}"),
    };
    format!("invalid expiration '{value}': {reason}")
}
