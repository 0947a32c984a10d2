//! Unit tests of the engine, driven through [`drive`] without sockets or real time.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::*;
use crate::backoff::Backoff;
use crate::error::{JoinError, LeaveError, PushError};
use crate::message::{Event, Payload, Ref, Reply, ReplyStatus};
use crate::ConnectionStatus;

/// Runs the engine through [`drive`] with the default decisions, recording what happens.
struct Harness {
    s: Engine,
    now: Instant,
    gen: u64,
    outcomes: Rc<RefCell<HashMap<RequestId, Outcome>>>,
    next_request: u64,
}

#[derive(Default, Debug)]
struct Out {
    sent: Vec<Message>,
    connects: Vec<u64>,
    closes: Vec<u16>,
    events: Vec<String>,
}

impl Out {
    fn joins(&self) -> Vec<&Message> {
        self.sent
            .iter()
            .filter(|m| m.event == Event::Join)
            .collect()
    }
    fn by_event(&self, event: &str) -> Vec<&Message> {
        self.sent
            .iter()
            .filter(|m| m.event.as_str() == event)
            .collect()
    }
}

/// The test's [`Driver`]: records effects and notifications, takes every default decision.
struct Recorder<'a> {
    out: &'a mut Out,
    gen: &'a mut u64,
    outcomes: &'a RefCell<HashMap<RequestId, Outcome>>,
}

impl Driver for Recorder<'_> {
    fn send(&mut self, _: &mut Engine, message: Message) {
        self.out.sent.push(message);
    }
    fn connect(&mut self, _: &mut Engine, conn: ConnId) {
        *self.gen = conn.0;
        self.out.connects.push(conn.0);
    }
    fn close(&mut self, _: &mut Engine, code: u16) {
        self.out.closes.push(code);
    }
    fn resolve(&mut self, _: &mut Engine, request: RequestId, outcome: Outcome) {
        let old = self.outcomes.borrow_mut().insert(request, outcome);
        assert!(old.is_none(), "{request} resolved twice");
    }
    fn connected(&mut self, _: &mut Engine) {
        self.out.events.push("connected".into());
    }
    fn disconnected(
        &mut self,
        _: &mut Engine,
        reason: &DisconnectReason,
        default: AfterDisconnect,
    ) -> AfterDisconnect {
        self.out.events.push(format!("disconnected: {reason}"));
        default
    }
    fn joined(&mut self, _: &mut Engine, topic: &Topic, _: &Payload) {
        self.out.events.push(format!("joined {topic}"));
    }
    fn topic_closed(
        &mut self,
        _: &mut Engine,
        topic: &Topic,
        reason: &TopicCloseReason,
        default: AfterTopicClose,
    ) -> AfterTopicClose {
        self.out.events.push(format!("closed {topic}: {reason}"));
        default
    }
    fn left(&mut self, _: &mut Engine, topic: &Topic) {
        self.out.events.push(format!("left {topic}"));
    }
    fn message(&mut self, _: &mut Engine, topic: Topic, event: Event, _: Payload) {
        self.out.events.push(format!("message {topic} {event}"));
    }
    fn reply(
        &mut self,
        _: &mut Engine,
        topic: Topic,
        reference: Ref,
        result: Result<Reply, PushError>,
    ) {
        self.out.events.push(format!(
            "reply {topic} {reference} {}",
            match result {
                Ok(r) => r.status.to_string(),
                Err(e) => format!("error: {e}"),
            }
        ));
    }
}

/// The outcome of a request made with a waiter, read like a oneshot receiver.
struct Rx<T> {
    id: RequestId,
    outcomes: Rc<RefCell<HashMap<RequestId, Outcome>>>,
    _kind: std::marker::PhantomData<T>,
}

/// Not resolved (yet).
#[derive(Debug)]
struct Empty;

trait FromOutcome: Sized {
    fn from_outcome(o: Outcome) -> Self;
}

impl FromOutcome for Result<Payload, JoinError> {
    fn from_outcome(o: Outcome) -> Self {
        match o {
            Outcome::Join(r) => r,
            other => panic!("not a join outcome: {other:?}"),
        }
    }
}

impl FromOutcome for Result<(), LeaveError> {
    fn from_outcome(o: Outcome) -> Self {
        match o {
            Outcome::Leave(r) => r,
            other => panic!("not a leave outcome: {other:?}"),
        }
    }
}

impl FromOutcome for Result<Reply, PushError> {
    fn from_outcome(o: Outcome) -> Self {
        match o {
            Outcome::Push(r) => r,
            other => panic!("not a push outcome: {other:?}"),
        }
    }
}

impl<T: FromOutcome> Rx<T> {
    fn try_recv(&mut self) -> Result<T, Empty> {
        match self.outcomes.borrow_mut().remove(&self.id) {
            Some(o) => Ok(T::from_outcome(o)),
            None => Err(Empty),
        }
    }
}

fn config() -> Config {
    Config::new("ws://127.0.0.1:1/socket")
        .reconnect_backoff(Backoff::from_millis(&[10, 20]))
        .rejoin_backoff(Backoff::from_millis(&[100, 200]))
        .heartbeat(Duration::from_millis(1000), Duration::from_millis(500))
        .push_timeout(Duration::from_millis(5000))
        .join_timeout(Duration::from_millis(3000))
}

impl Harness {
    fn new(config: Config) -> Self {
        Harness {
            s: Engine::new(config),
            now: Instant::now(),
            gen: 0,
            outcomes: Rc::default(),
            next_request: 0,
        }
    }

    fn connected(config: Config) -> Self {
        let mut h = Harness::new(config);
        h.s.connect();
        let out = h.step();
        h.gen = out.connects[0];
        h.s.handle_connected(ConnId(h.gen), h.now);
        h.step();
        h
    }

    fn request<T>(&mut self) -> Rx<T> {
        self.next_request += 1;
        Rx {
            id: RequestId(self.next_request),
            outcomes: self.outcomes.clone(),
            _kind: std::marker::PhantomData,
        }
    }

    fn step(&mut self) -> Out {
        let mut out = Out::default();
        let mut recorder = Recorder {
            out: &mut out,
            gen: &mut self.gen,
            outcomes: &self.outcomes,
        };
        drive(&mut self.s, &mut recorder, self.now);
        out
    }

