//! The AMQP handshake: protocol header, start/start-ok (login), tune/tune-ok, open/open-ok.
//!
//! Invariants:
//! - Nothing but this sequence is accepted before `open-ok` (heartbeats aside); anything else
//!   gets `connection.close` with the spec's code and the connection ends.
//! - A wrong protocol header gets `AMQP 0 0 9 1` back and a close, as the spec asks.
//! - A refused login gets `connection.close` 403 only when the client declared the
//!   `authentication_failure_close` capability; otherwise the socket just closes (RabbitMQ's
//!   rule, since older clients cannot tell a 403 from any other close).
//! - Tune-ok values follow RabbitMQ's checks: `frame_max` between 4096 and the server's, and a
//!   `channel_max` of 0 or above the server's refused with 530; heartbeat as the client says.
//!   The codec and the driver switch to the agreed `frame_max` before `connection.open` is read.

use std::net::SocketAddr;

use amq_protocol::protocol::{connection, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use mqgate_core::auth::Principal;
use mqgate_core::names::{ConnectionId, VhostName};
use mqgate_session::login::{self, Credentials, LoginError, LoginPolicy};
use mqgate_session::{Accepted, CloseReason, FramedIo, Handshake};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::codec::{AmqpCodec, Inbound, OutFrame};
use crate::errors::{self, short, AmqpError};
use crate::inbox::{channel_inbox, ChannelInbox};
use crate::mechanisms::{self, Mechanism};
use crate::serve::AmqpContext;
use crate::session::{AmqpSession, ClientCapabilities, Negotiated};

/// The smallest `frame_max` a client may agree to (AMQP's frame-min-size, as RabbitMQ checks).
const FRAME_MIN_NEGOTIATED: u32 = 4096;

/// Heartbeats a client may send before its next handshake method.
const MAX_LEADING_HEARTBEATS: usize = 64;

/// One connection's handshake.
#[derive(Debug)]
pub struct AmqpHandshake {
    ctx: AmqpContext,
    peer: SocketAddr,
    tls_common_name: Option<String>,
    connection_id: ConnectionId,
}

impl AmqpHandshake {
    /// A handshake for a client at `peer` (with its verified certificate's common name, if any)
    /// on connection `connection_id`.
    pub fn new(
        ctx: AmqpContext,
        peer: SocketAddr,
        tls_common_name: Option<String>,
        connection_id: ConnectionId,
    ) -> Self {
        Self {
            ctx,
            peer,
            tls_common_name,
            connection_id,
        }
    }
}

/// A refusal: the frame to send (if any) and why the connection ends.
struct Refused {
    frame: Option<Box<OutFrame>>,
    reason: CloseReason,
}

impl Refused {
    fn close(error: AmqpError) -> Self {
        tracing::info!(code = error.code, text = %error.text, "AMQP handshake refused");
        Self {
            reason: CloseReason::HandshakeRejected(error.text.clone()),
            frame: Some(Box::new(close_frame(&error))),
        }
    }
}

fn close_frame(error: &AmqpError) -> OutFrame {
    OutFrame::Method {
        channel: 0,
        method: AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: error.code,
            reply_text: error.reply_text(),
            class_id: error.class_id,
            method_id: error.method_id,
        })),
    }
}

fn connection_method(method: connection::AMQPMethod) -> OutFrame {
    OutFrame::Method {
        channel: 0,
        method: AMQPClass::Connection(method),
    }
}

impl Handshake for AmqpHandshake {
    type Session = AmqpSession;
    type Inbox = ChannelInbox;

    async fn run<T>(
        self,
        io: &mut FramedIo<T, AmqpCodec>,
    ) -> Result<Accepted<AmqpSession, ChannelInbox>, CloseReason>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send,
    {
        match io.read_frame().await? {
            Inbound::ProtocolHeader { supported: true } => {}
            _ => {
                tracing::info!("unsupported AMQP protocol header");
                io.feed(OutFrame::ProtocolHeader)?;
                return Err(CloseReason::HandshakeRejected(
                    "unsupported protocol header".to_owned(),
                ));
            }
        }
        match self.negotiate(io).await {
            Ok(accepted) => Ok(accepted),
            Err(Ok(refused)) => {
                if let Some(frame) = refused.frame {
                    io.feed(*frame)?;
                }
                Err(refused.reason)
            }
            Err(Err(reason)) => Err(reason),
        }
    }
}

