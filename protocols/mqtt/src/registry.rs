//! The client-id registry: which connection holds each MQTT session, and what persistent
//! sessions keep while their client is offline.
//!
//! Invariants:
//! - At most one live connection per (vhost, client id). A newer connection claims the id; the
//!   older one is told [`Control::TakenOver`] and the newer waits (bounded by the takeover
//!   timeout) until the older has released its core resources, so an exclusive session queue
//!   is free before it is declared again.
//! - A live entry is removed only by the connection that holds it ([`LiveHandle`]'s drop), so a
//!   late close of an older connection never removes the newer one.
//! - Persistent session records are bounded by `max_records`; expired ones are dropped when
//!   looked up.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mqgate_core::names::{ConnectionId, VhostName};
use parking_lot::Mutex;
use rumqttd::protocol::QoS;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// An MQTT client identifier, as the client sent it or as the server assigned it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(Arc<str>);

impl ClientId {
    /// Wraps a client identifier (already checked by the handshake).
    pub fn new(text: impl Into<Arc<str>>) -> Self {
        Self(text.into())
    }

    /// The identifier.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A session's identity: a client id within a vhost.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionKey {
    /// The vhost.
    pub vhost: VhostName,
    /// The client id.
    pub client: ClientId,
}

/// What the registry tells a live session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// A newer connection took the client id: say goodbye (v5 DISCONNECT 0x8E) and close.
    TakenOver,
}

/// One subscription as a session keeps it (and a persistent session's record remembers it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The MQTT filter, without any `$share/{group}/` prefix.
    pub filter: String,
    /// The core binding pattern on `amq.topic`.
    pub pattern: String,
    /// The granted QoS.
    pub qos: QoS,
    /// The shared-subscription group, if any.
    pub group: Option<String>,
    /// v5 No Local: messages this client published are not sent back.
    pub no_local: bool,
    /// v5 Retain As Published.
    pub retain_as_published: bool,
    /// v5 Subscription Identifier.
    pub identifier: Option<usize>,
}

/// What a persistent session keeps while its client is offline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Its subscriptions.
    pub subscriptions: Vec<Subscription>,
    /// How long it outlives a disconnect.
    pub expiry: Duration,
    /// When its client went away (`None` while connected).
    pub offline_since: Option<Instant>,
}

impl SessionRecord {
    fn expired(&self, now: Instant) -> bool {
        self.offline_since
            .is_some_and(|since| now.saturating_duration_since(since) > self.expiry)
    }
}

struct LiveEntry {
    connection: ConnectionId,
    control: mpsc::Sender<Control>,
    closed: CancellationToken,
}

/// Every live session and persistent session record of one adapter (shared by its listeners).
pub struct Registry {
    live: Mutex<HashMap<SessionKey, LiveEntry>>,
    records: Mutex<HashMap<SessionKey, SessionRecord>>,
    max_records: usize,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("live", &self.live.lock().len())
            .field("records", &self.records.lock().len())
            .finish()
    }
}

/// What [`Registry::claim`] hands the new connection.
#[derive(Debug)]
pub struct Claim {
    /// Holds the client id until dropped.
    pub handle: LiveHandle,
    /// Where registry messages for this session arrive.
    pub control: mpsc::Receiver<Control>,
    /// Cancelled once the connection taken over has released its resources.
    pub previous_closed: Option<CancellationToken>,
}

impl Registry {
    /// An empty registry keeping at most `max_records` persistent sessions.
    pub fn new(max_records: usize) -> Arc<Self> {
        Arc::new(Self {
            live: Mutex::new(HashMap::new()),
            records: Mutex::new(HashMap::new()),
            max_records,
        })
    }

    /// Claims `key` for `connection`, telling a previous holder it is taken over.
    pub fn claim(self: &Arc<Self>, key: SessionKey, connection: ConnectionId) -> Claim {
        let (control, receiver) = mpsc::channel(2);
        let closed = CancellationToken::new();
        let previous = self.live.lock().insert(
            key.clone(),
            LiveEntry {
                connection,
                control,
                closed: closed.clone(),
            },
        );
        let previous_closed = previous.map(|entry| {
            // A full channel already holds a TakenOver; a closed one means it is going.
            let _ = entry.control.try_send(Control::TakenOver);
            entry.closed
        });
        Claim {
            handle: LiveHandle {
                registry: Arc::clone(self),
                key,
                connection,
                closed,
            },
            control: receiver,
            previous_closed,
        }
    }

