//! CONNECT to CONNACK: version, client identifier, authentication, takeover, session state.
//!
//! The flow: read one packet (it must be CONNECT), check the client identifier, authenticate
//! (argon2 runs on a blocking thread), open the core connection and session on the vhost, claim
//! the client id in the [`Registry`] (waiting, bounded, for a connection taken over to let go),
//! restore or discard a persistent session, then answer CONNACK and hand the driver an
//! [`MqttSession`] with its [`MqttInbox`].
//!
//! Invariants:
//! - Every refusal is answered in the client's version ([`Refusal::connack`]) before the close;
//!   where v3 has no code the connection just closes.
//! - Nothing from the client is trusted for sizes: the pre-authentication frame limit is the
//!   driver's; the post-authentication one is set on the codec only after CONNACK is decided.
//! - A connection that takes over an id waits at most `takeover_timeout` for the old one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mqgate_core::auth::Principal;
use mqgate_core::names::{ConnectionId, VhostName};
use mqgate_session::login::{self, Credentials, LoginError, LoginPolicy};
use mqgate_session::{Accepted, CloseReason, FramedIo, Handshake};
use rumqttd::protocol::{
    ConnAck, ConnAckProperties, Connect, ConnectProperties, ConnectReturnCode, LastWill,
    LastWillProperties, Login, Packet,
};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::codec::{Inbound, MqttCodec, ProtocolVersion};
use crate::errors::Refusal;
use crate::registry::{ClientId, SessionKey};
use crate::serve::MqttContext;
use crate::session::{MqttInbox, MqttSession, SessionParams, Will};

/// One connection's MQTT handshake.
#[derive(Debug)]
pub struct MqttHandshake {
    ctx: MqttContext,
    peer: SocketAddr,
    tls_common_name: Option<String>,
    connection_id: ConnectionId,
}

