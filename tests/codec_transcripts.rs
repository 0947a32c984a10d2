//! The codec against the frames a real Phoenix 1.7.24 server exchanged (`tests/fixtures/*.json`).
//!
//! Every `recv` frame decodes as a server frame and re-encodes (as the server would) to the same
//! bytes; every `send` frame decodes as a client frame and re-encodes to the same bytes. The decoded
//! fields are checked against an independent reading of the raw frame (the JSON array or object, or
//! the fixture's `decoded` view of a binary frame), so a symmetric encode/decode mistake cannot hide.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use actix_slipstream::codec::DecodeError;
use actix_slipstream::codec::Message;
use actix_slipstream::codec::{Frame, Serializer, V1Json, V2};
use actix_slipstream::{Event, Payload, Ref, ReplyStatus};
use bytes::Bytes;
use serde_json::Value;

/// Client frames recorded on purpose as garbage, to see what the server does with them.
const INVALID_CLIENT_FRAMES: [&str; 3] =
    ["v2_invalid_json", "v2_json_not_array", "v1_invalid_json"];

/// Frame counts over all fixtures (a fixture added or lost must be noticed here).
const FIXTURE_FILES: usize = 43;
const RECV_FRAMES: usize = 83;
const SEND_FRAMES: usize = 74;
const BINARY_FRAMES: usize = 3;

struct Fixture {
    scenario: String,
    serializer: Vsn,
    frames: Vec<Value>,
}

/// The built-in serializer a recording was made with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Vsn {
    V1,
    V2,
}

impl std::ops::Deref for Vsn {
    type Target = dyn Serializer;

    fn deref(&self) -> &Self::Target {
        match self {
            Vsn::V1 => &V1Json,
            Vsn::V2 => &V2,
        }
    }
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn load_fixtures() -> Vec<Fixture> {
    let mut paths: Vec<PathBuf> = fs::read_dir(fixtures_dir())
        .expect("tests/fixtures exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let text = fs::read_to_string(path).expect("readable fixture");
            let doc: Value = serde_json::from_str(&text).expect("fixture is JSON");
            let url = doc["url"].as_str().expect("fixture has a url");
            Fixture {
                scenario: doc["scenario"].as_str().expect("scenario").to_owned(),
                serializer: serializer_for(url),
                frames: doc["frames"].as_array().expect("frames").clone(),
            }
        })
        .collect()
}

/// V1 when the URL asks for `vsn=1.0.0` or gives no `vsn` (Phoenix's default), V2 otherwise.
fn serializer_for(url: &str) -> Vsn {
    let url = url::Url::parse(url).expect("fixture url parses");
    match url.query_pairs().find(|(k, _)| k == "vsn") {
        None => Vsn::V1,
        Some((_, v)) if v == "1.0.0" => Vsn::V1,
        Some(_) => Vsn::V2,
    }
}

fn fixture<'a>(all: &'a [Fixture], scenario: &str) -> &'a Fixture {
    all.iter()
        .find(|f| f.scenario == scenario)
        .unwrap_or_else(|| panic!("fixture {scenario} exists"))
}

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "hex of even length: {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn opt_ref(v: &Value) -> Option<Ref> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(Ref::from(s.as_str())),
        other => panic!("a recorded ref is a string or null, got {other}"),
    }
}

/// What a text frame must decode to, read straight from its JSON (not through the codec).
fn expected_from_json(serializer: Vsn, text: &str) -> Message {
    let v: Value = serde_json::from_str(text).expect("recorded text frame is JSON");
    let (join_ref, reference, topic, event, payload) = match serializer {
        Vsn::V2 => {
            let a = v.as_array().expect("V2 frame is an array");
            assert_eq!(a.len(), 5, "{text}");
            (
                opt_ref(&a[0]),
                opt_ref(&a[1]),
                a[2].as_str().expect("topic").to_owned(),
                a[3].as_str().expect("event").to_owned(),
                a[4].clone(),
            )
        }
        Vsn::V1 => {
            let o = v.as_object().expect("V1 frame is an object");
            (
                o.get("join_ref").and_then(opt_ref),
                opt_ref(&o["ref"]),
                o["topic"].as_str().expect("topic").to_owned(),
                o["event"].as_str().expect("event").to_owned(),
                o["payload"].clone(),
            )
        }
    };
    let (event, payload) = if event == "phx_reply" {
        let status = payload["status"].as_str().expect("reply status");
        (
            Event::Reply(ReplyStatus::from(status)),
            payload["response"].clone(),
        )
    } else {
        (Event::from(event), payload)
    };
    Message::new(join_ref, reference, topic, event, Payload::Json(payload))
}

