//! Wire codecs: the [`Serializer`] trait and its built-ins, [`V2`] (JSON text and
//! binary frames) and [`V1Json`] (JSON objects).
//!
//! No I/O happens here. Each direction has its own methods because the formats are
//! not symmetric: a V2 binary push from the client carries a `ref` (5-byte header)
//! while one from the server does not (4-byte header), and V1 server frames carry no
//! `join_ref` at all. The client uses [`Serializer::encode_client`] and
//! [`Serializer::decode_server_text`] / [`Serializer::decode_server_binary`]; the
//! test server in [`crate::testing`] uses the other three.
//!
//! See [`crate::codec`] for an example.

use std::borrow::Cow;
use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{DecodeError, EncodeError};
use crate::message::{Event, Message, Payload, Ref, ReplyStatus, Topic};

/// A websocket data frame, as the serializers produce and consume it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A text frame (JSON with the built-in serializers).
    Text(String),
    /// A binary frame (the V2 binary protocol, or any binary format of a custom
    /// serializer).
    Binary(Bytes),
}

/// Turns protocol [`Message`]s into websocket [`Frame`]s and back: the wire format of
/// a socket, announced to the server by the `vsn` connect parameter.
///
/// The built-ins are [`V2`] (`vsn=2.0.0`, the default: JSON arrays in text frames,
/// binary payloads in binary frames) and [`V1Json`] (`vsn=1.0.0`: JSON objects, no
/// binary payloads). Implement this trait to speak another format a Phoenix server
/// was configured with (`serializer: [{MyApp.MsgpackSerializer, "~> 3.0.0"}]`), and
/// give it to [`Config::serializer`](crate::Config::serializer); the client keeps it
/// in an `Arc` and calls it once per frame (no allocation of its own per frame).
///
/// A client needs [`vsn`](Serializer::vsn), [`encode_client`](Serializer::encode_client)
/// and the decoder of each frame type its server sends
/// ([`decode_server_text`](Serializer::decode_server_text),
/// [`decode_server_binary`](Serializer::decode_server_binary)); the others have
/// defaults that refuse with a clear error. The server direction
/// ([`encode_server`](Serializer::encode_server),
/// [`decode_client_text`](Serializer::decode_client_text),
/// [`decode_client_binary`](Serializer::decode_client_binary)) is what the test
/// server of the `testing` feature uses
/// (`TestServerBuilder::serializer`).
///
/// A decoded `phx_reply` is a [`Message`] whose event is [`Event::Reply`] with the
/// reply's status and whose payload is the reply's `response` (the built-ins unwrap
/// `{"status": .., "response": ..}`); a reply is encoded the other way round.
/// Decoders must return an error, never panic, on any input.
///
/// `examples/msgpack.rs` in the repository is a complete MessagePack serializer. A
/// shorter one, for the client direction only: each message is a JSON object in a
/// text frame.
///
/// ```
/// use actix_slipstream::codec::{DecodeError, EncodeError, Frame, Message, Serializer};
/// use actix_slipstream::{Config, Event, Payload, Ref, ReplyStatus};
/// use serde_json::{json, Value};
///
/// /// `{"t": topic, "e": event, "p": payload, "r": ref, "j": join_ref}`.
/// #[derive(Debug)]
/// struct ObjectJson;
///
/// impl Serializer for ObjectJson {
///     fn vsn(&self) -> &str {
///         "9.0.0"
///     }
///
///     fn encode_client(&self, msg: &Message) -> Result<Frame, EncodeError> {
///         let Payload::Json(payload) = &msg.payload else {
///             return Err(EncodeError::BinaryNotSupported);
///         };
///         let object = json!({
///             "t": msg.topic.as_str(),
///             "e": msg.event.as_str(),
///             "p": payload,
///             "r": msg.reference.as_ref().map(Ref::as_str),
///             "j": msg.join_ref.as_ref().map(Ref::as_str),
///         });
///         Ok(Frame::Text(object.to_string()))
///     }
///
///     fn decode_server_text(&self, text: &[u8]) -> Result<Message, DecodeError> {
///         let bad = |what: &str| DecodeError::Custom(what.to_owned());
///         let Value::Object(mut o) = serde_json::from_slice(text)
///             .map_err(|e| DecodeError::InvalidJson(e.to_string()))?
///         else {
///             return Err(bad("not an object"));
///         };
///         let mut text_of = |k: &str| match o.remove(k) {
///             Some(Value::String(s)) => Ok(Some(s)),
///             None | Some(Value::Null) => Ok(None),
///             Some(_) => Err(bad("a field is not a string")),
///         };
///         let (topic, event) = (text_of("t")?, text_of("e")?);
///         let (reference, join_ref) = (text_of("r")?, text_of("j")?);
///         let (Some(topic), Some(event)) = (topic, event) else {
///             return Err(bad("no topic or event"));
///         };
///         let mut payload = o.remove("p").unwrap_or(Value::Null);
///         let event = match event.as_str() {
///             "phx_reply" => {
///                 let status = payload["status"].as_str().ok_or(bad("no status"))?;
///                 let status = ReplyStatus::from(status);
///                 payload = payload["response"].take();
///                 Event::Reply(status)
///             }
///             other => Event::from(other),
///         };
///         Ok(Message::new(
///             join_ref.map(Ref::from),
///             reference.map(Ref::from),
///             topic,
///             event,
///             Payload::Json(payload),
///         ))
///     }
/// }
///
/// let config = Config::new("ws://127.0.0.1:4000/socket").serializer(ObjectJson);
/// assert_eq!(config.serializer.vsn(), "9.0.0");
/// let frame = ObjectJson.encode_client(&Message::heartbeat(Ref::from(1))).unwrap();
/// let reply = br#"{"t":"phoenix","e":"phx_reply","r":"1","p":{"status":"ok","response":{}}}"#;
/// let msg = ObjectJson.decode_server_text(reply).unwrap();
/// assert_eq!(msg.event, Event::Reply(ReplyStatus::Ok));
/// assert!(matches!(frame, Frame::Text(_)));
/// ```
pub trait Serializer: Send + Sync + fmt::Debug + 'static {
    /// The `vsn` connect parameter this format is announced with (`"2.0.0"` for
    /// [`V2`]). The server picks its serializer from it.
    fn vsn(&self) -> &str;

    /// Whether binary payloads ([`Payload::Binary`]) can be sent and received. When
    /// `false`, a binary push fails at once with
    /// [`EncodeError::BinaryNotSupported`]. Default `false`.
    fn supports_binary(&self) -> bool {
        false
    }

    /// Encodes a message sent by a client.
    ///
    /// # Errors
    /// An [`EncodeError`] when the message cannot be written in this format (nothing
    /// is sent; a push fails with it).
    fn encode_client(&self, msg: &Message) -> Result<Frame, EncodeError>;

    /// Decodes a text frame received from a server (the bytes are not checked for
    /// UTF-8 yet). Default: refused with [`DecodeError::Unsupported`].
    ///
    /// # Errors
    /// A [`DecodeError`] for anything that is not a frame of this format; the client
    /// then closes the connection and reconnects.
    fn decode_server_text(&self, text: &[u8]) -> Result<Message, DecodeError> {
        let _ = text;
        Err(DecodeError::Unsupported(
            "text frames are not part of this protocol",
        ))
    }

    /// Decodes a binary frame received from a server. Default: refused with
    /// [`DecodeError::BinaryNotSupported`].
    ///
    /// # Errors
    /// As [`decode_server_text`](Serializer::decode_server_text).
    fn decode_server_binary(&self, data: &Bytes) -> Result<Message, DecodeError> {
        let _ = data;
        Err(DecodeError::BinaryNotSupported)
    }

    /// Decodes any frame received from a server.
    ///
    /// # Errors
    /// As [`decode_server_text`](Serializer::decode_server_text).
    fn decode_server(&self, frame: &Frame) -> Result<Message, DecodeError> {
        match frame {
            Frame::Text(t) => self.decode_server_text(t.as_bytes()),
            Frame::Binary(b) => self.decode_server_binary(b),
        }
    }

    /// Encodes a message sent by a server (the test server's direction). Default:
    /// refused with [`EncodeError::Unsupported`].
    ///
    /// # Errors
    /// An [`EncodeError`] when the message cannot be written in this format.
    fn encode_server(&self, msg: &Message) -> Result<Frame, EncodeError> {
        let _ = msg;
        Err(EncodeError::Unsupported(
            "this serializer does not encode server frames",
        ))
    }

    /// Decodes a text frame received from a client (the test server's direction).
    /// Default: refused with [`DecodeError::Unsupported`].
    ///
    /// # Errors
    /// A [`DecodeError`] for anything that is not a frame of this format.
    fn decode_client_text(&self, text: &[u8]) -> Result<Message, DecodeError> {
        let _ = text;
        Err(DecodeError::Unsupported(
            "this serializer does not decode client frames",
        ))
    }

    /// Decodes a binary frame received from a client (the test server's direction).
    /// Default: refused with [`DecodeError::Unsupported`].
    ///
    /// # Errors
    /// As [`decode_client_text`](Serializer::decode_client_text).
    fn decode_client_binary(&self, data: &Bytes) -> Result<Message, DecodeError> {
        let _ = data;
        Err(DecodeError::Unsupported(
            "this serializer does not decode client frames",
        ))
    }

    /// Decodes any frame received from a client.
    ///
    /// # Errors
    /// As [`decode_client_text`](Serializer::decode_client_text).
    fn decode_client(&self, frame: &Frame) -> Result<Message, DecodeError> {
        match frame {
            Frame::Text(t) => self.decode_client_text(t.as_bytes()),
            Frame::Binary(b) => self.decode_client_binary(b),
        }
    }
}

