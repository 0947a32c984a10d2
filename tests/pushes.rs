//! Pushes and their replies, server pushes, broadcasts, binary payloads.
#![cfg(feature = "testing")]

mod common;

use std::time::Duration;

use actix::{Handler, Message};
use actix_slipstream::{Client, ClientExt, Payload, Push, PushError, ReplyStatus};
use bytes::Bytes;
use common::*;
use serde_json::json;

#[actix_rt::test]
async fn push_gets_its_ok_reply() {
    let server = demo_server().await;
    let (addr, _events) = start(config(&server));
    addr.join("room:1", json!({})).await.unwrap();
    let reply = addr
        .push("room:1", "echo", json!({"msg": "hi", "n": 1}))
        .await
        .unwrap();
    assert_eq!(reply.status, ReplyStatus::Ok);
    assert_eq!(reply.response, Payload::Json(json!({"msg": "hi", "n": 1})));
}

#[actix_rt::test]
async fn push_gets_its_error_reply_and_a_bare_ok_reply() {
    let server = demo_server().await;
    let (addr, _events) = start(config(&server));
    addr.join("room:1", json!({})).await.unwrap();
    let error = addr
        .push("room:1", "error_reply", json!({"why": "asked"}))
        .await
        .unwrap();
    assert_eq!(error.status, ReplyStatus::Error);
    assert_eq!(error.response, Payload::Json(json!({"why": "asked"})));
    let bare = addr
        .push("room:1", "broadcast_from", json!({}))
        .await
        .unwrap();
    assert_eq!(bare.status, ReplyStatus::Ok);
    assert_eq!(bare.response, Payload::Json(json!({})));
}

#[actix_rt::test]
async fn push_without_reply_times_out_and_its_waiter_is_released() {
    let server = demo_server().await;
    let (addr, _events) = start(config(&server));
    addr.join("room:1", json!({})).await.unwrap();
    let result = addr
        .send(Push::new("room:1", "noreply", json!({})).timeout(Duration::from_millis(200)))
        .await
        .unwrap();
    assert_eq!(result, Err(PushError::Timeout));
    let status = addr.send(actix_slipstream::GetStatus).await.unwrap();
    assert_eq!(status.pending_replies, 0);
}

#[actix_rt::test]
async fn pushing_to_an_unjoined_topic_fails() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    events.connected().await;
    let result = addr.push("room:nowhere", "echo", json!({})).await;
    assert_eq!(result, Err(PushError::NotJoined));
}

#[actix_rt::test]
async fn server_push_reaches_handle_message() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    addr.join("room:1", json!({})).await.unwrap();
    addr.do_send(Push::new("room:1", "push_me", json!({"p": 42})));
    assert_eq!(
        events.message("room:1", "pushed").await,
        Payload::Json(json!({"p": 42}))
    );
}

#[actix_rt::test]
async fn broadcasts_reach_every_joined_client() {
    let server = demo_server().await;
    let (a, mut a_events) = start(config(&server));
    let (b, mut b_events) = start(config(&server));
    a.join("room:b", json!({})).await.unwrap();
    b.join("room:b", json!({})).await.unwrap();
    a.push("room:b", "broadcast", json!({"b": 1}))
        .await
        .unwrap();
    assert_eq!(
        a_events.message("room:b", "broadcast").await,
        Payload::Json(json!({"b": 1}))
    );
    assert_eq!(
        b_events.message("room:b", "broadcast").await,
        Payload::Json(json!({"b": 1}))
    );
    // A broadcast from outside, with a binary payload.
    let data = Bytes::from_static(&[0, 1, 2, 254, 255]);
    assert_eq!(
        server
            .broadcast("room:b", "bin", Payload::Binary(data.clone()))
            .await,
        2
    );
    assert_eq!(
        a_events.message("room:b", "bin").await,
        Payload::Binary(data.clone())
    );
    assert_eq!(
        b_events.message("room:b", "bin").await,
        Payload::Binary(data)
    );
}