/// A refusal to send, or an IO/codec failure that already ended the connection.
type Failure = Result<Refused, CloseReason>;

impl AmqpHandshake {
    async fn negotiate<T>(
        &self,
        io: &mut FramedIo<T, AmqpCodec>,
    ) -> Result<Accepted<AmqpSession, ChannelInbox>, Failure>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let settings = &self.ctx.settings;
        let offered = mechanisms::offered(self.tls_common_name.is_some());
        io.send(connection_method(connection::AMQPMethod::Start(
            connection::Start {
                version_major: 0,
                version_minor: 9,
                server_properties: server_properties(),
                mechanisms: LongString::from(offered.as_bytes()),
                locales: LongString::from("en_US".as_bytes()),
            },
        )))
        .await
        .map_err(Err)?;

        let start_ok = match next_method(io).await? {
            AMQPClass::Connection(connection::AMQPMethod::StartOk(start_ok)) => start_ok,
            other => return Err(Ok(unexpected(&other, "connection.start-ok"))),
        };
        let capabilities = client_capabilities(&start_ok.client_properties);
        let principal = self.login(&start_ok, &offered, capabilities).await?;

        io.send(connection_method(connection::AMQPMethod::Tune(
            connection::Tune {
                channel_max: settings.channel_max,
                frame_max: settings.frame_max,
                heartbeat: settings.heartbeat,
            },
        )))
        .await
        .map_err(Err)?;
        let tune_ok = match next_method(io).await? {
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(tune_ok)) => tune_ok,
            other => return Err(Ok(unexpected(&other, "connection.tune-ok"))),
        };
        check_tune_ok(&tune_ok, settings.frame_max, settings.channel_max).map_err(Ok)?;
        let frame_max = usize::try_from(tune_ok.frame_max).unwrap_or(usize::MAX);
        io.codec_mut().set_frame_max(frame_max);
        io.set_max_frame_size(frame_max);

        let open = match next_method(io).await? {
            AMQPClass::Connection(connection::AMQPMethod::Open(open)) => open,
            other => return Err(Ok(unexpected(&other, "connection.open"))),
        };
        let vhost = self
            .open_vhost(&principal, open.virtual_host.as_str())
            .map_err(Ok)?;
        let connection = self
            .ctx
            .broker
            .connect_with_id(self.connection_id, &vhost, Some(principal.user().clone()))
            .map_err(|error| {
                Ok(Refused::close(AmqpError::new(
                    errors::INTERNAL_ERROR,
                    format!("cannot open vhost '{vhost}': {error}"),
                )))
            })?;
        io.feed(connection_method(connection::AMQPMethod::OpenOk(
            connection::OpenOk {},
        )))
        .map_err(Err)?;
        tracing::info!(
            user = %principal.user(),
            %vhost,
            frame_max,
            channel_max = tune_ok.channel_max,
            heartbeat = tune_ok.heartbeat,
            "AMQP client connected"
        );
        let (inbox, registrar) = channel_inbox();
        let negotiated = Negotiated {
            channel_max: tune_ok.channel_max,
            frame_max,
            heartbeat: tune_ok.heartbeat,
            capabilities,
            user: principal.user().clone(),
            vhost,
        };
        let session = AmqpSession::open(
            std::sync::Arc::clone(settings),
            negotiated,
            connection,
            registrar,
        );
        Ok(Accepted { session, inbox })
    }

    async fn login(
        &self,
        start_ok: &connection::StartOk,
        offered: &str,
        capabilities: ClientCapabilities,
    ) -> Result<Principal, Failure> {
        let mechanism = start_ok.mechanism.as_str();
        let parsed = mechanisms::parse(mechanism, start_ok.response.as_bytes(), offered).map_err(
            |reason| {
                Ok(Refused::close(AmqpError::new(
                    errors::COMMAND_INVALID,
                    reason,
                )))
            },
        )?;
        let (credentials, certificate_login) = match parsed {
            Mechanism::Password { user, password } => (Some(Credentials { user, password }), false),
            Mechanism::External => (None, true),
        };
        let policy = LoginPolicy {
            users: &self.ctx.users,
            // AMQP has no anonymous login in RabbitMQ 3.x: a user name is required.
            anonymous: None,
            certificate_login,
            peer: self.peer.ip(),
            tls_common_name: self.tls_common_name.as_deref(),
        };
        login::authenticate(credentials, policy)
            .await
            .map_err(|error| {
                let text = match &error {
                    LoginError::Unavailable(_) => {
                        return Ok(Refused::close(AmqpError::new(
                            errors::INTERNAL_ERROR,
                            "authentication is unavailable",
                        )));
                    }
                    _ => format!(
                        "Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."
                    ),
                };
                let error = AmqpError::new(errors::ACCESS_REFUSED, text);
                if capabilities.authentication_failure_close {
                    Ok(Refused::close(error))
                } else {
                    Ok(Refused {
                        frame: None,
                        reason: CloseReason::HandshakeRejected(error.text),
                    })
                }
            })
    }

    fn open_vhost(&self, principal: &Principal, name: &str) -> Result<VhostName, Refused> {
        let not_allowed =
            |reason: String| Refused::close(AmqpError::new(errors::NOT_ALLOWED, reason));
        let vhost = VhostName::new(name).map_err(|error| not_allowed(error.to_string()))?;
        if self.ctx.broker.vhost(&vhost).is_none() {
            return Err(not_allowed(format!("vhost {vhost} not found")));
        }
        principal.check_vhost_access(&vhost).map_err(|_| {
            not_allowed(format!(
                "access to vhost '{vhost}' refused for user '{}'",
                principal.user()
            ))
        })?;
        Ok(vhost)
    }
}

