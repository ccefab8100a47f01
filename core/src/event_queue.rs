//! The queue of events between the engine and one session: a locked deque and the waker of the
//! task waiting on it.
//!
//! Why not tokio's unbounded channel: it allocates a block of 32 event slots when it is
//! created, about 2.8 KB for every idle connection (measured with heaptrack, issue 6), where
//! this allocates only when events arrive.
//!
//! Invariants:
//! - Events come out in the order they went in; [`EventQueue::poll_next`] is cancel-safe (an
//!   event is only taken when it is returned).
//! - The lock is a leaf: nothing else is locked while it is held, and the waker is woken after
//!   it is released, so senders may hold any other lock (a queue's) when they push.
//! - Once the receiver is gone, pushes are dropped: nothing accumulates for a session that
//!   closed (the queues requeue through the outbox's closed flag instead).
//! - A queue that has emptied after a burst gives its memory back.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};

/// Capacity an empty queue keeps; more is released once it drains.
const KEEP_CAPACITY: usize = 64;

#[derive(Debug)]
struct State<T> {
    items: VecDeque<T>,
    waker: Option<Waker>,
    receiver_gone: bool,
}

/// A multi-producer, single-consumer unbounded queue (bounded in practice by the outbox's
/// transit window, see `outbox.rs`).
#[derive(Debug)]
pub(crate) struct EventQueue<T> {
    state: Mutex<State<T>>,
}

impl<T> EventQueue<T> {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State {
                items: VecDeque::new(),
                waker: None,
                receiver_gone: false,
            }),
        }
    }

    /// Appends `item` and wakes the receiver; drops it if the receiver is gone.
    pub(crate) fn push(&self, item: T) {
        let waker = {
            let mut state = self.state.lock();
            if state.receiver_gone {
                return;
            }
            state.items.push_back(item);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// The next item, or `Pending` (registering `cx`'s waker) when there is none.
    pub(crate) fn poll_next(&self, cx: &mut Context<'_>) -> Poll<T> {
        let mut state = self.state.lock();
        match take(&mut state) {
            Some(item) => Poll::Ready(item),
            None => {
                match &mut state.waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    slot => *slot = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }

    /// The next item if one is ready.
    pub(crate) fn try_next(&self) -> Option<T> {
        take(&mut self.state.lock())
    }

    /// The receiver is gone: drop what is queued and every later push.
    pub(crate) fn close_receiver(&self) {
        let items = {
            let mut state = self.state.lock();
            state.receiver_gone = true;
            state.waker = None;
            std::mem::take(&mut state.items)
        };
        // Dropped outside the lock: an event may own things whose drop takes other locks.
        drop(items);
    }
}

fn take<T>(state: &mut State<T>) -> Option<T> {
    let item = state.items.pop_front();
    if state.items.is_empty() && state.items.capacity() > KEEP_CAPACITY {
        state.items = VecDeque::new();
    }
    item
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct CountingWaker(AtomicUsize);
    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn items_come_out_in_order_and_a_push_wakes_the_waiting_receiver() {
        let queue = EventQueue::new();
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&counter));
        let mut cx = Context::from_waker(&waker);
        assert_eq!(queue.poll_next(&mut cx), Poll::Pending);
        queue.push(1);
        queue.push(2);
        assert_eq!(counter.0.load(Ordering::SeqCst), 1, "woken once");
        assert_eq!(queue.poll_next(&mut cx), Poll::Ready(1));
        assert_eq!(queue.try_next(), Some(2));
        assert_eq!(queue.try_next(), None);
    }

    #[test]
    fn memory_is_given_back_after_a_burst_and_nothing_is_kept_for_a_gone_receiver() {
        let queue = EventQueue::new();
        for n in 0..1000 {
            queue.push(n);
        }
        while queue.try_next().is_some() {}
        assert!(queue.state.lock().items.capacity() <= KEEP_CAPACITY);
        queue.push(1);
        queue.close_receiver();
        queue.push(2);
        assert_eq!(queue.try_next(), None);
    }
}
