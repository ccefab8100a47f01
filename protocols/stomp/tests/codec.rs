//! The STOMP codec over raw bytes: golden frames per version, framing, escaping, every bad input,
//! bounded buffering, incremental decoding, heart-beats, random input, and the encoder.

// Inside a module named after the file so that `cargo test -p mqgate-stomp codec` selects them.
mod codec {
    use bytes::{Bytes, BytesMut};
    use mqgate_stomp::codec::{
        CodecError, Command, Frame, Inbound, Limits, Outbound, ServerCommand, ServerFrame,
        StompCodec, StompVersion,
    };
    use tokio_util::codec::{Decoder, Encoder};

    const VERSIONS: [StompVersion; 3] =
        [StompVersion::V1_0, StompVersion::V1_1, StompVersion::V1_2];

    /// A codec after CONNECT in `version`.
    fn connected(version: StompVersion) -> StompCodec {
        let mut codec = StompCodec::new(Limits::default());
        codec.set_version(version);
        codec.set_connected();
        codec
    }

    /// Every item `bytes` decodes to at once, with what is left in the buffer.
    fn decode_all(codec: &mut StompCodec, bytes: &[u8]) -> (Vec<Inbound>, BytesMut) {
        let mut buf = BytesMut::from(bytes);
        let mut items = Vec::new();
        while let Some(item) = codec.decode(&mut buf).unwrap() {
            items.push(item);
        }
        (items, buf)
    }

    /// Every item `bytes` decodes to, fed one byte at a time.
    fn decode_bytewise(codec: &mut StompCodec, bytes: &[u8]) -> Vec<Inbound> {
        let mut buf = BytesMut::new();
        let mut items = Vec::new();
        for &b in bytes {
            buf.extend_from_slice(&[b]);
            while let Some(item) = codec.decode(&mut buf).unwrap() {
                items.push(item);
            }
        }
        items
    }

    fn one_frame(codec: &mut StompCodec, bytes: &[u8]) -> Frame {
        let (items, rest) = decode_all(codec, bytes);
        assert!(rest.is_empty(), "left over: {rest:?}");
        match <[Inbound; 1]>::try_from(items) {
            Ok([Inbound::Frame(frame)]) => frame,
            other => panic!("expected one frame, got {other:?}"),
        }
    }

    fn invalid(codec: &mut StompCodec, bytes: &[u8]) -> CodecError {
        let (items, rest) = decode_all(codec, bytes);
        assert!(rest.is_empty(), "a poisoned decoder discards its input");
        match items.last() {
            Some(Inbound::Invalid(error)) => error.clone(),
            other => panic!("expected Invalid last, got {other:?} in {items:?}"),
        }
    }