    fn advance(&mut self, ms: u64) -> Out {
        self.now += Duration::from_millis(ms);
        self.s.handle_timeout(self.now);
        self.step()
    }

    fn recv(&mut self, msg: Message) -> Out {
        self.s.handle_message(msg, self.now);
        self.step()
    }

    fn join(&mut self, topic: &str) -> Out {
        self.s.join(topic, json!({}), None, self.now);
        self.step()
    }

    fn push(&mut self, topic: &str) -> (Result<Ref, PushError>, Out) {
        let r = self.s.push(
            topic,
            Event::from("echo"),
            Payload::empty(),
            self.s.config().push_timeout,
            None,
            self.now,
        );
        (r, self.step())
    }

    fn drop_connection(&mut self) -> Out {
        self.s.handle_closed(
            ConnId(self.gen),
            DisconnectReason::ConnectionLost("test".into()),
            self.now,
        );
        self.step()
    }

    fn reconnect_after_backoff(&mut self) -> Out {
        let mut out = self.advance(20);
        assert_eq!(out.connects.len(), 1, "a reconnect after the backoff");
        self.s.handle_connected(ConnId(self.gen), self.now);
        let more = self.step();
        out.sent.extend(more.sent);
        out.events.extend(more.events);
        out
    }
}

fn reply(
    topic: &str,
    join_ref: Option<&Ref>,
    reference: &Ref,
    status: ReplyStatus,
    response: Value,
) -> Message {
    Message::new(
        join_ref.cloned(),
        Some(reference.clone()),
        topic,
        Event::Reply(status),
        Payload::Json(response),
    )
}

/// Joins `topic` and answers the join ok; returns the join_ref.
fn joined(h: &mut Harness, topic: &str) -> Ref {
    let out = h.join(topic);
    let join = out.joins()[0].clone();
    let jr = join.join_ref.clone().unwrap();
    let out = h.recv(reply(topic, Some(&jr), &jr, ReplyStatus::Ok, json!({})));
    assert!(out.events.contains(&format!("joined {topic}")), "{out:?}");
    jr
}

#[test]
fn join_ref_equals_ref_on_the_join_and_is_fresh_on_every_rejoin() {
    let mut h = Harness::connected(config());
    let out = h.join("room:1");
    let first = out.joins()[0];
    assert_eq!(first.join_ref, first.reference);
    let jr1 = first.join_ref.clone().unwrap();
    h.recv(reply(
        "room:1",
        Some(&jr1),
        &jr1,
        ReplyStatus::Ok,
        json!({}),
    ));
    h.drop_connection();
    let out = h.reconnect_after_backoff();
    let jr2 = out.joins()[0].join_ref.clone().unwrap();
    assert_ne!(jr1, jr2);
}

#[test]
fn join_of_a_joined_or_joining_topic_sends_nothing() {
    let mut h = Harness::connected(config());
    assert_eq!(h.join("room:1").joins().len(), 1);
    assert_eq!(
        h.join("room:1").joins().len(),
        0,
        "joining: no duplicate phx_join"
    );
    let jr = h.s.join_ref("room:1").unwrap();
    h.recv(reply("room:1", Some(&jr), &jr, ReplyStatus::Ok, json!({})));
    assert_eq!(
        h.join("room:1").joins().len(),
        0,
        "joined: no duplicate phx_join"
    );
}

#[test]
fn unmatched_topic_reply_to_a_join_is_a_join_failure_not_retried() {
    let mut h = Harness::connected(config());
    let out = h.join("nochannel:x");
    let jr = out.joins()[0].join_ref.clone().unwrap();
    let out = h.recv(reply(
        "nochannel:x",
        None,
        &jr,
        ReplyStatus::Error,
        json!({"reason": "unmatched topic"}),
    ));
    assert_eq!(
        out.events,
        vec![
            "closed nochannel:x: join failed: unmatched topic: no channel on the server handles it"
        ]
    );
    assert!(!h.s.registry().contains("nochannel:x"));
    assert_eq!(h.advance(60_000).joins().len(), 0, "never retried");
}

#[test]
fn rejected_join_is_reported_once_and_retried_only_as_configured() {
    let mut h = Harness::connected(config());
    let out = h.join("private:x");
    let jr = out.joins()[0].join_ref.clone().unwrap();
    let out = h.recv(reply(
        "private:x",
        Some(&jr),
        &jr,
        ReplyStatus::Error,
        json!({"reason": "unauthorized"}),
    ));
    assert_eq!(out.events.len(), 1);
    assert!(out.events[0].starts_with("closed private:x: join failed: join rejected"));
    assert_eq!(h.advance(60_000).joins().len(), 0);

    let mut retry = config();
    retry.retry.rejected_join_retries = 2;
    let mut h = Harness::connected(retry);
    let mut joins = 0;
    let mut out = h.join("private:x");
    for _ in 0..5 {
        let Some(j) = out.joins().first().map(|m| m.join_ref.clone().unwrap()) else {
            break;
        };
        joins += 1;
        h.recv(reply(
            "private:x",
            Some(&j),
            &j,
            ReplyStatus::Error,
            json!({"reason": "unauthorized"}),
        ));
        out = h.advance(1000);
    }
    assert_eq!(joins, 3, "the first join and two retries");
}

#[test]
fn join_timeout_sends_phx_leave_then_retries_with_backoff() {
    let mut h = Harness::connected(config());
    let out = h.join("room:slow");
    let jr = out.joins()[0].join_ref.clone().unwrap();
    let out = h.advance(3000);
    let leaves = out.by_event("phx_leave");
    assert_eq!(leaves.len(), 1);
    assert_eq!(leaves[0].join_ref.as_ref(), Some(&jr));
    assert!(out.joins().is_empty());
    let out = h.advance(100);
    assert_eq!(
        out.joins().len(),
        1,
        "rejoined after the first rejoin delay"
    );
    assert_ne!(out.joins()[0].join_ref.as_ref(), Some(&jr));
}

