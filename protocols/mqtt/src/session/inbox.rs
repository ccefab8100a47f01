//! The session's inbox: core events and registry control messages in one cancel-safe stream.
//!
//! Invariants: a resumed session's [`MqttEvent::Resume`] comes before anything else, then
//! control messages (a takeover), then core events; every source is cancel-safe, so nothing is
//! lost when the driver's `select!` picks another branch.

use mqgate_core::outbox::{Event, EventReceiver};
use mqgate_session::Inbox;
use tokio::sync::mpsc;

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
    control: mpsc::Receiver<Control>,
    resume: bool,
}

impl MqttInbox {
    /// Merges the two sources.
    pub fn new(events: EventReceiver, control: mpsc::Receiver<Control>) -> Self {
        Self {
            events,
            control,
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
        tokio::select! {
            biased;
            Some(control) = self.control.recv() => Some(MqttEvent::Control(control)),
            event = self.events.recv() => event.map(MqttEvent::Core),
        }
    }

    fn try_recv(&mut self) -> Option<MqttEvent> {
        if std::mem::take(&mut self.resume) {
            return Some(MqttEvent::Resume);
        }
        if let Ok(control) = self.control.try_recv() {
            return Some(MqttEvent::Control(control));
        }
        self.events.try_recv().map(MqttEvent::Core)
    }
}
