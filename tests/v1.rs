//! The V1 protocol end to end (server frames carry no join_ref).
#![cfg(feature = "testing")]

mod common;

use actix_slipstream::codec::V1Json;
use actix_slipstream::{ClientExt, Payload, Push, PushError, TopicCloseReason};
use bytes::Bytes;
use common::*;
use serde_json::json;

#[actix_rt::test]
async fn v1_join_push_server_push_crash_and_rejoin() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server).serializer(V1Json));
    let joined = addr.join("room:v1", json!({"hello": "world"})).await;
    assert_eq!(joined, Ok(Payload::Json(json!({"hello": "world"}))));
    let socket = server.wait_for_join("room:v1", WAIT).await.unwrap();
    assert_eq!(server.socket(socket).unwrap().vsn, "1.0.0");
    let reply = addr
        .push("room:v1", "echo", json!({"msg": "hi"}))
        .await
        .unwrap();
    assert_eq!(reply.response, Payload::Json(json!({"msg": "hi"})));
    addr.do_send(Push::new("room:v1", "push_me", json!({"p": 1})));
    assert_eq!(
        events.message("room:v1", "pushed").await,
        Payload::Json(json!({"p": 1}))
    );
    addr.do_send(Push::new("room:v1", "crash", json!({})));
    assert!(matches!(
        events.topic_closed("room:v1").await,
        TopicCloseReason::Crashed(_)
    ));
    events.joined("room:v1").await;
    // Binary payloads are a V2 feature.
    let binary = addr
        .push("room:v1", "echo", Payload::Binary(Bytes::from_static(b"x")))
        .await;
    assert!(matches!(binary, Err(PushError::Encode(_))));
}