#[test]
fn stale_join_ref_frames_are_dropped() {
    let mut h = Harness::connected(config());
    let old = joined(&mut h, "room:1");
    // Crash, then rejoin with a new join_ref.
    let out = h.recv(Message::new(
        Some(old.clone()),
        Some(old.clone()),
        "room:1",
        Event::Error,
        Payload::empty(),
    ));
    assert_eq!(
        out.events,
        vec!["closed room:1: channel crashed (phx_error)"]
    );
    let out = h.advance(100);
    let new = out.joins()[0].join_ref.clone().unwrap();
    h.recv(reply(
        "room:1",
        Some(&new),
        &new,
        ReplyStatus::Ok,
        json!({}),
    ));
    // A late frame of the old incarnation, then its phx_close, change nothing.
    let out = h.recv(Message::new(
        Some(old.clone()),
        None,
        "room:1",
        Event::from("pushed"),
        Payload::empty(),
    ));
    assert!(out.events.is_empty());
    let out = h.recv(Message::new(
        Some(old.clone()),
        Some(old),
        "room:1",
        Event::Close,
        Payload::empty(),
    ));
    assert!(out.events.is_empty());
    assert_eq!(h.s.topic_status("room:1"), Some(TopicStatus::Joined));
    let out = h.recv(Message::new(
        Some(new),
        None,
        "room:1",
        Event::from("pushed"),
        Payload::empty(),
    ));
    assert_eq!(out.events, vec!["message room:1 pushed"]);
}

#[test]
fn phx_close_is_final_and_removes_the_topic_from_the_registry() {
    let mut h = Harness::connected(config());
    let jr = joined(&mut h, "room:1");
    let out = h.recv(Message::new(
        Some(jr.clone()),
        Some(jr),
        "room:1",
        Event::Close,
        Payload::empty(),
    ));
    assert_eq!(out.events, vec!["left room:1"]);
    assert!(!h.s.registry().contains("room:1"));
    h.drop_connection();
    assert!(h.reconnect_after_backoff().joins().is_empty());
}

#[test]
fn phx_close_before_the_join_reply_removes_the_topic_and_its_join_timer() {
    let mut h = Harness::connected(config());
    let before = h.s.timer_count();
    let out = h.join("room:1");
    let jr = out.joins()[0].join_ref.clone().unwrap();
    assert_eq!(h.s.timer_count(), before + 1, "the join timeout is armed");
    // The server stops the channel before its join reply arrives.
    let out = h.recv(Message::new(
        Some(jr.clone()),
        Some(jr),
        "room:1",
        Event::Close,
        Payload::empty(),
    ));
    assert_eq!(out.events, vec!["left room:1"]);
    assert!(!h.s.registry().contains("room:1"));
    assert_eq!(
        h.s.timer_count(),
        before,
        "the join timeout goes with the topic"
    );
}

#[test]
fn leave_sends_one_phx_leave_and_a_second_leave_sends_nothing() {
    let mut h = Harness::connected(config());
    let jr = joined(&mut h, "room:1");
    h.s.leave("room:1", None, h.now);
    let out = h.step();
    let leave = out.by_event("phx_leave")[0].clone();
    assert_eq!(leave.join_ref.as_ref(), Some(&jr));
    h.s.leave("room:1", None, h.now);
    assert!(h.step().sent.is_empty());
    let lr = leave.reference.unwrap();
    let out = h.recv(reply("room:1", Some(&jr), &lr, ReplyStatus::Ok, json!({})));
    assert_eq!(out.events, vec!["left room:1"]);
    // The phx_close that follows is stale now.
    assert!(h
        .recv(Message::new(
            Some(jr.clone()),
            Some(jr),
            "room:1",
            Event::Close,
            Payload::empty()
        ))
        .events
        .is_empty());
}

#[test]
fn pushes_carry_the_current_join_ref_and_replies_are_matched_by_ref() {
    let mut h = Harness::connected(config());
    let jr = joined(&mut h, "room:1");
    let (r, out) = h.push("room:1");
    let r = r.unwrap();
    assert_eq!(out.sent[0].join_ref.as_ref(), Some(&jr));
    assert_eq!(out.sent[0].reference.as_ref(), Some(&r));
    let out = h.recv(reply(
        "room:1",
        Some(&jr),
        &r,
        ReplyStatus::Ok,
        json!({"x": 1}),
    ));
    assert_eq!(out.events, vec![format!("reply room:1 {r} ok")]);
    // A second reply to the same ref is not delivered twice.
    assert!(h
        .recv(reply("room:1", Some(&jr), &r, ReplyStatus::Ok, json!({})))
        .events
        .is_empty());
    assert_eq!(h.s.timer_count(), 1, "only the heartbeat timer is left");
}

#[test]
fn push_to_an_unknown_topic_fails_at_once() {
    let mut h = Harness::connected(config());
    assert_eq!(h.push("room:nowhere").0, Err(PushError::NotJoined));
}

#[test]
fn pushes_buffered_across_a_disconnect_are_sent_once_after_the_rejoin() {
    let mut h = Harness::connected(config());
    joined(&mut h, "room:1");
    h.drop_connection();
    let (r, out) = h.push("room:1");
    let r = r.unwrap();
    assert!(out.sent.is_empty(), "buffered while disconnected");
    let out = h.reconnect_after_backoff();
    assert!(
        out.by_event("echo").is_empty(),
        "not sent before the join reply"
    );
    let jr = out.joins()[0].join_ref.clone().unwrap();
    let out = h.recv(reply("room:1", Some(&jr), &jr, ReplyStatus::Ok, json!({})));
    let echoes = out.by_event("echo");
    assert_eq!(echoes.len(), 1);
    assert_eq!(echoes[0].reference.as_ref(), Some(&r));
    assert_eq!(echoes[0].join_ref.as_ref(), Some(&jr));
}

#[test]
fn a_buffered_push_that_timed_out_is_never_sent() {
    let mut h = Harness::connected(config().push_timeout(Duration::from_millis(100)));
    let out = h.join("room:1");
    let jr = out.joins()[0].join_ref.clone().unwrap();
    let (r, _) = h.push("room:1");
    let out = h.advance(100);
    assert_eq!(
        out.events,
        vec![format!(
            "reply room:1 {} error: no reply within the push timeout",
            r.unwrap()
        )]
    );
    let out = h.recv(reply("room:1", Some(&jr), &jr, ReplyStatus::Ok, json!({})));
    assert!(out.by_event("echo").is_empty());
}

