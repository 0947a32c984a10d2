//! Channel ends: a crash is rejoined, a stop is a final leave.
#![cfg(feature = "testing")]

mod common;

use actix_slipstream::{GetStatus, Join, Payload, Push, PushError, TopicCloseReason, TopicStatus};
use common::*;
use serde_json::json;

#[actix_rt::test]
async fn a_channel_crash_closes_the_topic_then_it_is_rejoined() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    addr.send(Join::new("room:c", json!({"k": 1})))
        .await
        .unwrap()
        .unwrap();
    let before = addr
        .send(GetStatus)
        .await
        .unwrap()
        .topic("room:c")
        .unwrap()
        .join_ref
        .clone();
    let crash = addr
        .send(Push::new("room:c", "crash", json!({})))
        .await
        .unwrap();
    assert_eq!(
        crash,
        Err(PushError::ChannelClosed),
        "the crashing push gets no reply"
    );
    assert!(matches!(
        events.topic_closed("room:c").await,
        TopicCloseReason::Crashed(_)
    ));
    assert_eq!(
        events.joined("room:c").await,
        Payload::Json(json!({"k": 1})),
        "rejoined with its params"
    );
    let after = addr
        .send(GetStatus)
        .await
        .unwrap()
        .topic("room:c")
        .unwrap()
        .clone();
    assert_eq!(after.status, TopicStatus::Joined);
    assert_ne!(after.join_ref, before, "a fresh join_ref");
    let reply = addr
        .send(Push::new("room:c", "echo", json!({"after": "crash"})))
        .await
        .unwrap();
    assert!(reply.unwrap().status.is_ok());
}

#[actix_rt::test]
async fn a_channel_stop_is_a_final_leave() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    addr.send(Join::new("room:s", json!({})))
        .await
        .unwrap()
        .unwrap();
    addr.do_send(Push::new("room:s", "stop", json!({})));
    events.left("room:s").await;
    assert!(addr
        .send(GetStatus)
        .await
        .unwrap()
        .topic("room:s")
        .is_none());
    // Not rejoined after a reconnect either: it left the registry.
    addr.send(Join::new("room:keep", json!({})))
        .await
        .unwrap()
        .unwrap();
    server.drop_all_connections();
    events.connected().await;
    events.joined("room:keep").await;
    assert_eq!(frames_received(&server, Some("room:s"), "phx_join"), 1);
}
