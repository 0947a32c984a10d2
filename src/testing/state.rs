//! What the test server observed: sockets, their channels and frames, events, counters.
//!
//! Everything here is bounded: the event history keeps the last [`EVENT_HISTORY`]
//! events, each socket keeps the last [`FRAME_HISTORY`] frames it received, and the
//! server remembers the last [`PAST_SOCKETS`] disconnected sockets.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::message::{Message, Ref, Topic};

use super::command::{Silence, SocketCmd};

/// How many server events the history keeps (the oldest are dropped first).
pub const EVENT_HISTORY: usize = 10_000;
/// How many received frames each socket's log keeps (the oldest are dropped first).
pub const FRAME_HISTORY: usize = 10_000;
/// How many disconnected sockets the server remembers, with their frame logs.
pub const PAST_SOCKETS: usize = 256;

/// The server's id for one websocket connection, unique for the server's lifetime
/// (restarts included). Displayed as `socket-N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId(pub u64);

impl fmt::Display for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "socket-{}", self.0)
    }
}

/// One channel a socket has joined.
#[derive(Clone, Debug, PartialEq)]
pub struct JoinedChannel {
    /// The topic.
    pub topic: Topic,
    /// The join_ref of the join that created this channel (None when the client sent none).
    pub join_ref: Option<Ref>,
}

/// What the server knows about one websocket connection.
#[derive(Clone, Debug)]
pub struct SocketInfo {
    /// The socket's id.
    pub id: SocketId,
    /// The `vsn` connect param the socket's serializer was chosen by (`"1.0.0"` when
    /// the client sent none, as in Phoenix).
    pub vsn: String,
    /// The connect params (the query string of the upgrade request), in order.
    pub params: Vec<(String, String)>,
    /// The headers of the upgrade request, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The auth token of the upgrade request (`Sec-WebSocket-Protocol`), decoded.
    pub auth_token: Option<String>,
    /// The client's address.
    pub peer: Option<SocketAddr>,
    /// The joined channels, by topic.
    pub channels: BTreeMap<Topic, Option<Ref>>,
    /// Whether (and how) the socket is silenced.
    pub silence: Option<Silence>,
    /// Frames received so far (including those dropped from the bounded log).
    pub frames_received: u64,
    /// Frames sent so far.
    pub frames_sent: u64,
    /// When the websocket was accepted.
    pub connected_at: Instant,
    /// Why the socket ended, once it has.
    pub disconnect: Option<DisconnectReason>,
}

impl SocketInfo {
    /// The value of a connect param, if present.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of a header of the upgrade request (name case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the socket has joined the topic.
    pub fn is_joined(&self, topic: &str) -> bool {
        self.channels.contains_key(topic)
    }

    /// The joined channels as a list.
    pub fn joined(&self) -> Vec<JoinedChannel> {
        self.channels
            .iter()
            .map(|(topic, join_ref)| JoinedChannel {
                topic: topic.clone(),
                join_ref: join_ref.clone(),
            })
            .collect()
    }
}

/// Why a websocket connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The client sent a close frame (its code, if any).
    ClientClosed(Option<u16>),
    /// The connection ended without a close frame from the client.
    ConnectionLost,
    /// The server closed it with this code (a test's `disconnect`, a graceful stop
    /// (1012), an idle timeout (1002), an invalid frame (1011)...).
    ServerClosed(u16),
    /// The test dropped the TCP connection, or killed the server: no close frame.
    Dropped,
    /// Sending to the client did not complete within the send timeout; the connection was dropped.
    SendTimeout,
}

/// Why a channel ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaveReason {
    /// The client sent `phx_leave`.
    Left,
    /// The channel crashed (`phx_error` sent).
    Crashed,
    /// The channel stopped (`phx_close` sent).
    Stopped,
    /// A new join of the same topic replaced it (`phx_close` sent for the old join_ref).
    Replaced,
    /// The socket ended.
    Disconnected,
}

/// How a connection attempt is refused (see [`TestServer::refuse_next`](super::TestServer::refuse_next)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// Answer the upgrade request with this HTTP status (403 like a refused Phoenix
    /// `connect/3`, or 404, 500...). Statuses outside 100..=999 become 403.
    Http(u16),
    /// Accept the TCP connection and close it (FIN) before reading the request:
    /// the client sees the connection end during the handshake.
    TcpClose,
    /// Accept the TCP connection and reset it (RST, `SO_LINGER` 0) before reading the request.
    TcpReset,
    /// Accept the TCP connection and never answer the upgrade (the connection is held
    /// until [`TestServer::accept_connections`](super::TestServer::accept_connections),
    /// a stop, or [`HUNG_CONNECTION_MAX`](super::HUNG_CONNECTION_MAX)): for connect-timeout tests.
    Hang,
}