#[test]
fn push_buffer_is_bounded() {
    let mut h = Harness::connected(config().max_buffered_pushes(2));
    h.join("room:1");
    assert!(h.push("room:1").0.is_ok());
    assert!(h.push("room:1").0.is_ok());
    assert_eq!(h.push("room:1").0, Err(PushError::BufferFull));
}

#[test]
fn pushes_in_flight_fail_with_connection_lost_and_their_timers_are_released() {
    let mut h = Harness::connected(config());
    joined(&mut h, "room:1");
    let (r, _) = h.push("room:1");
    let out = h.drop_connection();
    assert!(out.events.contains(&format!(
        "reply room:1 {} error: connection lost before the reply",
        r.unwrap()
    )));
    assert_eq!(h.s.status().pending_replies, 0);
    assert_eq!(h.s.timer_count(), 1, "only the reconnect timer");
}

#[test]
fn unanswered_heartbeat_closes_and_reconnects() {
    let mut h = Harness::connected(config());
    let out = h.advance(1000);
    let hb = out.by_event("heartbeat");
    assert_eq!(hb.len(), 1);
    assert_eq!(hb[0].topic, "phoenix");
    assert!(hb[0].join_ref.is_none());
    let out = h.advance(500);
    assert_eq!(out.closes, vec![1000]);
    assert_eq!(out.events, vec!["disconnected: heartbeat timeout"]);
    assert_eq!(h.advance(10).connects.len(), 1);
}

#[test]
fn answered_heartbeat_keeps_the_connection_and_resets_the_reconnect_backoff() {
    let mut h = Harness::connected(config());
    h.drop_connection();
    h.advance(10);
    h.s.handle_closed(
        ConnId(h.gen),
        DisconnectReason::ConnectFailed(ConnectError::Refused(403)),
        h.now,
    );
    h.step();
    assert_eq!(h.s.reconnect.attempt(), 2);
    let out = h.advance(20);
    h.s.handle_connected(ConnId(out.connects[0]), h.now);
    h.step();
    let hb = h.advance(1000).by_event("heartbeat")[0]
        .reference
        .clone()
        .unwrap();
    h.recv(reply("phoenix", None, &hb, ReplyStatus::Ok, json!({})));
    assert_eq!(h.s.reconnect.attempt(), 0);
    assert!(h.advance(600).closes.is_empty());
    assert!(h.s.status().last_heartbeat_rtt.is_some());
}

#[test]
fn dynamically_joined_topics_are_all_rejoined_after_a_reconnect() {
    let mut h = Harness::connected(config());
    for i in 0..100 {
        joined(&mut h, &format!("room:{i}"));
    }
    h.drop_connection();
    let out = h.reconnect_after_backoff();
    let mut topics: Vec<String> = out.joins().iter().map(|m| m.topic.to_string()).collect();
    topics.sort();
    topics.dedup();
    assert_eq!(topics.len(), 100);
    assert_eq!(out.joins().len(), 100, "one phx_join per topic");
}

#[test]
fn user_disconnect_closes_and_does_not_reconnect() {
    let mut h = Harness::connected(config());
    h.s.disconnect(h.now);
    let out = h.step();
    assert_eq!(out.closes, vec![1000]);
    assert!(h.advance(60_000).connects.is_empty());
    assert_eq!(h.s.connection_status(), ConnectionStatus::Disconnected);
}

#[test]
fn join_asked_while_disconnected_is_sent_at_the_next_connect() {
    let mut h = Harness::new(config());
    h.s.join(Topic::from("room:1"), json!({"a": 1}), None, h.now);
    assert!(h.step().sent.is_empty());
    h.s.connect();
    let out = h.step();
    h.s.handle_connected(ConnId(out.connects[0]), h.now);
    let out = h.step();
    assert_eq!(out.joins().len(), 1);
    assert_eq!(out.joins()[0].payload, Payload::Json(json!({"a": 1})));
}

#[test]
fn v1_phx_error_without_join_ref_is_matched_by_ref() {
    let mut h = Harness::connected(config().serializer(crate::codec::V1Json));
    let jr = joined(&mut h, "room:1");
    let out = h.recv(Message::new(
        None,
        Some(Ref::from("999")),
        "room:1",
        Event::Error,
        Payload::empty(),
    ));
    assert!(out.events.is_empty(), "ref is not the join_ref: stale");
    let out = h.recv(Message::new(
        None,
        Some(jr),
        "room:1",
        Event::Error,
        Payload::empty(),
    ));
    assert_eq!(
        out.events,
        vec!["closed room:1: channel crashed (phx_error)"]
    );
}

// ---------------------------------------------------------------- lifecycle

type JoinRx = Rx<Result<Payload, JoinError>>;
type LeaveRx = Rx<Result<(), LeaveError>>;

/// A `Join` message: the join with a waiter.
fn join_waiting(h: &mut Harness, topic: &str, params: Value) -> (JoinRx, Out) {
    let rx = h.request();
    h.s.join(topic, params, Some(rx.id), h.now);
    (rx, h.step())
}

/// A `Leave` message: the leave with a waiter.
fn leave_waiting(h: &mut Harness, topic: &str) -> (LeaveRx, Out) {
    let rx = h.request();
    h.s.leave(topic, Some(rx.id), h.now);
    (rx, h.step())
}

/// A `Push` message: the push with a waiter.
fn push_waiting(h: &mut Harness, topic: &str) -> Rx<Result<Reply, PushError>> {
    let rx = h.request();
    let timeout = h.s.config().push_timeout;
    h.s.push(
        topic,
        Event::from("echo"),
        Payload::empty(),
        timeout,
        Some(rx.id),
        h.now,
    )
    .unwrap();
    rx
}

