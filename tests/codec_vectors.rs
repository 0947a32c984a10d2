//! The test vectors of phoenix.js (`assets/test/serializer_test.js`), the reference client.

use actix_slipstream::codec::Message;
use actix_slipstream::codec::{Frame, Serializer, V1Json, V2};
use actix_slipstream::{Event, Payload, Ref, ReplyStatus};
use bytes::Bytes;
use serde_json::json;

fn binary(bytes: &[u8]) -> Bytes {
    Bytes::copy_from_slice(bytes)
}

/// phoenix.js's `exampleMsg`: `{join_ref: "0", ref: "1", topic: "t", event: "e", payload: {foo: 1}}`.
fn example_msg() -> Message {
    Message::new(
        Some(Ref::from("0")),
        Some(Ref::from("1")),
        "t",
        Event::from("e"),
        Payload::Json(json!({"foo": 1})),
    )
}

#[test]
fn json_push_encodes_like_phoenix_js() {
    let frame = V2.encode_client(&example_msg()).unwrap();
    assert_eq!(frame, Frame::Text(r#"["0","1","t","e",{"foo":1}]"#.into()));
}

#[test]
fn json_push_decodes_like_phoenix_js() {
    let text = br#"["0","1","t","e",{"foo":1}]"#;
    assert_eq!(V2.decode_server_text(text).unwrap(), example_msg());
    assert_eq!(V2.decode_client_text(text).unwrap(), example_msg());
}

#[test]
fn binary_push_encodes_like_phoenix_js() {
    let msg = Message::new(
        Some(Ref::from("0")),
        Some(Ref::from("1")),
        "t",
        Event::from("e"),
        Payload::Binary(binary(&[0x01])),
    );
    let frame = V2.encode_client(&msg).unwrap();
    assert_eq!(
        frame,
        Frame::Binary(binary(&[
            0x00, 0x01, 0x01, 0x01, 0x01, 0x30, 0x31, 0x74, 0x65, 0x01
        ]))
    );
}

#[test]
fn binary_push_with_variable_length_segments_encodes_like_phoenix_js() {
    let msg = Message::new(
        Some(Ref::from("10")),
        Some(Ref::from("1")),
        "top",
        Event::from("ev"),
        Payload::Binary(binary(&[0x01])),
    );
    let frame = V2.encode_client(&msg).unwrap();
    assert_eq!(
        frame,
        Frame::Binary(binary(b"\x00\x02\x01\x03\x02101topev\x01"))
    );
}

#[test]
fn binary_server_push_decodes_like_phoenix_js() {
    let data = binary(b"\x00\x03\x03\x0a123topsome-event\x01\x01");
    let msg = V2.decode_server_binary(&data).unwrap();
    assert_eq!(msg.join_ref, Some(Ref::from("123")));
    assert_eq!(msg.reference, None);
    assert_eq!(msg.topic, "top");
    assert_eq!(msg.event, Event::Custom("some-event".into()));
    assert_eq!(msg.payload, Payload::Binary(binary(&[1, 1])));
    assert_eq!(V2.encode_server(&msg).unwrap(), Frame::Binary(data));
}

#[test]
fn binary_reply_decodes_like_phoenix_js() {
    let data = binary(b"\x01\x03\x02\x03\x0210012topok\x01\x01");
    let msg = V2.decode_server_binary(&data).unwrap();
    assert_eq!(msg.join_ref, Some(Ref::from("100")));
    assert_eq!(msg.reference, Some(Ref::from("12")));
    assert_eq!(msg.topic, "top");
    assert_eq!(msg.event, Event::Reply(ReplyStatus::Ok));
    let reply = msg.reply().unwrap();
    assert!(reply.is_ok());
    assert_eq!(reply.response, Payload::Binary(binary(&[1, 1])));
    assert_eq!(V2.encode_server(&msg).unwrap(), Frame::Binary(data));
}

#[test]
fn binary_broadcast_decodes_like_phoenix_js() {
    let data = binary(b"\x02\x03\x0atopsome-event\x01\x01");
    let msg = V2.decode_server_binary(&data).unwrap();
    assert_eq!(msg.join_ref, None);
    assert_eq!(msg.reference, None);
    assert_eq!(msg.topic, "top");
    assert_eq!(msg.event, Event::Custom("some-event".into()));
    assert_eq!(msg.payload, Payload::Binary(binary(&[1, 1])));
    assert_eq!(V2.encode_server(&msg).unwrap(), Frame::Binary(data));
}

#[test]
fn binary_vectors_are_not_v1_frames() {
    let data = binary(b"\x02\x03\x0atopsome-event\x01\x01");
    assert!(V1Json.decode_server_binary(&data).is_err());
    let msg = Message::new(
        Some(Ref::from("0")),
        Some(Ref::from("1")),
        "t",
        Event::from("e"),
        Payload::Binary(binary(&[0x01])),
    );
    assert!(V1Json.encode_client(&msg).is_err());
}
