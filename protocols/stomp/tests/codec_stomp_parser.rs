//! `stomp-parser` 0.8 as the reference for STOMP 1.2, and the limits that kept it out of the
//! decoder's path (see the `codec` module documentation). If an upgrade lifts one of the limits,
//! its test here fails: revisit the module documentation then.

// Inside a module named after the file so that `cargo test -p mqgate-stomp codec` selects them.
mod codec_stomp_parser {
    use bytes::BytesMut;
    use mqgate_stomp::codec::{Command, Frame, Inbound, Limits, StompCodec, StompVersion};
    use stomp_parser::client::ClientFrame;
    use stomp_parser::headers::DecodableValue;
    use tokio_util::codec::Decoder;

    fn ours(version: StompVersion, bytes: &[u8]) -> Frame {
        let mut codec = StompCodec::new(Limits::default());
        codec.set_version(version);
        codec.set_connected();
        let mut buf = BytesMut::from(bytes);
        match codec.decode(&mut buf).unwrap() {
            Some(Inbound::Frame(frame)) => frame,
            other => panic!("our decoder: {other:?}"),
        }
    }

    fn theirs(bytes: &[u8]) -> Result<ClientFrame, String> {
        ClientFrame::try_from(bytes.to_vec()).map_err(|e| e.message().to_owned())
    }

    fn refused_by_stomp_parser_accepted_by_us(version: StompVersion, bytes: &[u8]) -> Frame {
        assert!(
            theirs(bytes).is_err(),
            "stomp-parser now accepts {:?}",
            String::from_utf8_lossy(bytes)
        );
        ours(version, bytes)
    }

    fn decoded(value: &impl DecodableValue) -> String {
        value.decoded_value().unwrap().either(str::to_owned, |s| s)
    }

    // ---------------------------------------------------------------------------------------------
    // Differential: for 1.2 frames stomp-parser accepts, we agree.

    #[test]
    fn agrees_with_stomp_parser_on_1_2_send_frames() {
        let values = [
            "plain",
            "a\\cb",
            "line\\nbreak",
            "back\\\\slash",
            "cr\\rhere",
            "ünï",
        ];
        for (i, value) in values.iter().enumerate() {
            for crlf in [false, true] {
                let eol = if crlf { "\r\n" } else { "\n" };
                let wire = format!(
                "SEND{eol}destination:/queue/q{i}{eol}content-type:text/plain{eol}x-{i}:{value}{eol}y\\c{i}:v{eol}{eol}body {i}\0"
            );
                let ClientFrame::Send(send) = theirs(wire.as_bytes()).unwrap() else {
                    panic!("not a SEND")
                };
                let frame = ours(StompVersion::V1_2, wire.as_bytes());
                assert_eq!(frame.command, Command::Send);
                assert_eq!(
                    frame.header("destination"),
                    Some(send.destination().value())
                );
                assert_eq!(
                    frame.header("content-type"),
                    send.content_type().map(|v| v.value())
                );
                assert_eq!(Some(&frame.body[..]), send.body());
                let custom: Vec<(String, String)> = send
                    .custom
                    .iter()
                    .map(|c| {
                        let name = c.decoded_name().unwrap().either(str::to_owned, |s| s);
                        (name, decoded(c))
                    })
                    .collect();
                let ours_custom: Vec<(String, String)> = frame
                    .headers
                    .iter()
                    .filter(|(n, _)| n != "destination" && n != "content-type")
                    .cloned()
                    .collect();
                assert_eq!(ours_custom, custom, "{wire:?}");
            }
        }
    }

