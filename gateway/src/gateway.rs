//! Starting and stopping the gateway: broker, definitions, listeners, drain.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use mqgate_core::auth::Users;
use mqgate_core::broker::{Broker, BrokerConfig};
use mqgate_core::storage::MemoryStorage;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::definitions::{self, DefinitionError};
use crate::listener::{ConnectionHandler, GatewayMetrics, Listener, Shared};
use crate::protocols::{adapter, AdapterContext, AdapterStatus, Protocol, Registry};
use crate::settings::{ListenerSpec, Settings, Transport};
use crate::shutdown::{Connections, ShutdownReport};

/// How long the broker's maintenance task gets to stop after the drain.
const MAINTENANCE_STOP_TIMEOUT: Duration = Duration::from_secs(1);

/// The gateway could not start. Nothing it had bound stays bound.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The core refused a pre-declared entity.
    #[error(transparent)]
    Definition(#[from] DefinitionError),
    /// A socket could not be bound.
    #[error("cannot listen on {listener}: {source}")]
    Bind {
        /// The listener, e.g. `mqtt+tls 0.0.0.0:8883`.
        listener: String,
        /// Why.
        source: io::Error,
    },
    /// No adapter serves the listener's protocol yet.
    #[error("cannot listen on {listener}: {reason}")]
    NotLanded {
        /// The listener.
        listener: String,
        /// Which adapter is missing.
        reason: String,
    },
    /// A TLS listener without a TLS configuration.
    #[error("cannot listen on {listener}: no TLS configuration (the tls section)")]
    NoTls {
        /// The listener.
        listener: String,
    },
}

/// Entry point: `Gateway::start(settings)`, or [`Gateway::builder`] to supply handlers.
#[derive(Debug)]
pub struct Gateway;

impl Gateway {
    /// Starts with the registered adapters; returns once every listener is bound.
    pub async fn start(settings: Settings) -> Result<RunningGateway, StartError> {
        Self::builder(settings).start().await
    }

    /// A gateway whose handlers may be replaced per protocol.
    pub fn builder(settings: Settings) -> GatewayBuilder {
        GatewayBuilder {
            settings,
            handlers: HashMap::new(),
            registry: adapter,
        }
    }
}

/// Starts a gateway, optionally with handlers other than the registered adapters.
pub struct GatewayBuilder {
    settings: Settings,
    handlers: HashMap<Protocol, Arc<dyn ConnectionHandler>>,
    /// Where the handlers not supplied come from: [`adapter`], or a table of tests.
    registry: Registry,
}

impl GatewayBuilder {
    /// Serves `protocol`'s listeners with `handler` instead of the registered adapter (tests,
    /// embedding).
    pub fn handler(mut self, protocol: Protocol, handler: Arc<dyn ConnectionHandler>) -> Self {
        self.handlers.insert(protocol, handler);
        self
    }

    /// Looks adapters up in `registry` instead of [`adapter`]: tests of a pending adapter, now
    /// that every protocol has landed.
    #[cfg(test)]
    fn registry(mut self, registry: Registry) -> Self {
        self.registry = registry;
        self
    }

