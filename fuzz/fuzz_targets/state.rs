//! Drives the sans-IO engine (`actix_slipstream::engine`) through its public API and its one
//! drain loop (`engine::drive`), with arbitrary sequences
//! of user commands (join, leave, push, disconnect, reconnect, stop), connection events
//! (opened, closed, stale generations), inbound frames (replies to what was sent, with current,
//! null, stale or garbage join_refs; server pushes; `phx_error`; `phx_close`; heartbeat
//! replies) and time advances, answering callbacks as a user would (decisions taken from the
//! input, through the engine's `Driver`).
//!
//! Invariants checked:
//! - nothing panics;
//! - never a second `phx_join` for a topic while one is in flight or the topic is joined
//!   (between a join and its outcome: joined, topic closed, left or disconnected);
//! - every push outcome is delivered at most once, and only for pushes that were accepted;
//! - every request (join, leave, push with a waiter) is resolved at most once, only if it
//!   was made, with an outcome of its kind, and never after the request was refused;
//! - never a message written twice (every `ref` on the wire is new);
//! - after every step, the registry equals the topics the user wants, as a reference model
//!   keeps them: a `Join` adds its topic, a `Leave` removes it, and so do a server
//!   `phx_close` of a topic not being left and a `Forget` decision after a topic closed;
//! - at the end (a user disconnect, then time advanced past every timeout): no pending
//!   replies, no buffered pushes, no timers, every accepted push got exactly one outcome,
//!   every leave waiter was answered, and every join waiter was answered or is still held
//!   by its topic (never dropped), and the engine holds no other open request (no leaked
//!   waiter).
#![no_main]

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use actix_slipstream::codec::{Message, V1Json, V2};
use actix_slipstream::engine::{drive, ConnId, Driver, Engine, Outcome, RequestId};
use actix_slipstream::{
    AfterDisconnect, AfterTopicClose, Backoff, Config, ConnectError, DisconnectReason, Event,
    Payload, PushError, Ref, Reply, ReplyStatus, RetryPolicy, Topic, TopicCloseReason, TopicStatus,
};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

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
        waiter: bool,
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
    /// `Config::rejoin_on_connect`; when off, `handle_connect` rejoins by hand (or not).
    rejoin_on_connect: bool,
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

/// What a request awaits.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Join,
    Leave,
    Push,
}

/// The user and the connection, as the fuzz input decides: the engine's [`Driver`].
struct User {
    now: Instant,
    gen: u64,
    rejoin_on_connect: bool,
    decisions: Vec<u8>,
    next_decision: usize,
    /// The final phase: the user disconnected and stays disconnected.
    ending: bool,
    /// The last messages sent, to reply to.
    sent: Vec<Message>,
    last_join_ref: HashMap<Topic, Ref>,
    joins: HashMap<Topic, JoinTrack>,
    /// Requests made with a waiter, by kind.
    requests: HashMap<RequestId, Kind>,
    /// Requests refused at once: no outcome may come for them.
    refused: HashSet<RequestId>,
    /// Requests resolved.
    resolved: HashSet<RequestId>,
    /// Pushes answered through the callback: how many outcomes each got.
    callback_pushes: HashMap<String, usize>,
    join_waiters: Vec<(Topic, RequestId)>,
    next_request: u64,
    /// Every `ref` written, to catch a message written twice.
    sent_refs: HashSet<Ref>,
    /// The reference model: the topics the user wants.
    wanted: HashSet<Topic>,
    /// The topics being left before the step now running.
    leaving: HashSet<Topic>,
}

impl User {
    fn decision(&mut self) -> u8 {
        if self.decisions.is_empty() {
            return 0;
        }
        let d = self.decisions[self.next_decision % self.decisions.len()];
        self.next_decision += 1;
        d
    }

    fn request(&mut self, kind: Kind) -> RequestId {
        self.next_request += 1;
        let id = RequestId(self.next_request);
        self.requests.insert(id, kind);
        id
    }
}

impl Driver for User {
    fn send(&mut self, _: &mut Engine, m: Message) {
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
        if let Some(r) = &m.reference {
            assert!(
                self.sent_refs.insert(r.clone()),
                "ref {r} written twice: {m:?}"
            );
        }
        if m.reference.is_some() {
            if self.sent.len() >= 64 {
                self.sent.remove(0);
            }
            self.sent.push(m);
        }
    }

