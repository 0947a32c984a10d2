//! Joining and leaving: good and bad topics, duplicates, stale frames.
#![cfg(feature = "testing")]

mod common;

use std::time::Duration;

use actix::{Handler, Message};
use actix_slipstream::testing::{RawFrame, ServerEvent, Silence};
use actix_slipstream::{
    Client, ClientExt, Join, JoinError, Leave, LeaveError, Payload, TopicCloseReason, TopicStatus,
};
use common::*;
use serde_json::json;

#[actix_rt::test]
async fn joining_a_good_topic_returns_the_join_response() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    let response = addr.join("room:lobby", json!({"hello": "world"})).await;
    assert_eq!(response, Ok(Payload::Json(json!({"hello": "world"}))));
    assert_eq!(
        events.joined("room:lobby").await,
        Payload::Json(json!({"hello": "world"}))
    );
    let status = addr.status().await.unwrap();
    assert_eq!(
        status.topic("room:lobby").unwrap().status,
        TopicStatus::Joined
    );
}

#[actix_rt::test]
async fn a_duplicate_join_is_not_sent() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    let a = addr.send(Join::new("room:dup", json!({})));
    let b = addr.send(Join::new("room:dup", json!({})));
    assert!(a.await.unwrap().is_ok());
    assert!(b.await.unwrap().is_ok());
    assert!(addr.join("room:dup", json!({})).await.is_ok());
    events.joined("room:dup").await;
    // A push round trip orders everything the client sent before it.
    addr.push("room:dup", "echo", json!({})).await.unwrap();
    assert_eq!(frames_received(&server, Some("room:dup"), "phx_join"), 1);
    assert_eq!(events.count(|e| matches!(e, Ev::Joined(..))), 1);
}

#[actix_rt::test]
async fn joining_a_topic_no_channel_handles_fails_and_is_not_retried() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    let result = addr.join("nochannel:x", json!({})).await;
    assert_eq!(result, Err(JoinError::UnmatchedTopic));
    assert_eq!(
        events.topic_closed("nochannel:x").await,
        TopicCloseReason::JoinFailed(JoinError::UnmatchedTopic)
    );
    let status = addr.status().await.unwrap();
    assert!(
        status.topic("nochannel:x").is_none(),
        "given up: no rejoin planned"
    );
}

#[actix_rt::test]
async fn a_refused_join_is_reported_once_and_given_up() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    let result = addr.join("private:x", json!({"token": "nope"})).await;
    assert_eq!(
        result,
        Err(JoinError::Rejected(Payload::Json(
            json!({"reason": "unauthorized"})
        )))
    );
    events.topic_closed("private:x").await;
    assert!(addr.status().await.unwrap().topic("private:x").is_none());
    assert_eq!(frames_received(&server, Some("private:x"), "phx_join"), 1);
    // The right token joins.
    let ok = addr.join("private:x", json!({"token": "secret"})).await;
    assert_eq!(ok, Ok(Payload::Json(json!({}))));
}

#[actix_rt::test]
async fn leaving_sends_one_phx_leave_and_reports_the_leave() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    addr.join("room:bye", json!({})).await.unwrap();
    let first = addr.send(Leave::new("room:bye"));
    let second = addr.send(Leave::new("room:bye"));
    assert_eq!(first.await.unwrap(), Ok(()));
    assert_eq!(
        second.await.unwrap(),
        Ok(()),
        "a second leave is idempotent"
    );
    events.left("room:bye").await;
    server
        .wait_for(
            WAIT,
            |e| matches!(e, ServerEvent::Left(_, t, _) if t == "room:bye"),
        )
        .await
        .unwrap();
    // Round trip on another topic to be sure nothing else was sent.
    addr.join("room:other", json!({})).await.unwrap();
    assert_eq!(frames_received(&server, Some("room:bye"), "phx_leave"), 1);
    assert_eq!(
        events.count(|e| matches!(e, Ev::Left(t) if t == "room:bye")),
        1
    );
    assert!(addr.status().await.unwrap().topic("room:bye").is_none());
}

