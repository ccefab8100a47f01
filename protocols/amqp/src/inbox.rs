//! One inbox for every channel of a connection: each AMQP channel is a core session with its own
//! event receiver, and the driver polls one inbox.
//!
//! The session registers a channel's receiver when it opens the channel and unregisters it when
//! the channel closes, through a [`ChannelRegistrar`]; [`ChannelInbox`] applies registrations
//! before it polls, so a channel's events can never arrive before its registration is seen.
//!
//! Invariants:
//! - Every event is tagged with its channel number and the generation the channel had when it
//!   was registered, so the session can drop events of a closed channel whose number has been
//!   reused.
//! - `recv` is cancel-safe: it only polls channels, so an event is never taken and lost.
//! - Receivers are polled round-robin from where the last event came, so a busy channel cannot
//!   starve the others.

use std::future::Future;
use std::task::{Context, Poll, Waker};

use mqgate_core::outbox::{Event, EventReceiver};
use mqgate_session::Inbox;
use tokio::sync::mpsc;

/// An engine event for one channel.
#[derive(Debug)]
pub struct ChannelEvent {
    /// The channel number (0 is the connection's own session, which hears flow control).
    pub channel: u16,
    /// The channel's generation when its receiver was registered.
    pub generation: u64,
    /// The event.
    pub event: Event,
}

enum Registration {
    Add {
        channel: u16,
        generation: u64,
        receiver: EventReceiver,
    },
    Remove {
        generation: u64,
    },
}

/// The session's handle for adding and removing channel receivers.
#[derive(Debug, Clone)]
pub struct ChannelRegistrar {
    sender: mpsc::UnboundedSender<Registration>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Registration::Add {
                channel,
                generation,
                ..
            } => write!(f, "Add({channel}, {generation})"),
            Registration::Remove { generation } => write!(f, "Remove({generation})"),
        }
    }
}

impl ChannelRegistrar {
    /// Starts polling `receiver` for channel `channel` under `generation` (unique per
    /// registration).
    pub fn add(&self, channel: u16, generation: u64, receiver: EventReceiver) {
        // A send error means the inbox is gone: the connection is closing.
        let _ = self.sender.send(Registration::Add {
            channel,
            generation,
            receiver,
        });
    }

    /// Stops polling the receiver registered under `generation`; its unread events are dropped.
    pub fn remove(&self, generation: u64) {
        let _ = self.sender.send(Registration::Remove { generation });
    }
}

struct Registered {
    channel: u16,
    generation: u64,
    receiver: EventReceiver,
}

/// The merged inbox of one connection's channels.
pub struct ChannelInbox {
    registrations: mpsc::UnboundedReceiver<Registration>,
    channels: Vec<Registered>,
    next: usize,
}

impl std::fmt::Debug for ChannelInbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelInbox")
            .field("channels", &self.channels.len())
            .finish_non_exhaustive()
    }
}

/// A new, empty inbox and the registrar that feeds it.
pub fn channel_inbox() -> (ChannelInbox, ChannelRegistrar) {
    let (sender, registrations) = mpsc::unbounded_channel();
    (
        ChannelInbox {
            registrations,
            channels: Vec::new(),
            next: 0,
        },
        ChannelRegistrar { sender },
    )
}

impl ChannelInbox {
    fn apply(&mut self, registration: Registration) {
        match registration {
            Registration::Add {
                channel,
                generation,
                receiver,
            } => self.channels.push(Registered {
                channel,
                generation,
                receiver,
            }),
            Registration::Remove { generation } => {
                self.channels.retain(|entry| entry.generation != generation);
            }
        }
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<ChannelEvent>> {
        while let Poll::Ready(Some(registration)) = self.registrations.poll_recv(cx) {
            self.apply(registration);
        }
        let count = self.channels.len();
        let mut finished = Vec::new();
        for offset in 0..count {
            let index = (self.next + offset) % count;
            let Some(entry) = self.channels.get_mut(index) else {
                continue;
            };
            match entry.receiver.poll_recv(cx) {
                Poll::Ready(Some(event)) => {
                    self.next = index + 1;
                    let event = ChannelEvent {
                        channel: entry.channel,
                        generation: entry.generation,
                        event,
                    };
                    return Poll::Ready(Some(event));
                }
                Poll::Ready(None) => finished.push(entry.generation),
                Poll::Pending => {}
            }
        }
        if !finished.is_empty() {
            self.channels
                .retain(|entry| !finished.contains(&entry.generation));
        }
        // Never `None`: channels come and go while the connection lives.
        Poll::Pending
    }
}

impl Inbox for ChannelInbox {
    type Event = ChannelEvent;

    fn recv(&mut self) -> impl Future<Output = Option<ChannelEvent>> + Send {
        std::future::poll_fn(|cx| self.poll_next(cx))
    }

    fn try_recv(&mut self) -> Option<ChannelEvent> {
        let mut cx = Context::from_waker(Waker::noop());
        match self.poll_next(&mut cx) {
            Poll::Ready(event) => event,
            Poll::Pending => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqgate_core::broker::{Broker, BrokerConfig};
    use mqgate_core::names::VhostName;

    #[tokio::test]
    async fn events_carry_their_channel_and_removed_channels_go_quiet() {
        let broker = Broker::new(BrokerConfig::default());
        broker.add_vhost(VhostName::default_vhost());
        let connection = broker.connect(&VhostName::default_vhost(), None).unwrap();
        let (inbox, registrar) = channel_inbox();
        let mut inbox = inbox;
        let (_one, receiver_one) = connection.open_session();
        let (_two, receiver_two) = connection.open_session();
        registrar.add(1, 10, receiver_one);
        registrar.add(2, 20, receiver_two);
        let watermark = broker.memory().high_watermark();
        broker.memory().charge(watermark + 1);
        let mut seen = Vec::new();
        for _ in 0..2 {
            let event = inbox.recv().await.unwrap();
            seen.push((event.channel, event.generation));
        }
        seen.sort_unstable();
        assert_eq!(seen, vec![(1, 10), (2, 20)]);
        registrar.remove(10);
        broker.memory().discharge(watermark + 1);
        let event = inbox.recv().await.unwrap();
        assert_eq!((event.channel, event.generation), (2, 20));
        assert!(inbox.try_recv().is_none());
    }
}
