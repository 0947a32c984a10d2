//! The sans-IO engine: the whole Phoenix Channels client protocol, with no I/O, no
//! runtime and no clock of its own.
//!
//! [`Engine`] takes inputs and queues [`Effect`]s, in the manner of quinn-proto or
//! tungstenite's protocol core:
//!
//! - user commands: [`join`](Engine::join), [`leave`](Engine::leave),
//!   [`push`](Engine::push), [`connect`](Engine::connect),
//!   [`disconnect`](Engine::disconnect), [`reconnect`](Engine::reconnect),
//!   [`stop`](Engine::stop) / [`start`](Engine::start);
//! - connection events: [`handle_connected`](Engine::handle_connected),
//!   [`handle_closed`](Engine::handle_closed), [`send_failed`](Engine::send_failed);
//! - decoded frames: [`handle_message`](Engine::handle_message) (the caller decodes
//!   with the configured [`Serializer`](crate::codec::Serializer));
//! - time: [`handle_timeout`](Engine::handle_timeout) with `now`, when
//!   [`poll_timeout`](Engine::poll_timeout) says.
//!
//! Every effect comes out of [`poll_effect`](Engine::poll_effect): write a message,
//! open or close the connection, resolve request N (a waiter is a [`RequestId`] the
//! caller picked, never a channel), or notify the user ([`Notification`]: one per
//! [`SlipstreamActor`](crate::SlipstreamActor) callback; two of them ask for a
//! decision, fed back with [`decide_disconnect`](Engine::decide_disconnect) and
//! [`decide_topic_close`](Engine::decide_topic_close)). [`drive`] is the loop that
//! does all of that through a [`Driver`]: the actor [`Client`](crate::Client) is one.
//!
//! Driving the engine by hand: connect, join a topic, answer the join, push.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use actix_slipstream::codec::Message;
//! use actix_slipstream::engine::{Effect, Engine, Notification, Outcome, RequestId};
//! use actix_slipstream::{Config, Event, Payload, ReplyStatus};
//! use serde_json::json;
//!
//! let now = Instant::now();
//! let mut engine = Engine::new(Config::new("ws://127.0.0.1:4000/socket"));
//! engine.connect();
//! let Some(Effect::Connect { conn }) = engine.poll_effect() else { panic!() };
//! // ... the caller opens the websocket, then:
//! engine.handle_connected(conn, now);
//! assert!(matches!(engine.poll_effect(), Some(Effect::Notify(Notification::Connected))));
//!
//! engine.join("room:1", json!({}), Some(RequestId(1)), now);
//! let Some(Effect::Send(join)) = engine.poll_effect() else { panic!() };
//! assert_eq!(join.event, Event::Join);
//!
//! // The server's reply, decoded by the caller.
//! let reply = Message::new(
//!     join.join_ref.clone(),
//!     join.reference.clone(),
//!     "room:1",
//!     Event::Reply(ReplyStatus::Ok),
//!     Payload::Json(json!({"welcome": true})),
//! );
//! engine.handle_message(reply, now);
//! match engine.poll_effect() {
//!     Some(Effect::Resolve { request, outcome: Outcome::Join(Ok(response)) }) => {
//!         assert_eq!(request, RequestId(1));
//!         assert_eq!(response, Payload::Json(json!({"welcome": true})));
//!     }
//!     other => panic!("{other:?}"),
//! }
//! assert!(matches!(engine.poll_effect(), Some(Effect::Notify(Notification::Joined { .. }))));
//!
//! // A push goes out at once on a joined topic; its timeout is one of the engine's timers.
//! engine.push("room:1", Event::from("ping"), Payload::empty(), Duration::from_secs(5), None, now).unwrap();
//! assert!(matches!(engine.poll_effect(), Some(Effect::Send(m)) if m.event == Event::from("ping")));
//! assert!(engine.poll_timeout().is_some());
//! ```

pub(crate) mod connection;
mod drive;
pub(crate) mod effect;
mod inbound;
mod inflight;
mod pushes;
pub(crate) mod registry;
pub(crate) mod status;
mod timers;
pub(crate) mod topics;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::time::Instant;