    fn assert_poisoned(codec: &mut StompCodec) {
        assert!(codec.is_poisoned());
        let mut buf = BytesMut::from(&b"SEND\ndestination:/queue/a\n\nhi\0\n"[..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        assert!(buf.is_empty());
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    // ---------------------------------------------------------------------------------------------
    // Golden frames

    /// A golden frame: command, wire header lines, expected decoded headers, body.
    type Golden = (Command, &'static str, Vec<(String, String)>, &'static [u8]);

    /// A golden frame for every client command.
    fn golden(version: StompVersion) -> Vec<Golden> {
        let v = version.as_str();
        let connect_headers = match version {
            StompVersion::V1_0 => headers(&[("login", "guest"), ("passcode", "pa\\ss:w")]),
            _ => headers(&[
                ("accept-version", v),
                ("host", "/"),
                ("login", "guest"),
                ("passcode", "pa\\ss:w"),
                ("heart-beat", "10000,10000"),
            ]),
        };
        let connect_wire = match version {
        StompVersion::V1_0 => "login:guest\npasscode:pa\\ss:w\n",
        StompVersion::V1_1 => {
            "accept-version:1.1\nhost:/\nlogin:guest\npasscode:pa\\ss:w\nheart-beat:10000,10000\n"
        }
        StompVersion::V1_2 => {
            "accept-version:1.2\nhost:/\nlogin:guest\npasscode:pa\\ss:w\nheart-beat:10000,10000\n"
        }
    };
        let ack = match version {
            StompVersion::V1_2 => (
                "id:m-1\ntransaction:tx1\n",
                headers(&[("id", "m-1"), ("transaction", "tx1")]),
            ),
            _ => (
                "message-id:m-1\nsubscription:s-1\n",
                headers(&[("message-id", "m-1"), ("subscription", "s-1")]),
            ),
        };
        vec![
            (Command::Connect, connect_wire, connect_headers.clone(), b""),
            (Command::Stomp, connect_wire, connect_headers, b""),
            (
                Command::Send,
                "destination:/queue/a\ncontent-type:text/plain\nreceipt:r-1\nx-custom:v\n",
                headers(&[
                    ("destination", "/queue/a"),
                    ("content-type", "text/plain"),
                    ("receipt", "r-1"),
                    ("x-custom", "v"),
                ]),
                b"hello, world",
            ),
            (
                Command::Subscribe,
                "destination:/topic/a.b\nid:0\nack:client-individual\nprefetch-count:10\n",
                headers(&[
                    ("destination", "/topic/a.b"),
                    ("id", "0"),
                    ("ack", "client-individual"),
                    ("prefetch-count", "10"),
                ]),
                b"",
            ),
            (
                Command::Unsubscribe,
                "id:0\nreceipt:r-2\n",
                headers(&[("id", "0"), ("receipt", "r-2")]),
                b"",
            ),
            (Command::Ack, ack.0, ack.1.clone(), b""),
            (Command::Nack, ack.0, ack.1, b""),
            (
                Command::Begin,
                "transaction:tx1\n",
                headers(&[("transaction", "tx1")]),
                b"",
            ),
            (
                Command::Commit,
                "transaction:tx1\nreceipt:r-3\n",
                headers(&[("transaction", "tx1"), ("receipt", "r-3")]),
                b"",
            ),
            (
                Command::Abort,
                "transaction:tx1\n",
                headers(&[("transaction", "tx1")]),
                b"",
            ),
            (
                Command::Disconnect,
                "receipt:r-4\n",
                headers(&[("receipt", "r-4")]),
                b"",
            ),
            (Command::Disconnect, "", headers(&[]), b""),
        ]
    }

    #[test]
    fn golden_frames_for_every_command_in_every_version() {
        for version in VERSIONS {
            for (command, wire, expected, body) in golden(version) {
                let mut bytes = format!("{command}\n{wire}\n").into_bytes();
                bytes.extend_from_slice(body);
                bytes.push(0);
                let mut codec = if command.is_connect() {
                    // CONNECT is read before any version is known.
                    StompCodec::new(Limits::default())
                } else {
                    connected(version)
                };
                let frame = one_frame(&mut codec, &bytes);
                assert_eq!(frame.command, command, "{version} {command}");
                assert_eq!(frame.headers, expected, "{version} {command}");
                assert_eq!(&frame.body[..], body, "{version} {command}");
                // A CONNECT is never unescaped, even once a version is set.
                let mut codec = connected(version);
                let again = one_frame(&mut codec, &bytes);
                assert_eq!(again, frame, "{version} {command} after set_version");
            }
        }
    }

    #[test]
    fn every_command_decodes_with_crlf_line_endings_in_every_version() {
        for version in VERSIONS {
            for (command, wire, expected, body) in golden(version) {
                let mut bytes =
                    format!("{command}\r\n{}\r\n", wire.replace('\n', "\r\n")).into_bytes();
                bytes.extend_from_slice(body);
                bytes.push(0);
                let frame = one_frame(&mut connected(version), &bytes);
                assert_eq!(frame.command, command);
                assert_eq!(frame.headers, expected, "{version} {command} with CRLF");
                assert_eq!(&frame.body[..], body);
            }
        }
    }

    #[test]
    fn frame_header_gives_the_first_occurrence() {
        let frame = one_frame(
            &mut connected(StompVersion::V1_2),
            b"SEND\ndestination:/queue/first\nx:1\ndestination:/queue/second\nx:2\nx:3\n\n\0",
        );
        assert_eq!(frame.header("destination"), Some("/queue/first"));
        assert_eq!(frame.header("x"), Some("1"));
        assert_eq!(frame.header("missing"), None);
        assert_eq!(
            frame.headers,
            headers(&[
                ("destination", "/queue/first"),
                ("x", "1"),
                ("destination", "/queue/second"),
                ("x", "2"),
                ("x", "3"),
            ]),
            "repeated headers are all kept, in wire order"
        );
    }

    #[test]
    fn header_edge_shapes() {
        let frame = one_frame(
            &mut connected(StompVersion::V1_2),
            b"SEND\ndestination:/queue/a\nempty:\n:no-name\nurl:http://x:80/y\n spaced : v \n\n\0",
        );
        assert_eq!(
            frame.headers,
            headers(&[
                ("destination", "/queue/a"),
                ("empty", ""),
                ("", "no-name"),
                ("url", "http://x:80/y"),
                (" spaced ", " v "),
            ]),
            "split at the first colon, nothing trimmed"
        );
    }

    // ---------------------------------------------------------------------------------------------
    // Bodies

    #[test]
    fn content_length_body_with_nuls_inside() {
        let body: Vec<u8> = (0..=255u8).chain([0, 0, 0]).collect();
        for version in VERSIONS {
            let mut bytes = format!(
                "SEND\ndestination:/queue/a\ncontent-length:{}\n\n",
                body.len()
            )
            .into_bytes();
            bytes.extend_from_slice(&body);
            bytes.push(0);
            let frame = one_frame(&mut connected(version), &bytes);
            assert_eq!(&frame.body[..], &body[..]);
            assert_eq!(frame.header("content-length"), Some("259"));
            let items = decode_bytewise(&mut connected(version), &bytes);
            assert_eq!(items, vec![Inbound::Frame(frame)]);
        }
    }

    #[test]
    fn body_ends_at_first_nul_without_content_length() {
        let (items, rest) = decode_all(
            &mut connected(StompVersion::V1_1),
            b"SEND\ndestination:/queue/a\n\nab\0cd\0\n",
        );
        // A command line is judged once it ends (or is longer than any command): "cd\0" then LF.
        assert_eq!(items.len(), 2);
        let Inbound::Frame(frame) = &items[0] else {
            panic!("{items:?}")
        };
        assert_eq!(&frame.body[..], b"ab");
        assert_eq!(
            items[1],
            Inbound::Invalid(CodecError::UnknownCommand("cd\0".into()))
        );
        assert!(rest.is_empty());
    }

    #[test]
    fn zero_content_length_and_empty_bodies() {
        let frame = one_frame(
            &mut connected(StompVersion::V1_2),
            b"SEND\ndestination:/queue/a\ncontent-length:0\n\n\0",
        );
        assert!(frame.body.is_empty());
        let frame = one_frame(
            &mut connected(StompVersion::V1_2),
            b"BEGIN\ntransaction:t\n\n\0",
        );
        assert!(frame.body.is_empty());
        let frame = one_frame(&mut connected(StompVersion::V1_2), b"DISCONNECT\n\n\0");
        assert!(frame.headers.is_empty());
    }

    #[test]
    fn first_content_length_frames_the_body() {
        let frame = one_frame(
            &mut connected(StompVersion::V1_2),
            b"SEND\ndestination:/q\ncontent-length:3\ncontent-length:junk\n\na\0b\0",
        );
        assert_eq!(&frame.body[..], b"a\0b");
        assert_eq!(frame.header("content-length"), Some("3"));
    }

    #[test]
    fn content_length_tolerates_spaces() {
        let frame = one_frame(
            &mut connected(StompVersion::V1_2),
            b"SEND\ndestination:/q\ncontent-length: 2 \n\nab\0",
        );
        assert_eq!(&frame.body[..], b"ab");
    }

    // ---------------------------------------------------------------------------------------------
    // Heart-beats and sequences

    #[test]
    fn heart_beats_between_frames_one_per_eol() {
        let bytes = b"\n\r\n\nSEND\ndestination:/q\n\nx\0\n\r\nSEND\ndestination:/q\ncontent-length:1\n\ny\0\n";
        let (items, rest) = decode_all(&mut connected(StompVersion::V1_2), bytes);
        assert!(rest.is_empty());
        let kinds: Vec<&str> = items
            .iter()
            .map(|item| match item {
                Inbound::HeartBeat => "hb",
                Inbound::Frame(_) => "frame",
                Inbound::Invalid(_) => "invalid",
            })
            .collect();
        assert_eq!(
            kinds,
            ["hb", "hb", "hb", "frame", "hb", "hb", "frame", "hb"]
        );
        assert_eq!(
            decode_bytewise(&mut connected(StompVersion::V1_2), bytes),
            items
        );
    }

    #[test]
    fn a_lone_cr_waits_for_its_lf() {
        let mut codec = connected(StompVersion::V1_2);
        let mut buf = BytesMut::from(&b"\r"[..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        assert_eq!(&buf[..], b"\r");
        buf.extend_from_slice(b"\n");
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(Inbound::HeartBeat));
        assert!(buf.is_empty());
    }

    #[test]
    fn byte_by_byte_equals_all_at_once() {
        let mut stream = Vec::new();
        for version in [StompVersion::V1_2] {
            for (command, wire, _, body) in golden(version) {
                if command.is_connect() {
                    continue;
                }
                stream.extend_from_slice(format!("{command}\n{wire}\n").as_bytes());
                stream.extend_from_slice(body);
                stream.extend_from_slice(b"\0\n");
            }
        }
        stream
            .extend_from_slice(b"SEND\r\ndestination:/q\r\ncontent-length:4\r\n\r\n\0\0\0\0\0\r\n");
        let (all, rest) = decode_all(&mut connected(StompVersion::V1_2), &stream);
        assert!(rest.is_empty());
        assert!(
            all.iter().all(|item| !matches!(item, Inbound::Invalid(_))),
            "{all:?}"
        );
        assert_eq!(
            all.iter()
                .filter(|item| matches!(item, Inbound::Frame(_)))
                .count(),
            11
        );
        assert_eq!(
            decode_bytewise(&mut connected(StompVersion::V1_2), &stream),
            all
        );
        // Any split point in two reads gives the same items.
        for split in 0..stream.len() {
            let mut codec = connected(StompVersion::V1_2);
            let mut buf = BytesMut::from(&stream[..split]);
            let mut items = Vec::new();
            while let Some(item) = codec.decode(&mut buf).unwrap() {
                items.push(item);
            }
            buf.extend_from_slice(&stream[split..]);
            while let Some(item) = codec.decode(&mut buf).unwrap() {
                items.push(item);
            }
            assert_eq!(items, all, "split at {split}");
        }
    }

    #[test]
    fn incomplete_input_keeps_every_byte_in_the_buffer() {
        let frame = b"SEND\ndestination:/q\ncontent-length:5\n\nhello\0";
        for cut in 1..frame.len() {
            let mut codec = connected(StompVersion::V1_2);
            let mut buf = BytesMut::from(&frame[..cut]);
            assert_eq!(codec.decode(&mut buf).unwrap(), None, "cut at {cut}");
            assert_eq!(&buf[..], &frame[..cut], "nothing consumed at {cut}");
            // A fresh codec over the same buffer (state lost) still decodes it.
            let mut fresh = connected(StompVersion::V1_2);
            buf.extend_from_slice(&frame[cut..]);
            assert!(matches!(
                fresh.decode(&mut buf).unwrap(),
                Some(Inbound::Frame(_))
            ));
        }
    }

    #[test]
    fn decode_eof_drops_a_truncated_frame_without_error() {
        let mut codec = connected(StompVersion::V1_2);
        let mut buf = BytesMut::from(&b"\nSEND\ndestination:/q\n\nhal"[..]);
        assert_eq!(
            codec.decode_eof(&mut buf).unwrap(),
            Some(Inbound::HeartBeat)
        );
        assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
        assert!(buf.is_empty());
    }

    // ---------------------------------------------------------------------------------------------
    // Escaping

    #[test]
    fn escapes_per_version() {
        let wire = b"SEND\ndestination:/q\na\\cb:x\\ny\\\\z\\cw\n\n\0";
        let frame = one_frame(&mut connected(StompVersion::V1_0), wire);
        assert_eq!(
            frame.headers[1],
            ("a\\cb".into(), "x\\ny\\\\z\\cw".into()),
            "1.0: no escaping"
        );
        for version in [StompVersion::V1_1, StompVersion::V1_2] {
            let frame = one_frame(&mut connected(version), wire);
            assert_eq!(
                frame.headers[1],
                ("a:b".into(), "x\ny\\z:w".into()),
                "{version}"
            );
        }
        let cr = b"SEND\ndestination:/q\nk:a\\rb\n\n\0";
        let frame = one_frame(&mut connected(StompVersion::V1_2), cr);
        assert_eq!(frame.header("k"), Some("a\rb"));
        assert_eq!(
            invalid(&mut connected(StompVersion::V1_1), cr),
            CodecError::InvalidEscape("k".into()),
            "1.1 has no \\r"
        );
        let frame = one_frame(&mut connected(StompVersion::V1_0), cr);
        assert_eq!(frame.header("k"), Some("a\\rb"));
    }

    #[test]
    fn invalid_escapes_poison() {
        for version in [StompVersion::V1_1, StompVersion::V1_2] {
            for wire in [
                &b"SEND\ndestination:/q\nk:a\\tb\n\n\0"[..],
                b"SEND\ndestination:/q\nk:trailing\\\n\n\0",
                b"SEND\ndestination:/q\nk\\x:v\n\n\0",
            ] {
                let mut codec = connected(version);
                let error = invalid(&mut codec, wire);
                assert!(
                    matches!(error, CodecError::InvalidEscape(_)),
                    "{version}: {error:?}"
                );
                assert!(error.to_string().contains("escape"));
                assert_poisoned(&mut codec);
            }
        }
    }

    #[test]
    fn connect_and_stomp_are_never_unescaped() {
        for version in VERSIONS {
            for command in ["CONNECT", "STOMP"] {
                let wire = format!(
                    "{command}\naccept-version:1.2\nhost:/\nlogin:a\\tb\npasscode:x\\cy:z\\\n\n\0"
                );
                let frame = one_frame(&mut connected(version), wire.as_bytes());
                assert_eq!(frame.header("login"), Some("a\\tb"));
                assert_eq!(frame.header("passcode"), Some("x\\cy:z\\"));
            }
        }
    }

    #[test]
    fn before_set_version_frames_are_read_as_1_0() {
        let frame = one_frame(
            &mut StompCodec::new(Limits::default()),
            b"SEND\ndestination:/q\nk:a\\tb\n\n\0",
        );
        assert_eq!(frame.header("k"), Some("a\\tb"));
    }

    // ---------------------------------------------------------------------------------------------
    // Bad input

    #[test]
    fn every_bad_input_is_an_invalid_item_and_poisons() {
        let big = format!("SEND\ndestination:/q\n{}\n\0", "h:v\n".repeat(101));
        let long = format!("SEND\ndestination:/q\nk:{}\n\n\0", "v".repeat(8 * 1024));
        let cases: Vec<(&str, Vec<u8>, CodecError)> = vec![
            (
                "negative content-length",
                b"SEND\ndestination:/q\ncontent-length:-1\n\nx\0".to_vec(),
                CodecError::BadContentLength("\"-1\" is not a non-negative decimal number".into()),
            ),
            (
                "non-numeric content-length",
                b"SEND\ncontent-length:abc\n\n\0".to_vec(),
                CodecError::BadContentLength("\"abc\" is not a non-negative decimal number".into()),
            ),
            (
                "empty content-length",
                b"SEND\ncontent-length:\n\n\0".to_vec(),
                CodecError::BadContentLength("\"\" is not a non-negative decimal number".into()),
            ),
            (
                "content-length over usize",
                b"SEND\ncontent-length:99999999999999999999999\n\n\0".to_vec(),
                CodecError::BadContentLength("\"99999999999999999999999\" is too large".into()),
            ),
            (
                "content-length over the limit",
                b"SEND\ncontent-length:4194304\n\n".to_vec(),
                CodecError::BadContentLength(
                    "4194304 is over the frame size limit of 4194304 bytes".into(),
                ),
            ),
            (
                "content-length contradicted",
                b"SEND\ndestination:/q\ncontent-length:2\n\nabc\0".to_vec(),
                CodecError::BodyAfterContentLength,
            ),
            (
                "missing colon",
                b"SEND\ndestination:/q\nnocolon\n\n\0".to_vec(),
                CodecError::MissingColon("nocolon".into()),
            ),
            (
                "unknown command",
                b"PUBLISH\n\n\0".to_vec(),
                CodecError::UnknownCommand("PUBLISH".into()),
            ),
            (
                "lower-case command",
                b"send\n\n\0".to_vec(),
                CodecError::UnknownCommand("send".into()),
            ),
            (
                "server command from a client",
                b"MESSAGE\n\n\0".to_vec(),
                CodecError::UnknownCommand("MESSAGE".into()),
            ),
            (
                "long unknown command",
                b"SUBSCRIBEXYZW".to_vec(),
                CodecError::UnknownCommand("SUBSCRIBEXYZW".into()),
            ),
            (
                "non-UTF-8 command",
                b"SE\xffND\n\n\0".to_vec(),
                CodecError::NotUtf8,
            ),
            (
                "non-UTF-8 header",
                b"SEND\nk:\xc3\x28\n\n\0".to_vec(),
                CodecError::NotUtf8,
            ),
            (
                "non-UTF-8 header name",
                b"SEND\n\xff:v\n\n\0".to_vec(),
                CodecError::NotUtf8,
            ),
            (
                "lone CR",
                b"\rSEND\n\n\0".to_vec(),
                CodecError::Malformed("carriage return not followed by line feed".into()),
            ),
            (
                "too many headers",
                big.into_bytes(),
                CodecError::TooManyHeaders { limit: 100 },
            ),
            (
                "header too long",
                long.into_bytes(),
                CodecError::HeaderTooLong { limit: 8 * 1024 },
            ),
            (
                "undefined escape",
                b"SEND\nk:\\t\n\n\0".to_vec(),
                CodecError::InvalidEscape("k".into()),
            ),
        ];
        for (what, bytes, expected) in cases {
            // All at once, then byte by byte: the same single error, after which nothing.
            let mut codec = connected(StompVersion::V1_2);
            assert_eq!(invalid(&mut codec, &bytes), expected, "{what}");
            assert_poisoned(&mut codec);
            let mut codec = connected(StompVersion::V1_2);
            let items = decode_bytewise(&mut codec, &bytes);
            assert_eq!(
                items,
                vec![Inbound::Invalid(expected.clone())],
                "{what} byte by byte"
            );
            assert_poisoned(&mut codec);
            let message = expected.to_string();
            assert!(
                !message.is_empty() && !message.contains('\n'),
                "{what}: {message:?}"
            );
        }
    }

    #[test]
    fn caps_are_inclusive() {
        let limits = Limits {
            max_headers: 3,
            max_header_len: 10,
            ..Limits::default()
        };
        let mut codec = StompCodec::new(limits);
        codec.set_version(StompVersion::V1_2);
        // Three headers, the last exactly 10 bytes with a CRLF: accepted.
        let ok = b"SEND\r\na:1\r\nb:2\r\nc:34567890\r\n\r\n\0";
        assert!(matches!(one_frame(&mut codec, ok).command, Command::Send));
        let mut codec = StompCodec::new(limits);
        assert_eq!(
            invalid(&mut codec, b"SEND\nc:345678901\n\n\0"),
            CodecError::HeaderTooLong { limit: 10 }
        );
        let mut codec = StompCodec::new(limits);
        assert_eq!(
            invalid(&mut codec, b"SEND\na:1\nb:2\nc:3\nd:4\n\n\0"),
            CodecError::TooManyHeaders { limit: 3 }
        );
    }

    #[test]
    fn header_too_long_is_refused_before_its_end_arrives() {
        let mut codec = connected(StompVersion::V1_2);
        let mut buf = BytesMut::from(&b"SEND\nk:"[..]);
        let mut fed = buf.len();
        loop {
            match codec.decode(&mut buf).unwrap() {
                None => {
                    buf.extend_from_slice(&[b'v'; 512]);
                    fed += 512;
                    assert!(fed < 8 * 1024 + 1024, "not refused in time");
                }
                Some(item) => {
                    assert_eq!(
                        item,
                        Inbound::Invalid(CodecError::HeaderTooLong { limit: 8 * 1024 })
                    );
                    break;
                }
            }
        }
    }

    #[test]
    fn frame_size_limits_before_and_after_connect() {
        let frame = |n: usize| {
            let mut bytes = b"SEND\ndestination:/q\n\n".to_vec();
            bytes.resize(bytes.len() + n, b'x');
            bytes.push(0);
            bytes
        };
        let head = b"SEND\ndestination:/q\n\n".len();
        let limits = Limits::default();
        // Exactly the limit (NUL included) passes; one byte more is refused.
        let exact = frame(limits.max_frame_before_connect - head - 1);
        assert_eq!(exact.len(), 64 * 1024);
        one_frame(&mut StompCodec::new(limits), &exact);
        let over = frame(limits.max_frame_before_connect - head);
        assert_eq!(
            invalid(&mut StompCodec::new(limits), &over),
            CodecError::FrameTooLarge { limit: 64 * 1024 }
        );
        // The same frame is fine after CONNECT.
        let mut codec = StompCodec::new(limits);
        codec.set_connected();
        one_frame(&mut codec, &over);
        // And content-length is held to the limit in force.
        let mut codec = StompCodec::new(limits);
        let error = invalid(&mut codec, b"SEND\ncontent-length:65536\n\n");
        assert!(
            matches!(error, CodecError::BadContentLength(_)),
            "{error:?}"
        );
    }

    #[test]
    fn ten_mib_without_nul_is_refused_with_at_most_the_limit_buffered() {
        let limit = Limits::default().max_frame;
        let chunk = 8 * 1024;
        for head in [
            &b"SEND\ndestination:/q\n\n"[..],
            b"SEND\ndestination:/q\nk:",
            b"SEND",
        ] {
            let mut codec = connected(StompVersion::V1_2);
            let mut buf = BytesMut::new();
            buf.extend_from_slice(head);
            let mut fed = head.len();
            let mut refused = None;
            while fed < 10 * 1024 * 1024 {
                match codec.decode(&mut buf).unwrap() {
                    None => {
                        assert!(buf.len() <= limit, "buffered {} bytes", buf.len());
                        buf.extend_from_slice(&vec![b'x'; chunk]);
                        fed += chunk;
                    }
                    Some(item) => {
                        refused = Some(item);
                        break;
                    }
                }
            }
            let item = refused.expect("refused before 10 MiB");
            assert!(fed <= limit + chunk, "refused only after {fed} bytes");
            assert!(buf.is_empty());
            assert!(
                matches!(
                    item,
                    Inbound::Invalid(
                        CodecError::FrameTooLarge { .. }
                            | CodecError::HeaderTooLong { .. }
                            | CodecError::UnknownCommand(_)
                    )
                ),
                "{item:?}"
            );
            assert_poisoned(&mut codec);
        }
        // With no header line open, the size cap is what refuses it.
        let mut codec = connected(StompVersion::V1_2);
        let mut buf = BytesMut::from(&b"SEND\n\n"[..]);
        let item = loop {
            if let Some(item) = codec.decode(&mut buf).unwrap() {
                break item;
            }
            assert!(buf.len() <= limit);
            buf.extend_from_slice(&vec![b'x'; 64 * 1024]);
        };
        assert_eq!(item, Inbound::Invalid(CodecError::FrameTooLarge { limit }));
    }

    #[test]
    fn too_large_before_connect_is_refused_at_64_kib() {
        let mut codec = StompCodec::new(Limits::default());
        let mut buf = BytesMut::from(&b"CONNECT\nhost:/\n\n"[..]);
        let item = loop {
            if let Some(item) = codec.decode(&mut buf).unwrap() {
                break item;
            }
            assert!(buf.len() <= 64 * 1024);
            buf.extend_from_slice(&[b'x'; 1000]);
        };
        assert_eq!(
            item,
            Inbound::Invalid(CodecError::FrameTooLarge { limit: 64 * 1024 })
        );
    }

    #[test]
    fn random_bytes_never_panic() {
        // xorshift64*, seeded: reproducible without a dependency.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_F491_4F6C_DD1D)
        };
        let alphabet: &[u8] = b"SENDCONCTUBIR:\\\n\r\0acln-0123456789\xff";
        let limits = Limits {
            max_frame_before_connect: 512,
            max_frame: 1024,
            max_headers: 8,
            max_header_len: 64,
        };
        for round in 0..10_000 {
            let len = (next() % 300) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if r % 4 == 0 {
                        (r >> 8) as u8
                    } else {
                        alphabet[(r >> 8) as usize % alphabet.len()]
                    }
                })
                .collect();
            let mut codec = StompCodec::new(limits);
            match round % 4 {
                0 => {}
                1 => codec.set_version(StompVersion::V1_0),
                2 => codec.set_version(StompVersion::V1_1),
                _ => {
                    codec.set_version(StompVersion::V1_2);
                    codec.set_connected();
                }
            }
            let mut buf = BytesMut::new();
            let mut offset = 0;
            while offset < bytes.len() {
                let step = 1 + (next() % 40) as usize;
                let end = (offset + step).min(bytes.len());
                buf.extend_from_slice(&bytes[offset..end]);
                offset = end;
                while let Some(item) = codec.decode(&mut buf).unwrap() {
                    if let Inbound::Invalid(error) = &item {
                        assert!(!error.to_string().is_empty());
                    }
                }
                assert!(buf.len() <= 1024 + 40);
            }
            while codec.decode_eof(&mut buf).unwrap().is_some() {}
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Encoder

    fn encode(codec: &mut StompCodec, item: Outbound) -> Vec<u8> {
        let mut dst = BytesMut::new();
        codec.encode(item, &mut dst).unwrap();
        dst.to_vec()
    }

    /// Decodes what the server wrote with a codec that reads server commands as the client would:
    /// our decoder only knows client commands, so the command line is swapped for SEND.
    fn read_back(version: StompVersion, wire: &[u8], command: ServerCommand) -> Frame {
        let rest = wire
            .strip_prefix(command.as_str().as_bytes())
            .expect("command first");
        let mut bytes = b"SEND".to_vec();
        bytes.extend_from_slice(rest);
        one_frame(&mut connected(version), &bytes)
    }

    #[test]
    fn encoder_message_escaping_per_version() {
        let frame = ServerFrame::new(ServerCommand::Message)
            .with_header("destination", "/queue/a")
            .with_header("message-id", "m:1")
            .with_header("subscription", "0")
            .with_header("x-multi", "line1\nline2\r\\end")
            .with_header("content-length", "999")
            .with_body(Bytes::from_static(b"bin\0ary"));
        let expected: [(StompVersion, &[u8]); 3] = [
        (StompVersion::V1_0, b"MESSAGE\ndestination:/queue/a\nmessage-id:m:1\nsubscription:0\nx-multi:line1 line2 \\end\ncontent-length:7\n\nbin\0ary\0"),
        (StompVersion::V1_1, b"MESSAGE\ndestination:/queue/a\nmessage-id:m\\c1\nsubscription:0\nx-multi:line1\\nline2\r\\\\end\ncontent-length:7\n\nbin\0ary\0"),
        (StompVersion::V1_2, b"MESSAGE\ndestination:/queue/a\nmessage-id:m\\c1\nsubscription:0\nx-multi:line1\\nline2\\r\\\\end\ncontent-length:7\n\nbin\0ary\0"),
    ];
        for (version, wire) in expected {
            let mut codec = connected(version);
            let bytes = encode(&mut codec, Outbound::Frame(frame.clone()));
            assert_eq!(
                String::from_utf8_lossy(&bytes),
                String::from_utf8_lossy(wire),
                "{version}"
            );
            let back = read_back(version, &bytes, ServerCommand::Message);
            assert_eq!(&back.body[..], b"bin\0ary");
            // Raw in 1.0 (split at the first colon), escaped as \c in 1.1 and 1.2.
            assert_eq!(back.header("message-id"), Some("m:1"));
            if version != StompVersion::V1_0 {
                assert_eq!(
                    back.header("x-multi"),
                    Some("line1\nline2\r\\end"),
                    "{version} round trip"
                );
            }
            assert_eq!(back.header("content-length"), Some("7"));
            assert_eq!(
                back.headers
                    .iter()
                    .filter(|(n, _)| n == "content-length")
                    .count(),
                1
            );
        }
    }

    #[test]
    fn encoder_connected_is_never_escaped() {
        let frame = ServerFrame::new(ServerCommand::Connected)
            .with_header("version", "1.2")
            .with_header("heart-beat", "0,10000")
            .with_header("session", "s:1\\x")
            .with_header("server", "mqgate/0.1");
        for version in VERSIONS {
            let bytes = encode(&mut connected(version), Outbound::Frame(frame.clone()));
            assert_eq!(
            &bytes[..],
            b"CONNECTED\nversion:1.2\nheart-beat:0,10000\nsession:s:1\\x\nserver:mqgate/0.1\n\n\0"
        );
        }
    }

    #[test]
    fn encoder_receipt_and_error() {
        for version in VERSIONS {
            let mut codec = connected(version);
            let receipt = ServerFrame::new(ServerCommand::Receipt).with_header("receipt-id", "r:1");
            let bytes = encode(&mut codec, Outbound::Frame(receipt));
            let id = if version == StompVersion::V1_0 {
                "r:1"
            } else {
                "r\\c1"
            };
            assert_eq!(
                bytes,
                format!("RECEIPT\nreceipt-id:{id}\n\n\0").into_bytes(),
                "{version}"
            );
            assert_eq!(
                read_back(version, &bytes, ServerCommand::Receipt).header("receipt-id"),
                Some("r:1")
            );

            let error = ServerFrame::new(ServerCommand::Error)
                .with_header(
                    "message",
                    CodecError::MissingColon("a\nb".into()).to_string(),
                )
                .with_header("receipt-id", "r-9")
                .with_body(Bytes::from_static(b"details"));
            let bytes = encode(&mut codec, Outbound::Frame(error));
            let back = read_back(version, &bytes, ServerCommand::Error);
            assert_eq!(back.header("content-length"), Some("7"));
            assert_eq!(&back.body[..], b"details");
            assert_eq!(back.header("receipt-id"), Some("r-9"));
            assert!(back
                .header("message")
                .unwrap()
                .starts_with("header line without a colon"));

            let bare = encode(
                &mut codec,
                Outbound::Frame(ServerFrame::new(ServerCommand::Error).with_header("message", "m")),
            );
            assert_eq!(bare, b"ERROR\nmessage:m\ncontent-length:0\n\n\0");
        }
    }

    #[test]
    fn encoder_unescapable_characters_in_1_0_keep_the_frame_well_formed() {
        let frame = ServerFrame::new(ServerCommand::Message).with_header("we:ird\nname", "a\r\nb");
        let bytes = encode(&mut connected(StompVersion::V1_0), Outbound::Frame(frame));
        assert_eq!(bytes, b"MESSAGE\nwe_ird name:a  b\ncontent-length:0\n\n\0");
    }

    #[test]
    fn encoder_heart_beat_is_one_lf() {
        let mut codec = connected(StompVersion::V1_2);
        assert_eq!(encode(&mut codec, Outbound::HeartBeat), b"\n");
        let (items, _) = decode_all(&mut codec, b"\n");
        assert_eq!(items, vec![Inbound::HeartBeat]);
    }

    #[test]
    fn encoder_before_a_version_is_set_does_not_escape() {
        let mut codec = StompCodec::new(Limits::default());
        let bytes = encode(
            &mut codec,
            Outbound::Frame(
                ServerFrame::new(ServerCommand::Error)
                    .with_header("message", "Supported versions: 1.0,1.1,1.2"),
            ),
        );
        assert_eq!(
            bytes,
            b"ERROR\nmessage:Supported versions: 1.0,1.1,1.2\ncontent-length:0\n\n\0"
        );
    }

    #[test]
    fn version_names() {
        for version in VERSIONS {
            assert_eq!(StompVersion::from_header(version.as_str()), Some(version));
        }
        assert_eq!(StompVersion::from_header("2.0"), None);
        assert!(StompVersion::V1_0 < StompVersion::V1_2);
    }
}