#[actix_rt::test]
async fn binary_push_gets_a_binary_reply_and_binary_server_pushes_arrive() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    addr.join("room:1", json!({})).await.unwrap();
    let data = Bytes::from_static(&[1, 2, 3, 255]);
    let reply = addr
        .push("room:1", "echo", Payload::Binary(data.clone()))
        .await
        .unwrap();
    assert_eq!(reply.status, ReplyStatus::Ok);
    assert_eq!(reply.response, Payload::Binary(data));
    addr.do_send(Push::new("room:1", "push_binary", json!({})));
    assert_eq!(
        events.message("room:1", "binary_pushed").await,
        Payload::Binary(Bytes::from_static(&[0, 1, 2, 3, 254, 255]))
    );
}

/// A user-defined message, handled with access to the socket.
#[derive(Message)]
#[rtype(result = "Result<actix_slipstream::Ref, PushError>")]
struct PushFromCallback(&'static str);

impl Handler<PushFromCallback> for Client<Recorder> {
    type Result = Result<actix_slipstream::Ref, PushError>;
    fn handle(&mut self, msg: PushFromCallback, ctx: &mut Self::Context) -> Self::Result {
        self.with_socket(ctx, |_user, socket| {
            socket.push(msg.0, "echo", json!({"via": "socket"}))
        })
    }
}

#[actix_rt::test]
async fn socket_push_reply_reaches_handle_reply_with_its_ref() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    addr.join("room:1", json!({})).await.unwrap();
    let r = addr
        .send(PushFromCallback("room:1"))
        .await
        .unwrap()
        .unwrap();
    let ev = events
        .wait_for("reply", |e| matches!(e, Ev::Reply(_, got, _) if *got == r))
        .await;
    let Ev::Reply(topic, _, Ok(reply)) = ev else {
        panic!("{ev:?}")
    };
    assert_eq!(topic, "room:1");
    assert_eq!(reply.response, Payload::Json(json!({"via": "socket"})));
    assert_eq!(
        addr.send(PushFromCallback("room:unjoined")).await.unwrap(),
        Err(PushError::NotJoined)
    );
}

/// Pushes `n` times from one callback and returns the frames written after each push.
#[derive(Message)]
#[rtype(result = "Vec<u64>")]
struct PushManyFromCallback(usize);

impl Handler<PushManyFromCallback> for Client<Recorder> {
    type Result = Vec<u64>;
    fn handle(&mut self, msg: PushManyFromCallback, ctx: &mut Self::Context) -> Self::Result {
        self.with_socket(ctx, |_user, socket| {
            (0..msg.0)
                .map(|i| {
                    socket.push("room:1", "echo", json!({ "i": i })).unwrap();
                    socket.status().traffic.frames_out
                })
                .collect()
        })
    }
}

#[actix_rt::test]
async fn pushes_from_one_callback_are_written_as_they_are_made_and_all_replied() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    addr.join("room:1", json!({})).await.unwrap();
    let written = addr.send(PushManyFromCallback(50)).await.unwrap();
    // Each push is in the send buffer before the next is made (its payload is not
    // held until the callback returns): one more frame out after every push.
    let first = written[0];
    assert_eq!(written, (first..first + 50).collect::<Vec<u64>>());
    // And every one is answered, in order.
    for i in 0..50 {
        events
            .wait_for("reply", |e| {
                matches!(e, Ev::Reply(_, _, Ok(r)) if r.response == Payload::Json(json!({ "i": i })))
            })
            .await;
    }
}

/// The outcome `handle_reply` got for the push `r`.
async fn handler_outcome(events: &mut Events, r: &actix_slipstream::Ref) -> Ev {
    events
        .wait_for(
            "handle_reply",
            |e| matches!(e, Ev::Reply(_, got, _) if got == r),
        )
        .await
}