#[test]
fn a_join_right_after_a_leave_is_sent_once_the_leave_is_done_and_answered_with_its_own_outcome() {
    let mut h = Harness::connected(config());
    let jr = joined(&mut h, "room:1");
    let (mut left, out) = leave_waiting(&mut h, "room:1");
    let leave = out.by_event("phx_leave")[0].clone();
    let (mut rejoined, out) = join_waiting(&mut h, "room:1", json!({"n": 2}));
    assert!(
        out.sent.is_empty(),
        "no phx_join while the leave is in flight"
    );
    assert!(rejoined.try_recv().is_err(), "not answered yet");
    let out = h.recv(reply(
        "room:1",
        Some(&jr),
        leave.reference.as_ref().unwrap(),
        ReplyStatus::Ok,
        json!({}),
    ));
    assert_eq!(out.events, vec!["left room:1"]);
    let joins = out.joins();
    assert_eq!(
        joins.len(),
        1,
        "the new join goes out once the leave is done"
    );
    assert_eq!(joins[0].payload, Payload::Json(json!({"n": 2})));
    let jr2 = joins[0].join_ref.clone().unwrap();
    assert_ne!(jr2, jr);
    assert!(
        rejoined.try_recv().is_err(),
        "answered by its own join's reply"
    );
    let out = h.recv(reply(
        "room:1",
        Some(&jr2),
        &jr2,
        ReplyStatus::Ok,
        json!({"welcome": 2}),
    ));
    assert_eq!(out.events, vec!["joined room:1"]);
    assert_eq!(
        rejoined.try_recv().unwrap(),
        Ok(Payload::Json(json!({"welcome": 2})))
    );
    assert_eq!(left.try_recv().unwrap(), Ok(()));
    assert_eq!(h.s.registry().params("room:1"), Some(&json!({"n": 2})));
}

#[test]
fn a_join_during_a_leave_is_cancelled_by_a_second_leave() {
    let mut h = Harness::connected(config());
    let jr = joined(&mut h, "room:1");
    let (_, out) = leave_waiting(&mut h, "room:1");
    let leave_ref = out.by_event("phx_leave")[0].reference.clone().unwrap();
    let (mut rejoined, _) = join_waiting(&mut h, "room:1", json!({}));
    let (_, out) = leave_waiting(&mut h, "room:1");
    assert!(out.sent.is_empty(), "the leave is already in flight");
    assert_eq!(rejoined.try_recv().unwrap(), Err(JoinError::Left));
    let out = h.recv(reply(
        "room:1",
        Some(&jr),
        &leave_ref,
        ReplyStatus::Ok,
        json!({}),
    ));
    assert_eq!(out.events, vec!["left room:1"]);
    assert!(out.joins().is_empty());
    assert!(!h.s.registry().contains("room:1"));
}

#[test]
fn phx_error_during_a_user_leave_ends_the_leave_with_handle_leave() {
    let mut h = Harness::connected(config());
    let jr = joined(&mut h, "room:1");
    let (mut left, _) = leave_waiting(&mut h, "room:1");
    assert_eq!(h.s.timer_count(), 2, "the heartbeat and the leave timers");
    let out = h.recv(Message::new(
        Some(jr.clone()),
        Some(jr),
        "room:1",
        Event::Error,
        Payload::empty(),
    ));
    assert_eq!(
        out.events,
        vec!["left room:1"],
        "handle_leave, not a topic close"
    );
    assert_eq!(left.try_recv().unwrap(), Ok(()));
    assert_eq!(h.s.timer_count(), 1, "the leave timer is cancelled");
    assert!(h.s.topic_status("room:1").is_none());
    assert!(h
        .advance(60_000)
        .events
        .iter()
        .all(|e| !e.contains("room:1")));
}

#[test]
fn handle_leave_runs_once_per_left_topic_whatever_ends_the_leave() {
    // The reply, then the server's phx_close; the connection lost; the leave timeout.
    let mut h = Harness::connected(config());
    let jr = joined(&mut h, "room:1");
    let (_, out) = leave_waiting(&mut h, "room:1");
    let lr = out.by_event("phx_leave")[0].reference.clone().unwrap();
    let mut events = h
        .recv(reply("room:1", Some(&jr), &lr, ReplyStatus::Ok, json!({})))
        .events;
    events.extend(
        h.recv(Message::new(
            Some(jr.clone()),
            Some(jr),
            "room:1",
            Event::Close,
            Payload::empty(),
        ))
        .events,
    );
    assert_eq!(events, vec!["left room:1"]);

    joined(&mut h, "room:2");
    let (mut left, _) = leave_waiting(&mut h, "room:2");
    let out = h.drop_connection();
    assert_eq!(out.events.iter().filter(|e| *e == "left room:2").count(), 1);
    assert_eq!(left.try_recv().unwrap(), Ok(()), "the socket is gone: left");

    let mut h = Harness::connected(config());
    joined(&mut h, "room:3");
    let (mut left, _) = leave_waiting(&mut h, "room:3");
    let out = h.advance(5000);
    assert_eq!(out.events, vec!["left room:3"]);
    assert_eq!(left.try_recv().unwrap(), Err(LeaveError::Timeout));
    assert!(h
        .advance(60_000)
        .events
        .iter()
        .all(|e| !e.contains("room:3")));
}

#[test]
fn a_leave_resolves_at_once_when_the_topic_is_not_joined_or_wanted() {
    let mut h = Harness::connected(config());
    let (mut unknown, out) = leave_waiting(&mut h, "room:never");
    assert!(out.sent.is_empty() && out.events.is_empty());
    assert_eq!(unknown.try_recv().unwrap(), Ok(()));
    // Wanted but not joined (disconnected): left at once, handle_leave runs.
    joined(&mut h, "room:1");
    h.drop_connection();
    let (mut waiting, out) = leave_waiting(&mut h, "room:1");
    assert_eq!(out.events, vec!["left room:1"]);
    assert_eq!(waiting.try_recv().unwrap(), Ok(()));
    assert!(h.s.status().topics.is_empty());
}