/// What a binary frame must decode to, read from the fixture's `decoded` view.
fn expected_from_view(view: &Value) -> Message {
    let field = |k: &str| view.get(k).and_then(opt_ref);
    let topic = view["topic"].as_str().expect("topic");
    let payload = Payload::Binary(Bytes::from(hex(view["payload_hex"]
        .as_str()
        .expect("payload_hex"))));
    let kind = view["kind"].as_str().expect("kind");
    let event = match kind {
        "reply" => Event::Reply(ReplyStatus::from(
            view["status"].as_str().expect("reply status"),
        )),
        "push" | "broadcast" => Event::from(view["event"].as_str().expect("event")),
        other => panic!("unknown kind {other}"),
    };
    let (join_ref, reference) = match kind {
        "broadcast" => (None, None),
        _ => (field("join_ref"), field("ref")),
    };
    Message::new(join_ref, reference, topic, event, payload)
}

#[derive(Default)]
struct Tally {
    files: usize,
    recv: usize,
    send: usize,
    binary: usize,
    invalid: usize,
    text_byte_exact: usize,
}

/// Decodes, checks and re-encodes one frame; returns the decoded message (None for invalid frames).
fn check_frame(fx: &Fixture, index: usize, frame: &Value, tally: &mut Tally) -> Option<Message> {
    let dir = frame["dir"].as_str().expect("dir");
    let server = match dir {
        "recv" => true,
        "send" => false,
        _ => return None,
    };
    let ser = fx.serializer;
    let ctx = format!("{} frame #{index} ({dir})", fx.scenario);
    if server {
        tally.recv += 1;
    } else {
        tally.send += 1;
    }

    if let Some(h) = frame.get("binary_hex") {
        tally.binary += 1;
        let data = Bytes::from(hex(h.as_str().expect("binary_hex")));
        let msg = if server {
            ser.decode_server_binary(&data)
        } else {
            ser.decode_client_binary(&data)
        }
        .unwrap_or_else(|e| panic!("{ctx}: {e}"));
        assert_eq!(msg, expected_from_view(&frame["decoded"]), "{ctx}");
        let again = if server {
            ser.encode_server(&msg)
        } else {
            ser.encode_client(&msg)
        }
        .unwrap_or_else(|e| panic!("{ctx}: re-encode: {e}"));
        assert_eq!(again, Frame::Binary(data), "{ctx}: re-encoded bytes");
        return Some(msg);
    }

    let text = frame["text"].as_str().expect("text frame");
    if !server && INVALID_CLIENT_FRAMES.contains(&fx.scenario.as_str()) {
        // The last client frame of these scenarios is the deliberately broken one.
        let last_send = fx
            .frames
            .iter()
            .rposition(|f| f["dir"] == "send")
            .expect("a send frame");
        if index == last_send {
            tally.invalid += 1;
            let err = ser.decode_client_text(text.as_bytes()).unwrap_err();
            assert!(matches!(err, DecodeError::InvalidJson(_)), "{ctx}: {err:?}");
            return None;
        }
    }
    let msg = if server {
        ser.decode_server_text(text.as_bytes())
    } else {
        ser.decode_client_text(text.as_bytes())
    }
    .unwrap_or_else(|e| panic!("{ctx}: {e}"));
    assert_eq!(msg, expected_from_json(ser, text), "{ctx}");
    let again = if server {
        ser.encode_server(&msg)
    } else {
        ser.encode_client(&msg)
    }
    .unwrap_or_else(|e| panic!("{ctx}: re-encode: {e}"));
    let Frame::Text(again) = again else {
        panic!("{ctx}: a JSON payload re-encodes as text");
    };
    let recorded: Value = serde_json::from_str(text).expect("JSON");
    let reencoded: Value = serde_json::from_str(&again).expect("re-encoded JSON");
    assert_eq!(reencoded, recorded, "{ctx}: re-encoded JSON value");
    assert_eq!(again, text, "{ctx}: re-encoded bytes");
    tally.text_byte_exact += 1;
    Some(msg)
}