/// The V2 protocol of Phoenix's `V2.JSONSerializer` (`vsn=2.0.0`, the default):
/// `[join_ref, ref, topic, event, payload]` JSON arrays in text frames, and binary
/// payloads in binary frames (a header of field lengths, the fields, the raw bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct V2;

/// The V1 protocol of Phoenix's `V1.JSONSerializer` (`vsn=1.0.0`): JSON objects
/// `{"topic", "event", "payload", "ref"}` (plus `join_ref` from the client); server
/// frames carry no `join_ref`; no binary payloads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct V1Json;

const KIND_PUSH: u8 = 0;
const KIND_REPLY: u8 = 1;
const KIND_BROADCAST: u8 = 2;

/// The payload of a `phx_reply` as Phoenix writes it (`response` first, then `status`).
#[derive(Serialize)]
struct ReplyOut<'a> {
    response: &'a Value,
    status: &'a str,
}

/// V1 client -> server frame, in the key order phoenix.js uses.
#[derive(Serialize)]
struct V1ClientOut<'a> {
    topic: &'a str,
    event: &'a str,
    payload: &'a Value,
    #[serde(rename = "ref")]
    reference: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    join_ref: Option<&'a str>,
}

/// V1 server -> client frame, in Phoenix's (alphabetical) key order.
#[derive(Serialize)]
struct V1ServerOut<'a> {
    event: &'a str,
    payload: &'a Value,
    #[serde(rename = "ref")]
    reference: Option<&'a str>,
    topic: &'a str,
}

