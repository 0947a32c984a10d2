//! The async API: awaitable join and push, and bounded per-topic streams that survive
//! reconnects.
#![cfg(feature = "testing")]

mod common;

use actix_slipstream::{
    ClientExt, ClientStopped, JoinError, Lagged, LeaveError, Payload, PushError, Stop, TopicMessage,
};
use common::*;
use futures_util::StreamExt;
use serde_json::json;

async fn next(sub: &mut actix_slipstream::Subscription) -> Option<Result<TopicMessage, Lagged>> {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("stream item in time")
}

#[actix_rt::test]
async fn join_and_push_are_awaitable_from_the_address() {
    let server = demo_server().await;
    let (addr, _events) = start(config(&server));
    assert_eq!(
        addr.join("room:1", json!({"a": 1})).await,
        Ok(Payload::Json(json!({"a": 1})))
    );
    let reply = addr.push("room:1", "echo", json!({"b": 2})).await.unwrap();
    assert_eq!(reply.response, Payload::Json(json!({"b": 2})));
    assert_eq!(
        addr.join("nochannel:1", json!({})).await,
        Err(JoinError::UnmatchedTopic)
    );
    assert_eq!(
        addr.push("room:none", "echo", json!({})).await,
        Err(PushError::NotJoined)
    );
    let status = addr.status().await.unwrap();
    assert_eq!(status.topics.len(), 1);
}

#[actix_rt::test]
async fn a_subscription_survives_a_reconnect() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    let mut sub = addr.subscribe("room:s", 16).await.unwrap();
    addr.join("room:s", json!({})).await.unwrap();
    server.broadcast("room:s", "before", json!({"n": 1})).await;
    let first = next(&mut sub).await.unwrap().unwrap();
    assert_eq!(
        (first.topic.as_str(), first.event.as_str()),
        ("room:s", "before")
    );
    let old = server.wait_for_join("room:s", WAIT).await.unwrap();
    server.drop_all_connections();
    events.disconnected().await;
    server
        .wait_for_state(WAIT, |s| {
            s.sockets()
                .any(|i| i.id != old && i.is_joined("room:s"))
                .then_some(())
        })
        .await
        .unwrap();
    server.broadcast("room:s", "after", json!({"n": 2})).await;
    let second = next(&mut sub).await.unwrap().unwrap();
    assert_eq!(second.event.as_str(), "after");
    assert_eq!(second.payload, Payload::Json(json!({"n": 2})));
}

#[actix_rt::test]
async fn a_slow_subscriber_gets_a_lag_signal_and_the_newest_messages() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    let mut sub = addr.subscribe("room:lag", 4).await.unwrap();
    addr.join("room:lag", json!({})).await.unwrap();
    for n in 0..20 {
        server.broadcast("room:lag", "tick", json!({"n": n})).await;
    }
    server.broadcast("room:lag", "last", json!({})).await;
    events.message("room:lag", "last").await; // the client has handled all 21
    assert_eq!(next(&mut sub).await, Some(Err(Lagged(17))));
    let mut rest = Vec::new();
    for _ in 0..4 {
        rest.push(next(&mut sub).await.unwrap().unwrap().event.to_string());
    }
    assert_eq!(rest, ["tick", "tick", "tick", "last"]);
}

#[actix_rt::test]
async fn a_subscription_ends_when_the_client_stops() {
    let server = demo_server().await;
    let (addr, _events) = start(config(&server));
    let mut sub = addr.subscribe("room:end", 4).await.unwrap();
    addr.send(Stop).await.unwrap();
    assert_eq!(next(&mut sub).await, None);
}

#[actix_rt::test]
async fn leave_is_awaitable_and_the_status_right_after_no_longer_lists_the_topic() {
    let server = demo_server().await;
    let (addr, _events) = start(config(&server));
    addr.join("room:1", json!({})).await.unwrap();
    addr.join("room:2", json!({})).await.unwrap();
    addr.leave("room:1").await.unwrap();
    let status = addr.status().await.unwrap();
    let topics: Vec<&str> = status.topics.iter().map(|t| t.topic.as_str()).collect();
    assert_eq!(topics, ["room:2"]);
}

#[actix_rt::test]
async fn a_stopped_client_answers_every_call_with_its_own_stopped_error() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    addr.join("room:1", json!({})).await.unwrap();
    addr.send(Stop).await.unwrap();
    events.closed().await; // the client is gone
    assert_eq!(
        addr.join("room:1", json!({})).await,
        Err(JoinError::Stopped)
    );
    assert_eq!(
        addr.push("room:1", "echo", json!({})).await,
        Err(PushError::Stopped)
    );
    assert_eq!(addr.leave("room:1").await, Err(LeaveError::Stopped));
    assert_eq!(addr.status().await, Err(ClientStopped));
    assert!(matches!(
        addr.subscribe("room:1", 4).await,
        Err(ClientStopped)
    ));
}
