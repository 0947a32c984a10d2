//! Pushes: sent at once on a joined topic, buffered until the join otherwise, awaited
//! in flight, and each given exactly one outcome through [`Engine::deliver`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use log::debug;

use super::effect::{Notification, Outcome, RequestId};
use super::timers::{Timer, TimerKey};
use super::topics::{resolve, ChannelState};
use super::Engine;
use crate::error::{EncodeError, PushError};
use crate::message::{Event, Message, Payload, Ref, Reply, Topic};

/// Where the outcome of a push goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplyTo {
    /// To [`Notification::Reply`] (`handle_reply`).
    Callback,
    /// To [`Effect::Resolve`](super::Effect::Resolve) of this request (the `Push` message).
    Request(RequestId),
}

impl ReplyTo {
    pub(crate) fn request(self) -> Option<RequestId> {
        match self {
            ReplyTo::Callback => None,
            ReplyTo::Request(r) => Some(r),
        }
    }
}

/// A push made while its topic was not joined, waiting to be sent.
#[derive(Debug)]
pub(crate) struct BufferedPush {
    pub(crate) reference: u64,
    pub(crate) event: Event,
    pub(crate) payload: Payload,
    pub(crate) reply_to: ReplyTo,
    pub(crate) deadline: TimerKey,
}

/// A push sent and awaiting its reply.
#[derive(Debug)]
pub(crate) struct PendingPush {
    pub(crate) topic: Topic,
    pub(crate) reply_to: ReplyTo,
    pub(crate) deadline: TimerKey,
}

