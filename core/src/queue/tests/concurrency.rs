//! Publishers and acking consumers on several threads at once.

use super::*;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};

const PUBLISHERS: usize = 4;
const PER_PUBLISHER: usize = 10_000;
const TOTAL: usize = PUBLISHERS * PER_PUBLISHER;

#[test]
fn concurrent_publishers_and_acking_consumers_deliver_each_message_once() {
    let h = Harness::new();
    let queue = h.queue(&[]);
    let received = Arc::new(AtomicUsize::new(0));
    // A small window, so consumers park and are woken throughout.
    let clients: Vec<Client> = (1..=2).map(|id| Client::with_window(id, 4096)).collect();
    for client in &clients {
        queue
            .consume(client.spec("c", AckMode::Manual, 50), h.at(0))
            .unwrap();
    }
    let now = h.at(0);
    let consumers: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            let received = Arc::clone(&received);
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(60);
                let mut seen = Vec::new();
                while received.load(Ordering::SeqCst) < TOTAL {
                    assert!(
                        Instant::now() < deadline,
                        "stalled: {} received",
                        seen.len()
                    );
                    match client.receiver.try_recv() {
                        Some(Event::Delivery(delivery)) => {
                            seen.push(body(&delivery.message));
                            received.fetch_add(1, Ordering::SeqCst);
                            client.ack(delivery.tag);
                        }
                        Some(_) => {}
                        None => std::thread::yield_now(),
                    }
                }
                seen
            })
        })
        .collect();
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|publisher| {
            let queue = Arc::clone(&queue);
            std::thread::spawn(move || {
                for n in 0..PER_PUBLISHER {
                    publish(&queue, &format!("{publisher}-{n}"), now);
                }
            })
        })
        .collect();
    for publisher in publishers {
        publisher.join().unwrap();
    }
    let mut all = HashSet::new();
    let mut total = 0;
    for consumer in consumers {
        let seen = consumer.join().unwrap();
        assert!(!seen.is_empty(), "both consumers take part");
        // Queue order holds per consumer: each publisher's messages arrive in publish order.
        let mut last = [None::<usize>; PUBLISHERS];
        for text in &seen {
            let (publisher, n) = text.split_once('-').unwrap();
            let (publisher, n): (usize, usize) = (publisher.parse().unwrap(), n.parse().unwrap());
            if let Some(previous) = last[publisher] {
                assert!(previous < n, "publisher {publisher}: {n} after {previous}");
            }
            last[publisher] = Some(n);
        }
        total += seen.len();
        all.extend(seen);
    }
    assert_eq!(total, TOTAL, "no duplicates");
    assert_eq!(all.len(), TOTAL, "every message once");
    assert_eq!(queue.stats().ready, 0);
    assert_eq!(queue.stats().unacked, 0);
    assert_eq!(h.read(|m| &m.acked), TOTAL as u64);
    assert_eq!(h.memory.used(), 0);
}