#[actix_rt::test]
async fn stale_frames_after_a_join_retry_are_ignored() {
    let server = demo_server().await;
    // The first join's reply arrives after the join timeout: the client leaves and
    // joins again with a fresh join_ref; the late reply and the old channel's
    // phx_close then carry a stale join_ref.
    server.set_reply_delay(Duration::from_millis(700));
    let config = config(&server).join_timeout(Duration::from_millis(300));
    let (addr, mut events) = start(config);
    addr.do_send(Join::new("room:slow", json!({})));
    assert_eq!(
        events.topic_closed("room:slow").await,
        TopicCloseReason::JoinFailed(JoinError::Timeout)
    );
    server.set_reply_delay(Duration::ZERO);
    events.joined("room:slow").await;
    // Wait until the server has sent everything about the first join.
    server
        .wait_for(
            WAIT,
            |e| matches!(e, ServerEvent::Left(_, t, _) if t == "room:slow"),
        )
        .await
        .unwrap();
    let reply = addr
        .push("room:slow", "echo", json!({"after": "retry"}))
        .await;
    assert_eq!(
        reply.unwrap().response,
        Payload::Json(json!({"after": "retry"}))
    );
    let status = addr.status().await.unwrap();
    let topic = status.topic("room:slow").unwrap();
    assert_eq!(topic.status, TopicStatus::Joined);
    let socket = server.wait_for_join("room:slow", WAIT).await.unwrap();
    let server_ref = server
        .socket(socket)
        .unwrap()
        .channels
        .get("room:slow")
        .cloned()
        .flatten();
    assert_eq!(
        topic.join_ref, server_ref,
        "client and server agree on the join_ref"
    );
    assert_eq!(
        events.count(|e| matches!(e, Ev::Joined(t, _) if t == "room:slow")),
        1
    );
}

#[actix_rt::test]
async fn a_join_right_after_a_leave_is_answered_with_that_joins_outcome() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    addr.join("room:again", json!({"n": 1})).await.unwrap();
    // The leave's reply is still on its way when the join arrives.
    server.set_reply_delay(Duration::from_millis(100));
    let leave = addr.send(Leave::new("room:again"));
    let join = addr.send(Join::new("room:again", json!({"n": 2})));
    assert_eq!(leave.await.unwrap(), Ok(()));
    assert_eq!(join.await.unwrap(), Ok(Payload::Json(json!({"n": 2}))));
    // In order: the first join, the leave, the new join.
    assert_eq!(
        events.joined("room:again").await,
        Payload::Json(json!({"n": 1}))
    );
    events.left("room:again").await;
    assert_eq!(
        events.joined("room:again").await,
        Payload::Json(json!({"n": 2}))
    );
    let status = addr.status().await.unwrap();
    let topic = status.topic("room:again").unwrap();
    assert_eq!(topic.status, TopicStatus::Joined);
    let socket = server.wait_for_join("room:again", WAIT).await.unwrap();
    assert_eq!(
        server
            .socket(socket)
            .unwrap()
            .channels
            .get("room:again")
            .cloned()
            .flatten(),
        topic.join_ref,
        "the server has the new join"
    );
    assert_eq!(frames_received(&server, Some("room:again"), "phx_join"), 2);
}

#[actix_rt::test]
async fn three_concurrent_joins_with_different_params_get_one_join_and_two_conflicts() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    let joins: Vec<_> = (1..=3)
        .map(|n| addr.send(Join::new("room:n", json!({"n": n}))))
        .collect();
    let results: Vec<_> = futures_util::future::join_all(joins)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        results,
        vec![
            Ok(Payload::Json(json!({"n": 1}))),
            Err(JoinError::ParamsConflict),
            Err(JoinError::ParamsConflict),
        ]
    );
    events.joined("room:n").await;
    // The params stay those of the join that won, through a reconnect too.
    let old = server.wait_for_join("room:n", WAIT).await.unwrap();
    server.drop_all_connections();
    assert_eq!(
        events.joined("room:n").await,
        Payload::Json(json!({"n": 1}))
    );
    assert!(server.sockets().iter().all(|s| s.id != old));
    assert_eq!(frames_received(&server, Some("room:n"), "phx_join"), 2);
    // Leaving first, then joining with new params, is the way to change them.
    assert_eq!(addr.leave("room:n").await, Ok(()));
    assert_eq!(
        addr.join("room:n", json!({"n": 4})).await,
        Ok(Payload::Json(json!({"n": 4})))
    );
}