    fn connect(&mut self, _: &mut Engine, conn: ConnId) {
        self.gen = conn.0;
    }

    fn close(&mut self, _: &mut Engine, _code: u16) {}

    fn resolve(&mut self, _: &mut Engine, request: RequestId, outcome: Outcome) {
        let kind = *self
            .requests
            .get(&request)
            .unwrap_or_else(|| panic!("{request} resolved but never made"));
        assert!(
            !self.refused.contains(&request),
            "{request} was refused, then resolved"
        );
        assert!(self.resolved.insert(request), "{request} resolved twice");
        let got = match outcome {
            Outcome::Join(_) => Kind::Join,
            Outcome::Leave(_) => Kind::Leave,
            Outcome::Push(_) => Kind::Push,
            _ => panic!("an unknown outcome"),
        };
        assert_eq!(kind, got, "{request} got an outcome of another kind");
    }

    fn connected(&mut self, engine: &mut Engine) {
        // Rejoins by hand, when the engine does not.
        if !self.rejoin_on_connect && self.decision() % 4 != 0 {
            engine.rejoin_registered(self.now);
        }
    }

    fn disconnected(
        &mut self,
        _: &mut Engine,
        reason: &DisconnectReason,
        default: AfterDisconnect,
    ) -> AfterDisconnect {
        for t in self.joins.values_mut() {
            *t = JoinTrack::Idle;
        }
        if self.ending || reason.is_requested() {
            return AfterDisconnect::StayDisconnected;
        }
        match self.decision() % 8 {
            0 => AfterDisconnect::StayDisconnected,
            // The actor would stop: the engine stays disconnected.
            1 => AfterDisconnect::Stop,
            2 => default,
            _ => AfterDisconnect::Reconnect,
        }
    }

    fn joined(&mut self, _: &mut Engine, topic: &Topic, _: &Payload) {
        let t = self.joins.entry(topic.clone()).or_insert(JoinTrack::Idle);
        assert_eq!(
            *t,
            JoinTrack::InFlight,
            "joined {topic} without a join in flight"
        );
        *t = JoinTrack::Joined;
    }

    fn topic_closed(
        &mut self,
        _: &mut Engine,
        topic: &Topic,
        _: &TopicCloseReason,
        default: AfterTopicClose,
    ) -> AfterTopicClose {
        self.joins.insert(topic.clone(), JoinTrack::Idle);
        let decision = match self.decision() % 4 {
            0 => AfterTopicClose::Forget,
            1 => AfterTopicClose::Rejoin,
            _ => default,
        };
        if decision == AfterTopicClose::Forget {
            self.wanted.remove(topic);
        }
        decision
    }

    fn left(&mut self, _: &mut Engine, topic: &Topic) {
        self.joins.insert(topic.clone(), JoinTrack::Idle);
        // Not being left by the user: the server closed it (`phx_close`).
        if !self.leaving.contains(topic) {
            self.wanted.remove(topic);
        }
    }

    fn reply(&mut self, _: &mut Engine, _: Topic, reference: Ref, _: Result<Reply, PushError>) {
        let n = self
            .callback_pushes
            .get_mut(reference.as_str())
            .unwrap_or_else(|| panic!("an outcome for push {reference} never made"));
        *n += 1;
        assert_eq!(*n, 1, "push {reference} got a second outcome");
    }
}

struct Harness {
    engine: Engine,
    user: User,
}

impl Harness {
    /// Carries out every effect through the one drain loop.
    fn run(&mut self) {
        let now = self.user.now;
        drive(&mut self.engine, &mut self.user, now);
    }

    fn join_ref(&self, mode: JoinRefMode, current: Option<&Ref>) -> Option<Ref> {
        match mode {
            JoinRefMode::Current => current.cloned(),
            JoinRefMode::Null => None,
            JoinRefMode::Stale(n) => Some(Ref::from(u64::from(n))),
            JoinRefMode::Garbage => Some(Ref::new("not-a-ref")),
        }
    }

