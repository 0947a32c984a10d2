//! The connection: connect, loss, reconnect with backoff, stop and start, and the
//! whole heartbeat policy (send one per interval, close the link when one goes
//! unanswered, measure round trips).

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use super::effect::{AfterDisconnect, ConnId, Effect, Notification};
use super::status::ConnectionStatus;
use super::timers::{Timer, TimerKey};
use super::topics::ChannelState;
use super::Engine;
use crate::error::{ConfigError, DecodeError, PushError};
use crate::message::{Message, Ref, Topic};

/// Why the socket disconnected.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The user asked for it (`Disconnect` or `socket.disconnect()`). Not reconnected by default.
    Requested,
    /// The user asked for a reconnect; a new connection is already being opened.
    ReconnectRequested,
    /// The client actor stopped (or is being restarted by its supervisor).
    Stopped,
    /// The connection could not be opened.
    ConnectFailed(ConnectError),
    /// The server closed the websocket with a close frame.
    ServerClosed {
        /// The close code, if the frame had one (1011 for a server-side disconnect,
        /// 1012 for a graceful shutdown, 1002 after an idle timeout...).
        code: Option<u16>,
        /// The close description, if any.
        description: Option<String>,
    },
    /// The connection ended without a close frame (the server died, the network failed).
    ConnectionLost(String),
    /// A heartbeat went unanswered: the link is dead or half-open.
    HeartbeatTimeout,
    /// A write failed or did not finish within the write timeout.
    WriteFailed(String),
    /// The server sent a frame that could not be decoded.
    InvalidFrame(DecodeError),
    /// The server broke the websocket protocol (including a frame over the size limit).
    Protocol(String),
}

/// The kind of a [`DisconnectReason`], without its data: the key of
/// [`Status::disconnects_by_reason`](crate::Status::disconnects_by_reason). Its
/// `Display` is a short, stable name (`heartbeat_timeout`, `server_closed`...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DisconnectKind {
    /// [`DisconnectReason::Requested`].
    Requested,
    /// [`DisconnectReason::ReconnectRequested`].
    ReconnectRequested,
    /// [`DisconnectReason::Stopped`].
    Stopped,
    /// [`DisconnectReason::ConnectFailed`].
    ConnectFailed,
    /// [`DisconnectReason::ServerClosed`].
    ServerClosed,
    /// [`DisconnectReason::ConnectionLost`].
    ConnectionLost,
    /// [`DisconnectReason::HeartbeatTimeout`].
    HeartbeatTimeout,
    /// [`DisconnectReason::WriteFailed`].
    WriteFailed,
    /// [`DisconnectReason::InvalidFrame`].
    InvalidFrame,
    /// [`DisconnectReason::Protocol`].
    Protocol,
}

impl DisconnectKind {
    /// The short, stable name (`"heartbeat_timeout"`, `"server_closed"`...).
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectKind::Requested => "requested",
            DisconnectKind::ReconnectRequested => "reconnect_requested",
            DisconnectKind::Stopped => "stopped",
            DisconnectKind::ConnectFailed => "connect_failed",
            DisconnectKind::ServerClosed => "server_closed",
            DisconnectKind::ConnectionLost => "connection_lost",
            DisconnectKind::HeartbeatTimeout => "heartbeat_timeout",
            DisconnectKind::WriteFailed => "write_failed",
            DisconnectKind::InvalidFrame => "invalid_frame",
            DisconnectKind::Protocol => "protocol_error",
        }
    }
}

impl fmt::Display for DisconnectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl DisconnectReason {
    /// The kind of reason, without its data (the key of
    /// [`Status::disconnects_by_reason`](crate::Status::disconnects_by_reason)).
    pub fn kind(&self) -> DisconnectKind {
        match self {
            DisconnectReason::Requested => DisconnectKind::Requested,
            DisconnectReason::ReconnectRequested => DisconnectKind::ReconnectRequested,
            DisconnectReason::Stopped => DisconnectKind::Stopped,
            DisconnectReason::ConnectFailed(_) => DisconnectKind::ConnectFailed,
            DisconnectReason::ServerClosed { .. } => DisconnectKind::ServerClosed,
            DisconnectReason::ConnectionLost(_) => DisconnectKind::ConnectionLost,
            DisconnectReason::HeartbeatTimeout => DisconnectKind::HeartbeatTimeout,
            DisconnectReason::WriteFailed(_) => DisconnectKind::WriteFailed,
            DisconnectReason::InvalidFrame(_) => DisconnectKind::InvalidFrame,
            DisconnectReason::Protocol(_) => DisconnectKind::Protocol,
        }
    }

