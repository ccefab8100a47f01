//! A client that never reads: the driver's outbound bytes stay bounded, the event producer is
//! held back, the connection closes as a slow consumer, and other clients are unaffected.

mod support;

use std::time::Duration;

use mqgate_session::CloseReason;
use support::{Options, TestServer};
use tokio::sync::{mpsc, oneshot};

const EVENT_BYTES: usize = 16 * 1024;
const MAX_OUTBOUND: usize = 256 * 1024;

/// Pours events into `events` as fast as it accepts them. Reports once it first finds the
/// channel full, and returns how many events it sent once the channel closes.
async fn pour(events: mpsc::Sender<String>, blocked: oneshot::Sender<()>) -> usize {
    let payload = "x".repeat(EVENT_BYTES);
    let mut blocked = Some(blocked);
    let mut sent = 0;
    loop {
        match events.try_send(payload.clone()) {
            Ok(()) => sent += 1,
            Err(mpsc::error::TrySendError::Full(event)) => {
                if let Some(blocked) = blocked.take() {
                    let _ = blocked.send(());
                }
                if events.send(event).await.is_err() {
                    return sent;
                }
                sent += 1;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return sent,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_that_never_reads_is_bounded_then_closed_as_slow_consumer() {
    let mut options = Options::default();
    options.config.max_outbound_bytes = MAX_OUTBOUND;
    options.config.write_stall_timeout = Duration::from_millis(1500);
    options.event_capacity = 8;
    let mut server = TestServer::start(options).await;

    let (mut stalled, stalled_conn) = server.connect().await;
    stalled.hello("stalled").await;
    let (blocked_tx, blocked) = oneshot::channel();
    let producer = tokio::spawn(pour(stalled_conn.events.clone(), blocked_tx));

    // The producer is held back once the socket buffers and the outbound limit are full...
    support::within(blocked).await.unwrap();
    // ...and meanwhile another client is served normally.
    let (mut other, other_conn) = server.connect().await;
    other.hello("other").await;
    other.send(b"ECHO still here\nQUIT\n").await;
    other.expect("still here").await;
    other.expect("BYE").await;
    assert_eq!(other_conn.report().await.reason, CloseReason::Disconnected);

    let report = stalled_conn.report().await;
    assert_eq!(report.reason, CloseReason::SlowConsumer);
    let frame = EVENT_BYTES + "EVENT \n".len();
    assert!(
        report.stats.peak_outbound_bytes <= MAX_OUTBOUND + frame,
        "outbound grew to {} bytes",
        report.stats.peak_outbound_bytes
    );
    assert!(
        report.stats.peak_outbound_bytes > MAX_OUTBOUND,
        "the limit was reached"
    );
    let sent = support::within(producer).await.unwrap();
    // What left the channel is what the driver took: the limit plus what the kernel buffered.
    assert!(sent as u64 >= report.stats.events);
    assert!(
        report.stats.events * (frame as u64)
            <= report.stats.bytes_out + (MAX_OUTBOUND + frame) as u64,
        "events taken beyond what was written or buffered"
    );
    drop(stalled);
}
