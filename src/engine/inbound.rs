//! Routing of decoded frames from the server: heartbeat replies, replies to joins,
//! leaves and pushes, channel crashes and closes, and server pushes.

use std::time::Instant;

use log::{debug, info, warn};

use super::effect::Notification;
use super::topics::{ChannelState, TopicCloseReason};
use super::Engine;
use crate::message::{Event, Message, Payload, Ref, Reply, ReplyStatus, Topic};

impl Engine {
    /// Handles a decoded frame from the server. Frames that match nothing the client
    /// sent (stale join_refs, unknown topics or refs) are dropped with a debug log.
    ///
    /// The engine does not decode: the caller decodes each frame with the configured
    /// [`Serializer`](crate::codec::Serializer) (`config().serializer`) and counts it
    /// with [`Engine::record_inbound`]. An undecodable frame is the caller's to report
    /// as [`DisconnectReason::InvalidFrame`](crate::DisconnectReason::InvalidFrame).
    pub fn handle_message(&mut self, msg: Message, now: Instant) {
        if msg.topic.is_phoenix() {
            return self.phoenix_frame(&msg, now);
        }
        let Some(ch) = self.channels.get(&msg.topic) else {
            debug!(target: crate::logging::WIRE, "dropped {} for unknown topic {}", msg.event, msg.topic);
            return;
        };
        let state = ch.state;
        let current = state.join_ref();
        if let Some(jr) = &msg.join_ref {
            let n = jr.as_u64();
            if n.is_none() || n != current {
                debug!(target: crate::logging::WIRE,
                    "dropped stale {} on {} (join_ref {jr}, current {current:?})",
                    msg.event, msg.topic
                );
                return;
            }
        }
        let Message {
            join_ref,
            reference,
            topic,
            event,
            payload,
        } = msg;
        let reference = reference.as_ref().and_then(Ref::as_u64);
        match event {
            Event::Reply(status) => self.reply(topic, state, reference, status, payload, now),
            Event::Error | Event::Close => {
                // phx_error / phx_close carry ref == join_ref (V1 frames have no join_ref).
                let current = current.filter(|jr| join_ref.is_some() || reference == Some(*jr));
                match current {
                    Some(jr) => self.channel_ended(topic, state, jr, event, payload, now),
                    None => {
                        debug!(target: crate::logging::WIRE, "dropped stale {event} on {topic}")
                    }
                }
            }
            event => self.server_push(topic, state, event, payload),
        }
    }

    /// A frame on the `phoenix` topic: a heartbeat reply, or nothing of ours.
    fn phoenix_frame(&mut self, msg: &Message, now: Instant) {
        if let (Event::Reply(_), Some(r)) =
            (&msg.event, msg.reference.as_ref().and_then(Ref::as_u64))
        {
            if self.heartbeat_replied(r, now) {
                return;
            }
        }
        debug!(target: crate::logging::WIRE,
            "dropped {} on the phoenix topic (ref {:?})",
            msg.event, msg.reference
        );
    }

    /// A `phx_reply`: to the join in flight, the leave in flight, or a push.
    fn reply(
        &mut self,
        topic: Topic,
        state: ChannelState,
        reference: Option<u64>,
        status: ReplyStatus,
        response: Payload,
        now: Instant,
    ) {
        let Some(r) = reference else {
            debug!(target: crate::logging::WIRE, "dropped reply without ref on {topic}");
            return;
        };
        let reply = Reply { status, response };
        match state {
            ChannelState::Joining { join_ref, timer } if r == join_ref => {
                self.timers.cancel(timer);
                self.join_replied(topic, join_ref, reply, now);
            }
            ChannelState::Leaving { leave_ref, .. } if r == leave_ref => {
                self.finish_leave(&topic, Ok(()), now);
            }
            _ => match self.pending.get(r) {
                Some(p) if p.topic == topic => self.resolve_pending(r, Ok(reply)),
                _ => {
                    debug!(target: crate::logging::WIRE, "dropped reply to unknown ref {r} on {topic}")
                }
            },
        }
    }

    /// `phx_error` or `phx_close` of the current join: the leave in flight is done, or
    /// the server closed the channel (it leaves the registry), or it crashed.
    fn channel_ended(
        &mut self,
        topic: Topic,
        state: ChannelState,
        join_ref: u64,
        event: Event,
        payload: Payload,
        now: Instant,
    ) {
        if let ChannelState::Leaving { .. } = state {
            // Our leave is done, whether the channel closed or crashed meanwhile.
            debug!(target: crate::logging::CHANNEL, "{event} on {topic} during the leave: left");
            self.finish_leave(&topic, Ok(()), now);
        } else if event == Event::Close {
            info!(target: crate::logging::CHANNEL, "{topic} closed by the server (join_ref {join_ref})");
            self.registry.remove(topic.as_str());
            self.finish_leave(&topic, Ok(()), now);
        } else {
            warn!(target: crate::logging::CHANNEL, "{topic} crashed on the server (join_ref {join_ref})");
            self.channel_errored(topic, TopicCloseReason::Crashed(payload));
        }
    }

    /// A push or broadcast from the server: for the user if the topic is joined (or
    /// joining, or being left).
    fn server_push(&mut self, topic: Topic, state: ChannelState, event: Event, payload: Payload) {
        match state {
            ChannelState::Joined { .. }
            | ChannelState::Joining { .. }
            | ChannelState::Leaving { .. } => self.notify(Notification::Message {
                topic,
                event,
                payload,
            }),
            ChannelState::Waiting { .. } | ChannelState::RejoinScheduled { .. } => {
                debug!(target: crate::logging::WIRE, "dropped {event} on {topic}: not joined")
            }
        }
    }
}