#[test]
fn every_recorded_frame_decodes_and_reencodes_to_the_same_bytes() {
    let fixtures = load_fixtures();
    let mut tally = Tally::default();
    for fx in &fixtures {
        tally.files += 1;
        for (i, frame) in fx.frames.iter().enumerate() {
            check_frame(fx, i, frame, &mut tally);
        }
    }
    assert_eq!(tally.files, FIXTURE_FILES);
    assert_eq!(tally.recv, RECV_FRAMES);
    assert_eq!(tally.send, SEND_FRAMES);
    assert_eq!(tally.binary, BINARY_FRAMES);
    assert_eq!(tally.invalid, INVALID_CLIENT_FRAMES.len());
    assert_eq!(
        tally.text_byte_exact,
        RECV_FRAMES + SEND_FRAMES - BINARY_FRAMES - INVALID_CLIENT_FRAMES.len()
    );
}

/// Every decoded server frame of every fixture, with its scenario and serializer.
fn server_messages(fixtures: &[Fixture]) -> Vec<(String, Vsn, Message)> {
    let mut tally = Tally::default();
    let mut out = Vec::new();
    for fx in fixtures {
        for (i, frame) in fx.frames.iter().enumerate() {
            if frame["dir"] == "recv" {
                let msg = check_frame(fx, i, frame, &mut tally).expect("server frame decodes");
                out.push((fx.scenario.clone(), fx.serializer, msg));
            }
        }
    }
    out
}

/// Every decoded server frame of all the fixtures.
fn all_server_messages(fixtures: &[Fixture]) -> Vec<(String, Vsn, Message)> {
    assert_eq!(fixtures.len(), FIXTURE_FILES);
    let all = server_messages(fixtures);
    assert_eq!(all.len(), RECV_FRAMES);
    all
}

fn server_messages_of(fixtures: &[Fixture], scenario: &str) -> Vec<Message> {
    server_messages(std::slice::from_ref(fixture(fixtures, scenario)))
        .into_iter()
        .map(|(_, _, m)| m)
        .collect()
}

#[test]
fn unmatched_topic_reply_has_no_join_ref() {
    let fixtures = load_fixtures();
    let mut per_scenario: BTreeMap<String, usize> = BTreeMap::new();
    for (scenario, ser, msg) in all_server_messages(&fixtures) {
        let Some(reply) = msg.reply() else { continue };
        if reply.is_unmatched_topic() {
            assert_eq!(msg.join_ref, None, "{scenario}");
            assert!(msg.reference.is_some(), "{scenario}: the request's ref");
            assert!(!reply.is_ok());
            if ser == Vsn::V2 {
                *per_scenario.entry(scenario).or_default() += 1;
            }
        }
    }
    let expected: BTreeMap<String, usize> = [
        ("v2_crash_phx_error", 1),
        ("v2_join_unmatched_topic", 1),
        ("v2_leave", 1),
        ("v2_phx_join_on_phoenix_topic", 1),
        ("v2_push_unjoined_topic", 2),
        ("v2_stop_phx_close", 1),
    ]
    .into_iter()
    .map(|(s, n)| (s.to_owned(), n))
    .collect();
    assert_eq!(per_scenario, expected);
}

