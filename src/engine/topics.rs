//! Topics: join, leave, rejoin, join replies and topic closes, and the per-topic
//! channel state ([`Channel`], [`ChannelState`]).

use std::collections::VecDeque;
use std::fmt;
use std::time::Instant;

use log::{debug, info, warn};
use serde_json::Value;

use super::effect::{AfterTopicClose, Effect, Notification, Outcome, RequestId};
use super::pushes::BufferedPush;
use super::status::TopicStatus;
use super::timers::{Timer, TimerKey};
use super::Engine;
use crate::backoff::BackoffState;
use crate::error::{JoinError, LeaveError, PushError};
use crate::message::{Event, Message, Payload, Ref, Reply, Topic};

/// Why a topic closed without the user leaving it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TopicCloseReason {
    /// The channel process crashed on the server (`phx_error`), with its payload.
    Crashed(Payload),
    /// The join failed.
    JoinFailed(JoinError),
}

impl fmt::Display for TopicCloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicCloseReason::Crashed(_) => f.write_str("channel crashed (phx_error)"),
            TopicCloseReason::JoinFailed(e) => write!(f, "join failed: {e}"),
        }
    }
}

/// The lifecycle state of one topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChannelState {
    /// Not joined and no join in flight: the socket is down, or the join is waiting
    /// for a decision. `explicit` marks a join asked for while disconnected, sent at
    /// the next connect even if the registry is not rejoined.
    Waiting { explicit: bool },
    /// A rejoin is scheduled after a backoff delay.
    RejoinScheduled { timer: TimerKey },
    /// `phx_join` sent, reply awaited.
    Joining { join_ref: u64, timer: TimerKey },
    /// Joined.
    Joined { join_ref: u64 },
    /// `phx_leave` sent, reply or `phx_close` awaited.
    Leaving {
        join_ref: u64,
        leave_ref: u64,
        timer: TimerKey,
    },
}

impl ChannelState {
    /// The join_ref of the current incarnation, if a join was sent.
    pub(crate) fn join_ref(&self) -> Option<u64> {
        match *self {
            ChannelState::Joining { join_ref, .. }
            | ChannelState::Joined { join_ref }
            | ChannelState::Leaving { join_ref, .. } => Some(join_ref),
            ChannelState::Waiting { .. } | ChannelState::RejoinScheduled { .. } => None,
        }
    }

    /// The timer the state holds, if any.
    fn timer(&self) -> Option<TimerKey> {
        match *self {
            ChannelState::Joining { timer, .. }
            | ChannelState::RejoinScheduled { timer }
            | ChannelState::Leaving { timer, .. } => Some(timer),
            ChannelState::Waiting { .. } | ChannelState::Joined { .. } => None,
        }
    }

    pub(crate) fn status(&self) -> TopicStatus {
        match self {
            ChannelState::Waiting { .. } | ChannelState::RejoinScheduled { .. } => {
                TopicStatus::Errored
            }
            ChannelState::Joining { .. } => TopicStatus::Joining,
            ChannelState::Joined { .. } => TopicStatus::Joined,
            ChannelState::Leaving { .. } => TopicStatus::Leaving,
        }
    }
}

/// One topic: its state, join params, buffered pushes, waiters and rejoin backoff.
pub(crate) struct Channel {
    pub(crate) state: ChannelState,
    pub(crate) params: Value,
    pub(crate) buffer: VecDeque<BufferedPush>,
    pub(crate) join_waiters: Vec<RequestId>,
    /// Waiters of the user leave in flight (state `Leaving`).
    pub(crate) leave_waiters: Vec<RequestId>,
    pub(crate) rejoin: BackoffState,
    pub(crate) rejected: u32,
    pub(crate) last_response: Option<Payload>,
    /// A join asked for while the leave was in flight, with its waiters: a fresh
    /// join, sent once the leave completes.
    pub(crate) join_after_leave: Option<Vec<RequestId>>,
}