/// The next method on channel 0, skipping a bounded number of heartbeats.
async fn next_method<T>(io: &mut FramedIo<T, AmqpCodec>) -> Result<AMQPClass, Failure>
where
    T: AsyncRead + AsyncWrite + Unpin + Send,
{
    for _ in 0..=MAX_LEADING_HEARTBEATS {
        match io.read_frame().await.map_err(Err)? {
            Inbound::Heartbeat => continue,
            Inbound::Method { channel: 0, method } => return Ok(method),
            Inbound::Invalid(error) => {
                return Err(Ok(Refused::close(AmqpError::from_frame(&error))))
            }
            Inbound::Method { channel, method } => {
                return Err(Ok(Refused::close(
                    AmqpError::new(
                        errors::CHANNEL_ERROR,
                        format!("channel {channel} used before connection.open-ok"),
                    )
                    .caused_by(&method),
                )))
            }
            _ => {
                return Err(Ok(Refused::close(AmqpError::new(
                    errors::UNEXPECTED_FRAME,
                    "content frame received during the connection handshake",
                ))))
            }
        }
    }
    Err(Ok(Refused::close(AmqpError::new(
        errors::UNEXPECTED_FRAME,
        "only heartbeats during the connection handshake",
    ))))
}

fn unexpected(method: &AMQPClass, expected: &str) -> Refused {
    Refused::close(
        AmqpError::new(
            errors::COMMAND_INVALID,
            format!(
                "expected '{expected}', got method {}.{}",
                method.get_amqp_class_id(),
                method.get_amqp_method_id()
            ),
        )
        .caused_by(method),
    )
}

