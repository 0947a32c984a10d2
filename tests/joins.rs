//! Joining and leaving: good and bad topics, duplicates, stale frames.
#![cfg(feature = "testing")]

mod common;

use std::time::Duration;

use actix_slipstream::testing::ServerEvent;
use actix_slipstream::{
    GetStatus, Join, JoinError, Leave, Payload, Push, TopicCloseReason, TopicStatus,
};
use common::*;
use serde_json::json;

#[actix_rt::test]
async fn joining_a_good_topic_returns_the_join_response() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    let response = addr
        .send(Join::new("room:lobby", json!({"hello": "world"})))
        .await
        .unwrap();
    assert_eq!(response, Ok(Payload::Json(json!({"hello": "world"}))));
    assert_eq!(
        events.joined("room:lobby").await,
        Payload::Json(json!({"hello": "world"}))
    );
    let status = addr.send(GetStatus).await.unwrap();
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
    assert!(addr
        .send(Join::new("room:dup", json!({})))
        .await
        .unwrap()
        .is_ok());
    events.joined("room:dup").await;
    // A push round trip orders everything the client sent before it.
    addr.send(Push::new("room:dup", "echo", json!({})))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(frames_received(&server, Some("room:dup"), "phx_join"), 1);
    assert_eq!(events.count(|e| matches!(e, Ev::Joined(..))), 1);
}

#[actix_rt::test]
async fn joining_a_topic_no_channel_handles_fails_and_is_not_retried() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    let result = addr
        .send(Join::new("nochannel:x", json!({})))
        .await
        .unwrap();
    assert_eq!(result, Err(JoinError::UnmatchedTopic));
    assert_eq!(
        events.topic_closed("nochannel:x").await,
        TopicCloseReason::JoinFailed(JoinError::UnmatchedTopic)
    );
    let status = addr.send(GetStatus).await.unwrap();
    assert!(
        status.topic("nochannel:x").is_none(),
        "given up: no rejoin planned"
    );
}

#[actix_rt::test]
async fn a_refused_join_is_reported_once_and_given_up() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    let result = addr
        .send(Join::new("private:x", json!({"token": "nope"})))
        .await
        .unwrap();
    assert_eq!(
        result,
        Err(JoinError::Rejected(Payload::Json(
            json!({"reason": "unauthorized"})
        )))
    );
    events.topic_closed("private:x").await;
    assert!(addr
        .send(GetStatus)
        .await
        .unwrap()
        .topic("private:x")
        .is_none());
    assert_eq!(frames_received(&server, Some("private:x"), "phx_join"), 1);
    // The right token joins.
    let ok = addr
        .send(Join::new("private:x", json!({"token": "secret"})))
        .await
        .unwrap();
    assert_eq!(ok, Ok(Payload::Json(json!({}))));
}

#[actix_rt::test]
async fn leaving_sends_one_phx_leave_and_reports_the_leave() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    addr.send(Join::new("room:bye", json!({})))
        .await
        .unwrap()
        .unwrap();
    let first = addr.send(Leave::new("room:bye"));
    let second = addr.send(Leave::new("room:bye"));
    assert_eq!(first.await.unwrap(), Ok(()));
    assert_eq!(second.await.unwrap(), Ok(()), "a second leave is idempotent");
    events.left("room:bye").await;
    server
        .wait_for(
            WAIT,
            |e| matches!(e, ServerEvent::Left(_, t, _) if t == "room:bye"),
        )
        .await
        .unwrap();
    // Round trip on another topic to be sure nothing else was sent.
    addr.send(Join::new("room:other", json!({})))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(frames_received(&server, Some("room:bye"), "phx_leave"), 1);
    assert_eq!(
        events.count(|e| matches!(e, Ev::Left(t) if t == "room:bye")),
        1
    );
    assert!(addr
        .send(GetStatus)
        .await
        .unwrap()
        .topic("room:bye")
        .is_none());
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
        .send(Push::new("room:slow", "echo", json!({"after": "retry"})))
        .await
        .unwrap();
    assert_eq!(
        reply.unwrap().response,
        Payload::Json(json!({"after": "retry"}))
    );
    let status = addr.send(GetStatus).await.unwrap();
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
