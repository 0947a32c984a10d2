//! The connection and channel state machine. No I/O happens here.
//!
//! [`State`] takes inputs (user commands, connection events, decoded frames and the
//! current time) and queues effects: frames to send, connections to open or
//! close, and callbacks to run. The actix actor in [`crate::client`] only wires these
//! to the websocket, one timer, and the user's [`SlipstreamActor`](crate::SlipstreamActor).
//! Every timeout lives in one ordered timer map here, so the actor needs a single
//! timer set to [`State::next_deadline`].

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use serde_json::Value;

use crate::backoff::BackoffState;
use crate::channel::{
    BufferedPush, Channel, ChannelState, JoinWaiter, LeaveWaiter, ReplyTo, TimerKey,
    TopicCloseReason, TopicStatus,
};
use crate::config::Config;
use crate::error::{ConfigError, DecodeError, EncodeError, JoinError, LeaveError, PushError};
use crate::fxhash::FxHashMap;
use crate::heartbeat::Heartbeat;
use crate::message::{Event, Message, Payload, Ref, Reply, Topic};
use crate::registry::TopicRegistry;

/// Why the socket disconnected.
#[derive(Debug, Clone, PartialEq)]
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

impl DisconnectReason {
    /// A short, stable name for the kind of reason (`"heartbeat_timeout"`,
    /// `"server_closed"`...), used as the key of [`Status::disconnects_by_reason`].
    pub fn kind(&self) -> &'static str {
        match self {
            DisconnectReason::Requested => "requested",
            DisconnectReason::ReconnectRequested => "reconnect_requested",
            DisconnectReason::Stopped => "stopped",
            DisconnectReason::ConnectFailed(_) => "connect_failed",
            DisconnectReason::ServerClosed { .. } => "server_closed",
            DisconnectReason::ConnectionLost(_) => "connection_lost",
            DisconnectReason::HeartbeatTimeout => "heartbeat_timeout",
            DisconnectReason::WriteFailed(_) => "write_failed",
            DisconnectReason::InvalidFrame(_) => "invalid_frame",
            DisconnectReason::Protocol(_) => "protocol_error",
        }
    }

    /// Whether the user asked for this disconnect.
    pub fn is_requested(&self) -> bool {
        matches!(
            self,
            DisconnectReason::Requested | DisconnectReason::Stopped
        )
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
pub enum ConnectError {
    /// The server answered the upgrade with this HTTP status (403: the socket's
    /// `connect/3` refused the params, or the `vsn` is unknown).
    #[error("upgrade refused with HTTP {0}")]
    Refused(u16),
    /// No answer within the connect timeout.
    #[error("timed out")]
    Timeout,
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
}

/// The connection's state, without data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionStatus {
    /// Not connected and no connect planned.
    Disconnected,
    /// A reconnect is scheduled after a backoff delay.
    WaitingToReconnect,
    /// Opening the websocket.
    Connecting,
    /// Connected.
    Connected,
}

impl fmt::Display for ConnectionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnectionStatus::Disconnected => "disconnected",
            ConnectionStatus::WaitingToReconnect => "waiting to reconnect",
            ConnectionStatus::Connecting => "connecting",
            ConnectionStatus::Connected => "connected",
        })
    }
}

/// One topic in a [`Status`] snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicState {
    /// The topic.
    pub topic: Topic,
    /// Its state.
    pub status: TopicStatus,
    /// The join_ref of its current join, if one was sent.
    pub join_ref: Option<Ref>,
    /// Pushes buffered until it is joined.
    pub buffered_pushes: usize,
}

/// A snapshot of the client: connection, topics and counters.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// The connection state.
    pub connection: ConnectionStatus,
    /// Every known topic, sorted by name.
    pub topics: Vec<TopicState>,
    /// Pushes sent and awaiting a reply.
    pub pending_replies: usize,
    /// Pushes buffered until their topic is joined, over all topics.
    pub buffered_pushes: usize,
    /// Successful connects since the client started.
    pub connects: u64,
    /// Disconnects (and failed connects) since the client started.
    pub disconnects: u64,
    /// The disconnects counted by [`DisconnectReason::kind`].
    pub disconnects_by_reason: BTreeMap<&'static str, u64>,
    /// Websocket frames and bytes in and out.
    pub traffic: Traffic,
    /// Joins sent again after a reconnect or a channel crash.
    pub rejoins: u64,
    /// The last heartbeat round trip.
    pub last_heartbeat_rtt: Option<Duration>,
    /// The average heartbeat round trip.
    pub average_heartbeat_rtt: Option<Duration>,
}

impl Status {
    /// The state of one topic.
    pub fn topic(&self, topic: &str) -> Option<&TopicState> {
        self.topics.iter().find(|t| t.topic == topic)
    }
}

/// Websocket data frames and their bytes, counted since the client started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Text and binary frames received.
    pub frames_in: u64,
    /// Bytes of the frames received (payloads, without websocket headers).
    pub bytes_in: u64,
    /// Text and binary frames sent.
    pub frames_out: u64,
    /// Bytes of the frames sent (payloads, without websocket headers).
    pub bytes_out: u64,
}

/// What the state machine wants done.
#[derive(Debug)]
pub(crate) enum Effect {
    /// Encode and write this message.
    Send(Message),
    /// Open a connection for generation `gen`.
    Connect { gen: u64 },
    /// Close the current connection (sending a close frame with this code).
    Close { code: u16 },
    /// Run a user callback.
    Callback(Callback),
}

/// A user callback to run.
#[derive(Debug)]
pub(crate) enum Callback {
    Connected,
    Disconnected(DisconnectReason),
    Joined {
        topic: Topic,
        response: Payload,
    },
    TopicClosed {
        topic: Topic,
        reason: TopicCloseReason,
    },
    Left {
        topic: Topic,
    },
    Message {
        topic: Topic,
        event: Event,
        payload: Payload,
    },
    Reply {
        topic: Topic,
        reference: Ref,
        result: Result<Reply, PushError>,
    },
}

