//! The session's inbox: core events and registry control messages in one cancel-safe stream.
//!
//! Invariants: a resumed session's [`MqttEvent::Resume`] comes before anything else, then
//! control messages (a takeover), then core events; every source is cancel-safe, so nothing is
//! lost when the driver's `select!` picks another branch.

use mqgate_core::outbox::{Event, EventReceiver};
use mqgate_session::Inbox;
use tokio::sync::oneshot;

use crate::registry::Control;

/// What a session's inbox yields.
#[derive(Debug)]
pub enum MqttEvent {
    /// From the core engine.
    Core(Event),
    /// From the client-id registry.
    Control(Control),
    /// Yielded once, first, by the inbox of a resumed persistent session: resend what the
    /// session owes the client (PUBREL for QoS 2 deliveries awaiting PUBCOMP).
    Resume,
}

/// Core events merged with registry control messages.
#[derive(Debug)]
pub struct MqttInbox {
    events: EventReceiver,
    /// `None` once it has yielded (a oneshot may not be polled again after that).
    control: Option<oneshot::Receiver<Control>>,
    resume: bool,
}

impl MqttInbox {
    /// Merges the two sources.
    pub fn new(events: EventReceiver, control: oneshot::Receiver<Control>) -> Self {
        Self {
            events,
            control: Some(control),
            resume: false,
        }
    }

    /// The inbox of a resumed session: yields [`MqttEvent::Resume`] first.
    pub fn resumed(mut self) -> Self {
        self.resume = true;
        self
    }
}

impl Inbox for MqttInbox {
    type Event = MqttEvent;

    async fn recv(&mut self) -> Option<MqttEvent> {
        if std::mem::take(&mut self.resume) {
            return Some(MqttEvent::Resume);
        }
        let control = async {
            match self.control.as_mut() {
                Some(receiver) => receiver.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            control = control => {
                self.control = None;
                match control {
                    Ok(control) => Some(MqttEvent::Control(control)),
                    // The registry forgot this connection without a message: nothing to say.
                    Err(_) => self.events.recv().await.map(MqttEvent::Core),
                }
            }
            event = self.events.recv() => event.map(MqttEvent::Core),
        }
    }

    fn try_recv(&mut self) -> Option<MqttEvent> {
        if std::mem::take(&mut self.resume) {
            return Some(MqttEvent::Resume);
        }
        if let Some(receiver) = self.control.as_mut() {
            match receiver.try_recv() {
                Ok(control) => {
                    self.control = None;
                    return Some(MqttEvent::Control(control));
                }
                Err(oneshot::error::TryRecvError::Closed) => self.control = None,
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
        }
        self.events.try_recv().map(MqttEvent::Core)
    }
}