#[test]
fn a_join_with_other_params_of_a_wanted_topic_is_a_params_conflict_and_changes_nothing() {
    let mut h = Harness::connected(config());
    let (mut one, out) = join_waiting(&mut h, "room:1", json!({"n": 1}));
    let (mut two, out2) = join_waiting(&mut h, "room:1", json!({"n": 2}));
    let (mut three, out3) = join_waiting(&mut h, "room:1", json!({"n": 3}));
    assert_eq!(out.joins().len(), 1);
    assert!(out2.sent.is_empty() && out3.sent.is_empty());
    assert_eq!(two.try_recv().unwrap(), Err(JoinError::ParamsConflict));
    assert_eq!(three.try_recv().unwrap(), Err(JoinError::ParamsConflict));
    let jr = out.joins()[0].join_ref.clone().unwrap();
    h.recv(reply(
        "room:1",
        Some(&jr),
        &jr,
        ReplyStatus::Ok,
        json!({"n": 1}),
    ));
    assert_eq!(one.try_recv().unwrap(), Ok(Payload::Json(json!({"n": 1}))));
    assert_eq!(h.s.registry().params("room:1"), Some(&json!({"n": 1})));
    // Also once joined, and while waiting for a reconnect: the params stay.
    let (mut four, _) = join_waiting(&mut h, "room:1", json!({"n": 4}));
    assert_eq!(four.try_recv().unwrap(), Err(JoinError::ParamsConflict));
    h.drop_connection();
    let (mut five, _) = join_waiting(&mut h, "room:1", json!({"n": 5}));
    assert_eq!(five.try_recv().unwrap(), Err(JoinError::ParamsConflict));
    let out = h.reconnect_after_backoff();
    assert_eq!(out.joins()[0].payload, Payload::Json(json!({"n": 1})));
}

#[test]
fn a_join_with_the_wanted_params_is_answered_with_the_current_joins_outcome() {
    let mut h = Harness::connected(config());
    let (mut first, out) = join_waiting(&mut h, "room:1", json!({"n": 1}));
    let (mut second, out2) = join_waiting(&mut h, "room:1", json!({"n": 1}));
    assert!(out2.sent.is_empty(), "no duplicate phx_join");
    let jr = out.joins()[0].join_ref.clone().unwrap();
    h.recv(reply(
        "room:1",
        Some(&jr),
        &jr,
        ReplyStatus::Ok,
        json!({"ok": 1}),
    ));
    assert_eq!(
        first.try_recv().unwrap(),
        Ok(Payload::Json(json!({"ok": 1})))
    );
    assert_eq!(
        second.try_recv().unwrap(),
        Ok(Payload::Json(json!({"ok": 1})))
    );
    let (mut third, out) = join_waiting(&mut h, "room:1", json!({"n": 1}));
    assert!(out.sent.is_empty());
    assert_eq!(
        third.try_recv().unwrap(),
        Ok(Payload::Json(json!({"ok": 1})))
    );
}

#[test]
fn stop_gives_every_open_request_its_outcome_and_leaves_no_timer() {
    let mut h = Harness::connected(config());
    joined(&mut h, "room:joined");
    let (in_flight_cb, _) = h.push("room:joined");
    let mut in_flight = push_waiting(&mut h, "room:joined");
    h.step();
    let (mut joining, _) = join_waiting(&mut h, "room:joining", json!({}));
    let (buffered_cb, _) = h.push("room:joining");
    let mut buffered = push_waiting(&mut h, "room:joining");
    h.step();
    joined(&mut h, "room:leaving");
    let (mut leaving, _) = leave_waiting(&mut h, "room:leaving");
    let (mut after_leave, _) = join_waiting(&mut h, "room:leaving", json!({"again": true}));

    h.s.stop(h.now);
    let out = h.step();
    assert_eq!(out.closes, vec![1000]);
    for (topic, r) in [
        ("room:joining", buffered_cb.unwrap()),
        ("room:joined", in_flight_cb.unwrap()),
    ] {
        let outcome = format!("reply {topic} {r} error: client stopped");
        assert_eq!(
            out.events.iter().filter(|e| **e == outcome).count(),
            1,
            "{outcome}: {out:?}"
        );
    }
    assert_eq!(in_flight.try_recv().unwrap(), Err(PushError::Stopped));
    assert_eq!(buffered.try_recv().unwrap(), Err(PushError::Stopped));
    assert_eq!(joining.try_recv().unwrap(), Err(JoinError::Stopped));
    assert_eq!(leaving.try_recv().unwrap(), Err(LeaveError::Stopped));
    assert_eq!(after_leave.try_recv().unwrap(), Err(JoinError::Stopped));
    assert!(out.events.contains(&"left room:leaving".to_owned()));
    assert_eq!(
        out.events.last().map(String::as_str),
        Some("disconnected: client stopped")
    );
    let status = h.s.status();
    assert_eq!((status.pending_replies, status.buffered_pushes), (0, 0));
    assert_eq!(h.s.timer_count(), 0);
    // The registry is kept for a supervisor restart, the join asked during the leave included.
    for t in ["room:joined", "room:joining", "room:leaving"] {
        assert!(h.s.registry().contains(t), "{t}");
    }
    // Pushes are refused until the actor starts again.
    assert_eq!(h.push("room:joined").0, Err(PushError::Stopped));
}

#[test]
fn a_stopping_client_ignores_connect_requests_until_it_starts_again() {
    let mut h = Harness::connected(config());
    joined(&mut h, "room:1");
    h.s.stop(h.now);
    h.step();
    h.s.connect();
    h.s.reconnect(h.now);
    h.s.decide_disconnect(AfterDisconnect::Reconnect, h.now);
    let out = h.advance(60_000);
    assert!(out.connects.is_empty());
    assert_eq!(h.s.connection_status(), ConnectionStatus::Disconnected);
    assert_eq!(h.s.timer_count(), 0);
    // A supervisor restart: `init` connects normally, and the topic is rejoined.
    h.s.start();
    h.s.connect();
    let out = h.step();
    assert_eq!(out.connects.len(), 1);
    h.s.handle_connected(ConnId(h.gen), h.now);
    assert_eq!(h.step().joins().len(), 1);
}

#[test]
fn a_join_ok_resets_the_reconnect_backoff() {
    let mut h = Harness::connected(config());
    h.s.join(Topic::from("room:1"), json!({}), None, h.now);
    h.step();
    h.drop_connection();
    h.advance(10);
    h.s.handle_closed(
        ConnId(h.gen),
        DisconnectReason::ConnectFailed(ConnectError::Timeout),
        h.now,
    );
    h.step();
    assert_eq!(h.s.reconnect.attempt(), 2);
    let out = h.reconnect_after_backoff();
    assert_eq!(h.s.reconnect.attempt(), 2, "not healthy yet");
    let jr = out.joins()[0].join_ref.clone().unwrap();
    h.recv(reply("room:1", Some(&jr), &jr, ReplyStatus::Ok, json!({})));
    assert_eq!(h.s.reconnect.attempt(), 0);
}

