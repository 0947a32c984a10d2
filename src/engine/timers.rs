//! The engine's timers: one ordered map of deadlines, with `now` injected by the caller.
//!
//! Every timeout of the client (push replies, joins, leaves, rejoins, heartbeats, the
//! reconnect delay) is an entry here, so the caller needs one timer of its own, set to
//! [`Engine::poll_timeout`](super::Engine::poll_timeout).

use std::collections::BTreeMap;
use std::time::Instant;

use crate::message::Topic;

/// A timer's identity: its deadline and a unique sequence number.
pub(crate) type TimerKey = (Instant, u64);

/// What a timer does when it fires.
#[derive(Debug)]
pub(crate) enum Timer {
    /// A push's reply timeout (in flight or buffered).
    Push { reference: u64, topic: Topic },
    /// A join's reply timeout.
    JoinTimeout { topic: Topic },
    /// A leave's confirmation timeout.
    LeaveTimeout { topic: Topic },
    /// A rejoin after its backoff delay.
    Rejoin { topic: Topic },
    /// Time to send the next heartbeat.
    HeartbeatTick,
    /// The heartbeat in flight went unanswered.
    HeartbeatTimeout,
    /// A reconnect after its backoff delay.
    Reconnect,
}

/// The ordered timer map.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    map: BTreeMap<TimerKey, Timer>,
    seq: u64,
}

impl Timers {
    /// Arms a timer; the key cancels it.
    pub(crate) fn schedule(&mut self, at: Instant, timer: Timer) -> TimerKey {
        self.seq += 1;
        let key = (at, self.seq);
        self.map.insert(key, timer);
        key
    }

    /// Disarms a timer (nothing happens if it fired already).
    pub(crate) fn cancel(&mut self, key: TimerKey) {
        self.map.remove(&key);
    }

    /// The earliest deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.map.keys().next().map(|(at, _)| *at)
    }

    /// Removes and returns the earliest timer due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(TimerKey, Timer)> {
        let entry = self.map.first_entry()?;
        if entry.key().0 > now {
            return None;
        }
        Some(entry.remove_entry())
    }

    /// The number of armed timers.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

impl super::Engine {
    /// Fires every timer due at `now`. Call it when [`poll_timeout`](super::Engine::poll_timeout)'s
    /// deadline has passed (an early call does nothing).
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((key, timer)) = self.timers.pop_due(now) {
            match timer {
                Timer::Push { reference, topic } => self.push_timed_out(reference, &topic),
                Timer::JoinTimeout { topic } => self.join_timed_out(topic, key),
                Timer::LeaveTimeout { topic } => self.leave_timed_out(topic, key, now),
                Timer::Rejoin { topic } => self.rejoin_due(topic, key, now),
                Timer::HeartbeatTick => self.heartbeat_due(key, now),
                Timer::HeartbeatTimeout => self.heartbeat_timed_out(key, now),
                Timer::Reconnect => self.reconnect_due(key),
            }
        }
    }
}