/// What to do after a disconnect; returned by
/// [`handle_disconnect`](crate::SlipstreamActor::handle_disconnect).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterDisconnect {
    /// Reconnect after the next reconnect backoff delay.
    Reconnect,
    /// Stay disconnected until told to connect (`Reconnect` message or `socket.connect()`).
    StayDisconnected,
    /// Stop the client actor (a supervisor restarts it).
    Stop,
}

/// What to do after a topic closed; returned by
/// [`handle_topic_close`](crate::SlipstreamActor::handle_topic_close).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterTopicClose {
    /// Rejoin after the topic's next rejoin backoff delay.
    Rejoin,
    /// Give the topic up: it leaves the registry and its buffered pushes fail.
    Forget,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conn {
    Disconnected,
    WaitingReconnect { timer: TimerKey },
    Connecting { gen: u64 },
    Connected { gen: u64, healthy: bool },
}

#[derive(Debug)]
enum Timer {
    Push { reference: u64, topic: Topic },
    JoinTimeout { topic: Topic },
    LeaveTimeout { topic: Topic },
    Rejoin { topic: Topic },
    HeartbeatTick,
    HeartbeatTimeout,
    Reconnect,
}

#[derive(Debug)]
struct PendingPush {
    topic: Topic,
    reply_to: ReplyTo,
    deadline: TimerKey,
}

/// The client's protocol state. See the module docs.
#[derive(Debug)]
pub struct State {
    config: Config,
    next_ref: u64,
    gen: u64,
    conn: Conn,
    reconnect: BackoffState,
    channels: FxHashMap<Topic, Channel>,
    registry: TopicRegistry,
    pending: FxHashMap<u64, PendingPush>,
    timers: BTreeMap<TimerKey, Timer>,
    timer_seq: u64,
    heartbeat: Heartbeat,
    heartbeat_tick: Option<TimerKey>,
    heartbeat_timeout: Option<TimerKey>,
    out: VecDeque<Effect>,
    connects: u64,
    disconnects: u64,
    disconnects_by_reason: BTreeMap<&'static str, u64>,
    rejoins: u64,
    traffic: Traffic,
    /// The actor is stopping (or stopped, or restarting under a supervisor): no
    /// connect is started and no push is accepted until [`State::start`].
    stopped: bool,
}

