//! The handle that callbacks use to act on the connection.

use std::time::{Duration, Instant};

use actix::Context;
use serde_json::Value;

use super::link::Link;
use super::{Client, SlipstreamActor};
use crate::config::Config;
use crate::engine::{Engine, Status, TopicRegistry, TopicStatus};
use crate::error::PushError;
use crate::message::{Event, Payload, Ref, Topic};

/// The connection as seen from a callback: join, leave, push, connect, disconnect,
/// status.
///
/// Every action is carried out in order. A push is encoded into the send buffer at
/// once, while nothing is queued ahead of it (so a callback that pushes many times
/// holds encoded frames, not every payload); the rest is carried out as soon as the
/// callback returns.
pub struct Socket<'a, A: SlipstreamActor> {
    engine: &'a mut Engine,
    link: &'a mut Link,
    ctx: &'a mut Context<Client<A>>,
}

impl<'a, A: SlipstreamActor> Socket<'a, A> {
    pub(crate) fn new(
        engine: &'a mut Engine,
        link: &'a mut Link,
        ctx: &'a mut Context<Client<A>>,
    ) -> Self {
        Socket { engine, link, ctx }
    }

    /// Joins a topic with params and records it in the registry, so it is rejoined
    /// after every reconnect. If the topic is already wanted with the same params,
    /// nothing is sent; if it is wanted with other params, nothing changes and a
    /// warning is logged (leave it first, then join with the new params: see
    /// [`Join`](crate::Join)). A join asked for while the topic's leave is in flight
    /// is sent once the leave is done.
    pub fn join(&mut self, topic: impl Into<Topic>, params: Value) {
        self.engine.join(topic, params, None, Instant::now());
    }

    /// Rejoins a registered topic with its registered params; false if it is not registered.
    pub fn rejoin(&mut self, topic: &str) -> bool {
        self.engine.rejoin(topic, Instant::now())
    }

    /// Rejoins every registered topic that is not joined or joining (what the client
    /// does at each connect unless [`Config::rejoin_on_connect`] is off).
    pub fn rejoin_registered(&mut self) {
        self.engine.rejoin_registered(Instant::now());
    }

    /// Leaves a topic and removes it from the registry. Fire-and-forget:
    /// [`SlipstreamActor::handle_leave`] runs once the topic is left (the
    /// [`Leave`](crate::Leave) message is the awaitable form).
    pub fn leave(&mut self, topic: &str) {
        self.engine.leave(topic, None, Instant::now());
    }

    /// Pushes an event with the default push timeout. The outcome reaches
    /// [`SlipstreamActor::handle_reply`] with the returned ref.
    ///
    /// # Errors
    /// [`PushError::NotJoined`], [`PushError::BufferFull`], [`PushError::Encode`], or
    /// [`PushError::Stopped`] while the client is stopping, at once; nothing reaches
    /// `handle_reply` then.
    pub fn push(
        &mut self,
        topic: &str,
        event: impl Into<Event>,
        payload: impl Into<Payload>,
    ) -> Result<Ref, PushError> {
        let timeout = self.engine.config().push_timeout;
        self.push_with_timeout(topic, event, payload, timeout)
    }

    /// Pushes an event with its own timeout. See [`push`](Self::push).
    ///
    /// # Errors
    /// As [`push`](Self::push).
    pub fn push_with_timeout(
        &mut self,
        topic: &str,
        event: impl Into<Event>,
        payload: impl Into<Payload>,
        timeout: Duration,
    ) -> Result<Ref, PushError> {
        let r = self.engine.push(
            topic,
            event.into(),
            payload.into(),
            timeout,
            None,
            Instant::now(),
        );
        self.write_sends();
        r
    }

    /// Encodes the frames at the head of the engine's queue into the send buffer now,
    /// so a callback that pushes many times holds encoded frames rather than every
    /// payload until it returns. Only frames at the head go: nothing is reordered.
    fn write_sends(&mut self) {
        while let Some(message) = self.engine.poll_send() {
            self.link.write(self.engine, message);
        }
    }

    /// Timers held by the state machine (for leak checks in tests).
    #[doc(hidden)]
    pub fn timer_count(&self) -> usize {
        self.engine.timer_count()
    }

    /// Requests of the state machine still waiting for an outcome (for leak checks in tests).
    #[doc(hidden)]
    pub fn open_requests(&self) -> usize {
        self.engine.open_requests()
    }

    /// Connects, unless connected or connecting. Ignored while the client is
    /// stopping (in `handle_disconnect` with [`DisconnectReason::Stopped`](crate::DisconnectReason::Stopped)).
    pub fn connect(&mut self) {
        self.engine.connect();
    }

    /// Closes the connection (if any) and connects again at once. Ignored while the
    /// client is stopping.
    pub fn reconnect(&mut self) {
        self.engine.reconnect(Instant::now());
    }

    /// Closes the connection with code 1000. The default `handle_disconnect` does
    /// not reconnect after it; topics stay registered for a later `connect`.
    pub fn disconnect(&mut self) {
        self.engine.disconnect(Instant::now());
    }

    /// A snapshot of the connection and topics.
    pub fn status(&self) -> Status {
        self.engine.status()
    }

    /// The state of one topic, if known.
    pub fn topic_status(&self, topic: &str) -> Option<TopicStatus> {
        self.engine.topic_status(topic)
    }

    /// The join_ref of a topic's current join, if a join was sent (phoenix.js
    /// `channel.joinRef()`): it changes at every rejoin, so it tells the
    /// presence tracker when a new join began.
    pub fn join_ref(&self, topic: impl AsRef<str>) -> Option<Ref> {
        self.engine.join_ref(topic.as_ref())
    }

    /// Whether the websocket is open.
    pub fn is_connected(&self) -> bool {
        self.engine.is_connected()
    }

    /// The topics the client wants joined, with their params.
    pub fn registry(&self) -> &TopicRegistry {
        self.engine.registry()
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        self.engine.config()
    }

    /// The actor's context, to spawn futures, run timers or get the actor's address.
    pub fn context(&mut self) -> &mut Context<Client<A>> {
        self.ctx
    }
}
