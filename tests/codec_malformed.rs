//! Malformed frames: each is refused with the error variant that names what is wrong.

use actix_slipstream::codec::DecodeError;
use actix_slipstream::codec::{self, Serializer};
use bytes::Bytes;

const V2: &dyn Serializer = &codec::V2;
const V1: &dyn Serializer = &codec::V1Json;

fn server_bin(data: &[u8]) -> Result<actix_slipstream::codec::Message, DecodeError> {
    V2.decode_server_binary(&Bytes::copy_from_slice(data))
}

fn client_bin(data: &[u8]) -> Result<actix_slipstream::codec::Message, DecodeError> {
    V2.decode_client_binary(&Bytes::copy_from_slice(data))
}

/// Decodes `text` with every text decoder of `ser` and returns the errors (all must fail).
fn text_errors(ser: &dyn Serializer, text: &[u8]) -> [DecodeError; 2] {
    let server = ser
        .decode_server_text(text)
        .expect_err("server decoder refuses it");
    let client = ser
        .decode_client_text(text)
        .expect_err("client decoder refuses it");
    [server, client]
}

fn assert_invalid_json(ser: &dyn Serializer, text: &[u8]) {
    for err in text_errors(ser, text) {
        assert!(
            matches!(err, DecodeError::InvalidJson(_)),
            "vsn {} {:?}: {err:?}",
            ser.vsn(),
            String::from_utf8_lossy(text)
        );
    }
}

// --- binary frames -------------------------------------------------------------------------

/// A valid frame of each kind: the phoenix.js vectors.
const SERVER_PUSH: &[u8] = b"\x00\x03\x03\x0a123topsome-event\x01\x01";
const SERVER_REPLY: &[u8] = b"\x01\x03\x02\x03\x0210012topok\x01\x01";
const SERVER_BROADCAST: &[u8] = b"\x02\x03\x0atopsome-event\x01\x01";
const CLIENT_PUSH: &[u8] = b"\x00\x02\x01\x03\x02101topev\x01";

#[test]
fn empty_binary_frame_is_truncated_at_the_kind() {
    for err in [server_bin(&[]).unwrap_err(), client_bin(&[]).unwrap_err()] {
        assert_eq!(
            err,
            DecodeError::Truncated {
                field: "kind",
                needed: 1,
                available: 0
            }
        );
    }
}

#[test]
fn every_truncation_of_a_binary_header_is_a_truncated_error() {
    // (frame, header length incl. kind, fixed field names in order, client direction?)
    let cases: [(&[u8], usize, bool); 4] = [
        (SERVER_PUSH, 4 + 3 + 3 + 10, false),
        (SERVER_REPLY, 5 + 3 + 2 + 3 + 2, false),
        (SERVER_BROADCAST, 3 + 3 + 10, false),
        (CLIENT_PUSH, 5 + 2 + 1 + 3 + 2, true),
    ];
    for (frame, fields_end, client) in cases {
        let decode = if client { client_bin } else { server_bin };
        decode(frame).expect("the whole frame decodes");
        // Every cut inside the header or the text fields is refused; the payload may be cut anywhere.
        for cut in 0..fields_end {
            let err = decode(&frame[..cut]).unwrap_err();
            assert!(
                matches!(err, DecodeError::Truncated { .. }),
                "{frame:?} cut at {cut}: {err:?}"
            );
        }
        for cut in fields_end..=frame.len() {
            let msg = decode(&frame[..cut]).expect("payload may be short");
            assert_eq!(
                msg.payload.as_binary().map(|b| b.len()),
                Some(cut - fields_end)
            );
        }
    }
}

#[test]
fn truncated_header_names_the_missing_length() {
    assert_eq!(
        server_bin(&[1, 3, 2]).unwrap_err(),
        DecodeError::Truncated {
            field: "topic length",
            needed: 1,
            available: 0
        }
    );
    assert_eq!(
        client_bin(&[0, 1, 1, 1]).unwrap_err(),
        DecodeError::Truncated {
            field: "event length",
            needed: 1,
            available: 0
        }
    );
}

