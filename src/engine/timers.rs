//! The engine's timers: deadlines in key order, with `now` injected by the caller.
//!
//! Every timeout of the client (push replies, joins, leaves, rejoins, heartbeats, the
//! reconnect delay) is an entry here, so the caller needs one timer of its own, set to
//! [`Engine::poll_timeout`](super::Engine::poll_timeout).
//!
//! Push reply timeouts are most of the entries (one per push in flight) and almost
//! always come in deadline order (one `push_timeout` for every push), so they live in a
//! queue: arming one is a push at the back, and a reply in order cancels the front.
//! A cancel elsewhere in the queue leaves a tombstone (dropped when it reaches either
//! end, or when tombstones are over half the queue). A push deadline earlier than the
//! queue's last (a push with a shorter timeout of its own) and every other timer go
//! into an ordered map. The heartbeat tick, armed all the time a socket is connected,
//! has a slot of its own (there is at most one: arming a tick replaces the armed
//! one), and the map gives its memory back once empty: an idle socket's timers take
//! no allocation. All three are read in one key order.

use std::collections::{BTreeMap, VecDeque};
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

/// A push deadline in the queue; `topic` is `None` once cancelled (a tombstone).
#[derive(Debug)]
struct PushDeadline {
    key: TimerKey,
    reference: u64,
    topic: Option<Topic>,
}

/// Tombstones tolerated in the queue before it is compacted (and then only while they
/// are more than half of it).
const MAX_TOMBSTONES: usize = 64;

/// The timers: an ordered map, the queue of push deadlines in key order, and the
/// heartbeat tick's slot.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    map: BTreeMap<TimerKey, Timer>,
    /// The heartbeat tick.
    tick: Option<TimerKey>,
    /// Push deadlines in increasing key order; never a tombstone at either end.
    pushes: VecDeque<PushDeadline>,
    /// Tombstones in `pushes`.
    tombstones: usize,
    seq: u64,
}

impl Timers {
    /// Arms a timer; the key cancels it. A [`Timer::HeartbeatTick`] replaces the tick
    /// armed, if any.
    pub(crate) fn schedule(&mut self, at: Instant, timer: Timer) -> TimerKey {
        self.seq += 1;
        let key = (at, self.seq);
        match timer {
            Timer::Push { reference, topic }
                if self.pushes.back().is_none_or(|last| last.key < key) =>
            {
                self.pushes.push_back(PushDeadline {
                    key,
                    reference,
                    topic: Some(topic),
                });
            }
            Timer::HeartbeatTick => self.tick = Some(key),
            timer => {
                self.map.insert(key, timer);
            }
        }
        key
    }

    /// Disarms the heartbeat tick, if armed.
    pub(crate) fn cancel_tick(&mut self) {
        self.tick = None;
    }

    /// Disarms a timer (nothing happens if it fired already).
    pub(crate) fn cancel(&mut self, key: TimerKey) {
        // A reply in order cancels the front.
        if self.pushes.front().is_some_and(|d| d.key == key) {
            self.pushes.pop_front();
            self.trim();
            return;
        }
        if self.tick == Some(key) {
            self.tick = None;
            return;
        }
        if self.map.remove(&key).is_some() {
            self.release_empty_map();
            return;
        }
        let Ok(i) = self.pushes.binary_search_by(|d| d.key.cmp(&key)) else {
            return;
        };
        if self.pushes[i].topic.take().is_none() {
            return; // a tombstone already
        }
        self.tombstones += 1;
        self.trim();
        if self.tombstones > MAX_TOMBSTONES && self.tombstones * 2 > self.pushes.len() {
            self.pushes.retain(|d| d.topic.is_some());
            self.tombstones = 0;
        }
    }

    /// Drops the tombstones at both ends of the queue.
    fn trim(&mut self) {
        while self.pushes.front().is_some_and(|d| d.topic.is_none()) {
            self.pushes.pop_front();
            self.tombstones -= 1;
        }
        while self.pushes.back().is_some_and(|d| d.topic.is_none()) {
            self.pushes.pop_back();
            self.tombstones -= 1;
        }
    }

    /// An empty map still holds its root node: drop it.
    fn release_empty_map(&mut self) {
        if self.map.is_empty() {
            self.map = BTreeMap::new();
        }
    }

    /// The earliest deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let map = self.map.keys().next().map(|(at, _)| *at);
        let queue = self.pushes.front().map(|d| d.key.0);
        earliest(earliest(map, queue), self.tick.map(|(at, _)| at))
    }

    /// Removes and returns the earliest timer due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(TimerKey, Timer)> {
        let map_first = self.map.keys().next().copied();
        let queue_first = self.pushes.front().map(|d| d.key);
        let tick = self.tick;
        // Keys are unique: the earliest one tells which structure holds it.
        let first = earliest(earliest(map_first, queue_first), tick)?;
        if first.0 > now {
            return None;
        }
        if tick == Some(first) {
            self.tick = None;
            return Some((first, Timer::HeartbeatTick));
        }
        if queue_first == Some(first) {
            let d = self.pushes.pop_front()?;
            self.trim();
            let topic = d.topic?; // never a tombstone at the front
            return Some((
                d.key,
                Timer::Push {
                    reference: d.reference,
                    topic,
                },
            ));
        }
        let fired = self.map.pop_first();
        self.release_empty_map();
        fired
    }

    /// The number of armed timers.
    pub(crate) fn len(&self) -> usize {
        self.map.len() + self.pushes.len() - self.tombstones + usize::from(self.tick.is_some())
    }
}