#[test]
fn a_refused_port_is_polled_on_its_own_schedule_and_other_failures_keep_theirs() {
    let config = config()
        .reconnect_backoff(Backoff::from_millis(&[1000, 2000]))
        .reconnect_refused_backoff(Backoff::from_millis(&[30, 40]));
    let mut h = Harness::connected(config);
    joined(&mut h, "room:1");
    h.drop_connection();
    // A lost connection: the normal schedule.
    assert!(h.advance(999).connects.is_empty());
    let out = h.advance(1);
    assert_eq!(out.connects.len(), 1);
    let refused = |h: &mut Harness, conn: u64| {
        h.s.handle_closed(
            ConnId(conn),
            DisconnectReason::ConnectFailed(ConnectError::ConnectionRefused),
            h.now,
        );
        h.step();
    };
    // The port refuses: polled after 30, then 40 ms.
    refused(&mut h, out.connects[0]);
    assert!(h.advance(29).connects.is_empty());
    let out = h.advance(1);
    assert_eq!(out.connects.len(), 1, "refused schedule, first delay");
    refused(&mut h, out.connects[0]);
    assert!(h.advance(39).connects.is_empty());
    let out = h.advance(1);
    assert_eq!(out.connects.len(), 1, "refused schedule, second delay");
    // A timeout loads the server: back on the normal schedule, at its second delay.
    h.s.handle_closed(
        ConnId(out.connects[0]),
        DisconnectReason::ConnectFailed(ConnectError::Timeout),
        h.now,
    );
    h.step();
    assert!(h.advance(1999).connects.is_empty());
    let out = h.advance(1);
    assert_eq!(out.connects.len(), 1, "normal schedule, second delay");
    // A healthy connection starts both schedules over.
    h.s.handle_connected(ConnId(out.connects[0]), h.now);
    let out = h.step();
    assert_eq!(h.s.reconnect.attempt(), 2, "not healthy yet");
    let jr = out.joins()[0].join_ref.clone().unwrap();
    h.recv(reply("room:1", Some(&jr), &jr, ReplyStatus::Ok, json!({})));
    assert_eq!(h.s.reconnect.attempt(), 0);
    assert_eq!(h.s.reconnect_refused.attempt(), 0);
}

#[test]
fn a_push_while_a_join_waits_for_a_leave_is_sent_after_that_join() {
    let mut h = Harness::connected(config());
    let jr = joined(&mut h, "room:1");
    let (_, out) = leave_waiting(&mut h, "room:1");
    let leave_ref = out.by_event("phx_leave")[0].reference.clone().unwrap();
    let (r, out) = h.push("room:1");
    assert_eq!(r, Err(PushError::NotJoined), "left and not wanted: refused");
    assert!(out.sent.is_empty());
    let (_rejoined, _) = join_waiting(&mut h, "room:1", json!({}));
    let (r, out) = h.push("room:1");
    let reference = r.expect("wanted again: the push waits for the join");
    assert!(out.sent.is_empty(), "nothing goes out during the leave");
    let out = h.recv(reply(
        "room:1",
        Some(&jr),
        &leave_ref,
        ReplyStatus::Ok,
        json!({}),
    ));
    assert_eq!(
        out.events,
        vec!["left room:1"],
        "the push survives the leave"
    );
    let jr2 = out.joins()[0].join_ref.clone().unwrap();
    let out = h.recv(reply(
        "room:1",
        Some(&jr2),
        &jr2,
        ReplyStatus::Ok,
        json!({}),
    ));
    let pushes = out.by_event("echo");
    assert_eq!(pushes.len(), 1, "sent once the new join is in: {out:?}");
    assert_eq!(pushes[0].reference.as_ref(), Some(&reference));
    assert_eq!(pushes[0].join_ref.as_ref(), Some(&jr2));
}

// ---------------------------------------------------------------- the engine's defaults

/// Drains the queue by hand, keeping the notifications.
fn notifications(h: &mut Harness) -> Vec<Notification> {
    let mut out = Vec::new();
    while let Some(effect) = h.s.poll_effect() {
        if let Effect::Notify(n) = effect {
            out.push(n);
        }
    }
    out
}

#[test]
fn the_registry_is_rejoined_before_the_connected_notification() {
    let mut h = Harness::connected(config());
    joined(&mut h, "room:1");
    h.drop_connection();
    h.advance(20);
    h.s.handle_connected(ConnId(h.gen), h.now);
    let mut order = Vec::new();
    while let Some(effect) = h.s.poll_effect() {
        match effect {
            Effect::Send(m) => order.push(format!("send {}", m.event)),
            Effect::Notify(Notification::Connected) => order.push("connected".into()),
            other => order.push(format!("{other:?}")),
        }
    }
    assert_eq!(order, ["send phx_join", "connected"]);
    assert_eq!(h.s.status().rejoins, 1);
}

#[test]
fn with_rejoin_on_connect_off_only_the_joins_asked_while_disconnected_are_sent() {
    let mut h = Harness::connected(config().rejoin_on_connect(false));
    joined(&mut h, "room:1");
    h.drop_connection();
    // Asked for while disconnected: sent at the next connect all the same.
    h.s.join("room:2", json!({}), None, h.now);
    let out = h.reconnect_after_backoff();
    let topics: Vec<String> = out.joins().iter().map(|m| m.topic.to_string()).collect();
    assert_eq!(topics, ["room:2"]);
    assert_eq!(h.s.topic_status("room:1"), Some(TopicStatus::Errored));
    // The user rejoins by hand.
    assert!(h.s.rejoin("room:1", h.now));
    assert_eq!(h.step().joins().len(), 1);
    assert_eq!(h.s.topic_status("room:1"), Some(TopicStatus::Joining));
}