/// A V1 frame in either direction (a server frame simply has no `join_ref`).
/// Strings are borrowed from the frame when they have no escapes.
#[derive(Deserialize)]
struct V1In<'a> {
    #[serde(borrow)]
    topic: Cow<'a, str>,
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(default)]
    payload: Value,
    #[serde(rename = "ref", default, borrow)]
    reference: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    join_ref: Option<Cow<'a, str>>,
}

/// A V2 text frame from a server. Strings are borrowed from the frame when they have
/// no escapes, and a `phx_reply` payload is read straight into its status and
/// response (no map is built for the `{"status", "response"}` wrapper).
struct V2In<'a> {
    join_ref: Option<Cow<'a, str>>,
    reference: Option<Cow<'a, str>>,
    topic: Cow<'a, str>,
    event: Cow<'a, str>,
    payload: V2Payload,
}

/// The payload of a V2 text frame: a `phx_reply`'s status and response, or any value.
enum V2Payload {
    Reply(Result<(ReplyStatus, Value), &'static str>),
    Other(Value),
}

/// A string borrowed from the input when it has no escapes.
struct Str<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for V2In<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = V2In<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array [join_ref, ref, topic, event, payload]")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<V2In<'de>, A::Error> {
                let missing = |i| de::Error::invalid_length(i, &"an array of 5 elements");
                let join_ref = seq
                    .next_element::<Option<Str<'de>>>()?
                    .ok_or_else(|| missing(0))?;
                let reference = seq
                    .next_element::<Option<Str<'de>>>()?
                    .ok_or_else(|| missing(1))?;
                let topic = seq.next_element::<Str<'de>>()?.ok_or_else(|| missing(2))?;
                let event = seq.next_element::<Str<'de>>()?.ok_or_else(|| missing(3))?;
                let payload = if event.0 == "phx_reply" {
                    V2Payload::Reply(seq.next_element::<ReplyIn>()?.ok_or_else(|| missing(4))?.0)
                } else {
                    V2Payload::Other(seq.next_element::<Value>()?.ok_or_else(|| missing(4))?)
                };
                Ok(V2In {
                    join_ref: join_ref.map(|s| s.0),
                    reference: reference.map(|s| s.0),
                    topic: topic.0,
                    event: event.0,
                    payload,
                })
            }
        }
        d.deserialize_seq(V)
    }
}