impl fmt::Debug for Channel {
    /// Join params and payloads are left out: they may carry secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("state", &self.state)
            .field("buffered", &self.buffer.len())
            .field("join_waiters", &self.join_waiters.len())
            .field("leave_waiters", &self.leave_waiters.len())
            .field(
                "join_after_leave",
                &self.join_after_leave.as_ref().map(Vec::len),
            )
            .field("rejoin", &self.rejoin)
            .finish()
    }
}

impl Channel {
    fn new(params: Value, rejoin: BackoffState) -> Self {
        Channel {
            state: ChannelState::Waiting { explicit: false },
            params,
            buffer: VecDeque::new(),
            join_waiters: Vec::new(),
            leave_waiters: Vec::new(),
            rejoin,
            rejected: 0,
            last_response: None,
            join_after_leave: None,
        }
    }

    /// Resolves every join waiter.
    fn resolve_waiters(&mut self, out: &mut VecDeque<Effect>, result: &Result<Payload, JoinError>) {
        for request in self.join_waiters.drain(..) {
            resolve(out, request, Outcome::Join(result.clone()));
        }
    }

    /// Resolves every leave waiter.
    fn resolve_leave_waiters(
        &mut self,
        out: &mut VecDeque<Effect>,
        result: Result<(), LeaveError>,
    ) {
        for request in self.leave_waiters.drain(..) {
            resolve(out, request, Outcome::Leave(result));
        }
    }

    /// Answers the waiters of a join asked for during the leave (the join itself
    /// stays asked for).
    fn resolve_join_after_leave(&mut self, out: &mut VecDeque<Effect>, error: &JoinError) {
        if let Some(waiters) = self.join_after_leave.as_mut() {
            for request in waiters.drain(..) {
                resolve(out, request, Outcome::Join(Err(error.clone())));
            }
        }
    }

    pub(crate) fn current_join_ref(&self) -> Option<Ref> {
        self.state.join_ref().map(Ref::from)
    }
}

/// Queues the outcome of a request.
pub(crate) fn resolve(out: &mut VecDeque<Effect>, request: RequestId, outcome: Outcome) {
    out.push_back(Effect::Resolve { request, outcome });
}

impl Engine {
    /// Joins a topic (recording it in the registry). With a `waiter`, its outcome comes
    /// back as [`Effect::Resolve`] (the `Join` message); without, only the
    /// notifications tell (`socket.join`). A topic is wanted with one set of params
    /// at a time:
    ///
    /// - not wanted: recorded and joined (after the leave in flight, if one is);
    /// - wanted with the same params: nothing is sent; the waiter gets the current
    ///   join's outcome (the stored response if joined, else that of the join in
    ///   flight or of the next one);
    /// - wanted with other params: nothing changes and nothing is sent; the waiter
    ///   gets [`JoinError::ParamsConflict`] at once (a warning is logged).
    pub fn join(
        &mut self,
        topic: impl Into<Topic>,
        params: Value,
        waiter: Option<RequestId>,
        now: Instant,
    ) {
        let topic = topic.into();
        match self.registry.params(topic.as_str()) {
            Some(wanted) if *wanted != params => {
                warn!(target: crate::logging::CHANNEL,
                    "join of {topic} refused: it is already joined with other params (leave it first, then join with the new ones)"
                );
                if let Some(w) = waiter {
                    resolve(
                        &mut self.out,
                        w,
                        Outcome::Join(Err(JoinError::ParamsConflict)),
                    );
                }
                return;
            }
            Some(_) => {}
            None => self.registry.insert(topic.clone(), params.clone()),
        }
        let waiters = match waiter {
            Some(w) if self.stopped => {
                // Recorded for a supervisor restart, but this request ends here.
                resolve(&mut self.out, w, Outcome::Join(Err(JoinError::Stopped)));
                Vec::new()
            }
            w => w.into_iter().collect(),
        };
        self.join_channel(topic, params, waiters, true, now);
    }

    /// Rejoins every registered topic that is not joined or joining (what the engine
    /// does at each connect unless
    /// [`Config::rejoin_on_connect`](crate::Config::rejoin_on_connect) is off).
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

