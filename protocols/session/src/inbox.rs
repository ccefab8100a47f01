//! Where a session's events come from.
//!
//! Invariants: [`Inbox::recv`] is cancel-safe (the driver polls it inside `select!`), so an event
//! is never lost when another branch wins; [`Inbox::try_recv`] never waits. `None` from `recv`
//! means no event will ever come again: the driver stops asking, and the connection stays open.

use std::future::Future;

use mqgate_core::outbox::{Event, EventReceiver};
use tokio::sync::mpsc;

/// A source of events for one session.
pub trait Inbox: Send + 'static {
    /// What it yields.
    type Event: Send;

    /// Waits for the next event; `None` once the source is closed. Must be cancel-safe.
    fn recv(&mut self) -> impl Future<Output = Option<Self::Event>> + Send;

    /// Takes the next event if one is ready, without waiting.
    fn try_recv(&mut self) -> Option<Self::Event>;
}

impl<T: Send + 'static> Inbox for mpsc::UnboundedReceiver<T> {
    type Event = T;

    fn recv(&mut self) -> impl Future<Output = Option<T>> + Send {
        mpsc::UnboundedReceiver::recv(self)
    }

    fn try_recv(&mut self) -> Option<T> {
        mpsc::UnboundedReceiver::try_recv(self).ok()
    }
}

impl<T: Send + 'static> Inbox for mpsc::Receiver<T> {
    type Event = T;

    fn recv(&mut self) -> impl Future<Output = Option<T>> + Send {
        mpsc::Receiver::recv(self)
    }

    fn try_recv(&mut self) -> Option<T> {
        mpsc::Receiver::try_recv(self).ok()
    }
}

/// The core's outbox receiver: taking an event out releases its bytes from the session's transit
/// window, so a session the driver stops draining (over its outbound limit) stops receiving.
impl Inbox for EventReceiver {
    type Event = Event;

    fn recv(&mut self) -> impl Future<Output = Option<Event>> + Send {
        EventReceiver::recv(self)
    }

    fn try_recv(&mut self) -> Option<Event> {
        EventReceiver::try_recv(self)
    }
}

/// An inbox that never yields, for sessions that take no events.
#[derive(Debug)]
pub struct NoEvents<E>(std::marker::PhantomData<fn() -> E>);

impl<E> NoEvents<E> {
    /// An inbox that never yields.
    pub fn new() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<E> Default for NoEvents<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Send + 'static> Inbox for NoEvents<E> {
    type Event = E;

    fn recv(&mut self) -> impl Future<Output = Option<E>> + Send {
        std::future::ready(None)
    }

    fn try_recv(&mut self) -> Option<E> {
        None
    }
}
