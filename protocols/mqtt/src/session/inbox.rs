//! The session's inbox: core events and registry control messages in one cancel-safe stream.
//!
//! Invariant: control messages (a takeover) come first; both sources are cancel-safe, so
//! nothing is lost when the driver's `select!` picks another branch.

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
}

/// Core events merged with registry control messages.
#[derive(Debug)]
pub struct MqttInbox {
    events: EventReceiver,
    control: mpsc::Receiver<Control>,
}

impl MqttInbox {
    /// Merges the two sources.
    pub fn new(events: EventReceiver, control: mpsc::Receiver<Control>) -> Self {
        Self { events, control }
    }
}

impl Inbox for MqttInbox {
    type Event = MqttEvent;

    async fn recv(&mut self) -> Option<MqttEvent> {
        tokio::select! {
            biased;
            Some(control) = self.control.recv() => Some(MqttEvent::Control(control)),
            event = self.events.recv() => event.map(MqttEvent::Core),
        }
    }

    fn try_recv(&mut self) -> Option<MqttEvent> {
        if let Ok(control) = self.control.try_recv() {
            return Some(MqttEvent::Control(control));
        }
        self.events.try_recv().map(MqttEvent::Core)
    }
}