    /// The caller no longer awaits the join or leave `request` (its future was
    /// dropped): the engine forgets it and sends no outcome for it. Pushes need no
    /// cancel: each ends by its timeout.
    pub fn cancel(&mut self, request: RequestId) {
        for ch in self.channels.values_mut() {
            ch.join_waiters.retain(|r| *r != request);
            ch.leave_waiters.retain(|r| *r != request);
            if let Some(w) = ch.join_after_leave.as_mut() {
                w.retain(|r| *r != request);
            }
        }
    }

    fn join_channel(
        &mut self,
        topic: Topic,
        params: Value,
        waiters: Vec<RequestId>,
        explicit: bool,
        now: Instant,
    ) {
        let connected = self.is_connected();
        let rejoin = self.config.rejoin_backoff.start();
        let ch = self
            .channels
            .entry(topic.clone())
            .or_insert_with(|| Box::new(Channel::new(params.clone(), rejoin)));
        if let ChannelState::Leaving { .. } = ch.state {
            // A fresh join: sent once the leave is done, and its waiters get ITS outcome.
            debug!(target: crate::logging::CHANNEL, "{topic} is being left; joined again once the leave is done");
            ch.join_after_leave
                .get_or_insert_with(Vec::new)
                .extend(waiters);
            return;
        }
        ch.params = params;
        for w in waiters {
            if let (ChannelState::Joined { .. }, Some(resp)) = (ch.state, &ch.last_response) {
                resolve(&mut self.out, w, Outcome::Join(Ok(resp.clone())));
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
                self.timers.cancel(timer);
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

    pub(crate) fn send_join(&mut self, topic: &Topic, now: Instant) {
        let join_ref = self.next_ref();
        let timer = self.timers.schedule(
            now + self.config.join_timeout,
            Timer::JoinTimeout {
                topic: topic.clone(),
            },
        );
        let Some(ch) = self.channels.get_mut(topic) else {
            self.timers.cancel(timer);
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

    /// Leaves a topic and removes it from the registry. With a `waiter` (the `Leave`
    /// message), its outcome comes back as [`Effect::Resolve`] when the topic is left
    /// (leave reply, `phx_close`, `phx_error`, the connection closed, or at once when
    /// it was not joined or wanted), or [`LeaveError::Timeout`] after the leave
    /// timeout (the topic is left locally anyway). [`Notification::Left`] follows in
    /// every case where the topic was known. Nothing goes on the wire if a leave is
    /// already in flight.
    pub fn leave(&mut self, topic: &str, waiter: Option<RequestId>, now: Instant) {
        self.registry.remove(topic);
        let connected = self.is_connected();
        let Some((key, ch)) = self.channels.get_key_value(topic) else {
            debug!(target: crate::logging::CHANNEL, "leave of {topic}: not joined");
            if let Some(w) = waiter {
                resolve(&mut self.out, w, Outcome::Leave(Ok(())));
            }
            return;
        };
        let topic = key.clone();
        let state = ch.state;
        if let Some(ch) = self.channels.get_mut(&topic) {
            // A join asked for during an earlier leave is cancelled by this leave.
            ch.resolve_join_after_leave(&mut self.out, &JoinError::Left);
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
                if let Some(timer) = state.timer() {
                    self.timers.cancel(timer);
                }
                self.send_leave(topic, join_ref, now);
            }
            ChannelState::Joined { .. }
            | ChannelState::Joining { .. }
            | ChannelState::Waiting { .. }
            | ChannelState::RejoinScheduled { .. } => {
                if let Some(timer) = state.timer() {
                    self.timers.cancel(timer);
                }
                self.finish_leave(&topic, Ok(()), now);
            }
        }
    }

    /// Sends `phx_leave` for the join `join_ref` of `topic` and waits for its
    /// confirmation: the topic's join waiters and buffered pushes fail now.
    fn send_leave(&mut self, topic: Topic, join_ref: u64, now: Instant) {
        let leave_ref = self.next_ref();
        let timer = self.timers.schedule(
            now + self.config.push_timeout,
            Timer::LeaveTimeout {
                topic: topic.clone(),
            },
        );
        let mut buffered = VecDeque::new();
        if let Some(ch) = self.channels.get_mut(&topic) {
            ch.state = ChannelState::Leaving {
                join_ref,
                leave_ref,
                timer,
            };
            ch.resolve_waiters(&mut self.out, &Err(JoinError::Left));
            buffered = std::mem::take(&mut ch.buffer);
        }
        self.fail_buffered(&topic, buffered, PushError::Left);
        info!(target: crate::logging::CHANNEL, "leaving {topic} (join_ref {join_ref})");
        self.send(Message::new(
            Some(Ref::from(join_ref)),
            Some(Ref::from(leave_ref)),
            topic,
            Event::Leave,
            Payload::empty(),
        ));
    }

    /// Removes a channel that has been left and tells the user ([`Notification::Left`],
    /// and the leave waiters get `outcome`). A join asked for during the leave is sent now.
    pub(crate) fn finish_leave(
        &mut self,
        topic: &Topic,
        outcome: Result<(), LeaveError>,
        now: Instant,
    ) {
        let Some(mut ch) = self.channels.remove(topic) else {
            return;
        };
        // The leave timeout, or the join timeout of a join the server closed before
        // its reply (`phx_close` while joining).
        if let Some(timer) = ch.state.timer() {
            self.timers.cancel(timer);
        }
        ch.resolve_waiters(&mut self.out, &Err(JoinError::Left));
        ch.resolve_leave_waiters(&mut self.out, outcome);
        let again = match ch.join_after_leave.take() {
            // Pushes made since the join was asked for wait for that join.
            Some(waiters) if self.registry.contains(topic.as_str()) => {
                Some((waiters, std::mem::take(&mut ch.buffer)))
            }
            Some(waiters) => {
                for w in waiters {
                    resolve(&mut self.out, w, Outcome::Join(Err(JoinError::Left)));
                }
                None
            }
            None => None,
        };
        self.fail_buffered(topic, std::mem::take(&mut ch.buffer), PushError::Left);
        self.fail_in_flight(topic, PushError::Left);
        info!(target: crate::logging::CHANNEL, "left {topic}");
        self.notify(Notification::Left {
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
            if let Some(timer) = ch.state.timer() {
                self.timers.cancel(timer);
            }
            ch.resolve_waiters(&mut self.out, &Err(JoinError::Left));
            ch.resolve_join_after_leave(&mut self.out, &JoinError::Left);
            ch.resolve_leave_waiters(&mut self.out, Ok(()));
            self.fail_buffered(topic, std::mem::take(&mut ch.buffer), PushError::Left);
        }
        self.fail_in_flight(topic, PushError::ChannelClosed);
        info!(target: crate::logging::CHANNEL, "gave up {topic}");
    }

    /// The default decision after a topic closed, per the [`RetryPolicy`](crate::RetryPolicy).
    fn default_after_topic_close(&self, topic: &str, reason: &TopicCloseReason) -> AfterTopicClose {
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

    /// Tells the user a topic closed, with the retry policy's default decision.
    fn topic_closed(&mut self, topic: Topic, reason: TopicCloseReason) {
        let default = self.default_after_topic_close(topic.as_str(), &reason);
        self.notify(Notification::TopicClosed {
            topic,
            reason,
            default,
        });
    }

    /// Applies the decision taken after a [`Notification::TopicClosed`]. Ignored when
    /// the topic was rejoined or left meanwhile.
    pub fn decide_topic_close(&mut self, topic: &Topic, decision: AfterTopicClose, now: Instant) {
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
                let timer = self.timers.schedule(
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

    /// The reply to the join in flight.
    pub(crate) fn join_replied(&mut self, topic: Topic, join_ref: u64, reply: Reply, now: Instant) {
        if reply.is_ok() {
            if let Some(ch) = self.channels.get_mut(&topic) {
                ch.state = ChannelState::Joined { join_ref };
                ch.rejoin.reset();
                ch.rejected = 0;
                ch.last_response = Some(reply.response.clone());
                ch.resolve_waiters(&mut self.out, &Ok(reply.response.clone()));
            }
            self.mark_healthy();
            info!(target: crate::logging::CHANNEL, "joined {topic} (join_ref {join_ref})");
            self.flush_buffer(&topic, join_ref, now);
            self.notify(Notification::Joined {
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
                ch.resolve_waiters(&mut self.out, &Err(error.clone()));
            }
            self.channel_errored(topic, TopicCloseReason::JoinFailed(error));
        }
    }

    /// The channel failed (crash or failed join): not joined any more, its pushes in
    /// flight fail, the user decides what next.
    pub(crate) fn channel_errored(&mut self, topic: Topic, reason: TopicCloseReason) {
        if let Some(ch) = self.channels.get_mut(&topic) {
            if let ChannelState::Joining { timer, .. } = ch.state {
                self.timers.cancel(timer);
            }
            ch.state = ChannelState::Waiting { explicit: false };
        }
        self.fail_in_flight(&topic, PushError::ChannelClosed);
        self.topic_closed(topic, reason);
    }

    /// The join timeout of `topic` passed: leave the half-done join, fail its waiters,
    /// and let the user decide.
    pub(crate) fn join_timed_out(&mut self, topic: Topic, key: TimerKey) {
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
        ch.resolve_waiters(&mut self.out, &Err(JoinError::Timeout));
        let leave_ref = self.next_ref();
        self.send(Message::new(
            Some(Ref::from(join_ref)),
            Some(Ref::from(leave_ref)),
            topic.clone(),
            Event::Leave,
            Payload::empty(),
        ));
        self.topic_closed(topic, TopicCloseReason::JoinFailed(JoinError::Timeout));
    }

    /// The leave of `topic` was not confirmed in time: it is left anyway.
    pub(crate) fn leave_timed_out(&mut self, topic: Topic, key: TimerKey, now: Instant) {
        let matches = matches!(
            self.channels.get(&topic).map(|c| c.state),
            Some(ChannelState::Leaving { timer, .. }) if timer == key
        );
        if matches {
            debug!(target: crate::logging::CHANNEL, "leave of {topic} not confirmed in time; considered left");
            self.finish_leave(&topic, Err(LeaveError::Timeout), now);
        }
    }

    /// The rejoin delay of `topic` is over.
    pub(crate) fn rejoin_due(&mut self, topic: Topic, key: TimerKey, now: Instant) {
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

    /// The connection is gone: every topic waits for the next one; topics being left are left.
    pub(crate) fn topics_disconnected(&mut self, now: Instant) {
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
            self.timers.cancel(key);
        }
        left.sort();
        for topic in left {
            // The socket is gone, and its channels with it: the leave is done.
            self.finish_leave(&topic, Ok(()), now);
        }
    }

    /// The client stops: every topic's waiters and buffered pushes get their
    /// `Stopped` outcome; scheduled rejoins are cancelled.
    pub(crate) fn stop_topics(&mut self) {
        let mut topics: Vec<Topic> = self.channels.keys().cloned().collect();
        topics.sort();
        for topic in topics {
            let Some(ch) = self.channels.get_mut(&topic) else {
                continue;
            };
            ch.resolve_waiters(&mut self.out, &Err(JoinError::Stopped));
            ch.resolve_leave_waiters(&mut self.out, Err(LeaveError::Stopped));
            ch.resolve_join_after_leave(&mut self.out, &JoinError::Stopped);
            if let ChannelState::RejoinScheduled { timer } = ch.state {
                self.timers.cancel(timer);
                ch.state = ChannelState::Waiting { explicit: false };
            }
            let buffered = std::mem::take(&mut ch.buffer);
            self.fail_buffered(&topic, buffered, PushError::Stopped);
        }
    }
}
