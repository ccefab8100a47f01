//! Bounds-checked reading of MQTT's primitive types over a byte slice.
//!
//! Invariant: no function here panics or reads past the slice it was given; running out of bytes is
//! [`CodecError::Malformed`], because callers only ever hold complete packets.

use bytes::{BufMut, BytesMut};

use super::CodecError;

/// The largest value a Variable Byte Integer (four bytes) can carry.
pub(crate) const MAX_VARIABLE_BYTE_INTEGER: usize = 268_435_455;

/// Parses the remaining length after the first byte of a fixed header.
///
/// `Ok(None)` if `bytes` ends before the length does; otherwise the length and how many bytes
/// encode it. A fourth byte that still has its continuation bit set is malformed, so a bogus
/// length is refused without waiting for a fifth byte.
pub(crate) fn remaining_length(bytes: &[u8]) -> Result<Option<(usize, usize)>, CodecError> {
    let mut value = 0usize;
    for (index, byte) in bytes.iter().take(4).enumerate() {
        value |= usize::from(byte & 0x7F) << (7 * index);
        if byte & 0x80 == 0 {
            return Ok(Some((value, index + 1)));
        }
    }
    if bytes.len() >= 4 {
        return Err(CodecError::malformed("remaining length over 4 bytes"));
    }
    Ok(None)
}

/// How many bytes the Variable Byte Integer `value` takes.
pub(crate) fn variable_byte_integer_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Appends `value` as a Variable Byte Integer; `value` must not exceed
/// [`MAX_VARIABLE_BYTE_INTEGER`] (callers derive it from a length that already fitted).
pub(crate) fn put_variable_byte_integer(dst: &mut BytesMut, value: usize) {
    let mut rest = value.min(MAX_VARIABLE_BYTE_INTEGER);
    loop {
        // Truncation is the point: the low seven bits.
        let mut byte = (rest % 128) as u8;
        rest /= 128;
        if rest > 0 {
            byte |= 0x80;
        }
        dst.put_u8(byte);
        if rest == 0 {
            break;
        }
    }
}

/// A cursor over the body of one complete packet (or one property block).
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Takes the next `count` bytes; `what` names them in the error.
    pub(crate) fn take(&mut self, count: usize, what: &str) -> Result<&'a [u8], CodecError> {
        if count > self.bytes.len() {
            return Err(CodecError::Malformed(format!(
                "{what} needs {count} bytes, {} left in the packet",
                self.bytes.len()
            )));
        }
        let (head, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Ok(head)
    }

    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, CodecError> {
        let bytes = self.take(1, what)?;
        Ok(bytes.first().copied().unwrap_or_default())
    }

    pub(crate) fn u16(&mut self, what: &str) -> Result<u16, CodecError> {
        match *self.take(2, what)? {
            [high, low] => Ok(u16::from_be_bytes([high, low])),
            _ => Err(CodecError::malformed(format!("{what} is truncated"))),
        }
    }

    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, CodecError> {
        match *self.take(4, what)? {
            [a, b, c, d] => Ok(u32::from_be_bytes([a, b, c, d])),
            _ => Err(CodecError::malformed(format!("{what} is truncated"))),
        }
    }

    /// A Variable Byte Integer of at most four bytes.
    pub(crate) fn variable_byte_integer(&mut self, what: &str) -> Result<usize, CodecError> {
        match remaining_length(self.bytes) {
            Ok(Some((value, len))) => {
                self.take(len, what)?;
                Ok(value)
            }
            Ok(None) => Err(CodecError::malformed(format!("{what} is truncated"))),
            Err(_) => Err(CodecError::malformed(format!("{what} over 4 bytes"))),
        }
    }

    /// Binary Data: a two-byte length, then that many bytes.
    pub(crate) fn binary(&mut self, what: &str) -> Result<&'a [u8], CodecError> {
        let len = self.u16(what)?;
        self.take(usize::from(len), what)
    }

    /// A UTF-8 Encoded String: valid UTF-8 without U+0000 ([MQTT-1.5.4-1], [MQTT-1.5.4-2]).
    pub(crate) fn string(&mut self, what: &str) -> Result<&'a str, CodecError> {
        let bytes = self.binary(what)?;
        let text = std::str::from_utf8(bytes)
            .map_err(|_| CodecError::malformed(format!("{what} is not valid UTF-8")))?;
        if text.contains('\0') {
            return Err(CodecError::malformed(format!("{what} contains U+0000")));
        }
        Ok(text)
    }

    /// Fails if any byte is left: a packet's fields must fill its remaining length exactly.
    pub(crate) fn finish(&self, what: &str) -> Result<(), CodecError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(CodecError::Malformed(format!(
                "{} trailing bytes after the {what}",
                self.bytes.len()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_length_boundaries() {
        assert_eq!(remaining_length(&[]), Ok(None));
        assert_eq!(remaining_length(&[0x00]), Ok(Some((0, 1))));
        assert_eq!(remaining_length(&[0x7F]), Ok(Some((127, 1))));
        assert_eq!(remaining_length(&[0x80, 0x01]), Ok(Some((128, 2))));
        assert_eq!(remaining_length(&[0x80]), Ok(None));
        assert_eq!(
            remaining_length(&[0xFF, 0xFF, 0xFF, 0x7F]),
            Ok(Some((MAX_VARIABLE_BYTE_INTEGER, 4)))
        );
        assert!(remaining_length(&[0xFF, 0xFF, 0xFF, 0xFF]).is_err());
    }

    #[test]
    fn variable_byte_integer_round_trip() {
        for value in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            2_097_151,
            2_097_152,
            MAX_VARIABLE_BYTE_INTEGER,
        ] {
            let mut dst = BytesMut::new();
            put_variable_byte_integer(&mut dst, value);
            assert_eq!(dst.len(), variable_byte_integer_len(value));
            assert_eq!(remaining_length(&dst), Ok(Some((value, dst.len()))));
        }
    }

    #[test]
    fn strings_refuse_bad_utf8_and_nul() {
        assert!(Reader::new(&[0, 2, 0xC3, 0x28]).string("s").is_err());
        assert!(Reader::new(&[0, 2, b'a', 0]).string("s").is_err());
        assert!(Reader::new(&[0, 3, b'a']).string("s").is_err());
        assert_eq!(Reader::new(&[0, 2, b'o', b'k']).string("s"), Ok("ok"));
    }
}