use crate::backoff::BackoffState;
use crate::config::Config;
use crate::fxhash::FxHashMap;
use crate::message::{Message, Topic};

pub use drive::{drive, Driver};
pub use effect::{ConnId, Effect, Notification, Outcome, RequestId};

// Public at the crate root (the everyday API), used here by their short names.
pub(crate) use connection::{ConnectError, DisconnectReason};
pub(crate) use effect::{AfterDisconnect, AfterTopicClose};
pub(crate) use registry::TopicRegistry;
pub(crate) use status::{Status, TopicStatus, Traffic};
pub(crate) use topics::TopicCloseReason;

use connection::{Conn, DisconnectCounts, Heartbeat};
use inflight::InFlight;
use timers::Timers;
use topics::Channel;

/// The client's protocol engine. See the [module documentation](self).
#[derive(Debug)]
pub struct Engine {
    config: Config,
    next_ref: u64,
    gen: u64,
    conn: Conn,
    reconnect: BackoffState,
    /// Attempts under the refused-port schedule.
    reconnect_refused: BackoffState,
    /// Whether the last connect failed because the port refused it.
    last_connect_refused: bool,
    /// Each channel in a box of its own: a table has room for at least four entries,
    /// and a socket with one topic then holds four small slots and one channel
    /// rather than room for four channels.
    channels: FxHashMap<Topic, Box<Channel>>,
    registry: TopicRegistry,
    pending: InFlight,
    timers: Timers,
    heartbeat: Heartbeat,
    out: VecDeque<Effect>,
    connects: u64,
    disconnects: u64,
    disconnects_by_reason: DisconnectCounts,
    rejoins: u64,
    traffic: Traffic,
    /// The client is stopping (or stopped, or restarting under a supervisor): no
    /// connect is started and no push is accepted until [`Engine::start`].
    stopped: bool,
}

impl Engine {
    /// A disconnected engine for this configuration. Nothing happens until
    /// [`connect`](Engine::connect).
    pub fn new(config: Config) -> Self {
        let reconnect = config.reconnect_backoff.start();
        let reconnect_refused = crate::backoff::refused_policy(&config).start();
        Engine {
            config,
            next_ref: 0,
            gen: 0,
            conn: Conn::Disconnected,
            reconnect,
            reconnect_refused,
            last_connect_refused: false,
            channels: FxHashMap::default(),
            registry: TopicRegistry::new(),
            pending: InFlight::default(),
            timers: Timers::default(),
            heartbeat: Heartbeat::default(),
            out: VecDeque::new(),
            connects: 0,
            disconnects: 0,
            disconnects_by_reason: DisconnectCounts::new(),
            rejoins: 0,
            traffic: Traffic::default(),
            stopped: false,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The topics the client wants joined, with their params.
    pub fn registry(&self) -> &TopicRegistry {
        &self.registry
    }

    /// Whether the socket is connected.
    pub fn is_connected(&self) -> bool {
        matches!(self.conn, Conn::Connected { .. })
    }

    /// The next effect to carry out, in order; `None` once there is nothing to do.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        let effect = self.out.pop_front();
        if effect.is_none() && self.out.capacity() > 16 {
            // A burst (joins of many topics) is over: give the queue's memory back.
            self.out = VecDeque::new();
        }
        effect
    }

    /// The next effect if it is an [`Effect::Send`], else `None` (the effect stays
    /// queued). Lets a caller write frames while a callback still runs, without
    /// reordering them against the other effects; [`poll_effect`](Engine::poll_effect)
    /// returns everything else.
    pub fn poll_send(&mut self) -> Option<Message> {
        if !matches!(self.out.front(), Some(Effect::Send(_))) {
            return None;
        }
        match self.out.pop_front() {
            Some(Effect::Send(message)) => Some(message),
            _ => None,
        }
    }

    /// When to call [`handle_timeout`](Engine::handle_timeout) next: the earliest timer's
    /// deadline, if any timer is armed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    fn next_ref(&mut self) -> u64 {
        self.next_ref += 1;
        self.next_ref
    }

    fn send(&mut self, msg: Message) {
        self.out.push_back(Effect::Send(msg));
    }

    fn notify(&mut self, notification: Notification) {
        self.out.push_back(Effect::Notify(notification));
    }
}