#[test]
fn length_past_the_end_is_truncated_with_the_counts() {
    assert_eq!(
        server_bin(&[2, 5, 1, b'a']).unwrap_err(),
        DecodeError::Truncated {
            field: "topic",
            needed: 5,
            available: 1
        }
    );
    assert_eq!(
        server_bin(b"\x01\x01\x01\x01\xffabc").unwrap_err(),
        DecodeError::Truncated {
            field: "status",
            needed: 255,
            available: 0
        }
    );
    assert_eq!(
        client_bin(b"\x00\x01\xff\x01\x01abc").unwrap_err(),
        DecodeError::Truncated {
            field: "ref",
            needed: 255,
            available: 2
        }
    );
}

#[test]
fn unknown_binary_kind_is_refused() {
    for kind in [3u8, 4, 0x7f, 0xff] {
        let mut frame = vec![kind];
        frame.extend_from_slice(&SERVER_PUSH[1..]);
        assert_eq!(
            server_bin(&frame).unwrap_err(),
            DecodeError::UnknownBinaryKind(kind)
        );
        assert_eq!(
            client_bin(&frame).unwrap_err(),
            DecodeError::UnknownBinaryKind(kind)
        );
    }
}

#[test]
fn client_decoder_accepts_only_pushes() {
    assert_eq!(
        client_bin(SERVER_REPLY).unwrap_err(),
        DecodeError::UnknownBinaryKind(1)
    );
    assert_eq!(
        client_bin(SERVER_BROADCAST).unwrap_err(),
        DecodeError::UnknownBinaryKind(2)
    );
}

#[test]
fn invalid_utf8_in_a_binary_field_names_the_field() {
    let cases: [(&[u8], &str, bool); 6] = [
        (b"\x00\x01\x01\x01\xffte", "join_ref", false),
        (b"\x00\x01\x01\x011\xfee", "topic", false),
        (b"\x00\x01\x01\x011t\xc3", "event", false),
        (b"\x01\x01\x01\x01\x0212t\xc3\x28", "status", false),
        (b"\x02\x01\x01\xfft", "topic", false),
        (b"\x00\x01\x01\x01\x011\x80te", "ref", true),
    ];
    for (frame, field, client) in cases {
        let err = if client {
            client_bin(frame)
        } else {
            server_bin(frame)
        }
        .unwrap_err();
        assert_eq!(err, DecodeError::InvalidUtf8 { field }, "{frame:?}");
    }
}

#[test]
fn binary_payload_need_not_be_utf8() {
    let msg = server_bin(b"\x02\x01\x01te\xff\xfe\x00").unwrap();
    assert_eq!(
        msg.payload.as_binary().map(|b| b.as_ref()),
        Some(&b"\xff\xfe\x00"[..])
    );
}

#[test]
fn phx_reply_event_in_a_push_or_broadcast_frame_is_an_invalid_reply() {
    let push = b"\x00\x01\x01\x091tphx_reply";
    let broadcast = b"\x02\x01\x09tphx_reply";
    let client_push = b"\x00\x01\x01\x01\x09\x31\x32tphx_reply";
    for err in [
        server_bin(push).unwrap_err(),
        server_bin(broadcast).unwrap_err(),
        client_bin(client_push).unwrap_err(),
    ] {
        assert!(matches!(err, DecodeError::InvalidReply(_)), "{err:?}");
    }
}

#[test]
fn binary_frame_on_a_v1_socket_is_not_supported() {
    let data = Bytes::from_static(SERVER_BROADCAST);
    assert_eq!(
        V1.decode_server_binary(&data).unwrap_err(),
        DecodeError::BinaryNotSupported
    );
    assert_eq!(
        V1.decode_client_binary(&data).unwrap_err(),
        DecodeError::BinaryNotSupported
    );
}

// --- text frames ---------------------------------------------------------------------------

#[test]
fn text_that_is_not_json_is_invalid_json() {
    for text in [
        &b""[..],
        b"not json",
        b"[",
        b"[\"1\",\"1\",\"t\",\"e\",{}] x",
        b"\x00",
    ] {
        assert_invalid_json(V2, text);
        assert_invalid_json(V1, text);
    }
}

#[test]
fn v2_frame_that_is_not_an_array_is_invalid_json() {
    for text in [
        &br#"{"topic":"room:lobby","event":"echo","payload":{},"ref":"1"}"#[..],
        b"\"x\"",
        b"null",
        b"42",
    ] {
        assert_invalid_json(V2, text);
    }
}

#[test]
fn v1_frame_that_is_not_an_object_is_invalid_json() {
    // Positional arrays must not be read as V1 objects field by field.
    for text in [
        &br#"["t","e",{},"1","1"]"#[..],
        br#"["t","e"]"#,
        br#"  ["t","e",{},null]"#,
        b"\"x\"",
        b"null",
    ] {
        assert_invalid_json(V1, text);
    }
}