impl Refusal {
    pub(crate) fn is_tcp_level(&self) -> bool {
        !matches!(self, Refusal::Http(_))
    }
}

/// Something that happened on the server, in order. See [`TestServer::wait_for`](super::TestServer::wait_for).
#[derive(Clone, Debug, PartialEq)]
pub enum ServerEvent {
    /// The server (re)started listening on this address.
    Started(SocketAddr),
    /// The server stopped listening (`graceful`: sockets were closed with 1012).
    Stopped {
        /// Whether the stop was graceful.
        graceful: bool,
    },
    /// A connection attempt was refused (HTTP 403 for a bad `vsn` or a refused connect,
    /// or an injected [`Refusal`]).
    Refused(Refusal),
    /// A websocket was accepted.
    Connected(SocketId),
    /// A frame was received and decoded.
    Frame(SocketId, Message),
    /// A frame could not be decoded; the socket is closed with 1011.
    InvalidFrame(SocketId, String),
    /// A channel was joined.
    Joined(SocketId, Topic, Option<Ref>),
    /// A join was refused (error reply, crash, cap, unmatched topic).
    JoinRefused(SocketId, Topic),
    /// A channel ended.
    Left(SocketId, Topic, LeaveReason),
    /// A websocket ended.
    Disconnected(SocketId, DisconnectReason),
}

impl ServerEvent {
    /// The socket the event is about, if any.
    pub fn socket(&self) -> Option<SocketId> {
        match self {
            ServerEvent::Connected(s)
            | ServerEvent::Frame(s, _)
            | ServerEvent::InvalidFrame(s, _)
            | ServerEvent::Joined(s, _, _)
            | ServerEvent::JoinRefused(s, _)
            | ServerEvent::Left(s, _, _)
            | ServerEvent::Disconnected(s, _) => Some(*s),
            _ => None,
        }
    }
}

/// A server event with its sequence number (1, 2, ...) and time.
#[derive(Clone, Debug)]
pub struct EventRecord {
    /// Position in the server's event sequence, starting at 1.
    pub seq: u64,
    /// When it happened.
    pub at: Instant,
    /// The event.
    pub event: ServerEvent,
}

/// Connection counters, since the server was built (restarts included).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// TCP connections accepted.
    pub tcp_accepted: u64,
    /// Websocket upgrades accepted.
    pub accepted: u64,
    /// Connection attempts refused (bad vsn, connect predicate, injected refusals).
    pub refused: u64,
    /// Frames received on all sockets.
    pub frames_received: u64,
    /// Frames sent on all sockets.
    pub frames_sent: u64,
    /// Broadcasts not delivered to a socket because its command queue was full.
    pub broadcasts_dropped: u64,
    /// Pong frames received on all sockets (answers to [`RawFrame::Ping`](super::RawFrame::Ping)).
    pub pongs_received: u64,
}

pub(crate) struct SocketEntry {
    pub(crate) info: SocketInfo,
    pub(crate) frames: VecDeque<Message>,
    pub(crate) cmd: Option<mpsc::Sender<SocketCmd>>,
    pub(crate) task: Option<tokio::task::AbortHandle>,
    pub(crate) conn: Option<u64>,
}

/// One TCP connection of the server.
pub(crate) struct ConnEntry {
    pub(crate) peer: SocketAddr,
    pub(crate) abort: tokio::task::AbortHandle,
    pub(crate) hung: bool,
}

/// Fault injection settings, changed by the test at any time.
#[derive(Default)]
pub(crate) struct Faults {
    pub(crate) refusal: Option<(u64, Refusal)>,
    pub(crate) silence_new: Option<Silence>,
    pub(crate) reply_delay: Duration,
}

/// The server's observable state, given to [`TestServer::wait_until`](super::TestServer::wait_until)
/// predicates. Read it through its methods.
pub struct ServerState {
    pub(crate) running: Option<SocketAddr>,
    pub(crate) sockets: BTreeMap<SocketId, SocketEntry>,
    pub(crate) past: VecDeque<SocketEntry>,
    pub(crate) events: VecDeque<EventRecord>,
    pub(crate) next_seq: u64,
    pub(crate) counters: Counters,
    pub(crate) record_frames: bool,
    pub(crate) conns: std::collections::HashMap<u64, ConnEntry>,
    pub(crate) faults: Faults,
}

