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
//!   looked up, and by the adapter's sweep ([`Registry::take_expired`]), which also deletes their
//!   queues. A record's packet ids awaiting PUBCOMP are bounded by the in-flight window the
//!   session had (at most our Receive Maximum).
//! - Delayed wills (v5 Will Delay Interval): at most one timer per session key and at most
//!   `max_records` in all; a new claim of the key cancels the pending will before anything else.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mqgate_core::message::Origin;
use mqgate_core::names::{ConnectionId, VhostName};
use parking_lot::Mutex;
use rumqttd::protocol::QoS;
use tokio::sync::oneshot;
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

impl SessionKey {
    /// The core message origin of this session's publishes (for No Local): the same for every
    /// connection of the client id, never shown to any client.
    pub fn origin(&self) -> Origin {
        // Client ids and vhost names never contain U+0000, so the key is unambiguous.
        Origin::new(format!("mqtt\0{}\0{}", self.vhost, self.client))
    }
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
    /// Packet ids of QoS 2 deliveries acknowledged with PUBREC but not yet PUBCOMP, in the
    /// order they were sent: their PUBREL is resent on resume.
    pub awaiting_pubcomp: Vec<u16>,
}

impl SessionRecord {
    fn expired(&self, now: Instant) -> bool {
        self.offline_since
            .is_some_and(|since| now.saturating_duration_since(since) > self.expiry)
    }
}

struct LiveEntry {
    connection: ConnectionId,
    control: oneshot::Sender<Control>,
    closed: CancellationToken,
    /// A persistent session holds one of the `max_records` slots while online too.
    persistent: bool,
}

/// Every persistent-session slot is taken: the client is refused (server busy / unavailable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryFull;

/// Every live session and persistent session record of one adapter (shared by its listeners).
pub struct Registry {
    live: Mutex<HashMap<SessionKey, LiveEntry>>,
    records: Mutex<HashMap<SessionKey, SessionRecord>>,
    wills: Mutex<HashMap<SessionKey, (u64, CancellationToken)>>,
    next_will: AtomicU64,
    max_records: usize,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("live", &self.live.lock().len())
            .field("records", &self.records.lock().len())
            .field("delayed_wills", &self.wills.lock().len())
            .finish()
    }
}

/// What [`Registry::claim`] hands the new connection.
#[derive(Debug)]
pub struct Claim {
    /// Holds the client id until dropped.
    pub handle: LiveHandle,
    /// Where registry messages for this session arrive.
    pub control: oneshot::Receiver<Control>,
    /// Cancelled once the connection taken over has released its resources.
    pub previous_closed: Option<CancellationToken>,
}

impl Registry {
    /// An empty registry keeping at most `max_records` persistent sessions.
    pub fn new(max_records: usize) -> Arc<Self> {
        Arc::new(Self {
            live: Mutex::new(HashMap::new()),
            records: Mutex::new(HashMap::new()),
            wills: Mutex::new(HashMap::new()),
            next_will: AtomicU64::new(1),
            max_records,
        })
    }

    /// Claims `key` for `connection`, telling a previous holder it is taken over.
    /// A delayed will of the key is cancelled: the client came back in time.
    pub fn claim(self: &Arc<Self>, key: SessionKey, connection: ConnectionId) -> Claim {
        self.insert_live(key, connection, false)
    }

    /// Claims `key` for a persistent session, which holds one of the `max_records` slots while
    /// online as while offline: refused when every slot is taken by another persistent session,
    /// online or offline (expired records give theirs back first). The check and the claim are
    /// one step under the registry's locks, so concurrent connects cannot both take the last
    /// slot.
    pub fn claim_persistent(
        self: &Arc<Self>,
        key: SessionKey,
        connection: ConnectionId,
    ) -> Result<Claim, RegistryFull> {
        {
            let live = self.live.lock();
            let mut records = self.records.lock();
            let now = Instant::now();
            records.retain(|_, record| !record.expired(now));
            let holds_slot =
                records.contains_key(&key) || live.get(&key).is_some_and(|entry| entry.persistent);
            let online_only = live
                .iter()
                .filter(|(k, entry)| entry.persistent && !records.contains_key(*k))
                .count();
            if !holds_slot && records.len() + online_only >= self.max_records {
                return Err(RegistryFull);
            }
        }
        Ok(self.insert_live(key, connection, true))
    }