#[test]
fn join_of_an_unrouted_topic_is_an_unmatched_topic_reply() {
    let fixtures = load_fixtures();
    let msgs = server_messages_of(&fixtures, "v2_join_unmatched_topic");
    assert_eq!(msgs.len(), 1);
    let reply = msgs[0].reply().expect("a reply");
    assert!(reply.is_unmatched_topic());
    assert_eq!(msgs[0].join_ref, None);
    assert_eq!(msgs[0].reference, Some(Ref::from("1")));
    assert_eq!(msgs[0].topic, "nochannel:x");
}

#[test]
fn rejected_join_is_an_error_reply_that_is_not_unmatched_topic() {
    let fixtures = load_fixtures();
    for scenario in ["v2_join_error", "v1_join_error"] {
        let msgs = server_messages_of(&fixtures, scenario);
        let reply = msgs[0].reply().expect("a reply");
        assert_eq!(reply.status, ReplyStatus::Error, "{scenario}");
        assert!(!reply.is_unmatched_topic(), "{scenario}");
        assert_eq!(
            reply.response,
            Payload::Json(serde_json::json!({"reason": "unauthorized"})),
            "{scenario}"
        );
    }
}

#[test]
fn phx_error_and_phx_close_carry_ref_equal_to_join_ref() {
    let fixtures = load_fixtures();
    let mut seen = 0;
    for (scenario, ser, msg) in all_server_messages(&fixtures) {
        if !matches!(msg.event, Event::Error | Event::Close) || ser != Vsn::V2 {
            continue;
        }
        seen += 1;
        assert!(msg.join_ref.is_some(), "{scenario}");
        assert_eq!(msg.reference, msg.join_ref, "{scenario}");
        assert_eq!(msg.payload, Payload::empty(), "{scenario}");
    }
    // phx_error in v2_crash_phx_error; phx_close in the duplicate joins, leave, stop, stop_reply.
    assert_eq!(seen, 6);
}

#[test]
fn duplicate_join_reply_arrives_before_the_close_of_the_old_join_ref() {
    let fixtures = load_fixtures();
    let msgs = server_messages_of(&fixtures, "v2_duplicate_join");
    assert_eq!(msgs[1].event, Event::Reply(ReplyStatus::Ok));
    assert_eq!(msgs[1].join_ref, Some(Ref::from("3")));
    assert_eq!(msgs[2].event, Event::Close);
    assert_eq!(msgs[2].join_ref, Some(Ref::from("1")));
    assert_eq!(msgs[2].reference, Some(Ref::from("1")));
}

#[test]
fn v1_server_frames_have_no_join_ref() {
    let fixtures = load_fixtures();
    let mut v1 = 0;
    for (scenario, ser, msg) in all_server_messages(&fixtures) {
        if ser == Vsn::V1 {
            v1 += 1;
            assert_eq!(msg.join_ref, None, "{scenario}");
        }
    }
    assert_eq!(v1, 20);
}

#[test]
fn v1_phx_error_and_phx_close_use_the_join_ref_as_ref() {
    let fixtures = load_fixtures();
    let msgs = server_messages_of(&fixtures, "v1_crash_stop_leave");
    let events: Vec<(&Event, Option<&str>)> = msgs
        .iter()
        .map(|m| (&m.event, m.reference.as_ref().map(Ref::as_str)))
        .collect();
    assert_eq!(
        events,
        [
            (&Event::Reply(ReplyStatus::Ok), Some("1")),
            (&Event::Error, Some("1")),
            (&Event::Reply(ReplyStatus::Ok), Some("3")),
            (&Event::Close, Some("3")),
            (&Event::Reply(ReplyStatus::Ok), Some("5")),
            (&Event::Reply(ReplyStatus::Ok), Some("6")),
            (&Event::Close, Some("5")),
        ]
    );
}

#[test]
fn binary_server_push_has_a_join_ref_and_no_ref() {
    let fixtures = load_fixtures();
    let msgs = server_messages_of(&fixtures, "v2_binary_server_push");
    let push = &msgs[1];
    assert_eq!(push.join_ref, Some(Ref::from("1")));
    assert_eq!(push.reference, None);
    assert_eq!(push.event, Event::Custom("binary_pushed".into()));
    assert_eq!(
        push.payload,
        Payload::Binary(Bytes::from_static(&[0, 1, 2, 3, 0xfe, 0xff]))
    );
}