    /// The reference model against the engine: the registry holds the wanted topics.
    fn check_registry(&self) {
        let registry: HashSet<Topic> = self
            .engine
            .registry()
            .topics()
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        assert_eq!(
            registry, self.user.wanted,
            "the registry is not the set of topics the user wants"
        );
    }

    fn op(&mut self, op: Op) {
        let now = self.user.now;
        self.user.leaving = TOPICS
            .iter()
            .filter(|t| self.engine.topic_status(t) == Some(TopicStatus::Leaving))
            .map(|t| Topic::from(*t))
            .collect();
        let e = &mut self.engine;
        let u = &mut self.user;
        match op {
            Op::Connect => e.connect(),
            Op::Opened { stale } => {
                let gen = if stale {
                    u.gen.saturating_sub(1)
                } else {
                    u.gen
                };
                e.handle_connected(ConnId(gen), now);
            }
            Op::Closed { stale, kind } => {
                let gen = if stale {
                    u.gen.saturating_sub(1)
                } else {
                    u.gen
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
                e.handle_closed(ConnId(gen), reason, now);
            }
            Op::Disconnect => e.disconnect(now),
            Op::Reconnect => e.reconnect(now),
            // The actor stops, every open request is answered, then its supervisor
            // restarts it (without `init`): the registry is kept.
            Op::Stop => {
                e.stop(now);
                drive(e, u, now);
                e.start();
            }
            Op::Join { topic, waiter } => {
                let topic = TOPICS[usize::from(topic) % TOPICS.len()];
                let request = waiter.then(|| u.request(Kind::Join));
                u.wanted.insert(Topic::from(topic));
                e.join(topic, json!({"t": topic}), request, now);
                if let Some(r) = request {
                    u.join_waiters.push((Topic::from(topic), r));
                }
            }
            Op::Leave { topic, waiter } => {
                let topic = TOPICS[usize::from(topic) % TOPICS.len()];
                let request = waiter.then(|| u.request(Kind::Leave));
                u.wanted.remove(topic);
                e.leave(topic, request, now);
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
                let request = waiter.then(|| u.request(Kind::Push));
                match (
                    e.push(topic, event, payload, timeout, request, now),
                    request,
                ) {
                    (Ok(_), Some(_)) => {}
                    (Ok(r), None) => {
                        let fresh = u.callback_pushes.insert(r.as_str().to_owned(), 0);
                        assert!(fresh.is_none(), "ref {r} given to two pushes");
                    }
                    (Err(_), Some(request)) => {
                        assert!(!u.resolved.contains(&request));
                        u.refused.insert(request);
                    }
                    (Err(_), None) => {}
                }
            }
            Op::SendFailed { pick, error } => {
                if let Some(m) = pick_from(&u.sent, pick) {
                    let error = match error % 3 {
                        0 => PushError::ConnectionLost,
                        1 => PushError::BufferFull,
                        _ => PushError::Timeout,
                    };
                    if let Some(r) = m.reference.clone() {
                        e.send_failed(&r, error);
                    }
                }
            }
            Op::Reply {
                pick,
                status,
                join_ref,
                other_topic,
            } => {
                let Some(m) = pick_from(&self.user.sent, pick).cloned() else {
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
                self.engine.handle_message(reply, now);
            }
            Op::StrayReply {
                topic,
                reference,
                join_ref,
            } => {
                let topic = Topic::from(TOPICS[usize::from(topic) % TOPICS.len()]);
                let jr = self.join_ref(join_ref, self.user.last_join_ref.get(&topic));
                let reply = Message::new(
                    jr,
                    Some(Ref::from(u64::from(reference))),
                    topic,
                    Event::Reply(ReplyStatus::Ok),
                    Payload::Json(json!({})),
                );
                self.engine.handle_message(reply, now);
            }
            Op::Server {
                topic,
                kind,
                join_ref,
            } => {
                let topic = Topic::from(TOPICS[usize::from(topic) % TOPICS.len()]);
                let current = self.user.last_join_ref.get(&topic).cloned();
                let jr = self.join_ref(join_ref, current.as_ref());
                let (event, reference) = match kind % 3 {
                    0 => (Event::from("news"), None),
                    // phx_error / phx_close carry ref == join_ref.
                    1 => (Event::Error, current),
                    _ => (Event::Close, current),
                };
                let msg = Message::new(jr, reference, topic, event, Payload::Json(json!({})));
                self.engine.handle_message(msg, now);
            }
            Op::Phoenix { pick } => {
                let reference = pick_from(&u.sent, pick).and_then(|m| m.reference.clone());
                let msg = Message::new(
                    None,
                    reference,
                    "phoenix",
                    Event::Reply(ReplyStatus::Ok),
                    Payload::Json(json!({})),
                );
                e.handle_message(msg, now);
            }
            Op::Advance { ms } => {
                u.now += Duration::from_millis(u64::from(ms));
                e.handle_timeout(u.now);
            }
            Op::RejoinRegistered => e.rejoin_registered(now),
            Op::Rejoin { topic } => {
                let topic = TOPICS[usize::from(topic) % TOPICS.len()];
                e.rejoin(topic, now);
            }
        }
    }

    /// A user disconnect, then time past every timeout: everything must be resolved.
    fn finish(mut self) {
        self.user.ending = true;
        self.engine.disconnect(self.user.now);
        self.run();
        for _ in 0..3 {
            self.user.now += Duration::from_secs(3600);
            self.engine.handle_timeout(self.user.now);
            self.run();
        }
        let status = self.engine.status();
        assert_eq!(status.pending_replies, 0, "{status:?}");
        for t in &status.topics {
            assert_eq!(t.buffered_pushes, 0, "{status:?}");
        }
        assert_eq!(
            self.engine.timer_count(),
            0,
            "timers left: {:?}",
            self.engine
        );
        self.check_registry();
        let u = &self.user;
        let held = u
            .requests
            .iter()
            .filter(|(r, kind)| {
                **kind == Kind::Join && !u.refused.contains(r) && !u.resolved.contains(r)
            })
            .count();
        assert_eq!(
            self.engine.open_requests(),
            held,
            "open requests other than the join waiters held by their topics"
        );
        for (r, kind) in &u.requests {
            if u.refused.contains(r) {
                continue;
            }
            match kind {
                Kind::Push | Kind::Leave => {
                    assert!(u.resolved.contains(r), "{kind:?} {r} got no outcome")
                }
                Kind::Join => {}
            }
        }
        for (r, n) in &u.callback_pushes {
            assert_eq!(*n, 1, "push {r} got {n} outcomes");
        }
        for (topic, r) in &u.join_waiters {
            assert!(
                u.resolved.contains(r) || self.engine.topic_status(topic.as_str()).is_some(),
                "join waiter {r} of {topic} dropped or lost"
            );
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
    let config = Config::new("ws://127.0.0.1:1/socket");
    let config = if input.v1 {
        config.serializer(V1Json)
    } else {
        config.serializer(V2)
    };
    let config = config
        .reconnect_backoff(Backoff::from_millis(&[10, 100]))
        .rejoin_backoff(Backoff::from_millis(&[50, 500]))
        .heartbeat(Duration::from_millis(1000), Duration::from_millis(500))
        .push_timeout(Duration::from_millis(5000))
        .join_timeout(Duration::from_millis(3000))
        .max_buffered_pushes(usize::from(input.max_buffered % 8))
        .rejoin_on_connect(input.rejoin_on_connect)
        .retry(RetryPolicy::default().rejected_join_retries(u32::from(input.rejected_retries % 3)));
    let mut h = Harness {
        engine: Engine::new(config),
        user: User {
            now: Instant::now(),
            gen: 0,
            rejoin_on_connect: input.rejoin_on_connect,
            decisions: input.decisions,
            next_decision: 0,
            ending: false,
            sent: Vec::new(),
            last_join_ref: HashMap::new(),
            joins: HashMap::new(),
            requests: HashMap::new(),
            refused: HashSet::new(),
            resolved: HashSet::new(),
            callback_pushes: HashMap::new(),
            join_waiters: Vec::new(),
            next_request: 0,
            sent_refs: HashSet::new(),
            wanted: HashSet::new(),
            leaving: HashSet::new(),
        },
    };
    for op in input.ops.into_iter().take(256) {
        h.op(op);
        h.run();
        h.check_registry();
    }
    h.finish();
});