    /// Builds the broker, declares the definitions, binds every listener, spawns the accept
    /// loops and the broker's maintenance; returns once every listener is bound.
    pub async fn start(self) -> Result<RunningGateway, StartError> {
        let Self {
            settings,
            mut handlers,
            registry,
        } = self;
        let broker = Broker::new(BrokerConfig {
            memory_high_watermark: settings.limits.memory_high_watermark,
            session_window_bytes: settings.limits.session_window_bytes,
            storage: Arc::new(MemoryStorage::new()),
        });
        definitions::declare(&broker, &settings.definitions)?;
        let context = AdapterContext {
            broker: Arc::clone(&broker),
            users: Arc::clone(&settings.users),
            anonymous: settings.anonymous.clone(),
            limits: settings.limits.clone(),
            mqtt: settings.mqtt.clone(),
            stomp: settings.stomp.clone(),
            amqp: settings.amqp.clone(),
        };

        // Bind everything first: a failure drops what was bound, and no loop has started.
        let mut bound = Vec::with_capacity(settings.listeners.len());
        for spec in &settings.listeners {
            let handler = match handlers.get(&spec.protocol) {
                Some(handler) => Arc::clone(handler),
                None => match registry(spec.protocol) {
                    AdapterStatus::Landed(factory) => {
                        let handler = factory(&context);
                        handlers.insert(spec.protocol, Arc::clone(&handler));
                        handler
                    }
                    status @ AdapterStatus::Pending { .. } => {
                        return Err(StartError::NotLanded {
                            listener: spec.to_string(),
                            reason: status.not_landed_reason(spec.protocol).unwrap_or_default(),
                        })
                    }
                },
            };
            let tls = match spec.transport {
                Transport::Plain => None,
                Transport::Tls => match &settings.tls {
                    Some(config) => Some(TlsAcceptor::from(Arc::clone(config))),
                    None => {
                        return Err(StartError::NoTls {
                            listener: spec.to_string(),
                        })
                    }
                },
            };
            let tcp = TcpListener::bind(spec.addr)
                .await
                .map_err(|source| StartError::Bind {
                    listener: spec.to_string(),
                    source,
                })?;
            let addr = tcp.local_addr().map_err(|source| StartError::Bind {
                listener: spec.to_string(),
                source,
            })?;
            let spec = ListenerSpec {
                addr,
                ..spec.clone()
            };
            let listener = Listener {
                tcp,
                protocol: spec.protocol,
                tls,
                handler,
            };
            bound.push((spec, listener));
        }

        let shutdown = CancellationToken::new();
        let metrics = Arc::new(GatewayMetrics::default());
        let connections = Connections::new();
        let shared = Arc::new(Shared {
            slots: Arc::new(Semaphore::new(settings.limits.max_connections)),
            max_connections: settings.limits.max_connections,
            handshake_timeout: settings.limits.handshake_timeout,
            metrics: Arc::clone(&metrics),
            connections: Arc::clone(&connections),
            broker: Arc::clone(&broker),
            full: AtomicBool::new(false),
        });
        let mut listeners = Vec::with_capacity(bound.len());
        let mut accept_loops = Vec::with_capacity(bound.len());
        for (spec, listener) in bound {
            accept_loops.push(tokio::spawn(
                listener.run(Arc::clone(&shared), shutdown.child_token()),
            ));
            listeners.push(spec);
        }
        let maintenance = tokio::spawn(Arc::clone(&broker).run_maintenance(shutdown.child_token()));
        Ok(RunningGateway {
            listeners,
            broker,
            users: Arc::clone(&settings.users),
            metrics,
            connections,
            drain_timeout: settings.drain_timeout,
            accept_loops,
            maintenance,
            _cancel_on_drop: shutdown.clone().drop_guard(),
            shutdown,
        })
    }
}

/// Begins a gateway's shutdown from anywhere (a signal handler task). Cloneable.
#[derive(Debug, Clone)]
pub struct ShutdownHandle(CancellationToken);

impl ShutdownHandle {
    /// Begins the shutdown; idempotent.
    pub fn shutdown(&self) {
        self.0.cancel();
    }

    /// True once shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.0.is_cancelled()
    }
}

/// A started gateway. Dropping it begins the shutdown without waiting for the drain.
pub struct RunningGateway {
    listeners: Vec<ListenerSpec>,
    broker: Arc<Broker>,
    users: Arc<Users>,
    metrics: Arc<GatewayMetrics>,
    connections: Arc<Connections>,
    drain_timeout: Duration,
    accept_loops: Vec<JoinHandle<()>>,
    maintenance: JoinHandle<()>,
    shutdown: CancellationToken,
    _cancel_on_drop: DropGuard,
}

impl RunningGateway {
    /// The listeners, with the addresses actually bound (port 0 resolved).
    pub fn listeners(&self) -> &[ListenerSpec] {
        &self.listeners
    }