    fn insert_live(
        self: &Arc<Self>,
        key: SessionKey,
        connection: ConnectionId,
        persistent: bool,
    ) -> Claim {
        if let Some((_, will)) = self.wills.lock().remove(&key) {
            tracing::debug!(client_id = %key.client, "client reconnected: delayed will cancelled");
            will.cancel();
        }
        // One message at most (TakenOver), so a oneshot: a tenth of a channel's memory.
        let (control, receiver) = oneshot::channel();
        let closed = CancellationToken::new();
        let previous = self.live.lock().insert(
            key.clone(),
            LiveEntry {
                connection,
                control,
                closed: closed.clone(),
                persistent,
            },
        );
        let previous_closed = previous.map(|entry| {
            // Fails only if the old connection is already going.
            let _ = entry.control.send(Control::TakenOver);
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

    /// Removes the records that have expired and returns their keys, so the caller can free
    /// what those sessions held in the engine (their queues).
    pub fn take_expired(&self, now: Instant) -> Vec<SessionKey> {
        let mut records = self.records.lock();
        let expired: Vec<SessionKey> = records
            .iter()
            .filter(|(_, record)| record.expired(now))
            .map(|(key, _)| key.clone())
            .collect();
        for key in &expired {
            records.remove(key);
        }
        expired
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

    /// Forgets a persistent session.
    pub fn discard_record(&self, key: &SessionKey) {
        self.records.lock().remove(key);
    }

    /// Publishes a will after `delay` (v5 Will Delay Interval, already capped by the session
    /// expiry) unless the key is claimed again first. Runs `publish` at once when the delay is
    /// zero, when no tokio runtime is running, or when `max_records` wills already wait.
    /// Returns true if the will was deferred.
    pub fn schedule_will<F>(self: &Arc<Self>, key: SessionKey, delay: Duration, publish: F) -> bool
    where
        F: FnOnce() + Send + 'static,
    {
        let runtime = tokio::runtime::Handle::try_current();
        let token = CancellationToken::new();
        let id = self.next_will.fetch_add(1, Ordering::Relaxed);
        let deferred = match runtime {
            Ok(runtime) if !delay.is_zero() => {
                let mut wills = self.wills.lock();
                if wills.len() >= self.max_records && !wills.contains_key(&key) {
                    None
                } else {
                    if let Some((_, previous)) = wills.insert(key.clone(), (id, token.clone())) {
                        previous.cancel();
                    }
                    Some(runtime)
                }
            }
            _ => None,
        };
        let Some(runtime) = deferred else {
            publish();
            return false;
        };
        let registry = Arc::downgrade(self);
        // The deadline is taken now, not when the task first runs.
        let deadline = tokio::time::Instant::now() + delay;
        runtime.spawn(async move {
            tokio::select! {
                () = token.cancelled() => {}
                () = tokio::time::sleep_until(deadline) => {
                    // Only the timer still registered for the key may publish.
                    let current = registry.upgrade().is_some_and(|registry| {
                        let mut wills = registry.wills.lock();
                        let mine = wills.get(&key).is_some_and(|(current, _)| *current == id);
                        if mine {
                            wills.remove(&key);
                        }
                        mine
                    });
                    if current && !token.is_cancelled() {
                        publish();
                    }
                }
            }
        });
        true
    }

    /// Number of wills waiting for their delay.
    pub fn delayed_wills(&self) -> usize {
        self.wills.lock().len()
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

    /// True while this connection still holds the client id (false once taken over).
    pub fn is_current(&self) -> bool {
        self.registry.holder(&self.key) == Some(self.connection)
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
            awaiting_pubcomp: Vec::new(),
        };
        assert!(registry.store_record(key("a"), record(Duration::from_secs(60))));
        assert!(!registry.store_record(key("b"), record(Duration::from_secs(60))));
        assert!(registry.take_record(&key("a"), Instant::now()).is_some());
        assert!(registry.store_record(key("b"), record(Duration::ZERO)));
        let later = Instant::now() + Duration::from_millis(5);
        assert!(registry.take_record(&key("b"), later).is_none());
    }

    #[test]
    fn persistent_slots_count_online_and_offline_sessions() {
        let registry = Registry::new(1);
        let record = SessionRecord {
            subscriptions: Vec::new(),
            expiry: Duration::from_secs(60),
            offline_since: Some(Instant::now()),
            awaiting_pubcomp: Vec::new(),
        };
        let online = registry
            .claim_persistent(key("a"), ConnectionId(1))
            .unwrap();
        assert_eq!(
            registry.claim_persistent(key("b"), ConnectionId(2)).err(),
            Some(RegistryFull),
            "an online persistent session holds the only slot"
        );
        // Clean sessions never need a slot.
        drop(registry.claim(key("c"), ConnectionId(3)));
        // Going offline keeps the slot (as a record): still full.
        drop(online);
        assert!(registry.store_record(key("a"), record.clone()));
        assert!(registry
            .claim_persistent(key("b"), ConnectionId(4))
            .is_err());
        // Its own client gets it back.
        let back = registry
            .claim_persistent(key("a"), ConnectionId(5))
            .unwrap();
        drop(back);
        // A session that ended (no record kept) frees the slot.
        registry.discard_record(&key("a"));
        assert!(registry.claim_persistent(key("b"), ConnectionId(6)).is_ok());
    }
}