fn check_tune_ok(
    tune_ok: &connection::TuneOk,
    server_frame_max: u32,
    server_channel_max: u16,
) -> Result<(), Refused> {
    let refuse = |reason: String| {
        Err(Refused::close(
            AmqpError::new(errors::NOT_ALLOWED, reason).caused_by(&AMQPClass::Connection(
                connection::AMQPMethod::TuneOk(tune_ok.clone()),
            )),
        ))
    };
    if tune_ok.frame_max != 0 && tune_ok.frame_max < FRAME_MIN_NEGOTIATED {
        return refuse(format!(
            "negotiated frame_max = {} is lower than the minimum allowed value ({FRAME_MIN_NEGOTIATED})",
            tune_ok.frame_max
        ));
    }
    if tune_ok.frame_max == 0 || tune_ok.frame_max > server_frame_max {
        return refuse(format!(
            "negotiated frame_max = {} is higher than the maximum allowed value ({server_frame_max})",
            tune_ok.frame_max
        ));
    }
    if tune_ok.channel_max == 0 || tune_ok.channel_max > server_channel_max {
        return refuse(format!(
            "negotiated channel_max = {} is higher than the maximum allowed value ({server_channel_max})",
            tune_ok.channel_max
        ));
    }
    Ok(())
}

/// `connection.start`'s server properties, with RabbitMQ's capability names.
fn server_properties() -> FieldTable {
    let mut capabilities = FieldTable::default();
    for capability in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "per_consumer_qos",
        "authentication_failure_close",
        "consumer_priorities",
    ] {
        capabilities.insert(short(capability), AMQPValue::Boolean(true));
    }
    let mut properties = FieldTable::default();
    let text = |value: &str| AMQPValue::LongString(LongString::from(value.as_bytes()));
    properties.insert(short("capabilities"), AMQPValue::FieldTable(capabilities));
    properties.insert(short("product"), text("mqgate"));
    properties.insert(short("version"), text(env!("CARGO_PKG_VERSION")));
    properties.insert(short("platform"), text("Rust"));
    properties.insert(short("cluster_name"), text("mqgate"));
    properties.insert(short("copyright"), text("The mqgate authors"));
    properties.insert(
        short("information"),
        text("Licensed under the Apache License 2.0"),
    );
    properties
}

/// The capabilities a client declared in `client-properties.capabilities`.
fn client_capabilities(client_properties: &FieldTable) -> ClientCapabilities {
    let Some(AMQPValue::FieldTable(table)) = client_properties.inner().get("capabilities") else {
        return ClientCapabilities::default();
    };
    let flag = |name: &str| matches!(table.inner().get(name), Some(AMQPValue::Boolean(true)));
    ClientCapabilities {
        consumer_cancel_notify: flag("consumer_cancel_notify"),
        connection_blocked: flag("connection.blocked"),
        authentication_failure_close: flag("authentication_failure_close"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tune_ok(frame_max: u32, channel_max: u16) -> connection::TuneOk {
        connection::TuneOk {
            channel_max,
            frame_max,
            heartbeat: 60,
        }
    }

    #[test]
    fn tune_ok_is_checked_as_rabbitmq_does() {
        assert!(check_tune_ok(&tune_ok(131_072, 2047), 131_072, 2047).is_ok());
        assert!(check_tune_ok(&tune_ok(4096, 1), 131_072, 2047).is_ok());
        for (frame_max, channel_max) in
            [(4095, 10), (0, 10), (131_073, 10), (8192, 0), (8192, 2048)]
        {
            let refused = check_tune_ok(&tune_ok(frame_max, channel_max), 131_072, 2047);
            let Err(refused) = refused else {
                panic!("{frame_max}/{channel_max} accepted");
            };
            assert!(
                matches!(refused.reason, CloseReason::HandshakeRejected(ref text) if text.starts_with("NOT_ALLOWED - negotiated"))
            );
        }
    }

    #[test]
    fn capabilities_are_read_from_the_client_properties() {
        let mut capabilities = FieldTable::default();
        capabilities.insert(short("consumer_cancel_notify"), AMQPValue::Boolean(true));
        capabilities.insert(short("connection.blocked"), AMQPValue::Boolean(false));
        let mut properties = FieldTable::default();
        properties.insert(short("capabilities"), AMQPValue::FieldTable(capabilities));
        let read = client_capabilities(&properties);
        assert!(read.consumer_cancel_notify);
        assert!(!read.connection_blocked);
        assert!(!read.authentication_failure_close);
    }
}