#[test]
fn the_disconnected_notification_carries_the_default_decision() {
    let mut h = Harness::connected(config());
    h.s.handle_closed(
        ConnId(h.gen),
        DisconnectReason::ConnectionLost("test".into()),
        h.now,
    );
    let n = notifications(&mut h);
    assert!(
        matches!(
            &n[..],
            [Notification::Disconnected {
                default: AfterDisconnect::Reconnect,
                ..
            }]
        ),
        "{n:?}"
    );
    // Nothing was decided: the engine waits for the decision.
    assert_eq!(h.s.connection_status(), ConnectionStatus::Disconnected);
    h.s.decide_disconnect(AfterDisconnect::Reconnect, h.now);
    assert_eq!(
        h.s.connection_status(),
        ConnectionStatus::WaitingToReconnect
    );

    h.s.connect();
    h.step();
    h.s.handle_connected(ConnId(h.gen), h.now);
    h.step();
    h.s.disconnect(h.now);
    let n = notifications(&mut h);
    assert!(
        matches!(
            &n[..],
            [Notification::Disconnected {
                reason: DisconnectReason::Requested,
                default: AfterDisconnect::StayDisconnected,
            }]
        ),
        "{n:?}"
    );

    let mut h = Harness::new(config());
    h.s.connect();
    h.step();
    let bad = ConnectError::Config(crate::ConfigError::InvalidSetting {
        name: "url",
        reason: "test".into(),
    });
    h.s.handle_closed(ConnId(h.gen), DisconnectReason::ConnectFailed(bad), h.now);
    let n = notifications(&mut h);
    assert!(
        matches!(
            &n[..],
            [Notification::Disconnected {
                default: AfterDisconnect::StayDisconnected,
                ..
            }]
        ),
        "an invalid configuration is not retried: {n:?}"
    );
}

#[test]
fn the_topic_closed_notification_carries_the_retry_policys_decision() {
    let mut h = Harness::connected(config());
    let jr = joined(&mut h, "room:1");
    h.s.handle_message(
        Message::new(
            Some(jr.clone()),
            Some(jr),
            "room:1",
            Event::Error,
            Payload::empty(),
        ),
        h.now,
    );
    let n = notifications(&mut h);
    assert!(
        matches!(
            &n[..],
            [Notification::TopicClosed {
                default: AfterTopicClose::Rejoin,
                ..
            }]
        ),
        "a crash is rejoined: {n:?}"
    );
    h.s.decide_topic_close(&Topic::from("room:1"), AfterTopicClose::Forget, h.now);
    assert!(h.s.registry().is_empty(), "forgotten as decided");

    let out = h.join("room:2");
    let join = out.joins()[0].clone();
    let jr = join.join_ref.clone().unwrap();
    h.s.handle_message(
        reply(
            "room:2",
            Some(&jr),
            &jr,
            ReplyStatus::Error,
            json!({"reason": "unauthorized"}),
        ),
        h.now,
    );
    let n = notifications(&mut h);
    assert!(
        matches!(
            &n[..],
            [Notification::TopicClosed {
                default: AfterTopicClose::Forget,
                ..
            }]
        ),
        "a rejected join is given up by default: {n:?}"
    );
}

#[test]
fn a_cancelled_join_request_is_forgotten_and_never_resolved() {
    let mut h = Harness::new(config());
    let (mut first, _) = join_waiting(&mut h, "room:1", json!({}));
    let (mut second, _) = join_waiting(&mut h, "room:1", json!({}));
    assert_eq!(h.s.open_requests(), 2);
    h.s.cancel(first.id);
    assert_eq!(h.s.open_requests(), 1);
    h.s.connect();
    h.step();
    h.s.handle_connected(ConnId(h.gen), h.now);
    let out = h.step();
    let jr = out.joins()[0].join_ref.clone().unwrap();
    h.recv(reply("room:1", Some(&jr), &jr, ReplyStatus::Ok, json!({})));
    assert!(first.try_recv().is_err(), "cancelled: no outcome");
    assert_eq!(second.try_recv().unwrap(), Ok(Payload::Json(json!({}))));
    assert_eq!(h.s.open_requests(), 0);
}

#[test]
fn a_reply_to_another_ref_on_the_phoenix_topic_does_not_answer_the_heartbeat() {
    let mut h = Harness::connected(config());
    let out = h.advance(1000);
    let hb = out.by_event("heartbeat")[0].reference.clone().unwrap();
    let other = Ref::from(hb.as_u64().unwrap() + 100);
    let phoenix_reply = |r: &Ref| {
        Message::new(
            None,
            Some(r.clone()),
            "phoenix",
            Event::Reply(ReplyStatus::Ok),
            Payload::empty(),
        )
    };
    h.now += Duration::from_millis(5);
    h.recv(phoenix_reply(&other));
    assert_eq!(h.s.status().last_heartbeat_rtt, None);
    h.recv(phoenix_reply(&hb));
    assert_eq!(
        h.s.status().last_heartbeat_rtt,
        Some(Duration::from_millis(5))
    );
    // Answered: no timeout closes the connection.
    assert!(h.advance(600).closes.is_empty());
}

#[test]
fn poll_send_takes_only_the_frames_at_the_head_of_the_queue() {
    let mut h = Harness::connected(config());
    joined(&mut h, "room:1");
    let push = |h: &mut Harness| {
        let now = h.now;
        h.s.push(
            "room:1",
            Event::from("echo"),
            Payload::empty(),
            Duration::from_secs(5),
            None,
            now,
        )
        .unwrap()
    };
    // A push: its frame is at the head of the queue.
    let r = push(&mut h);
    let sent = h.s.poll_send().expect("the push is at the head");
    assert_eq!(sent.reference, Some(r.clone()));
    assert!(h.s.poll_send().is_none(), "nothing else is queued");
    // A reply to the push queues a notification: poll_send leaves it, and a push made
    // after it, in place.
    h.s.handle_message(reply("room:1", None, &r, ReplyStatus::Ok, json!({})), h.now);
    let r2 = push(&mut h);
    assert!(h.s.poll_send().is_none(), "a notification is at the head");
    let out = h.step();
    assert_eq!(out.events, vec![format!("reply room:1 {r} ok")]);
    assert_eq!(out.sent.len(), 1);
    assert_eq!(out.sent[0].reference, Some(r2));
}