    #[test]
    fn agrees_with_stomp_parser_on_1_2_control_frames() {
        let cases: [(&[u8], Command); 8] = [
            (
                b"SUBSCRIBE\ndestination:/topic/a\nid:7\nack:client\n\n\0",
                Command::Subscribe,
            ),
            (b"UNSUBSCRIBE\nid:7\nreceipt:r\n\n\0", Command::Unsubscribe),
            (b"ACK\nid:m-1\ntransaction:t\n\n\0", Command::Ack),
            (b"NACK\nid:m-1\ntransaction:t\n\n\0", Command::Nack),
            (b"BEGIN\ntransaction:t\n\n\0", Command::Begin),
            (b"COMMIT\ntransaction:t\n\n\0", Command::Commit),
            (b"ABORT\ntransaction:t\n\n\0", Command::Abort),
            (b"DISCONNECT\nreceipt:r\n\n\0", Command::Disconnect),
        ];
        for (wire, command) in cases {
            let theirs = theirs(wire).unwrap();
            let frame = ours(StompVersion::V1_2, wire);
            assert_eq!(frame.command, command);
            let name = match theirs {
                ClientFrame::Subscribe(f) => {
                    assert_eq!(frame.header("id"), Some(f.id().value()));
                    assert_eq!(frame.header("destination"), Some(f.destination().value()));
                    "SUBSCRIBE"
                }
                ClientFrame::Unsubscribe(f) => {
                    assert_eq!(frame.header("id"), Some(f.id().value()));
                    "UNSUBSCRIBE"
                }
                ClientFrame::Ack(f) => {
                    assert_eq!(frame.header("id"), Some(f.id().value()));
                    "ACK"
                }
                ClientFrame::Nack(f) => {
                    assert_eq!(frame.header("id"), Some(f.id().value()));
                    "NACK"
                }
                ClientFrame::Begin(f) => {
                    assert_eq!(frame.header("transaction"), Some(f.transaction().value()));
                    "BEGIN"
                }
                ClientFrame::Commit(f) => {
                    assert_eq!(frame.header("transaction"), Some(f.transaction().value()));
                    "COMMIT"
                }
                ClientFrame::Abort(f) => {
                    assert_eq!(frame.header("transaction"), Some(f.transaction().value()));
                    "ABORT"
                }
                ClientFrame::Disconnect(f) => {
                    assert_eq!(frame.header("receipt"), Some(f.receipt().value()));
                    "DISCONNECT"
                }
                other => panic!("{other:?}"),
            };
            assert_eq!(name, command.as_str());
        }
    }

    // ---------------------------------------------------------------------------------------------
    // What it cannot do.

    #[test]
    fn no_1_0_or_connect_values_with_backslashes_or_colons() {
        let frame = refused_by_stomp_parser_accepted_by_us(
            StompVersion::V1_2,
            b"CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:a\\tb\n\n\0",
        );
        assert_eq!(frame.header("passcode"), Some("a\\tb"));
        let frame = refused_by_stomp_parser_accepted_by_us(
            StompVersion::V1_2,
            b"CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:a:b\n\n\0",
        );
        assert_eq!(frame.header("passcode"), Some("a:b"));
        let frame = refused_by_stomp_parser_accepted_by_us(
            StompVersion::V1_0,
            b"SEND\ndestination:/queue/a\nx-path:C:\\temp\n\n\0",
        );
        assert_eq!(frame.header("x-path"), Some("C:\\temp"));
    }

    #[test]
    fn no_version_distinction_in_escapes() {
        // 1.1 has no `\r`: stomp-parser, a 1.2 parser, cannot refuse it.
        let wire = b"SEND\ndestination:/q\nk:a\\rb\n\n\0";
        assert!(theirs(wire).is_ok());
        let mut codec = StompCodec::new(Limits::default());
        codec.set_version(StompVersion::V1_1);
        let mut buf = BytesMut::from(&wire[..]);
        assert!(matches!(
            codec.decode(&mut buf).unwrap(),
            Some(Inbound::Invalid(_))
        ));
    }

    #[test]
    fn repeated_headers_last_wins_and_order_lost() {
        let wire = b"SEND\ndestination:/queue/first\ndestination:/queue/second\n\n\0";
        let ClientFrame::Send(send) = theirs(wire).unwrap() else {
            panic!()
        };
        assert_eq!(
            send.destination().value(),
            "/queue/second",
            "stomp-parser keeps the last"
        );
        let frame = ours(StompVersion::V1_2, wire);
        assert_eq!(frame.header("destination"), Some("/queue/first"));
        assert_eq!(frame.headers.len(), 2);
    }

