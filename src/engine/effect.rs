//! What the engine asks of its caller: [`Effect`]s, the [`Notification`]s among them,
//! and the identities they carry ([`RequestId`], [`ConnId`]).

use std::fmt;

use crate::engine::{DisconnectReason, TopicCloseReason};
use crate::error::{JoinError, LeaveError, PushError};
use crate::message::{Event, Message, Payload, Ref, Reply, Topic};

/// The identity of a request whose outcome someone awaits (a join, leave or push made
/// with a waiter). The caller picks it: any number unique among its open requests
/// (the actor uses a slot index). Its outcome comes back exactly once, as
/// [`Effect::Resolve`], unless the caller [cancels](super::Engine::cancel) it first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request {}", self.0)
    }
}

/// The identity of one connection attempt (a generation): every
/// [`Effect::Connect`] carries a new one, and the caller reports the connection's
/// opening and end with it, so reports about an older connection are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "connection {}", self.0)
    }
}

/// The outcome of a request, by kind.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Outcome {
    /// A join: its response, or why it failed.
    Join(Result<Payload, JoinError>),
    /// A leave: done, or why it was not confirmed.
    Leave(Result<(), LeaveError>),
    /// A push: its reply, or why there was none.
    Push(Result<Reply, PushError>),
}

/// Something the engine wants done. Take them with
/// [`Engine::poll_effect`](super::Engine::poll_effect), in order, or let
/// [`drive`](super::drive) hand them to a [`Driver`](super::Driver).
#[derive(Debug)]
#[non_exhaustive]
pub enum Effect {
    /// Encode this message and write it on the current connection. If it cannot be
    /// written, report it with [`Engine::send_failed`](super::Engine::send_failed).
    Send(Message),
    /// Open a connection; report the outcome with
    /// [`Engine::handle_connected`](super::Engine::handle_connected) or
    /// [`Engine::handle_closed`](super::Engine::handle_closed) with this id.
    Connect {
        /// The new connection's id.
        conn: ConnId,
    },
    /// Close the current connection, sending a close frame with this code.
    Close {
        /// The websocket close code.
        code: u16,
    },
    /// The outcome of the request `request`: it comes exactly once.
    Resolve {
        /// The request.
        request: RequestId,
        /// Its outcome.
        outcome: Outcome,
    },
    /// Tell the user something (a callback of [`SlipstreamActor`](crate::SlipstreamActor)).
    Notify(Notification),
}

/// Something to tell the user: one per callback of
/// [`SlipstreamActor`](crate::SlipstreamActor). Two of them ask for a decision,
/// which the caller feeds back ([`Engine::decide_disconnect`](super::Engine::decide_disconnect),
/// [`Engine::decide_topic_close`](super::Engine::decide_topic_close)); [`drive`](super::drive)
/// does that by itself.
#[derive(Debug)]
#[non_exhaustive]
pub enum Notification {
    /// The socket connected (`handle_connect`). The registry's rejoins (unless turned
    /// off) and the joins asked for while disconnected are already sent.
    Connected,
    /// The socket disconnected or a connect failed (`handle_disconnect`).
    Disconnected {
        /// Why.
        reason: DisconnectReason,
        /// What the engine does unless told otherwise: reconnect, except after a
        /// requested disconnect or with an invalid configuration.
        default: AfterDisconnect,
    },
    /// A join succeeded (`handle_join`).
    Joined {
        /// The topic.
        topic: Topic,
        /// The join response.
        response: Payload,
    },
    /// A topic closed without being left (`handle_topic_close`).
    TopicClosed {
        /// The topic.
        topic: Topic,
        /// Why.
        reason: TopicCloseReason,
        /// What the [`RetryPolicy`](crate::RetryPolicy) says to do.
        default: AfterTopicClose,
    },
    /// A topic was left (`handle_leave`).
    Left {
        /// The topic.
        topic: Topic,
    },
    /// A push or broadcast on a joined topic (`handle_message`).
    Message {
        /// The topic.
        topic: Topic,
        /// The event.
        event: Event,
        /// The payload.
        payload: Payload,
    },
    /// The outcome of a push made without a waiter (`handle_reply`).
    Reply {
        /// The topic.
        topic: Topic,
        /// The push's ref.
        reference: Ref,
        /// The reply, or why there was none.
        result: Result<Reply, PushError>,
    },
}

/// What to do after a disconnect; returned by
/// [`handle_disconnect`](crate::SlipstreamActor::handle_disconnect), which gets the
/// engine's default as an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AfterDisconnect {
    /// Reconnect after the next reconnect backoff delay.
    Reconnect,
    /// Stay disconnected until told to connect (`Reconnect` message or `socket.connect()`).
    StayDisconnected,
    /// Stop the client actor (a supervisor restarts it). For the engine alone, the same
    /// as [`StayDisconnected`](Self::StayDisconnected): stopping is the caller's business.
    Stop,
}

/// What to do after a topic closed; returned by
/// [`handle_topic_close`](crate::SlipstreamActor::handle_topic_close), which gets the
/// default of the [`RetryPolicy`](crate::RetryPolicy) as an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AfterTopicClose {
    /// Rejoin after the topic's next rejoin backoff delay.
    Rejoin,
    /// Give the topic up: it leaves the registry and its buffered pushes fail.
    Forget,
}