impl Engine {
    /// Pushes an event: sent now if the topic is joined, else buffered until it is.
    /// With a `waiter` (the `Push` message), the outcome comes back as
    /// [`Effect::Resolve`](super::Effect::Resolve); without, as [`Notification::Reply`]
    /// (`socket.push`). Either way exactly once, by `timeout` at the latest (counted
    /// from now, buffered time included).
    ///
    /// # Errors
    /// At once, with nothing sent and no outcome to follow: [`PushError::NotJoined`] if
    /// the topic is unknown or being left, [`PushError::BufferFull`],
    /// [`PushError::Stopped`] while the client stops, or [`PushError::Encode`] when the
    /// push can never be encoded (a binary payload on V1, a topic or event over 255
    /// bytes in a binary frame, a reserved event).
    pub fn push(
        &mut self,
        topic: &str,
        event: Event,
        payload: Payload,
        timeout: Duration,
        waiter: Option<RequestId>,
        now: Instant,
    ) -> Result<Ref, PushError> {
        self.check_push(topic, &event, &payload)?;
        let reply_to = match waiter {
            Some(request) => ReplyTo::Request(request),
            None => ReplyTo::Callback,
        };
        let connected = self.is_connected();
        let Some((topic, ch)) = self.channels.get_key_value(topic) else {
            return Err(PushError::NotJoined);
        };
        let topic = topic.clone();
        // A topic being left takes no pushes, unless a join of it waits for the leave
        // to finish: the topic is wanted again, and the push waits for that join.
        let rejoining = ch.join_after_leave.is_some();
        let buffered = ch.buffer.len();
        match ch.state {
            ChannelState::Leaving { .. } if !rejoining => Err(PushError::NotJoined),
            ChannelState::Joined { join_ref } if connected => {
                let r = self.next_ref();
                let deadline = self.push_deadline(r, &topic, now + timeout);
                let reference = Ref::from(r);
                self.send_push(
                    topic,
                    join_ref,
                    (r, reference.clone()),
                    event,
                    payload,
                    reply_to,
                    deadline,
                );
                Ok(reference)
            }
            _ => {
                if buffered >= self.config.max_buffered_pushes {
                    return Err(PushError::BufferFull);
                }
                let r = self.next_ref();
                let deadline = self.push_deadline(r, &topic, now + timeout);
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

    /// Refuses at once a push that can never be sent: a binary payload the protocol
    /// cannot carry, a reserved event, or any push while the client stops.
    fn check_push(&self, topic: &str, event: &Event, payload: &Payload) -> Result<(), PushError> {
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
        Ok(())
    }

    fn push_deadline(&mut self, reference: u64, topic: &Topic, at: Instant) -> TimerKey {
        self.timers.schedule(
            at,
            Timer::Push {
                reference,
                topic: topic.clone(),
            },
        )
    }

    /// Writes a push and waits for its reply: the one way a push goes out, made
    /// directly or released from the buffer by a join.
    #[allow(clippy::too_many_arguments)]
    fn send_push(
        &mut self,
        topic: Topic,
        join_ref: u64,
        (reference, as_ref): (u64, Ref),
        event: Event,
        payload: Payload,
        reply_to: ReplyTo,
        deadline: TimerKey,
    ) {
        self.send(Message::new(
            Some(Ref::from(join_ref)),
            Some(as_ref),
            topic.clone(),
            event,
            payload,
        ));
        self.pending.insert(
            reference,
            PendingPush {
                topic,
                reply_to,
                deadline,
            },
        );
    }

    /// Sends the pushes buffered for `topic`, now joined as `join_ref` (those whose
    /// deadline passed meanwhile fail with [`PushError::Timeout`]).
    pub(crate) fn flush_buffer(&mut self, topic: &Topic, join_ref: u64, now: Instant) {
        let Some(ch) = self.channels.get_mut(topic) else {
            return;
        };
        let buffered = std::mem::take(&mut ch.buffer);
        for b in buffered {
            if b.deadline.0 <= now {
                self.timers.cancel(b.deadline);
                self.deliver(
                    topic.clone(),
                    b.reference,
                    b.reply_to,
                    Err(PushError::Timeout),
                );
                continue;
            }
            self.send_push(
                topic.clone(),
                join_ref,
                (b.reference, Ref::from(b.reference)),
                b.event,
                b.payload,
                b.reply_to,
                b.deadline,
            );
        }
    }

    /// A push could not be written (the writer's queue is full, the connection is
    /// gone, or it could not be encoded): it fails with `error` now.
    pub fn send_failed(&mut self, reference: &Ref, error: PushError) {
        if let Some(r) = reference.as_u64() {
            self.resolve_pending(r, Err(error));
        }
    }

    /// A push's deadline passed, in flight or still buffered.
    pub(crate) fn push_timed_out(&mut self, reference: u64, topic: &Topic) {
        if self.pending.contains(reference) {
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

    /// Ends a push in flight with `result` (its reply, or why there is none).
    pub(crate) fn resolve_pending(&mut self, reference: u64, result: Result<Reply, PushError>) {
        if let Some(p) = self.pending.remove(reference) {
            self.timers.cancel(p.deadline);
            self.deliver(p.topic, reference, p.reply_to, result);
        }
    }

    /// Gives a push its outcome: the one place every push ends.
    fn deliver(
        &mut self,
        topic: Topic,
        reference: u64,
        reply_to: ReplyTo,
        result: Result<Reply, PushError>,
    ) {
        match reply_to {
            ReplyTo::Request(request) => resolve(&mut self.out, request, Outcome::Push(result)),
            ReplyTo::Callback => self.notify(Notification::Reply {
                topic,
                reference: Ref::from(reference),
                result,
            }),
        }
    }

    /// Fails buffered pushes (taken out of their topic) with `error`.
    pub(crate) fn fail_buffered(
        &mut self,
        topic: &Topic,
        buffered: VecDeque<BufferedPush>,
        error: PushError,
    ) {
        for b in buffered {
            self.timers.cancel(b.deadline);
            self.deliver(topic.clone(), b.reference, b.reply_to, Err(error.clone()));
        }
    }

    /// Fails the pushes in flight on `topic`, in the order they were made.
    pub(crate) fn fail_in_flight(&mut self, topic: &Topic, error: PushError) {
        let mut refs: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| &p.topic == topic)
            .map(|(r, _)| r)
            .collect();
        refs.sort_unstable();
        for r in refs {
            self.resolve_pending(r, Err(error.clone()));
        }
    }

    /// Fails every push in flight, in the order they were made.
    pub(crate) fn fail_all_in_flight(&mut self, error: PushError) {
        let mut in_flight: Vec<u64> = self.pending.iter().map(|(r, _)| r).collect();
        in_flight.sort_unstable();
        for r in in_flight {
            self.resolve_pending(r, Err(error.clone()));
        }
    }
}
