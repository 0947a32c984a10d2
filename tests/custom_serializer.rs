//! A custom serializer end to end: the client and the test server both speak a toy format
//! (one JSON object per binary frame) chosen by its own `vsn`.
#![cfg(feature = "testing")]

mod common;

use std::time::Duration;

use actix_slipstream::codec::{DecodeError, EncodeError, Frame, Message, Serializer, V1Json, V2};
use actix_slipstream::testing::{RawFrame, Refusal, ServerEvent, TestServer};
use actix_slipstream::{
    ClientExt, ConnectError, DisconnectReason, Event, Payload, Push, PushError, Ref, ReplyStatus,
};
use bytes::Bytes;
use common::*;
use serde_json::{json, Map, Value};

/// `{"j": join_ref, "r": ref, "t": topic, "e": event, "p": payload}` as JSON, in binary
/// frames; a reply's payload is `{"status": .., "response": ..}`. The same in both
/// directions; JSON payloads only. Announced with the `vsn` it holds.
#[derive(Debug)]
struct ObjectFrames(&'static str);

const VSN: &str = "9.1.0";

fn encode(msg: &Message) -> Result<Frame, EncodeError> {
    let Payload::Json(payload) = &msg.payload else {
        return Err(EncodeError::BinaryNotSupported);
    };
    let payload = match &msg.event {
        Event::Reply(status) => json!({"status": status.as_str(), "response": payload}),
        _ => payload.clone(),
    };
    let object = json!({
        "j": msg.join_ref.as_ref().map(Ref::as_str),
        "r": msg.reference.as_ref().map(Ref::as_str),
        "t": msg.topic.as_str(),
        "e": msg.event.as_str(),
        "p": payload,
    });
    Ok(Frame::Binary(Bytes::from(object.to_string())))
}

fn decode(data: &[u8]) -> Result<Message, DecodeError> {
    let bad = |what: &str| DecodeError::Custom(what.to_owned());
    let value: Value =
        serde_json::from_slice(data).map_err(|e| DecodeError::InvalidJson(e.to_string()))?;
    let Value::Object(mut o) = value else {
        return Err(bad("not an object"));
    };
    let mut field = |k: &str| -> Result<Option<String>, DecodeError> {
        match o.remove(k) {
            Some(Value::String(s)) => Ok(Some(s)),
            None | Some(Value::Null) => Ok(None),
            Some(_) => Err(bad("a field is not a string")),
        }
    };
    let (join_ref, reference) = (field("j")?, field("r")?);
    let (Some(topic), Some(event)) = (field("t")?, field("e")?) else {
        return Err(bad("no topic or event"));
    };
    let payload = o.remove("p").unwrap_or(Value::Object(Map::new()));
    let (event, payload) = if event == "phx_reply" {
        let Value::Object(mut reply) = payload else {
            return Err(bad("a reply's payload is an object"));
        };
        let Some(Value::String(status)) = reply.remove("status") else {
            return Err(bad("a reply has a status"));
        };
        let response = reply.remove("response").unwrap_or(Value::Null);
        (Event::Reply(ReplyStatus::from(status)), response)
    } else {
        (Event::from(event), payload)
    };
    Ok(Message::new(
        join_ref.map(Ref::from),
        reference.map(Ref::from),
        topic,
        event,
        Payload::Json(payload),
    ))
}

impl Serializer for ObjectFrames {
    fn vsn(&self) -> &str {
        self.0
    }

    fn encode_client(&self, msg: &Message) -> Result<Frame, EncodeError> {
        encode(msg)
    }

    fn decode_server_binary(&self, data: &Bytes) -> Result<Message, DecodeError> {
        decode(data)
    }

    fn encode_server(&self, msg: &Message) -> Result<Frame, EncodeError> {
        encode(msg)
    }

    fn decode_client_binary(&self, data: &Bytes) -> Result<Message, DecodeError> {
        decode(data)
    }
}

/// A client-only serializer: everything but `vsn` and `encode_client` left to the defaults.
#[derive(Debug)]
struct ClientOnly;

impl Serializer for ClientOnly {
    fn vsn(&self) -> &str {
        "0.1.0"
    }

    fn encode_client(&self, msg: &Message) -> Result<Frame, EncodeError> {
        encode(msg)
    }
}

async fn custom_server() -> TestServer {
    let _ = env_logger::builder().is_test(true).try_init();
    TestServer::phoenix_demo()
        .serializer(VSN, ObjectFrames(VSN))
        .start()
        .await
        .expect("test server starts")
}

#[actix_rt::test]
async fn join_push_reply_server_push_heartbeat_and_rejoin_with_a_custom_serializer() {
    let server = custom_server().await;
    let config = config(&server)
        .serializer(ObjectFrames(VSN))
        .heartbeat(Duration::from_millis(50), Duration::from_millis(2000));
    assert!(config
        .connect_url()
        .unwrap()
        .query()
        .unwrap()
        .ends_with("vsn=9.1.0"));
    let (addr, mut events) = start(config);

    // Join and push/reply.
    let joined = addr.join("room:custom", json!({"who": "toy"})).await;
    assert_eq!(joined, Ok(Payload::Json(json!({"who": "toy"}))));
    let first = server.wait_for_join("room:custom", WAIT).await.unwrap();
    assert_eq!(server.socket(first).unwrap().vsn, VSN);
    let reply = addr
        .push("room:custom", "echo", json!({"n": 1, "s": "é"}))
        .await
        .unwrap();
    assert!(reply.status.is_ok());
    assert_eq!(reply.response, Payload::Json(json!({"n": 1, "s": "é"})));
    let refused = addr
        .push("room:custom", "error_reply", json!({"x": 1}))
        .await
        .unwrap();
    assert_eq!(refused.status, ReplyStatus::Error);

    // A server push.
    addr.do_send(Push::new("room:custom", "push_me", json!({"p": 2})));
    assert_eq!(
        events.message("room:custom", "pushed").await,
        Payload::Json(json!({"p": 2}))
    );

    // Heartbeats, answered.
    let mut heartbeats = 0;
    server
        .wait_for(WAIT, |e| {
            if matches!(e, ServerEvent::Frame(_, m) if m.event == Event::Heartbeat && m.topic == "phoenix")
            {
                heartbeats += 1;
            }
            heartbeats == 2
        })
        .await
        .unwrap();
    let status = addr.status().await.unwrap();
    assert!(status.last_heartbeat_rtt.is_some());
    assert_eq!(status.disconnects, 0);

    // Binary payloads: this format has none.
    let binary = addr
        .push(
            "room:custom",
            "echo",
            Payload::Binary(Bytes::from_static(b"x")),
        )
        .await;
    assert_eq!(
        binary.unwrap_err(),
        PushError::Encode(EncodeError::BinaryNotSupported)
    );

    // Reconnect and rejoin, with the same serializer.
    assert!(server.drop_connection(first));
    events.disconnected().await;
    events.joined("room:custom").await;
    let second = server.wait_for_join("room:custom", WAIT).await.unwrap();
    assert_ne!(first, second);
    assert_eq!(server.socket(second).unwrap().vsn, VSN);
    let reply = addr
        .push("room:custom", "echo", json!({"again": true}))
        .await
        .unwrap();
    assert_eq!(reply.response, Payload::Json(json!({"again": true})));
}

#[actix_rt::test]
async fn a_vsn_the_server_has_no_serializer_for_is_refused_with_403() {
    let server = demo_server().await;
    let (_addr, mut events) = start(config(&server).serializer(ObjectFrames(VSN)));
    let reason = events.disconnected().await;
    assert_eq!(
        reason,
        DisconnectReason::ConnectFailed(ConnectError::Refused(403))
    );
    server
        .wait_for(WAIT, |e| {
            matches!(e, ServerEvent::Refused(Refusal::Http(403)))
        })
        .await
        .unwrap();
    assert!(server.sockets().is_empty());
}

#[actix_rt::test]
async fn a_text_frame_to_a_binary_only_serializer_is_an_invalid_frame() {
    let server = custom_server().await;
    let (_addr, mut events) = start(config(&server).serializer(ObjectFrames(VSN)));
    events.connected().await;
    let socket = server.wait_for_sockets(1, WAIT).await.unwrap()[0];
    server
        .send_raw(socket, RawFrame::Text(r#"{"t":"x","e":"y"}"#.into()))
        .await
        .unwrap();
    assert!(matches!(
        events.disconnected().await,
        DisconnectReason::InvalidFrame(DecodeError::Unsupported(_))
    ));
}

#[test]
fn the_defaults_of_a_client_only_serializer_refuse_clearly() {
    let data = Bytes::from_static(b"{}");
    assert!(matches!(
        ClientOnly.decode_server_text(b"{}"),
        Err(DecodeError::Unsupported(_))
    ));
    assert_eq!(
        ClientOnly.decode_server_binary(&data),
        Err(DecodeError::BinaryNotSupported)
    );
    assert!(matches!(
        ClientOnly.decode_client_binary(&data),
        Err(DecodeError::Unsupported(_))
    ));
    assert!(matches!(
        ClientOnly.encode_server(&Message::heartbeat(Ref::from(1))),
        Err(EncodeError::Unsupported(_))
    ));
    assert!(!ClientOnly.supports_binary());
    // The client half works.
    let frame = ClientOnly
        .encode_client(&Message::heartbeat(Ref::from(1)))
        .unwrap();
    assert_eq!(
        ObjectFrames(VSN).decode_client(&frame).unwrap(),
        Message::heartbeat(Ref::from(1))
    );
}

#[test]
fn every_builtin_announces_its_vsn_and_binary_support() {
    let builtins: [&dyn Serializer; 2] = [&V1Json, &V2];
    let described: Vec<(&str, bool)> = builtins
        .iter()
        .map(|s| (s.vsn(), s.supports_binary()))
        .collect();
    assert_eq!(described, [("1.0.0", false), ("2.0.0", true)]);
}

#[actix_rt::test]
async fn a_server_serializer_can_replace_a_builtin() {
    // The server speaks the toy format to clients asking for vsn=2.0.0, instead of V2.
    let server = TestServer::phoenix_demo()
        .serializer("2.0.0", ObjectFrames("2.0.0"))
        .start()
        .await
        .unwrap();
    let (addr, _events) = start(config(&server).serializer(ObjectFrames("2.0.0")));
    let joined = addr.join("room:replaced", json!({"ok": 1})).await;
    assert_eq!(joined, Ok(Payload::Json(json!({"ok": 1}))));
    let socket = server.wait_for_join("room:replaced", WAIT).await.unwrap();
    assert_eq!(server.socket(socket).unwrap().vsn, "2.0.0");
    // V1 is still there.
    let (v1, _v1_events) = start(config(&server).serializer(V1Json));
    let joined = v1.join("room:v1", json!({})).await;
    assert_eq!(joined, Ok(Payload::Json(json!({}))));
}