#[test]
fn binary_echo_reply_carries_the_binary_response() {
    let fixtures = load_fixtures();
    let msgs = server_messages_of(&fixtures, "v2_binary_echo");
    let reply = msgs[1].reply().expect("a reply");
    assert!(reply.is_ok());
    assert_eq!(msgs[1].join_ref, Some(Ref::from("1")));
    assert_eq!(msgs[1].reference, Some(Ref::from("2")));
    assert_eq!(
        reply.response,
        Payload::Binary(Bytes::from_static(&[1, 2, 3, 0xff]))
    );
}

#[test]
fn text_server_push_has_a_join_ref_and_no_ref() {
    let fixtures = load_fixtures();
    for scenario in ["v2_push_me", "v2_ticker"] {
        let pushes: Vec<Message> = server_messages_of(&fixtures, scenario)
            .into_iter()
            .filter(|m| !matches!(m.event, Event::Reply(_)))
            .collect();
        assert!(!pushes.is_empty(), "{scenario}");
        for m in pushes {
            assert_eq!(m.join_ref, Some(Ref::from("1")), "{scenario}");
            assert_eq!(m.reference, None, "{scenario}");
            assert!(matches!(m.event, Event::Custom(_)), "{scenario}");
        }
    }
}

#[test]
fn broadcast_has_neither_join_ref_nor_ref() {
    let fixtures = load_fixtures();
    for (scenario, event) in [
        ("v2_broadcast", "broadcast"),
        ("v2_broadcast_external", "ext"),
    ] {
        let msgs = server_messages_of(&fixtures, scenario);
        let b = msgs
            .iter()
            .find(|m| m.event == Event::Custom(event.into()))
            .unwrap_or_else(|| panic!("{scenario} has a broadcast"));
        assert_eq!(b.join_ref, None, "{scenario}");
        assert_eq!(b.reference, None, "{scenario}");
    }
}

#[test]
fn heartbeat_reply_is_an_ok_reply_on_the_phoenix_topic() {
    let fixtures = load_fixtures();
    for scenario in ["v2_heartbeat", "v1_heartbeat", "connect_no_vsn"] {
        let msgs = server_messages_of(&fixtures, scenario);
        assert_eq!(msgs.len(), 1, "{scenario}");
        assert!(msgs[0].topic.is_phoenix(), "{scenario}");
        assert_eq!(msgs[0].join_ref, None, "{scenario}");
        assert_eq!(msgs[0].reference, Some(Ref::from("1")), "{scenario}");
        assert_eq!(msgs[0].reply().expect("a reply").response, Payload::empty());
    }
}

#[test]
fn our_heartbeat_encodes_exactly_as_recorded() {
    let fixtures = load_fixtures();
    for scenario in ["v2_heartbeat", "v1_heartbeat"] {
        let fx = fixture(&fixtures, scenario);
        let sent = fx
            .frames
            .iter()
            .find(|f| f["dir"] == "send")
            .and_then(|f| f["text"].as_str())
            .expect("a heartbeat was sent");
        let ours = fx
            .serializer
            .encode_client(&Message::heartbeat(Ref::from(1)))
            .unwrap();
        assert_eq!(ours, Frame::Text(sent.to_owned()), "{scenario}");
    }
}

#[test]
fn url_without_vsn_selects_v1_and_any_other_vsn_selects_v2() {
    assert_eq!(serializer_for("ws://h/socket/websocket?token=x"), Vsn::V1);
    assert_eq!(serializer_for("ws://h/socket/websocket?vsn=1.0.0"), Vsn::V1);
    assert_eq!(serializer_for("ws://h/socket/websocket?vsn=2.0.0"), Vsn::V2);
    let fixtures = load_fixtures();
    assert_eq!(fixture(&fixtures, "connect_no_vsn").serializer, Vsn::V1);
}
