//! mqgate: the gateway around the core engine — one config file, listeners with TLS, shutdown.
//!
//! The flow at start: [`config::load`] reads the YAML file and the `MQGATE_...` environment into
//! [`Settings`] (every error names its key path); [`Gateway::start`] builds the
//! [`mqgate_core::broker::Broker`], declares the configured vhosts, exchanges, queues and
//! bindings ([`definitions`]), binds every listener, and returns a [`RunningGateway`] once all
//! are bound. Each listener's accept loop ([`listener`]) takes a connection slot, spawns the
//! connection's task (TLS handshake under a timeout, then the protocol's
//! [`ConnectionHandler`], found in the [`protocols`] registry) and goes back to accepting.
//!
//! The flow at stop ([`shutdown`]): one cancellation token tree — gateway, listeners,
//! connections. Cancelling the root stops the accept loops and tells every handler to say
//! goodbye; [`RunningGateway::wait`] drains the connections up to the drain timeout and cuts
//! off (and reports) the rest.
//!
//! Invariants worth naming:
//! - No listener runs without a handler that serves it: a protocol whose adapter has not landed
//!   is refused by config validation and by [`Gateway::start`].
//! - The accept loop never awaits a client; a slow or silent client costs one connection slot
//!   for at most the handshake timeout.
//! - Nothing here installs process-wide state (logging, crypto provider, signal handlers): the
//!   binary does, so tests run gateways in-process side by side.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod adapters;
pub mod config;
pub mod definitions;
mod gateway;
pub mod listener;
pub mod protocols;
pub mod settings;
pub mod shutdown;
pub mod tls;
pub mod x509;

pub use crate::gateway::{Gateway, GatewayBuilder, RunningGateway, ShutdownHandle, StartError};
pub use crate::listener::{AsyncStream, BoxFuture, ConnectionHandler, ConnectionMeta};
pub use crate::settings::{Limits, ListenerSpec, Settings, Transport};