impl State {
    /// A disconnected state for this configuration.
    pub fn new(config: Config) -> Self {
        let reconnect = config.reconnect_backoff.start();
        State {
            config,
            next_ref: 0,
            gen: 0,
            conn: Conn::Disconnected,
            reconnect,
            channels: FxHashMap::default(),
            registry: TopicRegistry::new(),
            pending: FxHashMap::default(),
            timers: BTreeMap::new(),
            timer_seq: 0,
            heartbeat: Heartbeat::default(),
            heartbeat_tick: None,
            heartbeat_timeout: None,
            out: VecDeque::new(),
            connects: 0,
            disconnects: 0,
            disconnects_by_reason: BTreeMap::new(),
            rejoins: 0,
            traffic: Traffic::default(),
            stopped: false,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The topic registry.
    pub fn registry(&self) -> &TopicRegistry {
        &self.registry
    }

    /// Whether the socket is connected.
    pub fn is_connected(&self) -> bool {
        matches!(self.conn, Conn::Connected { .. })
    }

    pub(crate) fn pop_effect(&mut self) -> Option<Effect> {
        let effect = self.out.pop_front();
        if effect.is_none() && self.out.capacity() > 16 {
            // A burst (joins of many topics) is over: give the queue's memory back.
            self.out = VecDeque::new();
        }
        effect
    }

    /// The earliest timer deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.keys().next().map(|(at, _)| *at)
    }

    fn next_ref(&mut self) -> u64 {
        self.next_ref += 1;
        self.next_ref
    }

    fn schedule(&mut self, at: Instant, timer: Timer) -> TimerKey {
        self.timer_seq += 1;
        let key = (at, self.timer_seq);
        self.timers.insert(key, timer);
        key
    }

    fn cancel(&mut self, key: TimerKey) {
        self.timers.remove(&key);
    }

    fn send(&mut self, msg: Message) {
        self.out.push_back(Effect::Send(msg));
    }

    fn callback(&mut self, cb: Callback) {
        self.out.push_back(Effect::Callback(cb));
    }

    // ---------------------------------------------------------------- connection

    /// Opens a connection unless one is open or opening, or the client is stopping.
    pub fn connect(&mut self) {
        if self.stopped {
            debug!(target: crate::logging::CONNECTION, "connect ignored: the client is stopping");
            return;
        }
        match self.conn {
            Conn::Connected { .. } | Conn::Connecting { .. } => {}
            Conn::WaitingReconnect { timer } => {
                self.cancel(timer);
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
            crate::config::redact_url(&self.config.url),
            self.reconnect.attempt() + 1
        );
        self.out.push_back(Effect::Connect { gen: self.gen });
    }

    /// The websocket of generation `gen` is open.
    pub(crate) fn on_connected(&mut self, gen: u64, now: Instant) {
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
            let key = self.schedule(now + self.config.heartbeat_interval, Timer::HeartbeatTick);
            self.heartbeat_tick = Some(key);
        }
        self.callback(Callback::Connected);
    }

    /// Sends the joins asked for while disconnected that `handle_connect` did not send.
    pub(crate) fn after_connect(&mut self, now: Instant) {
        if !self.is_connected() {
            return;
        }
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

    /// The connection of generation `gen` failed to open or ended.
    pub(crate) fn on_closed(&mut self, gen: u64, reason: DisconnectReason, now: Instant) {
        let current = match self.conn {
            Conn::Connecting { gen: g } | Conn::Connected { gen: g, .. } => g == gen,
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
                self.cancel(timer);
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
        self.connect();
    }

    /// Whether the client is stopping (or stopped): set when the actor stops, cleared
    /// when it starts again (a supervisor restart). Connects are ignored and pushes
    /// refused meanwhile.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// The actor started (or was restarted by its supervisor): connects are allowed again.
    pub(crate) fn start(&mut self) {
        self.stopped = false;
    }

    /// The actor is stopping (for good, or to be restarted by its supervisor): every
    /// request still open gets its outcome now, and the connection is closed.
    ///
    /// Buffered and in-flight pushes fail with [`PushError::Stopped`], join waiters
    /// get [`JoinError::Stopped`], leave waiters [`LeaveError::Stopped`]; topics being
    /// left are left (`handle_leave`); the registry is kept (a restarted client
    /// rejoins it). Until [`State::start`], connects are ignored and pushes refused.
    pub(crate) fn stop(&mut self, now: Instant) {
        self.stopped = true;
        let mut topics: Vec<Topic> = self.channels.keys().cloned().collect();
        topics.sort();
        for topic in topics {
            let Some(mut ch) = self.channels.remove(&topic) else {
                continue;
            };
            ch.resolve_waiters(&Err(JoinError::Stopped));
            ch.resolve_leave_waiters(Err(LeaveError::Stopped));
            ch.resolve_join_after_leave(&JoinError::Stopped);
            self.fail_buffer(&topic, &mut ch, PushError::Stopped);
            if let ChannelState::RejoinScheduled { timer } = ch.state {
                self.timers.remove(&timer);
                ch.state = ChannelState::Waiting { explicit: false };
            }
            self.channels.insert(topic, ch);
        }
        self.stop_connection(now);
    }

    /// The actor is stopping or restarting: drop the connection.
    pub(crate) fn stop_connection(&mut self, now: Instant) {
        if let Conn::Connected { .. } | Conn::Connecting { .. } = self.conn {
            self.out.push_back(Effect::Close { code: 1000 });
            self.lost(DisconnectReason::Stopped, now);
        } else if let Conn::WaitingReconnect { timer } = self.conn {
            self.cancel(timer);
            self.conn = Conn::Disconnected;
        }
    }

    fn lost(&mut self, reason: DisconnectReason, now: Instant) {
        self.conn = Conn::Disconnected;
        self.disconnects += 1;
        *self.disconnects_by_reason.entry(reason.kind()).or_default() += 1;
        if reason.is_requested() || reason == DisconnectReason::ReconnectRequested {
            info!(target: crate::logging::CONNECTION, "disconnected: {reason}");
        } else {
            warn!(target: crate::logging::CONNECTION, "disconnected: {reason}");
        }
        self.heartbeat.reset();
        for key in [self.heartbeat_tick.take(), self.heartbeat_timeout.take()]
            .into_iter()
            .flatten()
        {
            self.cancel(key);
        }
        // Pushes in flight will never be answered on this connection.
        let error = if reason == DisconnectReason::Stopped {
            PushError::Stopped
        } else {
            PushError::ConnectionLost
        };
        let mut in_flight: Vec<u64> = self.pending.keys().copied().collect();
        in_flight.sort_unstable();
        for r in in_flight {
            self.resolve_pending(r, Err(error.clone()));
        }
        let mut left = Vec::new();
        let mut keys = Vec::new();
        for (topic, ch) in self.channels.iter_mut() {
            match ch.state {
                ChannelState::Joining { timer, .. } | ChannelState::RejoinScheduled { timer } => {
                    keys.push(timer);
                    ch.state = ChannelState::Waiting { explicit: false };
                }
                ChannelState::Joined { .. } => ch.state = ChannelState::Waiting { explicit: false },
                ChannelState::Leaving { timer, .. } => {
                    keys.push(timer);
                    left.push(topic.clone());
                }
                ChannelState::Waiting { .. } => {}
            }
        }
        for key in keys {
            self.cancel(key);
        }
        left.sort();
        for topic in left {
            // The socket is gone, and its channels with it: the leave is done.
            self.finish_leave(&topic, Ok(()), now);
        }
        self.callback(Callback::Disconnected(reason));
    }

    /// Applies the user's decision after a disconnect.
    pub(crate) fn after_disconnect(&mut self, decision: AfterDisconnect, now: Instant) {
        if self.stopped {
            return; // the actor is stopping: nothing to reconnect
        }
        if self.conn != Conn::Disconnected {
            return; // already reconnecting (a reconnect was requested)
        }
        if decision == AfterDisconnect::Reconnect {
            let delay = self.reconnect.next_delay(&self.config.reconnect_backoff);
            info!(target: crate::logging::CONNECTION,
                "reconnecting in {} ms (attempt {})",
                delay.as_millis(),
                self.reconnect.attempt()
            );
            let timer = self.schedule(now + delay, Timer::Reconnect);
            self.conn = Conn::WaitingReconnect { timer };
        }
    }

    fn mark_healthy(&mut self) {
        if let Conn::Connected {
            gen,
            healthy: false,
        } = self.conn
        {
            self.conn = Conn::Connected { gen, healthy: true };
            self.reconnect.reset();
        }
    }

    // ---------------------------------------------------------------- timers

    /// Fires every timer due at `now`.
    pub fn on_tick(&mut self, now: Instant) {
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (key, timer) = entry.remove_entry();
            self.fire(key, timer, now);
        }
    }

    fn fire(&mut self, key: TimerKey, timer: Timer, now: Instant) {
        match timer {
            Timer::Push { reference, topic } => self.push_timed_out(reference, &topic),
            Timer::JoinTimeout { topic } => {
                let Some(ch) = self.channels.get_mut(&topic) else {
                    return;
                };
                let ChannelState::Joining { join_ref, timer } = ch.state else {
                    return;
                };
                if timer != key {
                    return;
                }
                warn!(target: crate::logging::CHANNEL, "join of {topic} timed out (join_ref {join_ref}); leaving and retrying per policy");
                ch.state = ChannelState::Waiting { explicit: false };
                ch.resolve_waiters(&Err(JoinError::Timeout));
                let leave_ref = self.next_ref();
                self.send(Message::new(
                    Some(Ref::from(join_ref)),
                    Some(Ref::from(leave_ref)),
                    topic.clone(),
                    Event::Leave,
                    Payload::empty(),
                ));
                self.callback(Callback::TopicClosed {
                    topic,
                    reason: TopicCloseReason::JoinFailed(JoinError::Timeout),
                });
            }
            Timer::LeaveTimeout { topic } => {
                let matches = matches!(
                    self.channels.get(&topic).map(|c| c.state),
                    Some(ChannelState::Leaving { timer, .. }) if timer == key
                );
                if matches {
                    debug!(target: crate::logging::CHANNEL, "leave of {topic} not confirmed in time; considered left");
                    self.finish_leave(&topic, Err(LeaveError::Timeout), now);
                }
            }
            Timer::Rejoin { topic } => {
                let matches = matches!(
                    self.channels.get(&topic).map(|c| c.state),
                    Some(ChannelState::RejoinScheduled { timer }) if timer == key
                );
                if matches {
                    if self.is_connected() {
                        self.rejoins += 1;
                        self.send_join(&topic, now);
                    } else if let Some(ch) = self.channels.get_mut(&topic) {
                        ch.state = ChannelState::Waiting { explicit: false };
                    }
                }
            }
            Timer::HeartbeatTick => {
                if self.heartbeat_tick != Some(key) {
                    return;
                }
                self.heartbeat_tick = None;
                if !self.is_connected() {
                    return;
                }
                if self.heartbeat.pending.is_some() && !self.config.heartbeat_timeout.is_zero() {
                    self.heartbeat_failed(now);
                    return;
                }
                let r = self.next_ref();
                self.heartbeat.sent(r, now);
                self.send(Message::heartbeat(Ref::from(r)));
                if !self.config.heartbeat_timeout.is_zero() {
                    if let Some(old) = self.heartbeat_timeout.take() {
                        self.cancel(old);
                    }
                    let t =
                        self.schedule(now + self.config.heartbeat_timeout, Timer::HeartbeatTimeout);
                    self.heartbeat_timeout = Some(t);
                }
                let t = self.schedule(now + self.config.heartbeat_interval, Timer::HeartbeatTick);
                self.heartbeat_tick = Some(t);
            }
            Timer::HeartbeatTimeout => {
                if self.heartbeat_timeout != Some(key) {
                    return;
                }
                self.heartbeat_timeout = None;
                if self.heartbeat.pending.is_some() && self.is_connected() {
                    self.heartbeat_failed(now);
                }
            }
            Timer::Reconnect => {
                if self.conn == (Conn::WaitingReconnect { timer: key }) {
                    self.conn = Conn::Disconnected;
                    self.start_connect();
                }
            }
        }
    }

    fn heartbeat_failed(&mut self, now: Instant) {
        warn!(target: crate::logging::HEARTBEAT,
            "heartbeat {} unanswered; closing the connection",
            self.heartbeat.pending.map(|(r, _)| r).unwrap_or_default()
        );
        self.out.push_back(Effect::Close { code: 1000 });
        self.lost(DisconnectReason::HeartbeatTimeout, now);
    }

    // ---------------------------------------------------------------- topics

    /// Joins a topic (recording it in the registry), as a `Join` message
    /// (`waiter`) or `socket.join` does. A topic is wanted with one set of params at
    /// a time:
    ///
    /// - not wanted: recorded and joined (after the leave in flight, if one is);
    /// - wanted with the same params: nothing is sent; the waiter gets the current
    ///   join's outcome (the stored response if joined, else that of the join in
    ///   flight or of the next one);
    /// - wanted with other params: nothing changes and nothing is sent; the waiter
    ///   gets [`JoinError::ParamsConflict`] at once (a warning is logged).
    pub(crate) fn join(
        &mut self,
        topic: Topic,
        params: Value,
        waiter: Option<JoinWaiter>,
        now: Instant,
    ) {
        match self.registry.params(topic.as_str()) {
            Some(wanted) if *wanted != params => {
                warn!(target: crate::logging::CHANNEL,
                    "join of {topic} refused: it is already joined with other params (leave it first, then join with the new ones)"
                );
                if let Some(w) = waiter {
                    let _ = w.send(Err(JoinError::ParamsConflict));
                }
                return;
            }
            Some(_) => {}
            None => self.registry.insert(topic.clone(), params.clone()),
        }
        let waiters = match waiter {
            Some(w) if self.stopped => {
                // Recorded for a supervisor restart, but this request ends here.
                let _ = w.send(Err(JoinError::Stopped));
                Vec::new()
            }
            w => w.into_iter().collect(),
        };
        self.join_channel(topic, params, waiters, true, now);
    }

    /// Rejoins every registered topic that is not joined or joining.
    pub fn rejoin_registered(&mut self, now: Instant) {
        for (topic, params) in self.registry.topics() {
            self.join_channel(topic, params, Vec::new(), false, now);
        }
    }

    /// Rejoins one registered topic; returns false if it is not registered.
    pub fn rejoin(&mut self, topic: &str, now: Instant) -> bool {
        let Some(params) = self.registry.params(topic).cloned() else {
            return false;
        };
        self.join_channel(Topic::from(topic), params, Vec::new(), false, now);
        true
    }

    fn join_channel(
        &mut self,
        topic: Topic,
        params: Value,
        waiters: Vec<JoinWaiter>,
        explicit: bool,
        now: Instant,
    ) {
        let connected = self.is_connected();
        let rejoin = self.config.rejoin_backoff.start();
        let ch = self
            .channels
            .entry(topic.clone())
            .or_insert_with(|| Channel::new(params.clone(), rejoin));
        if let ChannelState::Leaving { .. } = ch.state {
            // A fresh join: sent once the leave is done, and its waiters get ITS outcome.
            debug!(target: crate::logging::CHANNEL, "{topic} is being left; joined again once the leave is done");
            ch.join_after_leave
                .get_or_insert_with(Vec::new)
                .extend(waiters);
            return;
        }
        ch.params = params;
        ch.join_waiters.retain(|w| !w.is_closed());
        for w in waiters {
            if let (ChannelState::Joined { .. }, Some(resp)) = (ch.state, &ch.last_response) {
                let _ = w.send(Ok(resp.clone()));
            } else {
                ch.join_waiters.push(w);
            }
        }
        match ch.state {
            ChannelState::Joining { .. } | ChannelState::Joined { .. } => {
                debug!(target: crate::logging::CHANNEL, "{topic} already joined or joining; no new phx_join sent");
            }
            ChannelState::Leaving { .. } => {}
            ChannelState::RejoinScheduled { timer } => {
                self.cancel(timer);
                if connected {
                    self.send_join(&topic, now);
                } else if let Some(ch) = self.channels.get_mut(&topic) {
                    ch.state = ChannelState::Waiting { explicit };
                }
            }
            ChannelState::Waiting { explicit: was } => {
                if connected {
                    if !was && !explicit {
                        self.rejoins += 1;
                    }
                    self.send_join(&topic, now);
                } else {
                    ch.state = ChannelState::Waiting {
                        explicit: was || explicit,
                    };
                }
            }
        }
    }

    fn send_join(&mut self, topic: &Topic, now: Instant) {
        let join_ref = self.next_ref();
        let timer = self.schedule(
            now + self.config.join_timeout,
            Timer::JoinTimeout {
                topic: topic.clone(),
            },
        );
        let Some(ch) = self.channels.get_mut(topic) else {
            self.cancel(timer);
            return;
        };
        ch.state = ChannelState::Joining { join_ref, timer };
        debug!(target: crate::logging::CHANNEL, "joining {topic} (join_ref {join_ref})");
        let params = ch.params.clone();
        self.send(Message::new(
            Some(Ref::from(join_ref)),
            Some(Ref::from(join_ref)),
            topic.clone(),
            Event::Join,
            Payload::Json(params),
        ));
    }

    /// Leaves a topic and removes it from the registry (`socket.leave`; the outcome
    /// reaches `handle_leave`). Nothing goes on the wire if a leave is already in flight.
    pub fn leave(&mut self, topic: &str, now: Instant) {
        self.leave_with(topic, None, now);
    }

    /// Leaves a topic, as a `Leave` message does: `waiter` resolves when the topic
    /// is left (leave reply, `phx_close`, `phx_error`, the connection closed, or at
    /// once when it was not joined or wanted), or with [`LeaveError::Timeout`] after
    /// the leave timeout (the topic is left locally anyway).
    pub(crate) fn leave_with(&mut self, topic: &str, waiter: Option<LeaveWaiter>, now: Instant) {
        self.registry.remove(topic);
        let connected = self.is_connected();
        let Some((key, ch)) = self.channels.get_key_value(topic) else {
            debug!(target: crate::logging::CHANNEL, "leave of {topic}: not joined");
            if let Some(w) = waiter {
                let _ = w.send(Ok(()));
            }
            return;
        };
        let topic = key.clone();
        let state = ch.state;
        if let Some(ch) = self.channels.get_mut(&topic) {
            // A join asked for during an earlier leave is cancelled by this leave.
            ch.resolve_join_after_leave(&JoinError::Left);
            ch.join_after_leave = None;
            ch.leave_waiters.extend(waiter);
        }
        match state {
            ChannelState::Leaving { .. } => {
                debug!(target: crate::logging::CHANNEL, "leave of {topic} already in flight")
            }
            ChannelState::Joined { join_ref } | ChannelState::Joining { join_ref, .. }
                if connected =>
            {
                if let ChannelState::Joining { timer, .. } = state {
                    self.cancel(timer);
                }
                let leave_ref = self.next_ref();
                let timer = self.schedule(
                    now + self.config.push_timeout,
                    Timer::LeaveTimeout {
                        topic: topic.clone(),
                    },
                );
                if let Some(mut ch) = self.channels.remove(&topic) {
                    ch.state = ChannelState::Leaving {
                        join_ref,
                        leave_ref,
                        timer,
                    };
                    ch.resolve_waiters(&Err(JoinError::Left));
                    self.fail_buffer(&topic, &mut ch, PushError::Left);
                    self.channels.insert(topic.clone(), ch);
                }
                info!(target: crate::logging::CHANNEL, "leaving {topic} (join_ref {join_ref})");
                self.send(Message::new(
                    Some(Ref::from(join_ref)),
                    Some(Ref::from(leave_ref)),
                    topic,
                    Event::Leave,
                    Payload::empty(),
                ));
            }
            ChannelState::Joined { .. }
            | ChannelState::Joining { .. }
            | ChannelState::Waiting { .. }
            | ChannelState::RejoinScheduled { .. } => {
                if let ChannelState::Joining { timer, .. }
                | ChannelState::RejoinScheduled { timer } = state
                {
                    self.cancel(timer);
                }
                self.finish_leave(&topic, Ok(()), now);
            }
        }
    }

    /// Removes a channel that has been left and tells the user (`handle_leave`, and
    /// the leave waiters get `outcome`). A join asked for during the leave is sent now.
    fn finish_leave(&mut self, topic: &Topic, outcome: Result<(), LeaveError>, now: Instant) {
        let Some(mut ch) = self.channels.remove(topic) else {
            return;
        };
        if let ChannelState::Leaving { timer, .. } = ch.state {
            self.cancel(timer);
        }
        ch.resolve_waiters(&Err(JoinError::Left));
        ch.resolve_leave_waiters(outcome);
        let again = match ch.join_after_leave.take() {
            // Pushes made since the join was asked for wait for that join.
            Some(waiters) if self.registry.contains(topic.as_str()) => {
                Some((waiters, std::mem::take(&mut ch.buffer)))
            }
            Some(mut waiters) => {
                for w in waiters.drain(..) {
                    let _ = w.send(Err(JoinError::Left));
                }
                None
            }
            None => None,
        };
        self.fail_buffer(topic, &mut ch, PushError::Left);
        self.fail_in_flight(topic, PushError::Left);
        info!(target: crate::logging::CHANNEL, "left {topic}");
        self.callback(Callback::Left {
            topic: topic.clone(),
        });
        if let Some((waiters, buffered)) = again {
            if let Some(params) = self.registry.params(topic.as_str()).cloned() {
                self.join_channel(topic.clone(), params, waiters, true, now);
                if let Some(ch) = self.channels.get_mut(topic) {
                    ch.buffer = buffered;
                }
            }
        }
    }

    /// Gives a topic up after a failure: registry, buffered pushes, waiters.
    fn forget(&mut self, topic: &Topic) {
        self.registry.remove(topic.as_str());
        if let Some(mut ch) = self.channels.remove(topic) {
            if let ChannelState::Joining { timer, .. }
            | ChannelState::RejoinScheduled { timer }
            | ChannelState::Leaving { timer, .. } = ch.state
            {
                self.cancel(timer);
            }
            ch.resolve_waiters(&Err(JoinError::Left));
            ch.resolve_join_after_leave(&JoinError::Left);
            ch.resolve_leave_waiters(Ok(()));
            self.fail_buffer(topic, &mut ch, PushError::Left);
        }
        self.fail_in_flight(topic, PushError::ChannelClosed);
        info!(target: crate::logging::CHANNEL, "gave up {topic}");
    }

    /// The default decision after a topic closed, per the [`RetryPolicy`](crate::RetryPolicy).
    pub fn default_after_topic_close(
        &self,
        topic: &str,
        reason: &TopicCloseReason,
    ) -> AfterTopicClose {
        let policy = self.config.retry;
        let retry = match reason {
            TopicCloseReason::Crashed(_) => policy.rejoin_crashed,
            TopicCloseReason::JoinFailed(JoinError::Timeout) => policy.retry_join_timeout,
            TopicCloseReason::JoinFailed(JoinError::UnmatchedTopic) => policy.retry_unmatched_topic,
            TopicCloseReason::JoinFailed(JoinError::Rejected(_)) => self
                .channels
                .get(topic)
                .is_some_and(|c| c.rejected <= policy.rejected_join_retries),
            TopicCloseReason::JoinFailed(
                JoinError::Left | JoinError::Stopped | JoinError::ParamsConflict,
            ) => false,
        };
        if retry {
            AfterTopicClose::Rejoin
        } else {
            AfterTopicClose::Forget
        }
    }

    /// Applies the user's decision after a topic closed.
    pub(crate) fn after_topic_close(
        &mut self,
        topic: &Topic,
        decision: AfterTopicClose,
        now: Instant,
    ) {
        let Some(ch) = self.channels.get_mut(topic) else {
            return;
        };
        if !matches!(ch.state, ChannelState::Waiting { .. }) {
            return; // the user already rejoined or left it in the callback
        }
        match decision {
            AfterTopicClose::Forget => self.forget(topic),
            AfterTopicClose::Rejoin if !self.registry.contains(topic.as_str()) => {
                self.forget(topic)
            }
            AfterTopicClose::Rejoin => {
                let delay = ch.rejoin.next_delay(&self.config.rejoin_backoff);
                let attempt = ch.rejoin.attempt();
                info!(target: crate::logging::CHANNEL,
                    "rejoining {topic} in {} ms (attempt {attempt})",
                    delay.as_millis()
                );
                let timer = self.schedule(
                    now + delay,
                    Timer::Rejoin {
                        topic: topic.clone(),
                    },
                );
                if let Some(ch) = self.channels.get_mut(topic) {
                    ch.state = ChannelState::RejoinScheduled { timer };
                }
            }
        }
    }

    // ---------------------------------------------------------------- pushes

    /// Pushes an event. Sent now if the topic is joined, else buffered until it is.
    ///
    /// # Errors
    /// [`PushError::NotJoined`] if the topic is unknown or being left,
    /// [`PushError::BufferFull`], or [`PushError::Encode`] when the push can never be encoded.
    pub(crate) fn push(
        &mut self,
        topic: &str,
        event: Event,
        payload: Payload,
        timeout: Duration,
        reply_to: ReplyTo,
        now: Instant,
    ) -> Result<Ref, PushError> {
        if let Payload::Binary(_) = payload {
            if !self.config.serializer.supports_binary() {
                return Err(PushError::Encode(EncodeError::BinaryNotSupported));
            }
            for (field, s) in [("topic", topic), ("event", event.as_str())] {
                if s.len() > 255 {
                    return Err(PushError::Encode(EncodeError::FieldTooLong {
                        field,
                        len: s.len(),
                    }));
                }
            }
        }
        if self.stopped {
            return Err(PushError::Stopped);
        }
        if event.is_reserved() {
            return Err(PushError::Encode(EncodeError::Unsupported(
                "reserved events are sent by the client itself; use join/leave",
            )));
        }
        let connected = self.is_connected();
        let max = self.config.max_buffered_pushes;
        let (topic, state) = match self.channels.get_key_value(topic) {
            None => return Err(PushError::NotJoined),
            Some((t, ch)) => (t.clone(), ch.state),
        };
        // A topic being left takes no pushes, unless a join of it waits for the leave
        // to finish: the topic is wanted again, and the push waits for that join.
        let rejoining = self
            .channels
            .get(&topic)
            .is_some_and(|c| c.join_after_leave.is_some());
        match state {
            ChannelState::Leaving { .. } if !rejoining => Err(PushError::NotJoined),
            ChannelState::Joined { join_ref } if connected => {
                let r = self.next_ref();
                let deadline = self.schedule(
                    now + timeout,
                    Timer::Push {
                        reference: r,
                        topic: topic.clone(),
                    },
                );
                self.send(Message::new(
                    Some(Ref::from(join_ref)),
                    Some(Ref::from(r)),
                    topic.clone(),
                    event,
                    payload,
                ));
                self.pending.insert(
                    r,
                    PendingPush {
                        topic,
                        reply_to,
                        deadline,
                    },
                );
                Ok(Ref::from(r))
            }
            _ => {
                if self
                    .channels
                    .get(&topic)
                    .is_some_and(|c| c.buffer.len() >= max)
                {
                    return Err(PushError::BufferFull);
                }
                let r = self.next_ref();
                let deadline = self.schedule(
                    now + timeout,
                    Timer::Push {
                        reference: r,
                        topic: topic.clone(),
                    },
                );
                debug!(target: crate::logging::PUSH, "{topic} not joined: push {event} (ref {r}) buffered");
                if let Some(ch) = self.channels.get_mut(&topic) {
                    ch.buffer.push_back(BufferedPush {
                        reference: r,
                        event,
                        payload,
                        reply_to,
                        deadline,
                    });
                }
                Ok(Ref::from(r))
            }
        }
    }

    /// A push could not be written (writer queue full or encode error).
    pub(crate) fn send_failed(&mut self, reference: &Ref, error: PushError) {
        if let Some(r) = reference.as_u64() {
            self.resolve_pending(r, Err(error));
        }
    }

    fn push_timed_out(&mut self, reference: u64, topic: &Topic) {
        if self.pending.contains_key(&reference) {
            debug!(target: crate::logging::PUSH, "push {reference} on {topic} timed out");
            self.resolve_pending(reference, Err(PushError::Timeout));
            return;
        }
        let Some(ch) = self.channels.get_mut(topic) else {
            return;
        };
        if let Some(i) = ch.buffer.iter().position(|b| b.reference == reference) {
            if let Some(b) = ch.buffer.remove(i) {
                debug!(target: crate::logging::PUSH, "buffered push {reference} on {topic} timed out before it could be sent");
                self.deliver(
                    topic.clone(),
                    reference,
                    b.reply_to,
                    Err(PushError::Timeout),
                );
            }
        }
    }

    fn resolve_pending(&mut self, reference: u64, result: Result<Reply, PushError>) {
        if let Some(p) = self.pending.remove(&reference) {
            self.cancel(p.deadline);
            self.deliver(p.topic, reference, p.reply_to, result);
        }
    }

    fn deliver(
        &mut self,
        topic: Topic,
        reference: u64,
        reply_to: ReplyTo,
        result: Result<Reply, PushError>,
    ) {
        match reply_to {
            ReplyTo::Sender(tx) => {
                let _ = tx.send(result);
            }
            ReplyTo::Callback => self.callback(Callback::Reply {
                topic,
                reference: Ref::from(reference),
                result,
            }),
        }
    }

    fn fail_buffer(&mut self, topic: &Topic, ch: &mut Channel, error: PushError) {
        for b in ch.buffer.drain(..) {
            self.timers.remove(&b.deadline);
            match b.reply_to {
                ReplyTo::Sender(tx) => {
                    let _ = tx.send(Err(error.clone()));
                }
                ReplyTo::Callback => self.out.push_back(Effect::Callback(Callback::Reply {
                    topic: topic.clone(),
                    reference: Ref::from(b.reference),
                    result: Err(error.clone()),
                })),
            }
        }
    }

    fn fail_in_flight(&mut self, topic: &Topic, error: PushError) {
        let mut refs: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| &p.topic == topic)
            .map(|(r, _)| *r)
            .collect();
        refs.sort_unstable();
        for r in refs {
            self.resolve_pending(r, Err(error.clone()));
        }
    }

    fn flush_buffer(&mut self, topic: &Topic, join_ref: u64, now: Instant) {
        let Some(ch) = self.channels.get_mut(topic) else {
            return;
        };
        let buffered: Vec<BufferedPush> = ch.buffer.drain(..).collect();
        for b in buffered {
            if b.deadline.0 <= now {
                self.timers.remove(&b.deadline);
                self.deliver(
                    topic.clone(),
                    b.reference,
                    b.reply_to,
                    Err(PushError::Timeout),
                );
                continue;
            }
            self.send(Message::new(
                Some(Ref::from(join_ref)),
                Some(Ref::from(b.reference)),
                topic.clone(),
                b.event,
                b.payload,
            ));
            self.pending.insert(
                b.reference,
                PendingPush {
                    topic: topic.clone(),
                    reply_to: b.reply_to,
                    deadline: b.deadline,
                },
            );
        }
    }

    // ---------------------------------------------------------------- inbound

    /// Handles a decoded frame from the server.
    pub(crate) fn on_message(&mut self, msg: Message, now: Instant) {
        if msg.topic.is_phoenix() {
            if let (Event::Reply(_), Some(r)) =
                (&msg.event, msg.reference.as_ref().and_then(Ref::as_u64))
            {
                if self.heartbeat.replied(r, now) {
                    if let Some(key) = self.heartbeat_timeout.take() {
                        self.cancel(key);
                    }
                    self.mark_healthy();
                    return;
                }
            }
            debug!(target: crate::logging::WIRE,
                "dropped {} on the phoenix topic (ref {:?})",
                msg.event, msg.reference
            );
            return;
        }
        let Some(ch) = self.channels.get(&msg.topic) else {
            debug!(target: crate::logging::WIRE, "dropped {} for unknown topic {}", msg.event, msg.topic);
            return;
        };
        let current = ch.state.join_ref();
        if let Some(jr) = &msg.join_ref {
            if jr.as_u64().is_none() || jr.as_u64() != current {
                debug!(target: crate::logging::WIRE,
                    "dropped stale {} on {} (join_ref {jr}, current {current:?})",
                    msg.event, msg.topic
                );
                return;
            }
        }
        let state = ch.state;
        let reference = msg.reference.as_ref().and_then(Ref::as_u64);
        match msg.event {
            Event::Reply(status) => {
                let Some(r) = reference else {
                    debug!(target: crate::logging::WIRE, "dropped reply without ref on {}", msg.topic);
                    return;
                };
                let reply = Reply {
                    status,
                    response: msg.payload,
                };
                match state {
                    ChannelState::Joining { join_ref, timer } if r == join_ref => {
                        self.cancel(timer);
                        self.join_replied(msg.topic, join_ref, reply, now);
                    }
                    ChannelState::Leaving { leave_ref, .. } if r == leave_ref => {
                        self.finish_leave(&msg.topic, Ok(()), now);
                    }
                    _ => match self.pending.get(&r) {
                        Some(p) if p.topic == msg.topic => self.resolve_pending(r, Ok(reply)),
                        _ => {
                            debug!(target: crate::logging::WIRE, "dropped reply to unknown ref {r} on {}", msg.topic)
                        }
                    },
                }
            }
            Event::Error | Event::Close => {
                // phx_error / phx_close carry ref == join_ref (V1 frames have no join_ref).
                let Some(jr) =
                    current.filter(|jr| msg.join_ref.is_some() || reference == Some(*jr))
                else {
                    debug!(target: crate::logging::WIRE, "dropped stale {} on {}", msg.event, msg.topic);
                    return;
                };
                if let ChannelState::Leaving { .. } = state {
                    // Our leave is done, whether the channel closed or crashed meanwhile.
                    debug!(target: crate::logging::CHANNEL, "{} on {} during the leave: left", msg.event, msg.topic);
                    self.finish_leave(&msg.topic, Ok(()), now);
                } else if msg.event == Event::Close {
                    info!(target: crate::logging::CHANNEL, "{} closed by the server (join_ref {jr})", msg.topic);
                    self.registry.remove(msg.topic.as_str());
                    self.finish_leave(&msg.topic, Ok(()), now);
                } else {
                    warn!(target: crate::logging::CHANNEL, "{} crashed on the server (join_ref {jr})", msg.topic);
                    self.channel_errored(msg.topic, TopicCloseReason::Crashed(msg.payload));
                }
            }
            event => match state {
                ChannelState::Joined { .. }
                | ChannelState::Joining { .. }
                | ChannelState::Leaving { .. } => {
                    self.callback(Callback::Message {
                        topic: msg.topic,
                        event,
                        payload: msg.payload,
                    });
                }
                _ => {
                    debug!(target: crate::logging::WIRE, "dropped {event} on {}: not joined", msg.topic)
                }
            },
        }
    }

    fn join_replied(&mut self, topic: Topic, join_ref: u64, reply: Reply, now: Instant) {
        if reply.is_ok() {
            if let Some(ch) = self.channels.get_mut(&topic) {
                ch.state = ChannelState::Joined { join_ref };
                ch.rejoin.reset();
                ch.rejected = 0;
                ch.last_response = Some(reply.response.clone());
                ch.resolve_waiters(&Ok(reply.response.clone()));
            }
            self.mark_healthy();
            info!(target: crate::logging::CHANNEL, "joined {topic} (join_ref {join_ref})");
            self.flush_buffer(&topic, join_ref, now);
            self.callback(Callback::Joined {
                topic,
                response: reply.response,
            });
        } else {
            let error = if reply.is_unmatched_topic() {
                JoinError::UnmatchedTopic
            } else {
                if let Some(ch) = self.channels.get_mut(&topic) {
                    ch.rejected += 1;
                }
                JoinError::Rejected(reply.response)
            };
            warn!(target: crate::logging::CHANNEL, "join of {topic} failed: {error}");
            if let Some(ch) = self.channels.get_mut(&topic) {
                ch.resolve_waiters(&Err(error.clone()));
            }
            self.channel_errored(topic, TopicCloseReason::JoinFailed(error));
        }
    }

    fn channel_errored(&mut self, topic: Topic, reason: TopicCloseReason) {
        if let Some(ch) = self.channels.get_mut(&topic) {
            if let ChannelState::Joining { timer, .. } = ch.state {
                self.timers.remove(&timer);
            }
            ch.state = ChannelState::Waiting { explicit: false };
        }
        self.fail_in_flight(&topic, PushError::ChannelClosed);
        self.callback(Callback::TopicClosed { topic, reason });
    }

    // ---------------------------------------------------------------- status

    /// A snapshot of the connection and every topic.
    pub fn status(&self) -> Status {
        let mut topics: Vec<TopicState> = self
            .channels
            .iter()
            .map(|(t, c)| TopicState {
                topic: t.clone(),
                status: c.state.status(),
                join_ref: c.current_join_ref(),
                buffered_pushes: c.buffer.len(),
            })
            .collect();
        topics.sort_by(|a, b| a.topic.cmp(&b.topic));
        Status {
            connection: self.connection_status(),
            topics,
            pending_replies: self.pending.len(),
            buffered_pushes: self.channels.values().map(|c| c.buffer.len()).sum(),
            connects: self.connects,
            disconnects: self.disconnects,
            disconnects_by_reason: self.disconnects_by_reason.clone(),
            traffic: self.traffic,
            rejoins: self.rejoins,
            last_heartbeat_rtt: self.heartbeat.last_rtt,
            average_heartbeat_rtt: self.heartbeat.average_rtt(),
        }
    }

    /// Counts a frame received.
    pub(crate) fn count_in(&mut self, bytes: usize) {
        self.traffic.frames_in += 1;
        self.traffic.bytes_in += bytes as u64;
    }

    /// Counts a frame sent.
    pub(crate) fn count_out(&mut self, bytes: usize) {
        self.traffic.frames_out += 1;
        self.traffic.bytes_out += bytes as u64;
    }

    /// The connection state.
    pub fn connection_status(&self) -> ConnectionStatus {
        match self.conn {
            Conn::Disconnected => ConnectionStatus::Disconnected,
            Conn::WaitingReconnect { .. } => ConnectionStatus::WaitingToReconnect,
            Conn::Connecting { .. } => ConnectionStatus::Connecting,
            Conn::Connected { .. } => ConnectionStatus::Connected,
        }
    }

    /// The join_ref of a topic's current join, if one was sent.
    pub fn join_ref(&self, topic: &str) -> Option<Ref> {
        self.channels.get(topic).and_then(Channel::current_join_ref)
    }

    /// The state of one topic, if known.
    pub fn topic_status(&self, topic: &str) -> Option<TopicStatus> {
        self.channels.get(topic).map(|c| c.state.status())
    }

    /// Number of timers held (for leak checks).
    #[doc(hidden)]
    pub fn timer_count(&self) -> usize {
        self.timers.len()
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;

#[cfg(feature = "fuzzing")]
#[path = "state_fuzzing.rs"]
mod fuzzing;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use fuzzing::{FuzzEffect, JoinReceiver, LeaveReceiver, PushReceiver};