    /// Number of live sessions.
    pub fn live_count(&self) -> usize {
        self.live.lock().len()
    }

    /// The connection holding `key` now.
    pub fn holder(&self, key: &SessionKey) -> Option<ConnectionId> {
        self.live.lock().get(key).map(|entry| entry.connection)
    }

    /// Takes the record of a persistent session, unless it expired.
    pub fn take_record(&self, key: &SessionKey, now: Instant) -> Option<SessionRecord> {
        let record = self.records.lock().remove(key)?;
        (!record.expired(now)).then_some(record)
    }

    /// True if `key` has a record that has not expired.
    pub fn has_record(&self, key: &SessionKey, now: Instant) -> bool {
        self.records
            .lock()
            .get(key)
            .is_some_and(|record| !record.expired(now))
    }

    /// Stores a persistent session's record. False if the registry is full (the session is
    /// then not kept); expired records are dropped first to make room.
    pub fn store_record(&self, key: SessionKey, record: SessionRecord) -> bool {
        let mut records = self.records.lock();
        if records.len() >= self.max_records && !records.contains_key(&key) {
            let now = Instant::now();
            records.retain(|_, record| !record.expired(now));
            if records.len() >= self.max_records {
                return false;
            }
        }
        records.insert(key, record);
        true
    }

    /// True if a new persistent session fits.
    pub fn has_room(&self) -> bool {
        self.records.lock().len() < self.max_records
    }

    /// Forgets a persistent session.
    pub fn discard_record(&self, key: &SessionKey) {
        self.records.lock().remove(key);
    }
}

/// A connection's hold on its client id. Dropping it releases the id (if still held by this
/// connection) and tells a connection waiting to take over that it may go on.
#[derive(Debug)]
pub struct LiveHandle {
    registry: Arc<Registry>,
    key: SessionKey,
    connection: ConnectionId,
    closed: CancellationToken,
}

impl LiveHandle {
    /// The session's identity.
    pub fn key(&self) -> &SessionKey {
        &self.key
    }

    /// The registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }
}

impl Drop for LiveHandle {
    fn drop(&mut self) {
        let mut live = self.registry.live.lock();
        if live
            .get(&self.key)
            .is_some_and(|entry| entry.connection == self.connection)
        {
            live.remove(&self.key);
        }
        drop(live);
        self.closed.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> SessionKey {
        SessionKey {
            vhost: VhostName::default_vhost(),
            client: ClientId::new(id),
        }
    }

    #[test]
    fn a_newer_claim_takes_over_and_an_older_release_keeps_it() {
        let registry = Registry::new(10);
        let mut first = registry.claim(key("c"), ConnectionId(1));
        assert!(first.previous_closed.is_none());
        let second = registry.claim(key("c"), ConnectionId(2));
        assert_eq!(first.control.try_recv().ok(), Some(Control::TakenOver));
        let waiting = second.previous_closed.clone().unwrap();
        assert!(!waiting.is_cancelled());
        drop(first);
        assert!(waiting.is_cancelled());
        assert_eq!(registry.holder(&key("c")), Some(ConnectionId(2)));
        drop(second);
        assert_eq!(registry.holder(&key("c")), None);
    }

    #[test]
    fn records_are_bounded_and_expire() {
        let registry = Registry::new(1);
        let record = |expiry| SessionRecord {
            subscriptions: Vec::new(),
            expiry,
            offline_since: Some(Instant::now()),
        };
        assert!(registry.store_record(key("a"), record(Duration::from_secs(60))));
        assert!(!registry.store_record(key("b"), record(Duration::from_secs(60))));
        assert!(registry.take_record(&key("a"), Instant::now()).is_some());
        assert!(registry.store_record(key("b"), record(Duration::ZERO)));
        let later = Instant::now() + Duration::from_millis(5);
        assert!(registry.take_record(&key("b"), later).is_none());
    }
}