    /// Whether the user asked for this disconnect.
    pub fn is_requested(&self) -> bool {
        matches!(
            self,
            DisconnectReason::Requested | DisconnectReason::Stopped
        )
    }

    /// The default decision after this disconnect: reconnect, except after a
    /// disconnect the user asked for or when the configuration is invalid (a
    /// reconnect would fail the same way).
    pub(crate) fn default_decision(&self) -> AfterDisconnect {
        match self {
            DisconnectReason::Requested | DisconnectReason::Stopped => {
                AfterDisconnect::StayDisconnected
            }
            DisconnectReason::ConnectFailed(ConnectError::Config(e)) => {
                log::error!(target: crate::logging::CONNECTION, "not reconnecting: invalid configuration: {e}");
                AfterDisconnect::StayDisconnected
            }
            _ => AfterDisconnect::Reconnect,
        }
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DisconnectReason::Requested => f.write_str("disconnect requested"),
            DisconnectReason::ReconnectRequested => f.write_str("reconnect requested"),
            DisconnectReason::Stopped => f.write_str("client stopped"),
            DisconnectReason::ConnectFailed(e) => write!(f, "connect failed: {e}"),
            DisconnectReason::ServerClosed { code, description } => {
                write!(f, "server closed the socket")?;
                if let Some(c) = code {
                    write!(f, " with code {c}")?;
                }
                match description {
                    Some(d) if !d.is_empty() => write!(f, " ({d})"),
                    _ => Ok(()),
                }
            }
            DisconnectReason::ConnectionLost(e) => write!(f, "connection lost: {e}"),
            DisconnectReason::HeartbeatTimeout => f.write_str("heartbeat timeout"),
            DisconnectReason::WriteFailed(e) => write!(f, "write failed: {e}"),
            DisconnectReason::InvalidFrame(e) => write!(f, "invalid frame from server: {e}"),
            DisconnectReason::Protocol(e) => write!(f, "websocket protocol error: {e}"),
        }
    }
}

/// Why a connect failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The server answered the upgrade with this HTTP status (403: the socket's
    /// `connect/3` refused the params, or the `vsn` is unknown).
    #[error("upgrade refused with HTTP {0}")]
    Refused(u16),
    /// No answer within the connect timeout.
    #[error("timed out")]
    Timeout,
    /// The server's host refused the TCP connection: nothing listens on the port (a
    /// server restarting, or a wrong port). Retried with
    /// [`Config::reconnect_refused_backoff`](crate::Config#structfield.reconnect_refused_backoff).
    #[error("connection refused")]
    ConnectionRefused,
    /// TCP, TLS or HTTP failed.
    #[error("{0}")]
    Io(String),
    /// The configuration is not usable; fix it (a reconnect would fail the same way).
    #[error("{0}")]
    Config(ConfigError),
    /// The connect params closure ([`Config::params_fn`](crate::Config::params_fn))
    /// panicked, with the panic's message. Retried with the reconnect backoff by
    /// default (the closure may succeed next time, e.g. once a token service is back).
    #[error("the params closure panicked: {0}")]
    Params(String),
    /// The auth token closure ([`Config::auth_token_fn`](crate::Config::auth_token_fn))
    /// panicked, with the panic's message. Retried with the reconnect backoff by
    /// default, like [`ConnectError::Params`].
    #[error("the auth token closure panicked: {0}")]
    AuthToken(String),
    /// An auth token was sent ([`Config::auth_token`](crate::Config::auth_token)) but
    /// the server did not answer with the `phoenix` subprotocol (it answered the one
    /// given, or none), so it did not take the token: on Phoenix, declare the socket
    /// with `auth_token: true` (Phoenix 1.8+). Retried like other connect failures.
    #[error("the server did not accept the auth token: it answered subprotocol {}, not \"phoenix\" (on Phoenix, declare the socket with `auth_token: true`)", .answered.as_deref().map_or_else(|| "none".to_owned(), |p| format!("{p:?}")))]
    Subprotocol {
        /// The subprotocol the server answered, if any.
        answered: Option<String>,
    },
    /// The URL's scheme does not seem to match what the port speaks: a `wss://` URL
    /// to a port answering plain HTTP, or a `ws://` URL to a port speaking TLS.
    ///
    /// This is a heuristic, read from the text and kind of the underlying error (a
    /// TLS handshake that fails on a reset or on a plain-HTTP answer, an HTTP parser
    /// that sees a TLS record): the real cause may differ. Fix the URL's scheme
    /// (`ws://` ↔ `wss://`) if the port is the wrong kind. Retried like other connect
    /// failures.
    #[error("{detail}: the port seems to speak {}; try a {suggested}:// URL", if *.tls { "TLS" } else { "plain HTTP" })]
    #[non_exhaustive]
    SchemeMismatch {
        /// Whether the port seems to speak TLS (`true`: the URL was `ws://`) or
        /// plain HTTP (`false`: the URL was `wss://`).
        tls: bool,
        /// The scheme to try instead: `"ws"` or `"wss"`.
        suggested: &'static str,
        /// The underlying error.
        detail: String,
    },
}

