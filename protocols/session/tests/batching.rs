//! The writer batches: many events become few writes, in order.

mod support;

use mqgate_session::{CloseReason, EVENT_BATCH};
use support::{Options, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_events_are_written_in_order_with_fewer_writes_than_frames() {
    const EVENTS: usize = 1000;
    let mut server = TestServer::start(Options::default()).await;
    let (mut client, conn) = server.connect().await;
    // Queued before the session exists, so the driver finds them all ready at once.
    for i in 0..EVENTS {
        conn.events.try_send(format!("e{i}")).unwrap();
    }
    client.hello("bob").await;
    for i in 0..EVENTS {
        client.expect(&format!("EVENT e{i}")).await;
    }
    client.send(b"QUIT\n").await;
    client.expect("BYE").await;
    let report = conn.report().await;
    assert_eq!(report.reason, CloseReason::Disconnected);
    assert_eq!(report.stats.events, EVENTS as u64);
    assert_eq!(report.stats.frames_out, EVENTS as u64 + 2);
    // One chunk per batch of events at most, plus WELCOME and BYE.
    let most = (EVENTS / EVENT_BATCH + 1) as u64 + 2;
    assert!(
        report.stats.writes <= most,
        "{} writes for {} frames",
        report.stats.writes,
        report.stats.frames_out
    );
}
