//! SASL mechanisms of `connection.start-ok`: PLAIN, AMQPLAIN and (with a verified client
//! certificate) EXTERNAL.
//!
//! Invariant: parsing never panics and never allocates more than the response it reads; an
//! AMQPLAIN response is walked flat (it is a field table without its length prefix, and only
//! long-string values are meaningful), so no nesting reaches a recursive parser.

/// What a client's response asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mechanism {
    /// A user name and password (PLAIN, AMQPLAIN).
    Password {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// Log in as the verified client certificate's common name.
    External,
}

/// The mechanisms `connection.start` offers: EXTERNAL only to clients with a verified
/// certificate.
pub fn offered(has_certificate: bool) -> String {
    if has_certificate {
        "PLAIN AMQPLAIN EXTERNAL".to_owned()
    } else {
        "PLAIN AMQPLAIN".to_owned()
    }
}

/// Reads `response` for `mechanism`; the error is the reason text of a 503 close.
pub fn parse(mechanism: &str, response: &[u8], offered: &str) -> Result<Mechanism, String> {
    if !offered.split(' ').any(|name| name == mechanism) {
        return Err(format!("unknown authentication mechanism '{mechanism}'"));
    }
    match mechanism {
        "PLAIN" => plain(response),
        "AMQPLAIN" => amqplain(response),
        _ => Ok(Mechanism::External),
    }
}

/// `[authzid] NUL authcid NUL passwd`.
fn plain(response: &[u8]) -> Result<Mechanism, String> {
    let text = std::str::from_utf8(response)
        .map_err(|_| "PLAIN response is not valid UTF-8".to_owned())?;
    let mut parts = text.split('\0');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(_authzid), Some(user), Some(password), None) => Ok(Mechanism::Password {
            user: user.to_owned(),
            password: password.to_owned(),
        }),
        _ => Err("PLAIN response must be [authzid]\\0user\\0password".to_owned()),
    }
}

/// A field table without its length: `LOGIN` and `PASSWORD` as long strings.
fn amqplain(mut input: &[u8]) -> Result<Mechanism, String> {
    let malformed = || "malformed AMQPLAIN response".to_owned();
    let mut user = None;
    let mut password = None;
    while let Some((&key_len, rest)) = input.split_first() {
        let key_len = usize::from(key_len);
        let key = rest.get(..key_len).ok_or_else(malformed)?;
        let rest = rest.get(key_len..).ok_or_else(malformed)?;
        let (&kind, rest) = rest.split_first().ok_or_else(malformed)?;
        if kind != b'S' {
            return Err(format!(
                "AMQPLAIN field '{}' must be a long string",
                String::from_utf8_lossy(key)
            ));
        }
        let length: [u8; 4] = rest
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(malformed)?;
        let length = usize::try_from(u32::from_be_bytes(length)).map_err(|_| malformed())?;
        let value = rest.get(4..4 + length).ok_or_else(malformed)?;
        input = rest.get(4 + length..).ok_or_else(malformed)?;
        let value = String::from_utf8(value.to_vec()).map_err(|_| malformed())?;
        match key {
            b"LOGIN" => user = Some(value),
            b"PASSWORD" => password = Some(value),
            _ => {}
        }
    }
    match (user, password) {
        (Some(user), Some(password)) => Ok(Mechanism::Password { user, password }),
        _ => Err("AMQPLAIN response needs LOGIN and PASSWORD".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(key: &str, value: &str) -> Vec<u8> {
        let mut out = vec![u8::try_from(key.len()).unwrap()];
        out.extend_from_slice(key.as_bytes());
        out.push(b'S');
        out.extend_from_slice(&u32::try_from(value.len()).unwrap().to_be_bytes());
        out.extend_from_slice(value.as_bytes());
        out
    }

    #[test]
    fn plain_and_amqplain_give_the_credentials() {
        let expected = Mechanism::Password {
            user: "guest".into(),
            password: "pw".into(),
        };
        assert_eq!(
            parse("PLAIN", b"\0guest\0pw", "PLAIN AMQPLAIN"),
            Ok(expected.clone())
        );
        let mut response = field("LOGIN", "guest");
        response.extend(field("PASSWORD", "pw"));
        assert_eq!(parse("AMQPLAIN", &response, "PLAIN AMQPLAIN"), Ok(expected));
    }

    #[test]
    fn bad_responses_and_unknown_mechanisms_are_refused() {
        assert!(parse("PLAIN", b"guest", "PLAIN").is_err());
        assert!(parse("AMQPLAIN", b"\x05LOG", "AMQPLAIN").is_err());
        assert!(parse("AMQPLAIN", b"\x05LOGINS\xff\xff\xff\xff", "AMQPLAIN").is_err());
        assert_eq!(
            parse("CRAM-MD5", b"", "PLAIN AMQPLAIN"),
            Err("unknown authentication mechanism 'CRAM-MD5'".to_owned())
        );
        assert!(parse("EXTERNAL", b"", "PLAIN AMQPLAIN").is_err());
        assert_eq!(
            parse("EXTERNAL", b"", &offered(true)),
            Ok(Mechanism::External)
        );
    }
}