impl ServerState {
    pub(crate) fn new(record_frames: bool) -> Self {
        ServerState {
            running: None,
            sockets: BTreeMap::new(),
            past: VecDeque::new(),
            events: VecDeque::new(),
            next_seq: 1,
            counters: Counters::default(),
            record_frames,
            conns: std::collections::HashMap::new(),
            faults: Faults::default(),
        }
    }

    /// Whether the server is listening, and where.
    pub fn listening(&self) -> Option<SocketAddr> {
        self.running
    }

    /// The connected sockets, in connection order.
    pub fn sockets(&self) -> impl Iterator<Item = &SocketInfo> {
        self.sockets.values().map(|e| &e.info)
    }

    /// How many sockets are connected.
    pub fn socket_count(&self) -> usize {
        self.sockets.len()
    }

    /// How many TCP connections are open (websockets, connections still in their HTTP
    /// handshake, and hung ones): a connection counts until its TCP socket is closed.
    pub fn open_connections(&self) -> usize {
        self.conns.len()
    }

    /// A socket by id: connected, or one of the last [`PAST_SOCKETS`] disconnected.
    pub fn socket(&self, id: SocketId) -> Option<&SocketInfo> {
        self.entry(id).map(|e| &e.info)
    }

    /// The frames a socket received (the last [`FRAME_HISTORY`]), oldest first.
    pub fn frames(&self, id: SocketId) -> Option<&VecDeque<Message>> {
        self.entry(id).map(|e| &e.frames)
    }

    /// The sockets that have joined a topic.
    pub fn joined_to(&self, topic: &str) -> Vec<SocketId> {
        self.sockets
            .values()
            .filter(|e| e.info.channels.contains_key(topic))
            .map(|e| e.info.id)
            .collect()
    }

    /// The recent events (the last [`EVENT_HISTORY`]), oldest first.
    pub fn events(&self) -> impl Iterator<Item = &EventRecord> {
        self.events.iter()
    }

    /// The sequence number of the latest event (0 if none yet).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// The connection counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    fn entry(&self, id: SocketId) -> Option<&SocketEntry> {
        self.sockets
            .get(&id)
            .or_else(|| self.past.iter().rev().find(|e| e.info.id == id))
    }

    pub(crate) fn push_event(&mut self, event: ServerEvent) {
        if self.events.len() >= EVENT_HISTORY {
            self.events.pop_front();
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.events.push_back(EventRecord {
            seq,
            at: Instant::now(),
            event,
        });
    }

    pub(crate) fn record_frame(&mut self, id: SocketId, msg: &Message) {
        self.counters.frames_received += 1;
        let record = self.record_frames;
        if let Some(e) = self.sockets.get_mut(&id) {
            e.info.frames_received += 1;
            if record {
                if e.frames.len() >= FRAME_HISTORY {
                    e.frames.pop_front();
                }
                e.frames.push_back(msg.clone());
            }
        }
        if record {
            self.push_event(ServerEvent::Frame(id, msg.clone()));
        }
    }

    /// Takes one injected refusal of the given level (TCP or HTTP), if one is pending.
    pub(crate) fn take_refusal(&mut self, tcp_level: bool) -> Option<Refusal> {
        let (n, refusal) = self.faults.refusal?;
        if refusal.is_tcp_level() != tcp_level {
            return None;
        }
        self.faults.refusal = match n {
            0 | 1 => None,
            u64::MAX => Some((n, refusal)),
            n => Some((n - 1, refusal)),
        };
        Some(refusal)
    }

    /// Moves a socket to the past list; returns whether it was connected.
    pub(crate) fn remove_socket(&mut self, id: SocketId, reason: DisconnectReason) -> bool {
        let Some(mut entry) = self.sockets.remove(&id) else {
            return false;
        };
        entry.cmd = None;
        entry.task = None;
        entry.conn = None;
        let topics: Vec<Topic> = std::mem::take(&mut entry.info.channels)
            .into_keys()
            .collect();
        for topic in topics {
            self.push_event(ServerEvent::Left(id, topic, LeaveReason::Disconnected));
        }
        entry.info.disconnect = Some(reason.clone());
        if self.past.len() >= PAST_SOCKETS {
            self.past.pop_front();
        }
        self.past.push_back(entry);
        self.push_event(ServerEvent::Disconnected(id, reason));
        true
    }
}

/// A wait ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timed out after {0:?}")]
pub struct Timeout(pub Duration);
