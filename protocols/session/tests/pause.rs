//! `reads_paused`: frames wait in the socket while events still flow.

mod support;

use mqgate_session::CloseReason;
use support::{Options, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_reads_hold_frames_until_an_event_resumes() {
    let mut server = TestServer::start(Options::default()).await;
    let (mut client, conn) = server.connect().await;
    client.hello("bob").await;
    // In one write: the ECHO is buffered with the PAUSE and must still wait.
    client.send(b"PAUSE\nECHO held\n").await;
    client.expect("PAUSED").await;
    client.send(b"ECHO later\n").await;
    // Events are still processed while reads are paused; if the ECHOs had been handled they
    // would have been answered before this event was even sent.
    conn.events.send("ping".to_string()).await.unwrap();
    client.expect("EVENT ping").await;
    conn.events.send("RESUME".to_string()).await.unwrap();
    client.expect("RESUMED").await;
    client.expect("held").await;
    client.expect("later").await;
    client.send(b"QUIT\n").await;
    client.expect("BYE").await;
    let report = conn.report().await;
    assert_eq!(report.reason, CloseReason::Disconnected);
    assert_eq!(report.stats.frames_in, 5);
}
