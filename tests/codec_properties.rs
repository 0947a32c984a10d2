//! Property tests: every message the codec can express survives encode then decode, in each
//! direction and with every built-in serializer; over-long binary fields are encode errors;
//! arbitrary input never panics the decoders.

use actix_slipstream::codec::EncodeError;
use actix_slipstream::codec::Message;
use actix_slipstream::codec::{Frame, Serializer, V1Json, V2};
use actix_slipstream::{Event, Payload, Ref, ReplyStatus, Topic};
use bytes::Bytes;
use proptest::prelude::*;
use serde_json::{Map, Number, Value};

/// Any string, unicode and empty included (JSON frames have no length limit).
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<String>(),
        1 => Just(String::new()),
        2 => "[a-z_:]{1,12}",
    ]
}

/// A string of at most 255 UTF-8 bytes, empty included (a binary frame field).
fn short_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::collection::vec(any::<char>(), 0..=63).prop_map(String::from_iter),
        2 => "[a-z_:]{0,12}",
        1 => "[a-z]{255}",
    ]
    .prop_filter("fits a binary header", |s| s.len() <= 255)
}

/// A ref in a binary frame: absent, or non-empty (an empty field means "absent" there).
fn short_ref() -> impl Strategy<Value = Option<Ref>> {
    proptest::option::of(
        short_text()
            .prop_filter("non-empty", |s| !s.is_empty())
            .prop_map(Ref::from),
    )
}

fn json_ref() -> impl Strategy<Value = Option<Ref>> {
    proptest::option::of(text().prop_map(Ref::from))
}

/// Any event but `phx_reply`, which only exists with a status (see [`reply_event`]).
fn push_event(name: impl Strategy<Value = String>) -> impl Strategy<Value = Event> {
    prop_oneof![
        1 => prop_oneof![
            Just(Event::Join),
            Just(Event::Leave),
            Just(Event::Error),
            Just(Event::Close),
            Just(Event::Heartbeat),
        ],
        3 => name
            .prop_filter("phx_reply is a reply", |s| s != "phx_reply")
            .prop_map(Event::from),
    ]
}

fn reply_event(status: impl Strategy<Value = String>) -> impl Strategy<Value = Event> {
    prop_oneof![
        Just(Event::Reply(ReplyStatus::Ok)),
        Just(Event::Reply(ReplyStatus::Error)),
        status.prop_map(|s| Event::Reply(ReplyStatus::from(s))),
    ]
}

fn number() -> impl Strategy<Value = Number> {
    prop_oneof![
        any::<i64>().prop_map(Number::from),
        any::<u64>().prop_map(Number::from),
        any::<f64>().prop_filter_map("finite", Number::from_f64),
    ]
}

/// Arbitrary JSON, at most 4 levels deep.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number().prop_map(Value::Number),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(text(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn bytes() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from)
}

fn message(
    join_ref: impl Strategy<Value = Option<Ref>>,
    reference: impl Strategy<Value = Option<Ref>>,
    topic: impl Strategy<Value = String>,
    event: impl Strategy<Value = Event>,
    payload: impl Strategy<Value = Payload>,
) -> impl Strategy<Value = Message> {
    (join_ref, reference, topic, event, payload)
        .prop_map(|(j, r, t, e, p)| Message::new(j, r, Topic::from(t), e, p))
}

fn json_payload() -> impl Strategy<Value = Payload> {
    json().prop_map(Payload::Json)
}

fn binary_payload() -> impl Strategy<Value = Payload> {
    bytes().prop_map(Payload::Binary)
}

/// Every built-in serializer.
fn builtins() -> [&'static dyn Serializer; 2] {
    [&V1Json, &V2]
}

/// What a server frame of `ser` can carry of `msg`: V1 server frames have no join_ref.
fn server_expressible(ser: &dyn Serializer, msg: &Message) -> Message {
    let mut msg = msg.clone();
    if ser.vsn() == "1.0.0" {
        msg.join_ref = None;
    }
    msg
}

fn client_round_trip(ser: &dyn Serializer, msg: &Message) -> Result<(), TestCaseError> {
    let frame = ser.encode_client(msg).expect("encodable");
    let back = match &frame {
        Frame::Text(t) => ser.decode_client_text(t.as_bytes()),
        Frame::Binary(b) => ser.decode_client_binary(b),
    }
    .expect("decodable");
    prop_assert_eq!(&back, msg, "frame {:?}", frame);
    Ok(())
}

fn server_round_trip(ser: &dyn Serializer, msg: &Message) -> Result<(), TestCaseError> {
    let frame = ser.encode_server(msg).expect("encodable");
    let back = match &frame {
        Frame::Text(t) => ser.decode_server_text(t.as_bytes()),
        Frame::Binary(b) => ser.decode_server_binary(b),
    }
    .expect("decodable");
    prop_assert_eq!(&back, msg, "frame {:?}", frame);
    Ok(())
}