    #[test]
    fn required_headers_refuse_valid_1_0_and_1_1_frames() {
        // 1.0 CONNECT: neither host nor accept-version.
        refused_by_stomp_parser_accepted_by_us(
            StompVersion::V1_0,
            b"CONNECT\nlogin:guest\npasscode:guest\n\n\0",
        );
        // 1.0 SUBSCRIBE without id.
        refused_by_stomp_parser_accepted_by_us(
            StompVersion::V1_0,
            b"SUBSCRIBE\ndestination:/queue/a\n\n\0",
        );
        // 1.1 ACK by message-id and subscription.
        refused_by_stomp_parser_accepted_by_us(
            StompVersion::V1_1,
            b"ACK\nmessage-id:m-1\nsubscription:0\n\n\0",
        );
        // 1.2 ACK and NACK outside a transaction.
        refused_by_stomp_parser_accepted_by_us(StompVersion::V1_2, b"ACK\nid:m-1\n\n\0");
        refused_by_stomp_parser_accepted_by_us(StompVersion::V1_2, b"NACK\nid:m-1\n\n\0");
        // DISCONNECT without receipt.
        refused_by_stomp_parser_accepted_by_us(StompVersion::V1_2, b"DISCONNECT\n\n\0");
    }

    #[test]
    fn custom_headers_refused_on_most_frames() {
        refused_by_stomp_parser_accepted_by_us(
            StompVersion::V1_2,
            b"UNSUBSCRIBE\nid:1\nx-trace:abc\n\n\0",
        );
        refused_by_stomp_parser_accepted_by_us(
            StompVersion::V1_2,
            b"ABORT\ntransaction:t\nreceipt:r\n\n\0",
        );
        refused_by_stomp_parser_accepted_by_us(
            StompVersion::V1_2,
            b"BEGIN\ntransaction:t\nx-trace:abc\n\n\0",
        );
        // NACK with requeue:false, which the issue asks for (dead-lettering).
        refused_by_stomp_parser_accepted_by_us(
            StompVersion::V1_2,
            b"NACK\nid:m\ntransaction:t\nrequeue:false\n\n\0",
        );
    }

    #[test]
    fn empty_header_values_refused() {
        let frame = refused_by_stomp_parser_accepted_by_us(
            StompVersion::V1_2,
            b"SEND\ndestination:/q\nx-empty:\n\n\0",
        );
        assert_eq!(frame.header("x-empty"), Some(""));
    }

    #[test]
    fn body_only_on_send() {
        refused_by_stomp_parser_accepted_by_us(
            StompVersion::V1_2,
            b"SUBSCRIBE\ndestination:/q\nid:1\n\nbody\0",
        );
    }

    #[test]
    fn one_message_for_every_error() {
        let errors: Vec<String> = [
            &b"PUBLISH\n\n\0"[..],
            b"SEND\nnocolon\n\n\0",
            b"SEND\ndestination:/q\nk:\\t\n\n\0",
            b"SEND\ndestination:/q\ncontent-length:-1\n\n\0",
        ]
        .iter()
        .map(|wire| theirs(wire).expect_err("refused"))
        .collect();
        assert!(
            errors
                .iter()
                .all(|e| e == "Error parsing frame" || e.starts_with("Unknown command")),
            "{errors:?}"
        );
    }

    #[test]
    fn content_length_is_not_used_for_framing() {
        // content-length:1 but two body bytes: stomp-parser takes everything up to the last NUL.
        let wire = b"SEND\ndestination:/q\ncontent-length:1\n\nab\0";
        let ClientFrame::Send(send) = theirs(wire).unwrap() else {
            panic!()
        };
        assert_eq!(send.body(), Some(&b"ab"[..]));
    }
}