impl MqttHandshake {
    /// A handshake for the connection `connection_id` from `peer`; `tls_common_name` is the
    /// verified client certificate's CN, if any.
    pub fn new(
        ctx: MqttContext,
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

type Refused = (Refusal, String);

/// Feeds the refusal's CONNACK (if the version has one) and gives the close reason.
fn refuse<T>(
    io: &mut FramedIo<T, MqttCodec>,
    version: Option<ProtocolVersion>,
    (refusal, detail): Refused,
) -> CloseReason
where
    T: AsyncRead + AsyncWrite + Unpin + Send,
{
    tracing::info!(?refusal, %detail, "CONNECT refused");
    if let Some(packet) = refusal.connack(version, &detail) {
        if let Err(reason) = io.feed(packet) {
            return reason;
        }
    }
    refusal.close_reason(&detail)
}

impl Handshake for MqttHandshake {
    type Session = MqttSession;
    type Inbox = MqttInbox;

    async fn run<T>(
        self,
        io: &mut FramedIo<T, MqttCodec>,
    ) -> Result<Accepted<MqttSession, MqttInbox>, CloseReason>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let packet = match io.read_frame().await? {
            Inbound::Packet(packet) => packet,
            Inbound::Invalid(error) => {
                let version = io.codec().version();
                let refusal = Refusal::for_codec_error(&error);
                return Err(refuse(io, version, (refusal, error.to_string())));
            }
        };
        let Packet::Connect(connect, properties, will, will_properties, login) = packet else {
            return Err(CloseReason::Protocol(
                "first packet is not CONNECT".to_owned(),
            ));
        };
        let version = io.codec().version().unwrap_or(ProtocolVersion::V3_1_1);
        let connect = ConnectPacket {
            connect,
            properties,
            will,
            will_properties,
            login,
        };
        match self.accept(version, connect).await {
            Ok((mut session, inbox, connack)) => {
                io.feed(connack)?;
                io.codec_mut()
                    .set_max_incoming(self.ctx.settings.max_packet_size);
                io.codec_mut()
                    .set_max_outgoing(session.client_max_packet_size());
                session.set_sizer(io.codec().clone());
                Ok(Accepted { session, inbox })
            }
            Err(refused) => Err(refuse(io, Some(version), refused)),
        }
    }
}

struct ConnectPacket {
    connect: Connect,
    properties: Option<ConnectProperties>,
    will: Option<LastWill>,
    will_properties: Option<LastWillProperties>,
    login: Option<Login>,
}

impl MqttHandshake {
    async fn accept(
        &self,
        version: ProtocolVersion,
        packet: ConnectPacket,
    ) -> Result<(MqttSession, MqttInbox, Packet), Refused> {
        let settings = &self.ctx.settings;
        let ConnectPacket {
            connect,
            properties,
            will,
            will_properties,
            login,
        } = packet;
        let v5 = version == ProtocolVersion::V5;
        let props = properties.unwrap_or_else(empty_connect_properties);
        if props.receive_maximum == Some(0) {
            return Err((Refusal::Protocol, "Receive Maximum 0".to_owned()));
        }
        if props.max_packet_size == Some(0) {
            return Err((Refusal::Protocol, "Maximum Packet Size 0".to_owned()));
        }
        if props.authentication_method.is_some() {
            return Err((
                Refusal::Protocol,
                "enhanced authentication is not supported".to_owned(),
            ));
        }
        // Client identifier.
        let mut assigned = None;
        let client_id = if connect.client_id.is_empty() {
            match version {
                ProtocolVersion::V5 => {
                    let id = self.assign_client_id();
                    assigned = Some(id.clone());
                    id
                }
                ProtocolVersion::V3_1_1 if connect.clean_session => self.assign_client_id(),
                _ => {
                    return Err((
                        Refusal::IdentifierRejected,
                        "an empty client identifier needs clean session".to_owned(),
                    ))
                }
            }
        } else if connect.client_id.len() > settings.max_client_id_len {
            return Err((
                Refusal::IdentifierRejected,
                format!(
                    "client identifier longer than {} bytes",
                    settings.max_client_id_len
                ),
            ));
        } else {
            connect.client_id.clone()
        };
        let client_id = ClientId::new(client_id);

        // Will (checked before any work).
        let will = match will {
            Some(will) => Some(
                Will::from_connect(will, will_properties)
                    .map_err(|detail| (Refusal::Protocol, detail))?,
            ),
            None => None,
        };

        // Authentication.
        let principal = self.authenticate(login).await?;
        let vhost = VhostName::new(&settings.vhost)
            .map_err(|error| (Refusal::ServerUnavailable, error.to_string()))?;
        principal
            .check_vhost_access(&vhost)
            .map_err(|denied| (Refusal::NotAuthorized, denied.to_string()))?;
        let connection = self
            .ctx
            .broker
            .connect_with_id(self.connection_id, &vhost, Some(principal.user().clone()))
            .map_err(|error| (Refusal::ServerUnavailable, error.to_string()))?;

        // Session lifetime.
        let clean_start = connect.clean_session;
        let expiry = match version {
            ProtocolVersion::V5 => {
                let seconds = props.session_expiry_interval.unwrap_or(0);
                Duration::from_secs(u64::from(seconds)).min(settings.max_session_expiry)
            }
            _ if clean_start => Duration::ZERO,
            _ => settings.max_session_expiry,
        };
        let key = SessionKey {
            vhost,
            client: client_id.clone(),
        };
        let registry = Arc::clone(&self.ctx.registry);
        // Takeover (and, for a persistent session, one of the limited slots).
        let claim = if expiry.is_zero() {
            registry.claim(key, self.connection_id)
        } else {
            registry
                .claim_persistent(key, self.connection_id)
                .map_err(|_| {
                    (
                        Refusal::ServerBusy,
                        "too many persistent sessions".to_owned(),
                    )
                })?
        };
        if let Some(previous) = &claim.previous_closed {
            tracing::info!(client_id = %client_id, "taking over the client id from an older connection");
            if tokio::time::timeout(settings.takeover_timeout, previous.cancelled())
                .await
                .is_err()
            {
                tracing::warn!(client_id = %client_id, "the connection taken over did not close in time");
            }
        }

        let keepalive = effective_keepalive(connect.keep_alive, settings.max_keepalive);
        let params = SessionParams {
            client_id: client_id.clone(),
            version,
            settings: Arc::clone(settings),
            keepalive,
            clean_start,
            expiry,
            will,
            client_receive_maximum: props.receive_maximum,
            client_max_packet_size: props
                .max_packet_size
                .and_then(|size| usize::try_from(size).ok()),
            client_topic_alias_max: props.topic_alias_max.unwrap_or(0),
        };
        let (session, inbox, session_present) = MqttSession::open(params, connection, claim)
            .map_err(|detail| (Refusal::ServerUnavailable, detail))?;
        tracing::info!(client_id = %client_id, ?version, session_present, keepalive, "MQTT client connected");

        let connack_properties = v5.then(|| ConnAckProperties {
            session_expiry_interval: (props.session_expiry_interval.is_some()
                && u64::from(props.session_expiry_interval.unwrap_or(0)) > expiry.as_secs())
            .then(|| u32::try_from(expiry.as_secs()).unwrap_or(u32::MAX)),
            receive_max: Some(settings.receive_maximum),
            max_packet_size: u32::try_from(settings.max_packet_size).ok(),
            assigned_client_identifier: assigned,
            topic_alias_max: Some(settings.topic_alias_maximum),
            retain_available: Some(1),
            wildcard_subscription_available: Some(1),
            subscription_identifiers_available: Some(1),
            shared_subscription_available: Some(1),
            server_keep_alive: (keepalive != connect.keep_alive).then_some(keepalive),
            ..ConnAckProperties::default()
        });
        let connack = Packet::ConnAck(
            ConnAck {
                session_present,
                code: ConnectReturnCode::Success,
            },
            connack_properties,
        );
        Ok((session, inbox, connack))
    }