/// The connection's state, with its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Conn {
    Disconnected,
    WaitingReconnect { timer: TimerKey },
    Connecting { gen: u64 },
    Connected { gen: u64, healthy: bool },
}

impl Conn {
    pub(crate) fn status(&self) -> ConnectionStatus {
        match self {
            Conn::Disconnected => ConnectionStatus::Disconnected,
            Conn::WaitingReconnect { .. } => ConnectionStatus::WaitingToReconnect,
            Conn::Connecting { .. } => ConnectionStatus::Connecting,
            Conn::Connected { .. } => ConnectionStatus::Connected,
        }
    }
}

/// The heartbeat of the current connection: the one awaiting its reply, the timers,
/// and round-trip statistics over the client's life.
#[derive(Debug, Default)]
pub(crate) struct Heartbeat {
    /// Ref and send time of the heartbeat awaiting its reply.
    pub(crate) pending: Option<(u64, Instant)>,
    /// The timer of the pending heartbeat's reply.
    timeout: Option<TimerKey>,
    /// The last round trip.
    pub(crate) last_rtt: Option<Duration>,
    rtt_total: Duration,
    rtt_count: u64,
}

impl Heartbeat {
    /// Matches a reply by ref; returns whether it answered the outstanding heartbeat.
    fn replied(&mut self, reference: u64, now: Instant) -> bool {
        match self.pending {
            Some((r, sent)) if r == reference => {
                let rtt = now.saturating_duration_since(sent);
                self.pending = None;
                self.last_rtt = Some(rtt);
                self.rtt_total += rtt;
                self.rtt_count += 1;
                true
            }
            _ => false,
        }
    }

    /// The average round trip over the client's life.
    pub(crate) fn average_rtt(&self) -> Option<Duration> {
        (self.rtt_count > 0).then(|| self.rtt_total / self.rtt_count as u32)
    }
}

impl Engine {
    /// Opens a connection unless one is open or opening, or the client is stopping
    /// (an [`Effect::Connect`] follows).
    pub fn connect(&mut self) {
        if self.stopped {
            debug!(target: crate::logging::CONNECTION, "connect ignored: the client is stopping");
            return;
        }
        match self.conn {
            Conn::Connected { .. } | Conn::Connecting { .. } => {}
            Conn::WaitingReconnect { timer } => {
                self.timers.cancel(timer);
                self.start_connect();
            }
            Conn::Disconnected => self.start_connect(),
        }
    }

    fn start_connect(&mut self) {
        self.gen += 1;
        self.conn = Conn::Connecting { gen: self.gen };
        info!(target: crate::logging::CONNECTION,
            "connecting to {} (attempt {})",
            crate::url::redact_url(&self.config.url),
            self.reconnect.attempt() + self.reconnect_refused.attempt() + 1
        );
        self.out.push_back(Effect::Connect {
            conn: ConnId(self.gen),
        });
    }

    /// The connection `conn` is open: the heartbeat starts, the registry is rejoined
    /// (unless [`Config::rejoin_on_connect`](crate::Config::rejoin_on_connect) is off),
    /// the joins asked for while disconnected are sent, then
    /// [`Notification::Connected`]. A report about an older connection is ignored.
    pub fn handle_connected(&mut self, conn: ConnId, now: Instant) {
        let gen = conn.0;
        if self.conn != (Conn::Connecting { gen }) {
            return;
        }
        self.conn = Conn::Connected {
            gen,
            healthy: false,
        };
        self.connects += 1;
        info!(target: crate::logging::CONNECTION, "connected (generation {gen})");
        if !self.config.heartbeat_interval.is_zero() {
            self.timers
                .schedule(now + self.config.heartbeat_interval, Timer::HeartbeatTick);
        }
        if self.config.rejoin_on_connect {
            self.rejoin_registered(now);
        }
        self.send_explicit_joins(now);
        self.notify(Notification::Connected);
    }