/// The state machine's timers, for leak checks.
#[derive(Message)]
#[rtype(result = "usize")]
struct TimerCount;

impl Handler<TimerCount> for Client<Recorder> {
    type Result = usize;
    fn handle(&mut self, _: TimerCount, ctx: &mut Self::Context) -> usize {
        self.with_socket(ctx, |_, socket| socket.timer_count())
    }
}

#[actix_rt::test]
async fn phx_error_while_a_user_leave_is_in_flight_ends_the_leave() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    addr.join("room:err", json!({})).await.unwrap();
    let timers = addr.send(TimerCount).await.unwrap();
    let socket = server.wait_for_join("room:err", WAIT).await.unwrap();
    let join_ref = server
        .socket(socket)
        .unwrap()
        .channels
        .get("room:err")
        .cloned()
        .flatten()
        .unwrap();
    // The server reads the leave but answers nothing; then the channel crashes.
    server.silence(socket, Some(Silence::Ignore)).await.unwrap();
    let leave = addr.send(Leave::new("room:err"));
    server
        .wait_for(
            WAIT,
            |e| matches!(e, ServerEvent::Frame(_, m) if m.event.as_str() == "phx_leave"),
        )
        .await
        .unwrap();
    server.silence(socket, None).await.unwrap();
    let error = format!(r#"["{join_ref}","{join_ref}","room:err","phx_error",{{}}]"#);
    server
        .send_raw(socket, RawFrame::Text(error))
        .await
        .unwrap();
    assert_eq!(
        tokio::time::timeout(WAIT, leave).await.unwrap().unwrap(),
        Ok(())
    );
    events.left("room:err").await;
    assert_eq!(
        addr.send(TimerCount).await.unwrap(),
        timers,
        "the leave timer is cancelled"
    );
    assert!(addr.status().await.unwrap().topic("room:err").is_none());
    assert_eq!(
        events.count(|e| matches!(e, Ev::TopicClosed(..))),
        0,
        "a leave, not a crash to rejoin"
    );
}

#[actix_rt::test]
async fn an_awaited_leave_resolves_once_the_topic_is_left() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    addr.join("room:l", json!({})).await.unwrap();
    assert_eq!(addr.leave("room:l").await, Ok(()));
    // Right after, the topic is gone and handle_leave has run.
    assert!(addr.status().await.unwrap().topics.is_empty());
    assert_eq!(events.drain_now().last(), Some(&Ev::Left("room:l".into())));
    // A topic never joined: ok at once, as Phoenix answers an unknown leave.
    assert_eq!(addr.leave("room:never").await, Ok(()));
    assert_eq!(frames_received(&server, Some("room:never"), "phx_leave"), 0);
}

#[actix_rt::test]
async fn an_unconfirmed_leave_times_out_and_the_topic_is_left_anyway() {
    let server = demo_server().await;
    let config = config(&server).push_timeout(Duration::from_millis(300));
    let (addr, mut events) = start(config);
    addr.join("room:t", json!({})).await.unwrap();
    let socket = server.wait_for_join("room:t", WAIT).await.unwrap();
    server.silence(socket, Some(Silence::Ignore)).await.unwrap();
    assert_eq!(addr.leave("room:t").await, Err(LeaveError::Timeout));
    events.left("room:t").await;
    let status = addr.status().await.unwrap();
    assert!(status.topic("room:t").is_none());
    assert_eq!(events.count(|e| matches!(e, Ev::Left(_))), 1);
}