#[actix_rt::test]
async fn push_to_handler_sends_from_outside_a_callback_and_the_reply_reaches_handle_reply() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    addr.join("room:1", json!({})).await.unwrap();
    let ok = addr
        .push_to_handler("room:1", "echo", json!({"via": "addr"}))
        .await
        .unwrap();
    let error = addr
        .push_to_handler("room:1", "error_reply", json!({"why": "asked"}))
        .await
        .unwrap();
    assert_ne!(ok, error);
    let Ev::Reply(topic, _, Ok(reply)) = handler_outcome(&mut events, &ok).await else {
        panic!("{:?}", events.seen)
    };
    assert_eq!(topic, "room:1");
    assert_eq!(reply.status, ReplyStatus::Ok);
    assert_eq!(reply.response, Payload::Json(json!({"via": "addr"})));
    let Ev::Reply(_, _, Ok(reply)) = handler_outcome(&mut events, &error).await else {
        panic!("{:?}", events.seen)
    };
    assert_eq!(reply.status, ReplyStatus::Error);
    assert_eq!(reply.response, Payload::Json(json!({"why": "asked"})));
    // Refused at once: the error comes back, and handle_reply gets nothing.
    assert_eq!(
        addr.push_to_handler("room:unjoined", "echo", json!({}))
            .await,
        Err(PushError::NotJoined)
    );
    assert_eq!(events.count(|e| matches!(e, Ev::Reply(..))), 2);
}

#[actix_rt::test]
async fn a_socket_push_with_its_own_timeout_times_out_in_handle_reply() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    addr.join("room:1", json!({})).await.unwrap();
    let r = addr
        .send(
            actix_slipstream::SocketPush::new("room:1", "noreply", json!({}))
                .timeout(Duration::from_millis(100)),
        )
        .await
        .unwrap()
        .unwrap();
    let ev = handler_outcome(&mut events, &r).await;
    assert!(
        matches!(&ev, Ev::Reply(t, _, Err(PushError::Timeout)) if t == "room:1"),
        "{ev:?}"
    );
}

#[actix_rt::test]
async fn a_socket_push_still_awaiting_its_reply_gets_stopped_in_handle_reply_when_the_client_stops()
{
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    addr.join("room:1", json!({})).await.unwrap();
    let r = addr
        .push_to_handler("room:1", "noreply", json!({}))
        .await
        .unwrap();
    server
        .wait_for(WAIT, |e| {
            matches!(e, actix_slipstream::testing::ServerEvent::Frame(_, m) if m.event.as_str() == "noreply")
        })
        .await
        .unwrap();
    addr.send(actix_slipstream::Stop).await.unwrap();
    let ev = handler_outcome(&mut events, &r).await;
    assert!(
        matches!(&ev, Ev::Reply(_, _, Err(PushError::Stopped))),
        "{ev:?}"
    );
    // A client that has stopped answers Stopped.
    events.closed().await;
    assert_eq!(
        addr.push_to_handler("room:1", "echo", json!({})).await,
        Err(PushError::Stopped)
    );
}

/// A flood (5,000 pushes of ~250 bytes, more than a megabyte) reaches the client whole
/// and in order, and so do the flood's reply and a lone push asked for after it. While
/// the flood lasts the client's reads are coalesced (on Linux the kernel is asked to
/// wake it only once 32 KiB are queued); the flood's last frames and the lone push are
/// below that mark, and are read once the mark is lowered again.
#[actix_rt::test]
async fn a_flood_and_a_lone_push_after_it_arrive_whole_and_in_order() {
    let _ = env_logger::builder().is_test(true).try_init();
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    addr.join("room:flood", json!({})).await.unwrap();
    let reply = addr
        .push("room:flood", "flood", json!({"count": 5000, "size": 200}))
        .await
        .unwrap();
    assert_eq!(reply.response, Payload::Json(json!({"count": 5000})));
    for n in 1..=5000u64 {
        let payload = events.message("room:flood", "flooded").await;
        assert_eq!(payload.as_json().unwrap()["n"], json!(n));
    }
    // `push_me` is answered with a push, not a reply.
    addr.push_to_handler("room:flood", "push_me", json!({"after": "the flood"}))
        .await
        .unwrap();
    assert_eq!(
        events.message("room:flood", "pushed").await,
        Payload::Json(json!({"after": "the flood"}))
    );
}