    /// Sends the joins asked for while disconnected (they are sent whether or not
    /// the registry is rejoined).
    fn send_explicit_joins(&mut self, now: Instant) {
        let mut explicit: Vec<Topic> = self
            .channels
            .iter()
            .filter(|(_, c)| c.state == ChannelState::Waiting { explicit: true })
            .map(|(t, _)| t.clone())
            .collect();
        explicit.sort();
        for topic in explicit {
            self.send_join(&topic, now);
        }
    }

    /// The connection `conn` failed to open or ended, for `reason`. A report about an
    /// older connection is ignored.
    pub fn handle_closed(&mut self, conn: ConnId, reason: DisconnectReason, now: Instant) {
        let current = match self.conn {
            Conn::Connecting { gen } | Conn::Connected { gen, .. } => gen == conn.0,
            _ => false,
        };
        if current {
            self.lost(reason, now);
        }
    }

    /// The user asked to disconnect: close with 1000 and stay disconnected.
    pub fn disconnect(&mut self, now: Instant) {
        match self.conn {
            Conn::Connected { .. } | Conn::Connecting { .. } => {
                self.out.push_back(Effect::Close { code: 1000 });
                self.lost(DisconnectReason::Requested, now);
            }
            Conn::WaitingReconnect { timer } => {
                self.timers.cancel(timer);
                self.conn = Conn::Disconnected;
            }
            Conn::Disconnected => {}
        }
    }

    /// The user asked to reconnect: close any connection and open a new one now
    /// (ignored while the client is stopping).
    pub fn reconnect(&mut self, now: Instant) {
        if self.stopped {
            debug!(target: crate::logging::CONNECTION, "reconnect ignored: the client is stopping");
            return;
        }
        if let Conn::Connected { .. } | Conn::Connecting { .. } = self.conn {
            self.out.push_back(Effect::Close { code: 1000 });
            self.lost(DisconnectReason::ReconnectRequested, now);
        }
        self.reconnect.reset();
        self.reconnect_refused.reset();
        self.connect();
    }

    /// Whether the client is stopping (or stopped): set by [`Engine::stop`], cleared
    /// by [`Engine::start`]. Connects are ignored and pushes refused meanwhile.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// The client started (or was restarted by its supervisor): connects are allowed again.
    pub fn start(&mut self) {
        self.stopped = false;
    }

    /// The client is stopping (for good, or to be restarted by its supervisor): every
    /// request still open gets its outcome now, and the connection is closed.
    ///
    /// Buffered and in-flight pushes fail with [`PushError::Stopped`], join waiters
    /// get [`JoinError::Stopped`](crate::JoinError::Stopped), leave waiters
    /// [`LeaveError::Stopped`](crate::LeaveError::Stopped); topics being left are left
    /// ([`Notification::Left`]); the registry is kept (a restarted client rejoins it).
    /// Until [`Engine::start`], connects are ignored and pushes refused.
    pub fn stop(&mut self, now: Instant) {
        self.stopped = true;
        self.stop_topics();
        if let Conn::Connected { .. } | Conn::Connecting { .. } = self.conn {
            self.out.push_back(Effect::Close { code: 1000 });
            self.lost(DisconnectReason::Stopped, now);
        } else if let Conn::WaitingReconnect { timer } = self.conn {
            self.timers.cancel(timer);
            self.conn = Conn::Disconnected;
        }
    }

    /// The connection is gone: fail what it carried, tell the user.
    fn lost(&mut self, reason: DisconnectReason, now: Instant) {
        self.conn = Conn::Disconnected;
        self.last_connect_refused = matches!(
            reason,
            DisconnectReason::ConnectFailed(ConnectError::ConnectionRefused)
        );
        self.disconnects += 1;
        *self.disconnects_by_reason.entry(reason.kind()).or_default() += 1;
        if reason.is_requested() || reason == DisconnectReason::ReconnectRequested {
            info!(target: crate::logging::CONNECTION, "disconnected: {reason}");
        } else {
            warn!(target: crate::logging::CONNECTION, "disconnected: {reason}");
        }
        self.heartbeat.pending = None;
        self.timers.cancel_tick();
        if let Some(key) = self.heartbeat.timeout.take() {
            self.timers.cancel(key);
        }
        // Pushes in flight will never be answered on this connection.
        let error = if reason == DisconnectReason::Stopped {
            PushError::Stopped
        } else {
            PushError::ConnectionLost
        };
        self.fail_all_in_flight(error);
        self.topics_disconnected(now);
        let default = reason.default_decision();
        self.notify(Notification::Disconnected { reason, default });
    }