#[test]
fn v2_array_of_four_or_six_elements_is_invalid_json() {
    assert_invalid_json(V2, br#"["1","1","t","e"]"#);
    assert_invalid_json(V2, br#"["1","1","t","e",{},{}]"#);
    assert_invalid_json(V2, br#"[]"#);
}

#[test]
fn numeric_refs_are_invalid_json() {
    assert_invalid_json(V2, br#"[1,"1","t","e",{}]"#);
    assert_invalid_json(V2, br#"["1",2,"t","e",{}]"#);
    assert_invalid_json(V2, br#"[null,null,3,"e",{}]"#);
    assert_invalid_json(V2, br#"[null,null,"t",4,{}]"#);
    assert_invalid_json(V1, br#"{"topic":"t","event":"e","payload":{},"ref":1}"#);
    assert_invalid_json(
        V1,
        br#"{"topic":"t","event":"e","payload":{},"ref":"1","join_ref":1}"#,
    );
}

#[test]
fn invalid_utf8_in_a_text_frame_is_invalid_json() {
    assert_invalid_json(V2, b"[\"\xff\",\"1\",\"t\",\"e\",{}]");
    assert_invalid_json(V2, b"[null,\"1\",\"t\xc3\x28\",\"e\",{}]");
    assert_invalid_json(V2, b"[null,\"1\",\"t\",\"e\",{\"k\":\"\xed\xa0\x80\"}]");
    assert_invalid_json(
        V1,
        b"{\"topic\":\"\xfe\",\"event\":\"e\",\"payload\":{},\"ref\":null}",
    );
}

#[test]
fn lone_surrogate_escape_is_invalid_json() {
    assert_invalid_json(V2, br#"[null,"1","t","e",{"k":"\ud800"}]"#);
}

fn nested_arrays(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

fn nested_objects(depth: usize) -> String {
    format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))
}

#[test]
fn deeply_nested_payload_is_an_error_not_a_stack_overflow() {
    for payload in [nested_arrays(10_000), nested_objects(10_000)] {
        assert_invalid_json(V2, format!(r#"["1","1","t","e",{payload}]"#).as_bytes());
        assert_invalid_json(
            V2,
            format!(r#"["1","1","t","phx_reply",{{"status":"ok","response":{payload}}}]"#)
                .as_bytes(),
        );
        assert_invalid_json(
            V1,
            format!(r#"{{"topic":"t","event":"e","payload":{payload},"ref":null}}"#).as_bytes(),
        );
        // The frame itself nested deeply.
        assert_invalid_json(V2, nested_arrays(10_000).as_bytes());
    }
}

#[test]
fn moderately_nested_payload_decodes() {
    let text = format!(r#"["1","1","t","e",{}]"#, nested_arrays(100));
    V2.decode_server_text(text.as_bytes()).unwrap();
}

#[test]
fn phx_reply_without_status_is_an_invalid_reply() {
    for (ser, text) in [
        (V2, &br#"["1","1","t","phx_reply",{"response":{}}]"#[..]),
        (V2, br#"["1","1","t","phx_reply",{}]"#),
        (
            V1,
            br#"{"topic":"t","event":"phx_reply","payload":{"response":{}},"ref":"1"}"#,
        ),
    ] {
        for err in text_errors(ser, text) {
            assert_eq!(err, DecodeError::InvalidReply("reply has no status"));
        }
    }
}

#[test]
fn phx_reply_with_a_non_string_status_is_an_invalid_reply() {
    for status in ["1", "null", "true", "[\"ok\"]", "{}"] {
        let text = format!(r#"["1","1","t","phx_reply",{{"status":{status},"response":{{}}}}]"#);
        for err in text_errors(V2, text.as_bytes()) {
            assert_eq!(
                err,
                DecodeError::InvalidReply("reply status is not a string")
            );
        }
    }
}

#[test]
fn phx_reply_whose_payload_is_not_an_object_is_an_invalid_reply() {
    for payload in ["null", "\"ok\"", "[]", "1"] {
        let text = format!(r#"["1","1","t","phx_reply",{payload}]"#);
        for err in text_errors(V2, text.as_bytes()) {
            assert_eq!(
                err,
                DecodeError::InvalidReply("reply payload is not an object")
            );
        }
    }
}