/// A `phx_reply` payload: `{"status": ..., "response": ...}` (other keys ignored, the
/// last of duplicate keys kept), or why it is not one.
struct ReplyIn(Result<(ReplyStatus, Value), &'static str>);

impl<'de> Deserialize<'de> for ReplyIn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        const NOT_AN_OBJECT: &str = "reply payload is not an object";
        fn not_an_object<E>() -> Result<ReplyIn, E> {
            Ok(ReplyIn(Err(NOT_AN_OBJECT)))
        }
        impl<'de> Visitor<'de> for V {
            type Value = ReplyIn;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a reply payload")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ReplyIn, A::Error> {
                let mut status: Option<Result<ReplyStatus, &'static str>> = None;
                let mut response = None;
                while let Some(key) = map.next_key::<Str<'de>>()? {
                    match key.0.as_ref() {
                        "status" => {
                            status = Some(match map.next_value::<Value>()? {
                                Value::String(s) => Ok(ReplyStatus::from(s)),
                                _ => Err("reply status is not a string"),
                            })
                        }
                        "response" => response = Some(map.next_value::<Value>()?),
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                let status = match status {
                    Some(Ok(s)) => s,
                    Some(Err(e)) => return Ok(ReplyIn(Err(e))),
                    None => return Ok(ReplyIn(Err("reply has no status"))),
                };
                let response = response.unwrap_or_else(|| Value::Object(serde_json::Map::new()));
                Ok(ReplyIn(Ok((status, response))))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ReplyIn, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                not_an_object()
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<ReplyIn, E> {
                not_an_object()
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<ReplyIn, E> {
                not_an_object()
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<ReplyIn, E> {
                not_an_object()
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<ReplyIn, E> {
                not_an_object()
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<ReplyIn, E> {
                not_an_object()
            }
            fn visit_unit<E: de::Error>(self) -> Result<ReplyIn, E> {
                not_an_object()
            }
        }
        d.deserialize_any(V)
    }
}

impl Serializer for V2 {
    fn vsn(&self) -> &str {
        "2.0.0"
    }

    fn supports_binary(&self) -> bool {
        true
    }

    /// Encodes a message sent by a client.
    ///
    /// A binary payload becomes a V2 binary push (kind 0, 5-byte header); each of
    /// join_ref, ref, topic and event must then fit in 255 UTF-8 bytes.
    fn encode_client(&self, msg: &Message) -> Result<Frame, EncodeError> {
        match &msg.payload {
            Payload::Json(payload) => v2_text(msg, payload),
            Payload::Binary(data) => {
                let event = msg.event.as_str();
                if event == "phx_reply" {
                    // A client push frame has no status; the decoder would refuse it.
                    return Err(EncodeError::Unsupported("a client does not send phx_reply"));
                }
                let jr = ref_str(&msg.join_ref);
                let r = ref_str(&msg.reference);
                let topic = msg.topic.as_str();
                let mut buf = BytesMut::with_capacity(
                    5 + jr.len() + r.len() + topic.len() + event.len() + data.len(),
                );
                buf.put_u8(KIND_PUSH);
                buf.put_u8(field_len("join_ref", jr)?);
                buf.put_u8(field_len("ref", r)?);
                buf.put_u8(field_len("topic", topic)?);
                buf.put_u8(field_len("event", event)?);
                for s in [jr, r, topic, event] {
                    buf.put_slice(s.as_bytes());
                }
                buf.put_slice(data);
                Ok(Frame::Binary(buf.freeze()))
            }
        }
    }

    fn decode_server_text(&self, text: &[u8]) -> Result<Message, DecodeError> {
        decode_v2_text(text)
    }

    /// Decodes a binary frame received from a server: a push (kind 0, no ref), a
    /// reply (kind 1) or a broadcast (kind 2).
    fn decode_server_binary(&self, data: &Bytes) -> Result<Message, DecodeError> {
        let mut r = Reader::new(data);
        let kind = r.u8("kind")?;
        match kind {
            KIND_PUSH => {
                let lens = [
                    r.u8("join_ref length")?,
                    r.u8("topic length")?,
                    r.u8("event length")?,
                ];
                let jr = r.str(lens[0], "join_ref")?;
                let topic = r.str(lens[1], "topic")?;
                let event = r.str(lens[2], "event")?;
                Ok(Message {
                    join_ref: non_empty(jr),
                    reference: None,
                    topic: Topic::from(topic),
                    event: non_reply_event(event)?,
                    payload: Payload::Binary(r.rest()),
                })
            }
            KIND_REPLY => {
                let lens = [
                    r.u8("join_ref length")?,
                    r.u8("ref length")?,
                    r.u8("topic length")?,
                    r.u8("status length")?,
                ];
                let jr = r.str(lens[0], "join_ref")?;
                let rf = r.str(lens[1], "ref")?;
                let topic = r.str(lens[2], "topic")?;
                let status = r.str(lens[3], "status")?;
                Ok(Message {
                    join_ref: non_empty(jr),
                    reference: non_empty(rf),
                    topic: Topic::from(topic),
                    event: Event::Reply(ReplyStatus::from(status)),
                    payload: Payload::Binary(r.rest()),
                })
            }
            KIND_BROADCAST => {
                let lens = [r.u8("topic length")?, r.u8("event length")?];
                let topic = r.str(lens[0], "topic")?;
                let event = r.str(lens[1], "event")?;
                Ok(Message {
                    join_ref: None,
                    reference: None,
                    topic: Topic::from(topic),
                    event: non_reply_event(event)?,
                    payload: Payload::Binary(r.rest()),
                })
            }
            other => Err(DecodeError::UnknownBinaryKind(other)),
        }
    }

    /// Encodes a message sent by a server.
    ///
    /// Binary payloads become a reply (kind 1) for [`Event::Reply`], a broadcast
    /// (kind 2) when the message has neither join_ref nor ref, and a push (kind 0)
    /// otherwise, as Phoenix's serializer does.
    fn encode_server(&self, msg: &Message) -> Result<Frame, EncodeError> {
        let data = match &msg.payload {
            Payload::Json(payload) => return v2_text(msg, payload),
            Payload::Binary(data) => data,
        };
        let jr = ref_str(&msg.join_ref);
        let r = ref_str(&msg.reference);
        let topic = msg.topic.as_str();
        let mut buf =
            BytesMut::with_capacity(5 + jr.len() + r.len() + topic.len() + 16 + data.len());
        match &msg.event {
            Event::Reply(status) => {
                let status = status.as_str();
                buf.put_u8(KIND_REPLY);
                buf.put_u8(field_len("join_ref", jr)?);
                buf.put_u8(field_len("ref", r)?);
                buf.put_u8(field_len("topic", topic)?);
                buf.put_u8(field_len("status", status)?);
                for s in [jr, r, topic, status] {
                    buf.put_slice(s.as_bytes());
                }
            }
            Event::Custom(name) if name == "phx_reply" => {
                return Err(EncodeError::Unsupported(
                    "a phx_reply needs a status: use Event::Reply",
                ));
            }
            event if msg.join_ref.is_none() && msg.reference.is_none() => {
                let event = event.as_str();
                buf.put_u8(KIND_BROADCAST);
                buf.put_u8(field_len("topic", topic)?);
                buf.put_u8(field_len("event", event)?);
                buf.put_slice(topic.as_bytes());
                buf.put_slice(event.as_bytes());
            }
            event => {
                let event = event.as_str();
                buf.put_u8(KIND_PUSH);
                buf.put_u8(field_len("join_ref", jr)?);
                buf.put_u8(field_len("topic", topic)?);
                buf.put_u8(field_len("event", event)?);
                for s in [jr, topic, event] {
                    buf.put_slice(s.as_bytes());
                }
            }
        }
        buf.put_slice(data);
        Ok(Frame::Binary(buf.freeze()))
    }

    fn decode_client_text(&self, text: &[u8]) -> Result<Message, DecodeError> {
        decode_v2_text(text)
    }

    /// Decodes a binary frame received from a client: a push (kind 0, 5-byte header).
    fn decode_client_binary(&self, data: &Bytes) -> Result<Message, DecodeError> {
        let mut r = Reader::new(data);
        let kind = r.u8("kind")?;
        if kind != KIND_PUSH {
            return Err(DecodeError::UnknownBinaryKind(kind));
        }
        let lens = [
            r.u8("join_ref length")?,
            r.u8("ref length")?,
            r.u8("topic length")?,
            r.u8("event length")?,
        ];
        let jr = r.str(lens[0], "join_ref")?;
        let rf = r.str(lens[1], "ref")?;
        let topic = r.str(lens[2], "topic")?;
        let event = r.str(lens[3], "event")?;
        Ok(Message {
            join_ref: non_empty(jr),
            reference: non_empty(rf),
            topic: Topic::from(topic),
            event: non_reply_event(event)?,
            payload: Payload::Binary(r.rest()),
        })
    }
}

impl Serializer for V1Json {
    fn vsn(&self) -> &str {
        "1.0.0"
    }

    fn encode_client(&self, msg: &Message) -> Result<Frame, EncodeError> {
        let Payload::Json(payload) = &msg.payload else {
            return Err(EncodeError::BinaryNotSupported);
        };
        if let Event::Reply(_) = msg.event {
            return Err(EncodeError::Unsupported("a client does not send phx_reply"));
        }
        let out = V1ClientOut {
            topic: msg.topic.as_str(),
            event: msg.event.as_str(),
            payload,
            reference: msg.reference.as_ref().map(Ref::as_str),
            join_ref: msg.join_ref.as_ref().map(Ref::as_str),
        };
        Ok(Frame::Text(serde_json::to_string(&out)?))
    }

    /// Decodes a text frame received from a server. V1 server frames carry no
    /// join_ref; one a server sends anyway is kept.
    fn decode_server_text(&self, text: &[u8]) -> Result<Message, DecodeError> {
        decode_v1_text(text)
    }

    fn encode_server(&self, msg: &Message) -> Result<Frame, EncodeError> {
        let Payload::Json(payload) = &msg.payload else {
            return Err(EncodeError::BinaryNotSupported);
        };
        let text = match &msg.event {
            Event::Reply(status) => {
                let reply = ReplyOut {
                    response: payload,
                    status: status.as_str(),
                };
                let wrapped = serde_json::to_value(&reply)?;
                serde_json::to_string(&V1ServerOut {
                    event: msg.event.as_str(),
                    payload: &wrapped,
                    reference: msg.reference.as_ref().map(Ref::as_str),
                    topic: msg.topic.as_str(),
                })?
            }
            _ => serde_json::to_string(&V1ServerOut {
                event: msg.event.as_str(),
                payload,
                reference: msg.reference.as_ref().map(Ref::as_str),
                topic: msg.topic.as_str(),
            })?,
        };
        Ok(Frame::Text(text))
    }

    fn decode_client_text(&self, text: &[u8]) -> Result<Message, DecodeError> {
        decode_v1_text(text)
    }

    /// Binary frames are not part of V1: refused with [`DecodeError::BinaryNotSupported`].
    fn decode_client_binary(&self, data: &Bytes) -> Result<Message, DecodeError> {
        let _ = data;
        Err(DecodeError::BinaryNotSupported)
    }
}

fn ref_str(r: &Option<Ref>) -> &str {
    r.as_ref().map(Ref::as_str).unwrap_or("")
}

fn field_len(field: &'static str, s: &str) -> Result<u8, EncodeError> {
    u8::try_from(s.len()).map_err(|_| EncodeError::FieldTooLong {
        field,
        len: s.len(),
    })
}

fn non_empty(s: &str) -> Option<Ref> {
    if s.is_empty() {
        None
    } else {
        Some(Ref::from(s))
    }
}

fn non_reply_event(name: &str) -> Result<Event, DecodeError> {
    if name == "phx_reply" {
        // A reply must be kind 1, which carries a status.
        return Err(DecodeError::InvalidReply("phx_reply outside a reply frame"));
    }
    Ok(Event::from_name(name))
}

fn v2_text(msg: &Message, payload: &Value) -> Result<Frame, EncodeError> {
    let jr = msg.join_ref.as_ref().map(Ref::as_str);
    let r = msg.reference.as_ref().map(Ref::as_str);
    let text = match &msg.event {
        Event::Reply(status) => serde_json::to_string(&(
            jr,
            r,
            msg.topic.as_str(),
            "phx_reply",
            ReplyOut {
                response: payload,
                status: status.as_str(),
            },
        ))?,
        event => serde_json::to_string(&(jr, r, msg.topic.as_str(), event.as_str(), payload))?,
    };
    Ok(Frame::Text(text))
}

fn decode_v1_text(text: &[u8]) -> Result<Message, DecodeError> {
    // serde reads a struct from a JSON array too (fields by position); a V1 frame is an object.
    let first = text
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first != Some(&b'{') {
        return Err(DecodeError::InvalidJson(
            "a V1 frame must be a JSON object".into(),
        ));
    }
    let m: V1In = serde_json::from_str(utf8(text)?).map_err(DecodeError::json)?;
    build(m.join_ref, m.reference, m.topic, m.event, m.payload)
}

/// A text frame as a `str`: validated once as a whole, which costs less than
/// serde_json validating each string it reads from bytes.
fn utf8(text: &[u8]) -> Result<&str, DecodeError> {
    std::str::from_utf8(text)
        .map_err(|e| DecodeError::InvalidJson(format!("a text frame is not UTF-8: {e}")))
}

fn decode_v2_text(text: &[u8]) -> Result<Message, DecodeError> {
    let frame: V2In<'_> = serde_json::from_str(utf8(text)?).map_err(DecodeError::json)?;
    let (event, payload) = match frame.payload {
        V2Payload::Reply(Ok((status, response))) => (Event::Reply(status), response),
        V2Payload::Reply(Err(why)) => return Err(DecodeError::InvalidReply(why)),
        V2Payload::Other(payload) => (Event::from_name(frame.event), payload),
    };
    Ok(Message {
        join_ref: frame.join_ref.as_deref().map(Ref::from),
        reference: frame.reference.as_deref().map(Ref::from),
        topic: Topic::from(frame.topic.as_ref()),
        event,
        payload: Payload::Json(payload),
    })
}

/// Builds a message from decoded JSON parts, unwrapping `phx_reply` payloads.
fn build(
    join_ref: Option<Cow<'_, str>>,
    reference: Option<Cow<'_, str>>,
    topic: Cow<'_, str>,
    event: Cow<'_, str>,
    payload: Value,
) -> Result<Message, DecodeError> {
    let (event, payload) = if event == "phx_reply" {
        let Value::Object(mut map) = payload else {
            return Err(DecodeError::InvalidReply("reply payload is not an object"));
        };
        let status = match map.remove("status") {
            Some(Value::String(s)) => ReplyStatus::from(s),
            Some(_) => return Err(DecodeError::InvalidReply("reply status is not a string")),
            None => return Err(DecodeError::InvalidReply("reply has no status")),
        };
        let response = map
            .remove("response")
            .unwrap_or_else(|| Value::Object(serde_json::Map::new()));
        (Event::Reply(status), response)
    } else {
        (Event::from_name(event), payload)
    };
    Ok(Message {
        join_ref: join_ref.as_deref().map(Ref::from),
        reference: reference.as_deref().map(Ref::from),
        topic: Topic::from(topic.as_ref()),
        event,
        payload: Payload::Json(payload),
    })
}

/// A bounds-checked cursor over a binary frame.
struct Reader<'a> {
    data: &'a Bytes,
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(data: &'a Bytes) -> Self {
        Reader { data, pos: 0 }
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        let b = *self.data.get(self.pos).ok_or(DecodeError::Truncated {
            field,
            needed: 1,
            available: 0,
        })?;
        self.pos += 1;
        Ok(b)
    }

    fn str(&mut self, len: u8, field: &'static str) -> Result<&'a str, DecodeError> {
        let len = usize::from(len);
        let available = self.data.len() - self.pos;
        if len > available {
            return Err(DecodeError::Truncated {
                field,
                needed: len,
                available,
            });
        }
        let bytes = &self.data[self.pos..self.pos + len];
        self.pos += len;
        std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8 { field })
    }

    fn rest(&mut self) -> Bytes {
        let rest = self.data.slice(self.pos..);
        self.pos = self.data.len();
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn phoenix_js_binary_push_vector_encodes_to_the_same_bytes() {
        let msg = Message::new(
            Some("0".into()),
            Some("1".into()),
            "t",
            Event::from("e"),
            Payload::Binary(Bytes::from_static(&[1])),
        );
        let frame = V2.encode_client(&msg).unwrap();
        assert_eq!(
            frame,
            Frame::Binary(Bytes::from(hex("00010101013031746501")))
        );
    }

    #[test]
    fn phoenix_js_binary_reply_vector_decodes() {
        let mut data = vec![1u8, 3, 2, 3, 2];
        data.extend_from_slice(b"100");
        data.extend_from_slice(b"12");
        data.extend_from_slice(b"top");
        data.extend_from_slice(b"ok");
        data.extend_from_slice(&[1, 1]);
        let msg = V2.decode_server_binary(&Bytes::from(data)).unwrap();
        assert_eq!(msg.join_ref, Some(Ref::from("100")));
        assert_eq!(msg.reference, Some(Ref::from("12")));
        assert_eq!(msg.topic, "top");
        assert_eq!(msg.event, Event::Reply(ReplyStatus::Ok));
        assert_eq!(msg.payload, Payload::Binary(Bytes::from_static(&[1, 1])));
    }

    #[test]
    fn field_over_255_bytes_is_an_encode_error() {
        let topic = "é".repeat(128); // 256 UTF-8 bytes, 128 chars
        let msg = Message::new(
            None,
            Some("1".into()),
            topic,
            Event::from("e"),
            Payload::from(vec![0u8]),
        );
        let err = V2.encode_client(&msg).unwrap_err();
        assert!(matches!(
            err,
            EncodeError::FieldTooLong {
                field: "topic",
                len: 256
            }
        ));
    }

    #[test]
    fn v2_reply_text_unwraps_status_and_response() {
        let msg = V2
            .decode_server_text(
                br#"["1","2","room:lobby","phx_reply",{"response":{"x":1},"status":"error"}]"#,
            )
            .unwrap();
        assert_eq!(msg.event, Event::Reply(ReplyStatus::Error));
        assert_eq!(msg.payload, Payload::Json(json!({"x": 1})));
    }

    #[test]
    fn v1_client_frame_omits_join_ref_when_absent() {
        let msg = Message::heartbeat(Ref::from(1));
        let frame = V1Json.encode_client(&msg).unwrap();
        assert_eq!(
            frame,
            Frame::Text(r#"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"1"}"#.into())
        );
    }

    #[test]
    fn v1_decoder_refuses_a_json_array() {
        // serde would read it positionally as topic, event, payload, ref, join_ref.
        for text in [&br#"["t","e",{},"1","1"]"#[..], br#" ["t","e"]"#] {
            for decoded in [
                V1Json.decode_server_text(text),
                V1Json.decode_client_text(text),
            ] {
                assert!(matches!(decoded, Err(DecodeError::InvalidJson(_))));
            }
        }
        let object = br#" {"topic":"t","event":"e","payload":{},"ref":"1"}"#;
        assert!(V1Json.decode_server_text(object).is_ok());
    }

    /// The reference decoding of a V2 text frame: the whole payload as a `Value`, then
    /// the `phx_reply` wrapper taken apart (what the direct decoder must agree with).
    fn reference_v2(text: &[u8]) -> Result<Message, DecodeError> {
        let (jr, r, topic, event, payload): (
            Option<String>,
            Option<String>,
            String,
            String,
            Value,
        ) = serde_json::from_slice(text).map_err(DecodeError::json)?;
        build(
            jr.map(Cow::Owned),
            r.map(Cow::Owned),
            Cow::Owned(topic),
            Cow::Owned(event),
            payload,
        )
    }

    #[test]
    fn a_reply_decoded_directly_agrees_with_the_reference_decoding() {
        let payloads = [
            r#"{"status":"ok","response":{"a":[1,2,{"b":null}]}}"#,
            r#"{"response":"x","status":"error"}"#,
            r#"{"status":"timeout"}"#,
            r#"{"status":"ok","response":1,"extra":{"deep":[[[]]]}}"#,
            r#"{"status":"ok","status":"error","response":1,"response":2}"#,
            r#"{"status":"ok","response":"é"}"#,
            r#"{"status":5,"response":{}}"#,
            r#"{"response":{}}"#,
            r#"{}"#,
            r#"[1,{"status":"ok"}]"#,
            r#""ok""#,
            r#"null"#,
            r#"true"#,
            r#"-1.5"#,
            r#"18446744073709551615"#,
        ];
        for payload in payloads {
            for event in ["phx_reply", "other"] {
                let text = format!(r#"["1","2","room:1","{event}",{payload}]"#);
                assert_eq!(
                    decode_v2_text(text.as_bytes()),
                    reference_v2(text.as_bytes()),
                    "{text}"
                );
            }
        }
        for bad in [
            r#"["1","2","room:1","phx_reply"]"#,
            r#"["1","2","room:1","phx_reply",{"status":"ok"},6]"#,
            r#"["1","2","room:1","phx_reply",{"status":"ok"}"#,
            r#"[null,null,"room:1","phx_reply",{"status":"ok","response":[}]"#,
        ] {
            assert!(
                matches!(
                    decode_v2_text(bad.as_bytes()),
                    Err(DecodeError::InvalidJson(_))
                ),
                "{bad}"
            );
            assert!(reference_v2(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn floats_decode_to_the_exact_value_the_sender_wrote() {
        // The shortest representation of this f64; a non-exact parser lands one ULP away.
        let sent = 3.993_784_110_568_700_6e232_f64;
        let msg = V2
            .decode_server_text(br#"[null,null,"t","e",3.9937841105687006e+232]"#)
            .unwrap();
        let got = msg.payload.as_json().and_then(Value::as_f64).unwrap();
        assert_eq!(got.to_bits(), sent.to_bits());
    }

    #[test]
    fn binary_phx_reply_without_a_status_is_an_encode_error_not_an_undecodable_frame() {
        let reply = Message::new(
            Some("1".into()),
            Some("2".into()),
            "t",
            Event::Reply(ReplyStatus::Ok),
            Payload::from(vec![1u8]),
        );
        assert!(matches!(
            V2.encode_client(&reply),
            Err(EncodeError::Unsupported(_))
        ));
        let custom = Message {
            event: Event::Custom("phx_reply".into()),
            ..reply
        };
        assert!(matches!(
            V2.encode_client(&custom),
            Err(EncodeError::Unsupported(_))
        ));
        assert!(matches!(
            V2.encode_server(&custom),
            Err(EncodeError::Unsupported(_))
        ));
    }

    #[test]
    fn truncated_binary_header_is_a_decode_error() {
        for data in [&[][..], &[0u8][..], &[1, 3, 2][..], &[2, 5, 1, b'a'][..]] {
            assert!(V2
                .decode_server_binary(&Bytes::copy_from_slice(data))
                .is_err());
        }
    }
}