    /// Applies the decision taken after a [`Notification::Disconnected`]
    /// ([`AfterDisconnect::Stop`] is the caller's to carry out; the engine stays
    /// disconnected). Ignored while stopping, or when a connect already started.
    pub fn decide_disconnect(&mut self, decision: AfterDisconnect, now: Instant) {
        if self.stopped {
            return; // the client is stopping: nothing to reconnect
        }
        if self.conn != Conn::Disconnected {
            return; // already reconnecting (a reconnect was requested)
        }
        if decision == AfterDisconnect::Reconnect {
            let (delay, attempt) = if self.last_connect_refused {
                let d = self
                    .reconnect_refused
                    .next_delay(crate::backoff::refused_policy(&self.config));
                (d, self.reconnect_refused.attempt())
            } else {
                let d = self.reconnect.next_delay(&self.config.reconnect_backoff);
                (d, self.reconnect.attempt())
            };
            info!(target: crate::logging::CONNECTION,
                "reconnecting in {} ms (attempt {attempt})",
                delay.as_millis(),
            );
            let timer = self.timers.schedule(now + delay, Timer::Reconnect);
            self.conn = Conn::WaitingReconnect { timer };
        }
    }

    /// The server answered something: the connection works, the reconnect backoff starts over.
    pub(crate) fn mark_healthy(&mut self) {
        if let Conn::Connected {
            gen,
            healthy: false,
        } = self.conn
        {
            self.conn = Conn::Connected { gen, healthy: true };
            self.reconnect.reset();
            self.reconnect_refused.reset();
        }
    }

    /// The reconnect delay is over.
    pub(crate) fn reconnect_due(&mut self, key: TimerKey) {
        if self.conn == (Conn::WaitingReconnect { timer: key }) {
            self.conn = Conn::Disconnected;
            self.start_connect();
        }
    }

    // ------------------------------------------------------------ heartbeat

    /// Time for a heartbeat (the armed tick: the timers hold one at most): send one
    /// (and arm its reply timeout and the next tick), or close the link if the
    /// previous one is still unanswered.
    pub(crate) fn heartbeat_due(&mut self, now: Instant) {
        if !self.is_connected() {
            return;
        }
        if self.heartbeat.pending.is_some() && !self.config.heartbeat_timeout.is_zero() {
            self.heartbeat_failed(now);
            return;
        }
        let r = self.next_ref();
        self.heartbeat.pending = Some((r, now));
        self.send(Message::heartbeat(Ref::from(r)));
        if !self.config.heartbeat_timeout.is_zero() {
            if let Some(old) = self.heartbeat.timeout.take() {
                self.timers.cancel(old);
            }
            let t = self
                .timers
                .schedule(now + self.config.heartbeat_timeout, Timer::HeartbeatTimeout);
            self.heartbeat.timeout = Some(t);
        }
        self.timers
            .schedule(now + self.config.heartbeat_interval, Timer::HeartbeatTick);
    }

    /// The heartbeat's reply timeout passed.
    pub(crate) fn heartbeat_timed_out(&mut self, key: TimerKey, now: Instant) {
        if self.heartbeat.timeout != Some(key) {
            return;
        }
        self.heartbeat.timeout = None;
        if self.heartbeat.pending.is_some() && self.is_connected() {
            self.heartbeat_failed(now);
        }
    }

    /// A reply on the `phoenix` topic: whether it answered the pending heartbeat.
    pub(crate) fn heartbeat_replied(&mut self, reference: u64, now: Instant) -> bool {
        if !self.heartbeat.replied(reference, now) {
            return false;
        }
        if let Some(key) = self.heartbeat.timeout.take() {
            self.timers.cancel(key);
        }
        self.mark_healthy();
        true
    }

    fn heartbeat_failed(&mut self, now: Instant) {
        warn!(target: crate::logging::HEARTBEAT,
            "heartbeat {} unanswered; closing the connection",
            self.heartbeat.pending.map(|(r, _)| r).unwrap_or_default()
        );
        self.out.push_back(Effect::Close { code: 1000 });
        self.lost(DisconnectReason::HeartbeatTimeout, now);
    }
}

/// Counts of disconnects by kind.
pub(crate) type DisconnectCounts = BTreeMap<DisconnectKind, u64>;