/// The earlier of two optional keys or deadlines.
fn earliest<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
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
                Timer::HeartbeatTick => self.heartbeat_due(now),
                Timer::HeartbeatTimeout => self.heartbeat_timed_out(key, now),
                Timer::Reconnect => self.reconnect_due(key),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn push(reference: u64) -> Timer {
        Timer::Push {
            reference,
            topic: Topic::from("room:1"),
        }
    }

    /// What fires, as comparable values.
    fn id(timer: &Timer) -> (u8, u64) {
        match timer {
            Timer::Push { reference, .. } => (0, *reference),
            Timer::JoinTimeout { .. } => (1, 0),
            Timer::LeaveTimeout { .. } => (2, 0),
            Timer::Rejoin { .. } => (3, 0),
            Timer::HeartbeatTick => (4, 0),
            Timer::HeartbeatTimeout => (5, 0),
            Timer::Reconnect => (6, 0),
        }
    }

    #[test]
    fn timers_fire_in_deadline_order_whichever_structure_holds_them() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut timers = Timers::default();
        timers.schedule(ms(30), push(1)); // queue
        timers.schedule(ms(10), Timer::HeartbeatTick); // map
        timers.schedule(ms(40), push(2)); // queue
        timers.schedule(ms(20), push(3)); // earlier than the queue's last: map
        timers.schedule(ms(40), push(4)); // same deadline, later key: queue
        assert_eq!(timers.len(), 5);
        assert_eq!(timers.next_deadline(), Some(ms(10)));
        assert!(timers.pop_due(ms(9)).is_none());
        let fired: Vec<_> = std::iter::from_fn(|| timers.pop_due(ms(100)))
            .map(|(key, t)| (key.0, id(&t)))
            .collect();
        assert_eq!(
            fired,
            [
                (ms(10), (4, 0)),
                (ms(20), (0, 3)),
                (ms(30), (0, 1)),
                (ms(40), (0, 2)),
                (ms(40), (0, 4)),
            ]
        );
        assert_eq!(timers.len(), 0);
        assert_eq!(timers.next_deadline(), None);
    }

    #[test]
    fn cancelled_push_deadlines_never_fire_and_tombstones_do_not_pile_up() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        let keys: Vec<_> = (0..1000)
            .map(|n| timers.schedule(t0 + Duration::from_millis(n), push(n)))
            .collect();
        // Cancel all but every tenth, from the middle outwards and from the back.
        for (n, key) in keys.iter().enumerate().rev() {
            if n % 10 != 0 {
                timers.cancel(*key);
                timers.cancel(*key); // twice: nothing more happens
            }
        }
        assert_eq!(timers.len(), 100);
        assert!(
            timers.pushes.len() <= 100 + MAX_TOMBSTONES + 1,
            "{} entries for 100 live deadlines",
            timers.pushes.len()
        );
        let fired: Vec<u64> = std::iter::from_fn(|| timers.pop_due(t0 + Duration::from_secs(5)))
            .map(|(_, t)| id(&t).1)
            .collect();
        assert_eq!(fired, (0..1000).step_by(10).collect::<Vec<u64>>());
        // A fired key cancels nothing.
        timers.cancel(keys[0]);
        assert_eq!(timers.len(), 0);
    }

    /// Random schedules, cancels and firings against a plain ordered map.
    #[test]
    fn behaves_like_one_ordered_map() {
        for seed in 0..200 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let t0 = Instant::now();
            let mut timers = Timers::default();
            let mut model: BTreeMap<TimerKey, (u8, u64)> = BTreeMap::new();
            let mut keys = Vec::new();
            let mut now = 0u64;
            for step in 0..400u64 {
                match rng.u8(0..11) {
                    0..=4 => {
                        // Mostly increasing push deadlines, sometimes shorter ones.
                        let at = now
                            + if rng.u8(0..8) == 0 {
                                rng.u64(0..50)
                            } else {
                                1000
                            };
                        let key = timers.schedule(t0 + Duration::from_millis(at), push(step));
                        model.insert(key, (0, step));
                        keys.push(key);
                    }
                    5 => {
                        let at = now + rng.u64(0..2000);
                        let key = timers.schedule(t0 + Duration::from_millis(at), Timer::Reconnect);
                        model.insert(key, (6, 0));
                        keys.push(key);
                    }
                    // The tick's slot: a new tick replaces the armed one.
                    10 => {
                        let at = now + rng.u64(0..2000);
                        let key =
                            timers.schedule(t0 + Duration::from_millis(at), Timer::HeartbeatTick);
                        model.retain(|_, v| *v != (4, 0));
                        model.insert(key, (4, 0));
                        keys.push(key);
                    }
                    6..=7 if !keys.is_empty() => {
                        let key = keys[rng.usize(0..keys.len())];
                        timers.cancel(key);
                        model.remove(&key);
                    }
                    _ => {
                        now += rng.u64(0..300);
                        let at = t0 + Duration::from_millis(now);
                        loop {
                            let expected = model
                                .first_key_value()
                                .filter(|(k, _)| k.0 <= at)
                                .map(|(k, v)| (*k, *v));
                            let got = timers.pop_due(at).map(|(k, t)| (k, id(&t)));
                            assert_eq!(got, expected, "seed {seed} step {step}");
                            match expected {
                                Some((k, _)) => {
                                    model.remove(&k);
                                }
                                None => break,
                            }
                        }
                    }
                }
                assert_eq!(timers.len(), model.len(), "seed {seed} step {step}");
                assert_eq!(
                    timers.next_deadline(),
                    model.keys().next().map(|k| k.0),
                    "seed {seed} step {step}"
                );
            }
        }
    }
}
