//! Frame reads: partial frames across reads, many frames per read, the size backstop and
//! decoder errors.

mod support;

use mqgate_session::CloseReason;
use support::{Options, TestServer};
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_split_across_tiny_writes_are_reassembled() {
    let mut server = TestServer::start(Options::default()).await;
    let (mut client, conn) = server.connect().await;
    let script = b"HELLO bob\r\nECHO hello world\nECHO second line\nQUIT\n";
    for byte in script {
        client.send(std::slice::from_ref(byte)).await;
        client.writer.flush().await.unwrap();
    }
    for expected in ["WELCOME bob", "hello world", "second line", "BYE"] {
        client.expect(expected).await;
    }
    client.expect_eof().await;
    let report = conn.report().await;
    assert_eq!(report.reason, CloseReason::Disconnected);
    assert_eq!(report.stats.frames_in, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_frames_in_one_write_are_all_decoded_in_order() {
    let mut server = TestServer::start(Options::default()).await;
    let (mut client, conn) = server.connect().await;
    let mut script = String::from("HELLO bob\n");
    for i in 0..2000 {
        script.push_str(&format!("ECHO {i}\n"));
    }
    script.push_str("QUIT\n");
    client.send(script.as_bytes()).await;
    client.expect("WELCOME bob").await;
    for i in 0..2000 {
        client.expect(&i.to_string()).await;
    }
    client.expect("BYE").await;
    let report = conn.report().await;
    assert_eq!(report.reason, CloseReason::Disconnected);
    assert_eq!(report.stats.frames_in, 2002);
}

/// Streams `total` bytes without a newline, ignoring the error the server's close causes.
async fn stream_without_newline(client: &mut support::Client, total: usize) {
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    while sent < total {
        if client.writer.write_all(&chunk).await.is_err() {
            return;
        }
        sent += chunk.len();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlong_line_closes_with_frame_too_large() {
    let mut server = TestServer::start(Options::default()).await;
    let (mut client, conn) = server.connect().await;
    client.hello("bob").await;
    client.send(b"ECHO ").await;
    support::within(stream_without_newline(&mut client, 10 * 1024 * 1024)).await;
    let probe = conn.probe.clone();
    let report = conn.report().await;
    assert_eq!(report.reason, CloseReason::FrameTooLarge { limit: 1024 });
    assert_eq!(report.stats.frames_in, 1, "only HELLO was decoded");
    assert_eq!(
        probe.reason(),
        Some(CloseReason::FrameTooLarge { limit: 1024 })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlong_handshake_frame_closes_with_the_handshake_limit() {
    let mut options = Options::default();
    options.config.handshake_max_frame_size = 4096;
    let mut server = TestServer::start(options).await;
    let (mut client, conn) = server.connect().await;
    support::within(stream_without_newline(&mut client, 10 * 1024 * 1024)).await;
    let report = conn.report().await;
    assert_eq!(report.reason, CloseReason::FrameTooLarge { limit: 4096 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decoder_error_closes_with_a_protocol_error() {
    let mut server = TestServer::start(Options::default()).await;
    let (mut client, conn) = server.connect().await;
    client.hello("bob").await;
    client.send(b"ECHO \xff\xfe\n").await;
    client.expect_eof().await;
    let report = conn.report().await;
    assert_eq!(
        report.reason,
        CloseReason::Protocol("line is not UTF-8".to_string())
    );
}