/// The decoders, both directions and both versions, on one input; only their not panicking matters.
fn decode_everything(data: &[u8]) {
    let b = Bytes::copy_from_slice(data);
    for ser in builtins() {
        let _ = ser.decode_server_text(data);
        let _ = ser.decode_client_text(data);
        let _ = ser.decode_server_binary(&b);
        let _ = ser.decode_client_binary(&b);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn json_client_messages_round_trip_with_every_builtin(
        msg in message(json_ref(), json_ref(), text(), push_event(text()), json_payload())
    ) {
        for ser in builtins() {
            client_round_trip(ser, &msg)?;
        }
    }

    #[test]
    fn json_server_messages_round_trip_with_every_builtin(
        msg in message(
            json_ref(),
            json_ref(),
            text(),
            prop_oneof![push_event(text()), reply_event(text())],
            json_payload(),
        )
    ) {
        for ser in builtins() {
            server_round_trip(ser, &server_expressible(ser, &msg))?;
        }
    }

    #[test]
    fn binary_client_pushes_round_trip_with_every_builtin_that_has_binary(
        msg in message(short_ref(), short_ref(), short_text(), push_event(short_text()), binary_payload())
    ) {
        for ser in builtins() {
            if ser.supports_binary() {
                client_round_trip(ser, &msg)?;
            } else {
                prop_assert_eq!(ser.encode_client(&msg).unwrap_err(), EncodeError::BinaryNotSupported);
                prop_assert_eq!(ser.encode_server(&msg).unwrap_err(), EncodeError::BinaryNotSupported);
            }
        }
    }

    #[test]
    fn v2_binary_server_pushes_round_trip(
        msg in message(
            short_ref().prop_filter("a push has a join_ref", Option::is_some),
            Just(None),
            short_text(),
            push_event(short_text()),
            binary_payload(),
        )
    ) {
        server_round_trip(&V2, &msg)?;
        let Frame::Binary(b) = V2.encode_server(&msg).unwrap() else {
            panic!("binary payload, binary frame");
        };
        prop_assert_eq!(b[0], 0);
    }

    #[test]
    fn v2_binary_server_replies_round_trip(
        msg in message(short_ref(), short_ref(), short_text(), reply_event(short_text()), binary_payload())
    ) {
        server_round_trip(&V2, &msg)?;
        let Frame::Binary(b) = V2.encode_server(&msg).unwrap() else {
            panic!("binary payload, binary frame");
        };
        prop_assert_eq!(b[0], 1);
    }

    #[test]
    fn v2_binary_server_broadcasts_round_trip(
        msg in message(Just(None), Just(None), short_text(), push_event(short_text()), binary_payload())
    ) {
        server_round_trip(&V2, &msg)?;
        let Frame::Binary(b) = V2.encode_server(&msg).unwrap() else {
            panic!("binary payload, binary frame");
        };
        prop_assert_eq!(b[0], 2);
    }

    #[test]
    fn binary_field_over_255_bytes_is_field_too_long(
        msg in message(short_ref(), short_ref(), short_text(), push_event(short_text()), binary_payload()),
        which in 0usize..4,
        long in "[a-zé€😀]{64,300}".prop_filter("over 255 bytes", |s| s.len() > 255),
    ) {
        let short = msg.clone();
        let mut msg = msg;
        let field = match which {
            0 => { msg.join_ref = Some(Ref::from(long.as_str())); "join_ref" }
            1 => { msg.reference = Some(Ref::from(long.as_str())); "ref" }
            2 => { msg.topic = Topic::from(long.as_str()); "topic" }
            _ => { msg.event = Event::Custom(long.clone()); "event" }
        };
        let too_long = EncodeError::FieldTooLong { field, len: long.len() };
        prop_assert_eq!(V2.encode_client(&msg).unwrap_err(), too_long.clone());
        // A server push or broadcast writes topic and event whatever its refs.
        if which >= 2 {
            prop_assert_eq!(V2.encode_server(&msg).unwrap_err(), too_long);
        }
        // A reply writes its status in the header too.
        let reply = Message { event: Event::Reply(ReplyStatus::from(long.clone())), ..short };
        prop_assert_eq!(
            V2.encode_server(&reply).unwrap_err(),
            EncodeError::FieldTooLong { field: "status", len: long.len() }
        );
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        decode_everything(&data);
    }

    #[test]
    fn decoding_binary_headers_with_arbitrary_lengths_never_panics(
        kind in 0u8..4,
        lens in proptest::collection::vec(any::<u8>(), 0..6),
        body in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let mut data = vec![kind];
        data.extend(lens);
        data.extend(body);
        decode_everything(&data);
    }

    #[test]
    fn decoding_json_of_any_shape_never_panics(
        items in proptest::collection::vec(json(), 0..7),
        object in proptest::collection::btree_map(
            prop_oneof!["topic|event|payload|ref|join_ref|status|response", text()],
            json(),
            0..7,
        ),
    ) {
        decode_everything(Value::Array(items).to_string().as_bytes());
        decode_everything(Value::Object(object.into_iter().collect()).to_string().as_bytes());
    }

    #[test]
    fn decoding_reply_frames_with_any_payload_never_panics(
        refs in (json_ref(), json_ref()),
        payload in json(),
        status in json(),
        response in json(),
    ) {
        let (j, r) = refs;
        let j = j.map(|r| r.as_str().to_owned());
        let r = r.map(|r| r.as_str().to_owned());
        let mut with_status = Map::new();
        with_status.insert("status".into(), status);
        with_status.insert("response".into(), response);
        for p in [payload, Value::Object(with_status)] {
            let v2 = serde_json::json!([j, r, "t", "phx_reply", p]);
            decode_everything(v2.to_string().as_bytes());
            let v1 = serde_json::json!({"topic": "t", "event": "phx_reply", "payload": p, "ref": r});
            decode_everything(v1.to_string().as_bytes());
        }
    }
}
