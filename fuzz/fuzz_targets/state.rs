//! Drives the connection and channel state machine (`State`, no I/O) with arbitrary sequences
//! of user commands (join, leave, push, disconnect, reconnect, stop), connection events
//! (opened, closed, stale generations), inbound frames (replies to what was sent, with current,
//! null, stale or garbage join_refs; server pushes; `phx_error`; `phx_close`; heartbeat
//! replies) and time advances, answering callbacks as a user would (decisions taken from the
//! input).
//!
//! Invariants checked:
//! - nothing panics;
//! - never a second `phx_join` for a topic while one is in flight or the topic is joined
//!   (between a join and its outcome: joined, topic closed, left or disconnected);
//! - every push outcome is delivered at most once, and only for pushes that were accepted;
//! - at the end (a user disconnect, then time advanced past every timeout): no pending
//!   replies, no buffered pushes, no timers, every accepted push got exactly one outcome,
//!   and every join waiter was answered or is still held by its topic (never dropped).
#![no_main]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix_slipstream::state::{FuzzEffect, JoinReceiver, PushReceiver, State};
use actix_slipstream::{
    AfterDisconnect, AfterTopicClose, Backoff, Config, ConnectError, DisconnectReason, Event,
    Message, Payload, PushError, Ref, ReplyStatus, RetryPolicy, Serializer, Topic,
};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use serde_json::json;
use tokio::sync::oneshot::error::TryRecvError;

const TOPICS: [&str; 3] = ["room:a", "room:b", "room:c"];

