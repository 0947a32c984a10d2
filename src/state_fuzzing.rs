//! A hidden API over [`State`] for the state-machine fuzz target (`fuzz/fuzz_targets/state.rs`),
//! behind the `fuzzing` feature. It is not part of the public API and may change at any time.
//!
//! The state machine's inputs are crate-private (they take the actor's reply channels and
//! return crate-private effects); these wrappers let a program outside the crate drive it
//! exactly as the actor does: feed inputs, pop effects one at a time and answer callbacks.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::oneshot;

use super::{AfterDisconnect, AfterTopicClose, Callback, DisconnectReason, Effect, State};
use crate::channel::{ReplyTo, TopicCloseReason};
use crate::error::{JoinError, LeaveError, PushError};
use crate::message::{Event, Message, Payload, Ref, Reply, Topic};

/// Receives the outcome of a push made with a waiter (the actor's `Push` message).
pub type PushReceiver = oneshot::Receiver<Result<Reply, PushError>>;
/// Receives the outcome of a join made with a waiter (the actor's `Join` message).
pub type JoinReceiver = oneshot::Receiver<Result<Payload, JoinError>>;
/// Receives the outcome of a leave made with a waiter (the actor's `Leave` message).
pub type LeaveReceiver = oneshot::Receiver<Result<(), LeaveError>>;

/// An effect of the state machine, as the actor would carry it out.
#[derive(Debug)]
pub enum FuzzEffect {
    /// Write this message.
    Send(Message),
    /// Open a connection of this generation.
    Connect {
        /// The generation.
        gen: u64,
    },
    /// Close the current connection with this code.
    Close {
        /// The close code.
        code: u16,
    },
    /// `handle_connect`: answer with [`State::fuzz_rejoin_registered`] (or not), then
    /// [`State::fuzz_after_connect`].
    Connected,
    /// `handle_disconnect`: answer with [`State::fuzz_after_disconnect`].
    Disconnected(DisconnectReason),
    /// `handle_join`.
    Joined(Topic),
    /// `handle_topic_close`: answer with [`State::fuzz_after_topic_close`].
    TopicClosed(Topic, TopicCloseReason),
    /// `handle_leave`.
    Left(Topic),
    /// `handle_message`.
    Message(Topic, Event),
    /// `handle_reply`, for a push made without a waiter.
    Reply {
        /// The topic.
        topic: Topic,
        /// The push's ref.
        reference: Ref,
        /// Its outcome.
        result: Result<Reply, PushError>,
    },
}

#[doc(hidden)]
impl State {
    /// The next effect, if any.
    pub fn fuzz_pop_effect(&mut self) -> Option<FuzzEffect> {
        Some(match self.pop_effect()? {
            Effect::Send(m) => FuzzEffect::Send(m),
            Effect::Connect { gen } => FuzzEffect::Connect { gen },
            Effect::Close { code } => FuzzEffect::Close { code },
            Effect::Callback(cb) => match cb {
                Callback::Connected => FuzzEffect::Connected,
                Callback::Disconnected(r) => FuzzEffect::Disconnected(r),
                Callback::Joined { topic, .. } => FuzzEffect::Joined(topic),
                Callback::TopicClosed { topic, reason } => FuzzEffect::TopicClosed(topic, reason),
                Callback::Left { topic } => FuzzEffect::Left(topic),
                Callback::Message { topic, event, .. } => FuzzEffect::Message(topic, event),
                Callback::Reply {
                    topic,
                    reference,
                    result,
                } => FuzzEffect::Reply {
                    topic,
                    reference,
                    result,
                },
            },
        })
    }

    /// The websocket of generation `gen` opened.
    pub fn fuzz_on_connected(&mut self, gen: u64, now: Instant) {
        self.on_connected(gen, now);
    }

    /// After `handle_connect` ran.
    pub fn fuzz_after_connect(&mut self, now: Instant) {
        self.after_connect(now);
    }

    /// `socket.rejoin_registered()` (the default `handle_connect`).
    pub fn fuzz_rejoin_registered(&mut self, now: Instant) {
        self.rejoin_registered(now);
    }

    /// The connection of generation `gen` failed or ended.
    pub fn fuzz_on_closed(&mut self, gen: u64, reason: DisconnectReason, now: Instant) {
        self.on_closed(gen, reason, now);
    }

    /// The decision returned by `handle_disconnect`.
    pub fn fuzz_after_disconnect(&mut self, decision: AfterDisconnect, now: Instant) {
        self.after_disconnect(decision, now);
    }

    /// The decision returned by `handle_topic_close`.
    pub fn fuzz_after_topic_close(
        &mut self,
        topic: &Topic,
        decision: AfterTopicClose,
        now: Instant,
    ) {
        self.after_topic_close(topic, decision, now);
    }

    /// A `Join` (with a waiter, as the `Join` message) or `socket.join` (without).
    pub fn fuzz_join(
        &mut self,
        topic: &str,
        params: Value,
        waiter: bool,
        now: Instant,
    ) -> Option<JoinReceiver> {
        let (tx, rx) = if waiter {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        self.join(Topic::from(topic), params, tx, now);
        rx
    }

    /// A `Push` (with a waiter, as the `Push` message) or `socket.push` (outcome through
    /// [`FuzzEffect::Reply`]).
    pub fn fuzz_push(
        &mut self,
        topic: &str,
        event: Event,
        payload: Payload,
        timeout: Duration,
        waiter: bool,
        now: Instant,
    ) -> (Result<Ref, PushError>, Option<PushReceiver>) {
        let (reply_to, rx) = if waiter {
            let (tx, rx) = oneshot::channel();
            (ReplyTo::Sender(tx), Some(rx))
        } else {
            (ReplyTo::Callback, None)
        };
        (self.push(topic, event, payload, timeout, reply_to, now), rx)
    }

    /// A push could not be written.
    pub fn fuzz_send_failed(&mut self, reference: &Ref, error: PushError) {
        self.send_failed(reference, error);
    }

    /// A decoded frame from the server.
    pub fn fuzz_on_message(&mut self, msg: Message, now: Instant) {
        self.on_message(msg, now);
    }

    /// The actor stops and is restarted by its supervisor (without running `init`):
    /// every open request gets its outcome, the registry is kept.
    pub fn fuzz_stop_connection(&mut self, now: Instant) {
        self.stop(now);
        self.start();
    }

    /// A `Leave` (with a waiter, as the `Leave` message) or `socket.leave` (without).
    pub fn fuzz_leave(&mut self, topic: &str, waiter: bool, now: Instant) -> Option<LeaveReceiver> {
        let (tx, rx) = if waiter {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        self.leave_with(topic, tx, now);
        rx
    }

    /// Join waiters held, over all topics (those of joins asked for during a leave included).
    pub fn fuzz_join_waiters(&self) -> usize {
        self.channels
            .values()
            .map(|c| c.join_waiters.len() + c.join_after_leave.as_ref().map_or(0, Vec::len))
            .sum()
    }
}
