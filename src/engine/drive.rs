//! The one drain loop: [`drive`] takes every queued effect, hands it to a [`Driver`],
//! and feeds the driver's decisions back. The actor, the unit tests and the fuzz
//! target all run the engine through it.

use std::time::Instant;

use super::effect::{
    AfterDisconnect, AfterTopicClose, ConnId, Effect, Notification, Outcome, RequestId,
};
use super::{DisconnectReason, Engine, TopicCloseReason};
use crate::error::PushError;
use crate::message::{Event, Message, Payload, Ref, Reply, Topic};

/// Carries out the engine's effects: one method per effect kind and one per
/// notification. The notification methods have defaults (do nothing, or take the
/// engine's default decision); the effect methods are the I/O and must be written.
///
/// Every method gets the engine back, to act on it (join, push, leave...) or report a
/// failure ([`Engine::send_failed`]); what it queues is carried out by the same
/// [`drive`] call.
pub trait Driver {
    /// Write `message` (see [`Effect::Send`]).
    fn send(&mut self, engine: &mut Engine, message: Message);

    /// Open connection `conn` (see [`Effect::Connect`]).
    fn connect(&mut self, engine: &mut Engine, conn: ConnId);

    /// Close the current connection with `code` (see [`Effect::Close`]).
    fn close(&mut self, engine: &mut Engine, code: u16);

    /// Hand `outcome` to whoever awaits `request` (see [`Effect::Resolve`]).
    fn resolve(&mut self, engine: &mut Engine, request: RequestId, outcome: Outcome);

    /// [`Notification::Connected`]. Default: nothing.
    fn connected(&mut self, engine: &mut Engine) {
        let _ = engine;
    }

    /// [`Notification::Disconnected`]: returns the decision. Default: `default`.
    fn disconnected(
        &mut self,
        engine: &mut Engine,
        reason: &DisconnectReason,
        default: AfterDisconnect,
    ) -> AfterDisconnect {
        let _ = (engine, reason);
        default
    }

    /// [`Notification::Joined`]. Default: nothing.
    fn joined(&mut self, engine: &mut Engine, topic: &Topic, response: &Payload) {
        let _ = (engine, topic, response);
    }

    /// [`Notification::TopicClosed`]: returns the decision. Default: `default`.
    fn topic_closed(
        &mut self,
        engine: &mut Engine,
        topic: &Topic,
        reason: &TopicCloseReason,
        default: AfterTopicClose,
    ) -> AfterTopicClose {
        let _ = (engine, topic, reason);
        default
    }

    /// [`Notification::Left`]. Default: nothing.
    fn left(&mut self, engine: &mut Engine, topic: &Topic) {
        let _ = (engine, topic);
    }

    /// [`Notification::Message`]. Default: nothing.
    fn message(&mut self, engine: &mut Engine, topic: Topic, event: Event, payload: Payload) {
        let _ = (engine, topic, event, payload);
    }

    /// [`Notification::Reply`]. Default: nothing.
    fn reply(
        &mut self,
        engine: &mut Engine,
        topic: Topic,
        reference: Ref,
        result: Result<Reply, PushError>,
    ) {
        let _ = (engine, topic, reference, result);
    }
}

/// Carries out every queued effect through `driver`, in order, feeding its
/// decisions back (at `now`), until the engine has nothing more to do. Returns the
/// next deadline ([`Engine::poll_timeout`]): call [`Engine::handle_timeout`] then.
pub fn drive<D: Driver>(engine: &mut Engine, driver: &mut D, now: Instant) -> Option<Instant> {
    while let Some(effect) = engine.poll_effect() {
        match effect {
            Effect::Send(message) => driver.send(engine, message),
            Effect::Connect { conn } => driver.connect(engine, conn),
            Effect::Close { code } => driver.close(engine, code),
            Effect::Resolve { request, outcome } => driver.resolve(engine, request, outcome),
            Effect::Notify(notification) => notify(engine, driver, notification, now),
        }
    }
    engine.poll_timeout()
}

fn notify<D: Driver>(
    engine: &mut Engine,
    driver: &mut D,
    notification: Notification,
    now: Instant,
) {
    match notification {
        Notification::Connected => driver.connected(engine),
        Notification::Disconnected { reason, default } => {
            let decision = driver.disconnected(engine, &reason, default);
            engine.decide_disconnect(decision, now);
        }
        Notification::Joined { topic, response } => driver.joined(engine, &topic, &response),
        Notification::TopicClosed {
            topic,
            reason,
            default,
        } => {
            let decision = driver.topic_closed(engine, &topic, &reason, default);
            engine.decide_topic_close(&topic, decision, now);
        }
        Notification::Left { topic } => driver.left(engine, &topic),
        Notification::Message {
            topic,
            event,
            payload,
        } => driver.message(engine, topic, event, payload),
        Notification::Reply {
            topic,
            reference,
            result,
        } => driver.reply(engine, topic, reference, result),
    }
}