    fn assign_client_id(&self) -> String {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.subsec_nanos())
            .unwrap_or(0);
        format!("mqgate-{}-{nanos:08x}", self.connection_id.0)
    }

    async fn authenticate(&self, login: Option<Login>) -> Result<Principal, Refused> {
        let credentials = login.map(|login| Credentials {
            user: login.username,
            password: login.password,
        });
        let policy = LoginPolicy {
            users: &self.ctx.users,
            anonymous: self.ctx.anonymous.as_ref(),
            certificate_login: self.ctx.settings.certificate_login,
            peer: self.peer.ip(),
            tls_common_name: self.tls_common_name.as_deref(),
        };
        login::authenticate(credentials, policy)
            .await
            .map_err(|error| {
                let refusal = match error {
                    LoginError::Password(_) => Refusal::BadCredentials,
                    LoginError::WithoutPassword(_) | LoginError::AnonymousDisabled => {
                        Refusal::NotAuthorized
                    }
                    LoginError::Unavailable(_) => Refusal::ServerUnavailable,
                };
                (refusal, error.to_string())
            })
    }
}

/// The keepalive the server enforces: the client's, capped by `max` when `max` is not 0
/// (a client asking for 0, no keepalive, gets `max` then).
fn effective_keepalive(client: u16, max: u16) -> u16 {
    if max == 0 {
        client
    } else if client == 0 {
        max
    } else {
        client.min(max)
    }
}

fn empty_connect_properties() -> ConnectProperties {
    ConnectProperties {
        session_expiry_interval: None,
        receive_maximum: None,
        max_packet_size: None,
        topic_alias_max: None,
        request_response_info: None,
        request_problem_info: None,
        user_properties: Vec::new(),
        authentication_method: None,
        authentication_data: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_is_capped_by_the_server_maximum() {
        assert_eq!(effective_keepalive(60, 0), 60);
        assert_eq!(effective_keepalive(0, 0), 0);
        assert_eq!(effective_keepalive(0, 30), 30);
        assert_eq!(effective_keepalive(60, 30), 30);
        assert_eq!(effective_keepalive(10, 30), 10);
    }
}
