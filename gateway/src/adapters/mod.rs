//! The gateway's side of each landed protocol adapter: a [`ConnectionHandler`] that maps the
//! gateway's limits onto the adapter's settings and serves connections with it.
//!
//! [`ConnectionHandler`]: crate::listener::ConnectionHandler

pub mod mqtt;
pub mod stomp;