    /// The bound address of the first listener for `protocol` over `transport`.
    pub fn local_addr(&self, protocol: Protocol, transport: Transport) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|spec| spec.protocol == protocol && spec.transport == transport)
            .map(|spec| spec.addr)
    }

    /// The engine.
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// The configured users.
    pub fn users(&self) -> &Arc<Users> {
        &self.users
    }

    /// Accept, refusal and handshake counters.
    pub fn metrics(&self) -> &Arc<GatewayMetrics> {
        &self.metrics
    }

    /// Connections open now (including those in their TLS handshake).
    pub fn open_connections(&self) -> usize {
        self.connections.open()
    }

    /// A handle that begins the shutdown.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.shutdown.clone())
    }

    /// Begins the shutdown: listeners stop accepting, handlers are told to finish. Idempotent.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Waits until shutdown begins (see [`Self::shutdown`], [`ShutdownHandle`]), then for the
    /// listeners to close and the connections to drain (up to the drain timeout, after which
    /// the rest are cut off and listed in the report).
    pub async fn wait(self) -> ShutdownReport {
        self.shutdown.cancelled().await;
        for accept_loop in self.accept_loops {
            if let Err(error) = accept_loop.await {
                tracing::error!(%error, "an accept loop failed");
            }
        }
        let report = self
            .connections
            .drain(self.drain_timeout, &self.metrics)
            .await;
        match tokio::time::timeout(MAINTENANCE_STOP_TIMEOUT, self.maintenance).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "the broker's maintenance task failed"),
            Err(_) => tracing::warn!("the broker's maintenance task did not stop in time"),
        }
        tracing::info!(
            drained = report.open_at_shutdown.saturating_sub(report.cut_off.len()),
            cut_off = report.cut_off.len(),
            drain_time = ?report.drain_time,
            "mqgate stopped"
        );
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The registry with AMQP not landed yet (as before issue 5).
    fn amqp_pending(protocol: Protocol) -> AdapterStatus {
        match protocol {
            Protocol::Amqp => AdapterStatus::Pending { issue: Some(5) },
            other => adapter(other),
        }
    }

    fn plain(protocol: Protocol) -> ListenerSpec {
        ListenerSpec {
            protocol,
            transport: Transport::Plain,
            addr: "127.0.0.1:0".parse().unwrap(),
        }
    }

    #[tokio::test]
    async fn listener_for_a_pending_adapter_does_not_start() {
        let settings = Settings {
            listeners: vec![plain(Protocol::Mqtt), plain(Protocol::Amqp)],
            ..Settings::default()
        };
        let error = match Gateway::builder(settings)
            .registry(amqp_pending)
            .start()
            .await
        {
            Ok(_) => panic!("the AMQP adapter is pending in this registry"),
            Err(error) => error,
        };
        let StartError::NotLanded { listener, reason } = &error else {
            panic!("{error:?}");
        };
        assert_eq!(listener, "amqp 127.0.0.1:0");
        assert_eq!(
            reason,
            "the AMQP adapter has not landed yet (issue 5); remove this key"
        );
        assert_eq!(
            error.to_string(),
            "cannot listen on amqp 127.0.0.1:0: the AMQP adapter has not landed yet (issue 5); remove this key"
        );
    }

    #[tokio::test]
    async fn a_supplied_handler_serves_a_pending_protocol() {
        #[derive(Debug)]
        struct Idle;
        impl ConnectionHandler for Idle {
            fn handle(
                &self,
                _stream: Box<dyn crate::listener::AsyncStream>,
                _meta: crate::listener::ConnectionMeta,
                _shutdown: CancellationToken,
            ) -> crate::listener::BoxFuture<()> {
                Box::pin(async {})
            }
        }
        let settings = Settings {
            listeners: vec![plain(Protocol::Amqp)],
            ..Settings::default()
        };
        let running = Gateway::builder(settings)
            .registry(amqp_pending)
            .handler(Protocol::Amqp, Arc::new(Idle))
            .start()
            .await
            .unwrap();
        assert!(running
            .local_addr(Protocol::Amqp, Transport::Plain)
            .is_some());
        running.shutdown();
        running.wait().await;
    }
}