#[derive(Arbitrary, Debug, Clone, Copy)]
enum JoinRefMode {
    /// The join_ref the request carried (or the topic's latest).
    Current,
    /// None (V1 frames, unmatched-topic replies, broadcasts).
    Null,
    /// A small number: often an earlier incarnation's.
    Stale(u8),
    /// Not a number at all.
    Garbage,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Connect,
    /// The pending connect succeeded (or, if `stale`, one of an earlier generation did).
    Opened {
        stale: bool,
    },
    /// The connection (or an earlier one) ended or failed to open.
    Closed {
        stale: bool,
        kind: u8,
    },
    Disconnect,
    Reconnect,
    Stop,
    Join {
        topic: u8,
        waiter: bool,
    },
    Leave {
        topic: u8,
    },
    Push {
        topic: u8,
        waiter: bool,
        binary: bool,
        reserved: bool,
        timeout_ms: u16,
    },
    /// The writer could not write a message that was sent.
    SendFailed {
        pick: u8,
        error: u8,
    },
    /// A reply to a message that was sent (a join, leave, push or heartbeat).
    Reply {
        pick: u8,
        status: u8,
        join_ref: JoinRefMode,
        other_topic: Option<u8>,
    },
    /// A reply to a ref nobody sent.
    StrayReply {
        topic: u8,
        reference: u16,
        join_ref: JoinRefMode,
    },
    /// A server push, `phx_error` or `phx_close` on a topic.
    Server {
        topic: u8,
        kind: u8,
        join_ref: JoinRefMode,
    },
    /// A frame on the `phoenix` topic.
    Phoenix {
        pick: u8,
    },
    Advance {
        ms: u16,
    },
    RejoinRegistered,
    Rejoin {
        topic: u8,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    v1: bool,
    max_buffered: u8,
    rejected_retries: u8,
    decisions: Vec<u8>,
    ops: Vec<Op>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum JoinTrack {
    Idle,
    InFlight,
    Joined,
}

struct Harness {
    s: State,
    now: Instant,
    gen: u64,
    decisions: Vec<u8>,
    next_decision: usize,
    /// The final phase: the user disconnected and stays disconnected.
    ending: bool,
    /// The last messages sent, to reply to.
    sent: Vec<Message>,
    last_join_ref: HashMap<Topic, Ref>,
    joins: HashMap<Topic, JoinTrack>,
    push_waiters: Vec<(Ref, PushReceiver)>,
    /// Pushes answered through the callback: how many outcomes each got.
    callback_pushes: HashMap<String, usize>,
    join_waiters: Vec<(Topic, JoinReceiver)>,
}

impl Harness {
    fn decision(&mut self) -> u8 {
        if self.decisions.is_empty() {
            return 0;
        }
        let d = self.decisions[self.next_decision % self.decisions.len()];
        self.next_decision += 1;
        d
    }

    /// Carries out every effect, answering callbacks like a user would.
    fn run(&mut self) {
        let mut steps = 0usize;
        while let Some(effect) = self.s.fuzz_pop_effect() {
            steps += 1;
            assert!(steps < 1_000_000, "effects never run out");
            match effect {
                FuzzEffect::Send(m) => self.sent_message(m),
                FuzzEffect::Connect { gen } => self.gen = gen,
                FuzzEffect::Close { .. } => {}
                FuzzEffect::Connected => {
                    if self.decision() % 4 != 0 {
                        self.s.fuzz_rejoin_registered(self.now);
                    }
                    self.s.fuzz_after_connect(self.now);
                }
                FuzzEffect::Disconnected(reason) => {
                    for t in self.joins.values_mut() {
                        *t = JoinTrack::Idle;
                    }
                    let decision = if self.ending || reason.is_requested() {
                        Some(AfterDisconnect::StayDisconnected)
                    } else {
                        match self.decision() % 8 {
                            0 => Some(AfterDisconnect::StayDisconnected),
                            // Stop: the actor stops; its state gets no decision.
                            1 => None,
                            _ => Some(AfterDisconnect::Reconnect),
                        }
                    };
                    if let Some(d) = decision {
                        self.s.fuzz_after_disconnect(d, self.now);
                    }
                }
                FuzzEffect::Joined(topic) => {
                    let t = self.joins.entry(topic.clone()).or_insert(JoinTrack::Idle);
                    assert_eq!(
                        *t,
                        JoinTrack::InFlight,
                        "joined {topic} without a join in flight"
                    );
                    *t = JoinTrack::Joined;
                }
                FuzzEffect::TopicClosed(topic, reason) => {
                    self.joins.insert(topic.clone(), JoinTrack::Idle);
                    let decision = match self.decision() % 4 {
                        0 => AfterTopicClose::Forget,
                        1 => AfterTopicClose::Rejoin,
                        _ => self.s.default_after_topic_close(topic.as_str(), &reason),
                    };
                    self.s.fuzz_after_topic_close(&topic, decision, self.now);
                }
                FuzzEffect::Left(topic) => {
                    self.joins.insert(topic, JoinTrack::Idle);
                }
                FuzzEffect::Message(..) => {}
                FuzzEffect::Reply { reference, .. } => {
                    let n = self
                        .callback_pushes
                        .get_mut(reference.as_str())
                        .unwrap_or_else(|| panic!("an outcome for push {reference} never made"));
                    *n += 1;
                    assert_eq!(*n, 1, "push {reference} got a second outcome");
                }
            }
        }
    }

    fn sent_message(&mut self, m: Message) {
        if m.event == Event::Join {
            let t = self.joins.entry(m.topic.clone()).or_insert(JoinTrack::Idle);
            assert_eq!(
                *t,
                JoinTrack::Idle,
                "a second phx_join for {} while one is in flight or it is joined",
                m.topic
            );
            *t = JoinTrack::InFlight;
            if let Some(jr) = &m.join_ref {
                self.last_join_ref.insert(m.topic.clone(), jr.clone());
            }
        }
        if m.reference.is_some() {
            if self.sent.len() >= 64 {
                self.sent.remove(0);
            }
            self.sent.push(m);
        }
    }

    fn join_ref(&self, mode: JoinRefMode, current: Option<&Ref>) -> Option<Ref> {
        match mode {
            JoinRefMode::Current => current.cloned(),
            JoinRefMode::Null => None,
            JoinRefMode::Stale(n) => Some(Ref::from(u64::from(n))),
            JoinRefMode::Garbage => Some(Ref::new("not-a-ref")),
        }
    }

    fn op(&mut self, op: Op) {
        let now = self.now;
        match op {
            Op::Connect => self.s.connect(),
            Op::Opened { stale } => {
                let gen = if stale {
                    self.gen.saturating_sub(1)
                } else {
                    self.gen
                };
                self.s.fuzz_on_connected(gen, now);
            }
            Op::Closed { stale, kind } => {
                let gen = if stale {
                    self.gen.saturating_sub(1)
                } else {
                    self.gen
                };
                let reason = match kind % 6 {
                    0 => DisconnectReason::ConnectFailed(ConnectError::Refused(403)),
                    1 => DisconnectReason::ConnectFailed(ConnectError::Timeout),
                    2 => DisconnectReason::ServerClosed {
                        code: Some(1011),
                        description: None,
                    },
                    3 => DisconnectReason::ConnectionLost("fuzz".into()),
                    4 => DisconnectReason::WriteFailed("fuzz".into()),
                    _ => DisconnectReason::Protocol("fuzz".into()),
                };
                self.s.fuzz_on_closed(gen, reason, now);
            }
            Op::Disconnect => self.s.disconnect(now),
            Op::Reconnect => self.s.reconnect(now),
            Op::Stop => self.s.fuzz_stop_connection(now),
            Op::Join { topic, waiter } => {
                let topic = TOPICS[usize::from(topic) % TOPICS.len()];
                if let Some(rx) = self.s.fuzz_join(topic, json!({"t": topic}), waiter, now) {
                    self.join_waiters.push((Topic::from(topic), rx));
                }
            }
            Op::Leave { topic } => {
                let topic = TOPICS[usize::from(topic) % TOPICS.len()];
                self.s.leave(topic, now);
            }
            Op::Push {
                topic,
                waiter,
                binary,
                reserved,
                timeout_ms,
            } => {
                let topic = TOPICS[usize::from(topic) % TOPICS.len()];
                let event = if reserved {
                    Event::Leave
                } else {
                    Event::from("echo")
                };
                let payload = if binary {
                    Payload::Binary(vec![1, 2, 3].into())
                } else {
                    Payload::Json(json!({"n": timeout_ms}))
                };
                let timeout = Duration::from_millis(u64::from(timeout_ms % 20_000));
                let (result, rx) = self
                    .s
                    .fuzz_push(topic, event, payload, timeout, waiter, now);
                match (result, rx) {
                    (Ok(r), Some(rx)) => self.push_waiters.push((r, rx)),
                    (Ok(r), None) => {
                        let fresh = self.callback_pushes.insert(r.as_str().to_owned(), 0);
                        assert!(fresh.is_none(), "ref {r} given to two pushes");
                    }
                    (Err(_), Some(mut rx)) => {
                        // A refused push never gets a later outcome.
                        assert!(rx.try_recv().is_err());
                    }
                    (Err(_), None) => {}
                }
            }
            Op::SendFailed { pick, error } => {
                if let Some(m) = pick_from(&self.sent, pick) {
                    let error = match error % 3 {
                        0 => PushError::ConnectionLost,
                        1 => PushError::BufferFull,
                        _ => PushError::Timeout,
                    };
                    if let Some(r) = m.reference.clone() {
                        self.s.fuzz_send_failed(&r, error);
                    }
                }
            }
            Op::Reply {
                pick,
                status,
                join_ref,
                other_topic,
            } => {
                let Some(m) = pick_from(&self.sent, pick).cloned() else {
                    return;
                };
                let topic = match other_topic {
                    Some(t) => Topic::from(TOPICS[usize::from(t) % TOPICS.len()]),
                    None => m.topic.clone(),
                };
                let (status, response) = match status % 4 {
                    0 => (ReplyStatus::Ok, json!({})),
                    1 => (ReplyStatus::Error, json!({"reason": "unauthorized"})),
                    2 => (ReplyStatus::Error, json!({"reason": "unmatched topic"})),
                    _ => (ReplyStatus::Other("custom".into()), json!(null)),
                };
                let jr = self.join_ref(join_ref, m.join_ref.as_ref());
                let reply = Message::new(
                    jr,
                    m.reference.clone(),
                    topic,
                    Event::Reply(status),
                    Payload::Json(response),
                );
                self.s.fuzz_on_message(reply, now);
            }
            Op::StrayReply {
                topic,
                reference,
                join_ref,
            } => {
                let topic = Topic::from(TOPICS[usize::from(topic) % TOPICS.len()]);
                let jr = self.join_ref(join_ref, self.last_join_ref.get(&topic));
                let reply = Message::new(
                    jr,
                    Some(Ref::from(u64::from(reference))),
                    topic,
                    Event::Reply(ReplyStatus::Ok),
                    Payload::Json(json!({})),
                );
                self.s.fuzz_on_message(reply, now);
            }
            Op::Server {
                topic,
                kind,
                join_ref,
            } => {
                let topic = Topic::from(TOPICS[usize::from(topic) % TOPICS.len()]);
                let current = self.last_join_ref.get(&topic).cloned();
                let jr = self.join_ref(join_ref, current.as_ref());
                let (event, reference) = match kind % 3 {
                    0 => (Event::from("news"), None),
                    // phx_error / phx_close carry ref == join_ref.
                    1 => (Event::Error, current),
                    _ => (Event::Close, current),
                };
                let msg = Message::new(jr, reference, topic, event, Payload::Json(json!({})));
                self.s.fuzz_on_message(msg, now);
            }
            Op::Phoenix { pick } => {
                let reference = pick_from(&self.sent, pick).and_then(|m| m.reference.clone());
                let msg = Message::new(
                    None,
                    reference,
                    "phoenix",
                    Event::Reply(ReplyStatus::Ok),
                    Payload::Json(json!({})),
                );
                self.s.fuzz_on_message(msg, now);
            }
            Op::Advance { ms } => {
                self.now += Duration::from_millis(u64::from(ms));
                self.s.on_tick(self.now);
            }
            Op::RejoinRegistered => self.s.fuzz_rejoin_registered(now),
            Op::Rejoin { topic } => {
                let topic = TOPICS[usize::from(topic) % TOPICS.len()];
                self.s.rejoin(topic, now);
            }
        }
    }

    /// A user disconnect, then time past every timeout: everything must be resolved.
    fn finish(mut self) {
        self.ending = true;
        self.s.disconnect(self.now);
        self.run();
        for _ in 0..3 {
            self.now += Duration::from_secs(3600);
            self.s.on_tick(self.now);
            self.run();
        }
        let status = self.s.status();
        assert_eq!(status.pending_replies, 0, "{status:?}");
        for t in &status.topics {
            assert_eq!(t.buffered_pushes, 0, "{status:?}");
        }
        assert_eq!(self.s.timer_count(), 0, "timers left: {:?}", self.s);
        for (r, mut rx) in self.push_waiters {
            assert!(rx.try_recv().is_ok(), "push {r} got no outcome");
        }
        for (r, n) in &self.callback_pushes {
            assert_eq!(*n, 1, "push {r} got {n} outcomes");
        }
        for (topic, mut rx) in self.join_waiters {
            match rx.try_recv() {
                Ok(_) => {}
                Err(TryRecvError::Empty) if self.s.topic_status(topic.as_str()).is_some() => {}
                Err(e) => panic!("join waiter of {topic} dropped or lost: {e:?}"),
            }
        }
    }
}

fn pick_from<T>(v: &[T], pick: u8) -> Option<&T> {
    if v.is_empty() {
        None
    } else {
        v.get(v.len() - 1 - usize::from(pick) % v.len())
    }
}

fuzz_target!(|input: Input| {
    let config = Config::new("ws://127.0.0.1:1/socket")
        .serializer(if input.v1 {
            Serializer::V1
        } else {
            Serializer::V2
        })
        .reconnect_backoff(Backoff::from_millis(&[10, 100]))
        .rejoin_backoff(Backoff::from_millis(&[50, 500]))
        .heartbeat(Duration::from_millis(1000), Duration::from_millis(500))
        .push_timeout(Duration::from_millis(5000))
        .join_timeout(Duration::from_millis(3000))
        .max_buffered_pushes(usize::from(input.max_buffered % 8))
        .retry(RetryPolicy {
            rejected_join_retries: u32::from(input.rejected_retries % 3),
            ..RetryPolicy::default()
        });
    let mut h = Harness {
        s: State::new(config),
        now: Instant::now(),
        gen: 0,
        decisions: input.decisions,
        next_decision: 0,
        ending: false,
        sent: Vec::new(),
        last_join_ref: HashMap::new(),
        joins: HashMap::new(),
        push_waiters: Vec::new(),
        callback_pushes: HashMap::new(),
        join_waiters: Vec::new(),
    };
    for op in input.ops.into_iter().take(256) {
        h.op(op);
        h.run();
    }
    h.finish();
});
