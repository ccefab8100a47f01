//! Just enough DER to read a certificate subject's common name, without an X.509 crate.
//!
//! The path walked (RFC 5280): `Certificate ::= SEQUENCE { tbsCertificate SEQUENCE {
//! [0] version OPTIONAL, serialNumber INTEGER, signature SEQUENCE, issuer Name,
//! validity SEQUENCE, subject Name, ... } ... }`, with `Name ::= SEQUENCE OF SET OF
//! SEQUENCE { type OID, value ANY }`. Only definite lengths (DER has no others). Any deviation
//! gives `None`, never a panic: the input is a certificate rustls has already verified, but this
//! code does not rely on that.

/// DER tags used here.
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const VERSION: u8 = 0xA0;
/// The OID 2.5.4.3 (id-at-commonName), encoded.
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// One tag-length-value: the tag, the content and what follows.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7F);
        // 0x80 is the indefinite form, not DER; more than 4 length bytes is not a certificate.
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        let length = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (length, rest)
    };
    if rest.len() < length {
        return None;
    }
    let (content, rest) = rest.split_at(length);
    Some((tag, content, rest))
}

/// The content of the next element if it has tag `expected`, and what follows.
fn expect(input: &[u8], expected: u8) -> Option<(&[u8], &[u8])> {
    let (tag, content, rest) = tlv(input)?;
    (tag == expected).then_some((content, rest))
}

/// The subject's common name of a DER certificate: the last CN attribute (the most specific),
/// decoded from UTF8String, PrintableString, IA5String, TeletexString (as Latin-1),
/// BMPString or UniversalString. `None` if there is none or the DER is malformed.
pub fn subject_common_name(certificate: &[u8]) -> Option<String> {
    let (certificate, _) = expect(certificate, SEQUENCE)?;
    let (tbs, _) = expect(certificate, SEQUENCE)?;
    let (tag, _, after_version) = tlv(tbs)?;
    let mut rest = if tag == VERSION { after_version } else { tbs };
    // serialNumber, signature, issuer, validity
    for _ in 0..4 {
        rest = tlv(rest)?.2;
    }
    let (subject, _) = expect(rest, SEQUENCE)?;
    let mut common_name = None;
    let mut names = subject;
    while !names.is_empty() {
        let (rdn, next) = expect(names, SET)?;
        names = next;
        let mut attributes = rdn;
        while !attributes.is_empty() {
            let (attribute, next) = expect(attributes, SEQUENCE)?;
            attributes = next;
            let (oid, value) = expect(attribute, OID)?;
            if oid == COMMON_NAME {
                let (tag, text, _) = tlv(value)?;
                common_name = Some(decode_string(tag, text)?);
            }
        }
    }
    common_name
}

fn decode_string(tag: u8, bytes: &[u8]) -> Option<String> {
    match tag {
        // UTF8String, PrintableString, IA5String
        0x0C | 0x13 | 0x16 => String::from_utf8(bytes.to_vec()).ok(),
        // TeletexString: in practice Latin-1.
        0x14 => Some(bytes.iter().map(|&b| char::from(b)).collect()),
        // BMPString: UTF-16BE.
        0x1E => {
            let pairs = bytes.chunks_exact(2);
            if !pairs.remainder().is_empty() {
                return None;
            }
            let units: Vec<u16> = pairs
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        // UniversalString: UTF-32BE.
        0x1C => {
            let quads = bytes.chunks_exact(4);
            if !quads.remainder().is_empty() {
                return None;
            }
            quads
                .map(|quad| {
                    char::from_u32(u32::from_be_bytes([quad[0], quad[1], quad[2], quad[3]]))
                })
                .collect()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DistinguishedName, DnType, DnValue, KeyPair};

    fn certificate(subject: DistinguishedName) -> Vec<u8> {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.distinguished_name = subject;
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn reads_utf8_common_name() {
        let mut subject = DistinguishedName::new();
        subject.push(DnType::OrganizationName, "mqgate tests");
        subject.push(DnType::CommonName, "client-é1");
        assert_eq!(
            subject_common_name(&certificate(subject)).as_deref(),
            Some("client-é1")
        );
    }

    #[test]
    fn reads_printable_and_bmp_common_names() {
        let mut subject = DistinguishedName::new();
        subject.push(
            DnType::CommonName,
            DnValue::PrintableString("device 42".try_into().unwrap()),
        );
        assert_eq!(
            subject_common_name(&certificate(subject)).as_deref(),
            Some("device 42")
        );
        let mut subject = DistinguishedName::new();
        subject.push(
            DnType::CommonName,
            DnValue::BmpString("bmp-ü".try_into().unwrap()),
        );
        assert_eq!(
            subject_common_name(&certificate(subject)).as_deref(),
            Some("bmp-ü")
        );
    }

    #[test]
    fn no_common_name_gives_none() {
        let mut subject = DistinguishedName::new();
        subject.push(DnType::OrganizationName, "no cn here");
        assert_eq!(subject_common_name(&certificate(subject)), None);
    }

    #[test]
    fn malformed_der_never_panics() {
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, "x");
        let der = certificate(subject);
        for cut in 0..der.len() {
            // Truncations and corruptions: any answer but a panic.
            let _ = subject_common_name(&der[..cut]);
            let mut corrupted = der.clone();
            corrupted[cut] ^= 0xFF;
            let _ = subject_common_name(&corrupted);
        }
        assert_eq!(subject_common_name(&[]), None);
        assert_eq!(subject_common_name(&[0x30, 0x80, 0, 0]), None);
        assert_eq!(
            subject_common_name(&[0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF]),
            None
        );
    }
}
