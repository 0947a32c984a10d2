//! The Phoenix Channels message model: topics, events, refs, payloads and replies.
//!
//! A [`Message`] is one frame of the protocol once decoded, whatever the serializer
//! (V1 JSON, V2 JSON or V2 binary). Replies (`phx_reply`) carry their status in the
//! event ([`Event::Reply`]) and their `response` as the payload, so a reply with a
//! binary response is represented exactly like one with a JSON response.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

use smol_str::SmolStr;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// A channel topic, such as `"room:42"`.
///
/// The topic `"phoenix"` is reserved for the socket itself (heartbeats). Clones are
/// cheap (the name is shared).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic(Arc<str>);

impl Default for Topic {
    fn default() -> Self {
        Topic(Arc::from(""))
    }
}

impl Topic {
    /// The reserved topic of socket-level messages (heartbeats).
    pub const PHOENIX: &'static str = "phoenix";

    /// Creates a topic from any string.
    pub fn new(topic: impl Into<String>) -> Self {
        Topic(Arc::from(topic.into()))
    }

    /// The topic as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the reserved `"phoenix"` topic.
    pub fn is_phoenix(&self) -> bool {
        &*self.0 == Self::PHOENIX
    }

    /// The topic as an owned string.
    pub fn into_string(self) -> String {
        self.0.to_string()
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Topic {
    fn from(s: &str) -> Self {
        Topic(Arc::from(s))
    }
}

impl From<String> for Topic {
    fn from(s: String) -> Self {
        Topic(Arc::from(s))
    }
}

impl From<&String> for Topic {
    fn from(s: &String) -> Self {
        Topic(Arc::from(s.as_str()))
    }
}

impl From<&Topic> for Topic {
    fn from(t: &Topic) -> Self {
        t.clone()
    }
}

impl AsRef<str> for Topic {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Topic {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Topic {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Topic {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

/// A message reference (`ref`) or join reference (`join_ref`).
///
/// Phoenix treats refs as opaque strings and echoes them back; this client
/// generates them from a per-socket counter (`"1"`, `"2"`, ...), never reused
/// across reconnects, so every join gets a fresh join_ref.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ref(SmolStr);

impl Ref {
    /// Creates a ref from any string.
    pub fn new(r: impl Into<String>) -> Self {
        Ref::from(r.into())
    }

    /// The ref as a string slice.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The ref as a number, when it is one (refs made by this client always are).
    pub fn as_u64(&self) -> Option<u64> {
        self.as_str().parse().ok()
    }
}

impl From<u64> for Ref {
    fn from(mut n: u64) -> Self {
        // Short refs are kept inline (no allocation); u64::MAX has 20 digits.
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        // At most 20 ASCII digits: always inline.
        Ref(SmolStr::new_inline(
            std::str::from_utf8(&digits[i..]).unwrap_or("0"),
        ))
    }
}

impl From<&str> for Ref {
    fn from(s: &str) -> Self {
        Ref(SmolStr::new(s))
    }
}

impl From<String> for Ref {
    fn from(s: String) -> Self {
        Ref(SmolStr::from(s))
    }
}

impl fmt::Debug for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The status of a `phx_reply`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ReplyStatus {
    /// `"ok"`: the channel replied `{:reply, {:ok, payload}, socket}` or accepted a join.
    Ok,
    /// `"error"`: the channel replied `{:error, payload}`, rejected a join, or the
    /// topic was not matched (`{"reason": "unmatched topic"}`).
    Error,
    /// Any other status a channel chose (Phoenix allows any atom).
    Other(String),
}

impl ReplyStatus {
    /// The status as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            ReplyStatus::Ok => "ok",
            ReplyStatus::Error => "error",
            ReplyStatus::Other(s) => s,
        }
    }

    /// Whether the status is `"ok"`.
    pub fn is_ok(&self) -> bool {
        matches!(self, ReplyStatus::Ok)
    }
}

impl From<&str> for ReplyStatus {
    fn from(s: &str) -> Self {
        match s {
            "ok" => ReplyStatus::Ok,
            "error" => ReplyStatus::Error,
            other => ReplyStatus::Other(other.to_owned()),
        }
    }
}

impl From<String> for ReplyStatus {
    fn from(s: String) -> Self {
        match s.as_str() {
            "ok" => ReplyStatus::Ok,
            "error" => ReplyStatus::Error,
            _ => ReplyStatus::Other(s),
        }
    }
}

impl fmt::Display for ReplyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message's event: the reserved Phoenix events, typed, and user events.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// `phx_join`: join a topic.
    Join,
    /// `phx_leave`: leave a topic.
    Leave,
    /// `phx_reply` with its status; the message's payload is the reply's `response`.
    Reply(ReplyStatus),
    /// `phx_error`: the channel process crashed.
    Error,
    /// `phx_close`: the channel was left, stopped or replaced.
    Close,
    /// `heartbeat` on the `phoenix` topic.
    Heartbeat,
    /// Any other event: a user event.
    Custom(String),
}

impl Event {
    /// The event name as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Event::Join => "phx_join",
            Event::Leave => "phx_leave",
            Event::Reply(_) => "phx_reply",
            Event::Error => "phx_error",
            Event::Close => "phx_close",
            Event::Heartbeat => "heartbeat",
            Event::Custom(s) => s,
        }
    }

    /// Parses an event name that is not `phx_reply` (whose status lives in the payload).
    ///
    /// `"phx_reply"` maps to `Event::Custom("phx_reply")`; serializers build
    /// [`Event::Reply`] themselves once they have read the status.
    pub fn from_name(name: impl Into<String> + AsRef<str>) -> Self {
        match name.as_ref() {
            "phx_join" => Event::Join,
            "phx_leave" => Event::Leave,
            "phx_error" => Event::Error,
            "phx_close" => Event::Close,
            "heartbeat" => Event::Heartbeat,
            _ => Event::Custom(name.into()),
        }
    }

    /// Whether this event is one of Phoenix's reserved events.
    pub fn is_reserved(&self) -> bool {
        !matches!(self, Event::Custom(_))
    }
}

impl From<&str> for Event {
    fn from(s: &str) -> Self {
        Event::from_name(s)
    }
}

impl From<String> for Event {
    fn from(s: String) -> Self {
        Event::from_name(s)
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message payload: a JSON value, or raw bytes (V2 binary frames only).
#[derive(Clone, Debug, PartialEq)]
pub enum Payload {
    /// A JSON value (Phoenix channels send maps; any JSON value is accepted).
    Json(Value),
    /// Raw bytes, sent and received as V2 binary frames.
    Binary(Bytes),
}

impl Payload {
    /// An empty JSON object, `{}`: the payload of joins without params, leaves and heartbeats.
    pub fn empty() -> Self {
        Payload::Json(Value::Object(serde_json::Map::new()))
    }

    /// Serializes any value into a JSON payload.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::to_value(value).map(Payload::Json)
    }

    /// Deserializes a JSON payload into `T`. A binary payload is an error.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        match self {
            Payload::Json(v) => T::deserialize(v),
            Payload::Binary(_) => Err(serde::de::Error::custom(
                "binary payload cannot be decoded as JSON",
            )),
        }
    }

    /// The JSON value, if this is a JSON payload.
    pub fn as_json(&self) -> Option<&Value> {
        match self {
            Payload::Json(v) => Some(v),
            Payload::Binary(_) => None,
        }
    }

    /// The bytes, if this is a binary payload.
    pub fn as_binary(&self) -> Option<&Bytes> {
        match self {
            Payload::Json(_) => None,
            Payload::Binary(b) => Some(b),
        }
    }

    /// Whether this is a binary payload.
    pub fn is_binary(&self) -> bool {
        matches!(self, Payload::Binary(_))
    }
}

impl Default for Payload {
    fn default() -> Self {
        Payload::empty()
    }
}

impl From<Value> for Payload {
    fn from(v: Value) -> Self {
        Payload::Json(v)
    }
}

impl From<Bytes> for Payload {
    fn from(b: Bytes) -> Self {
        Payload::Binary(b)
    }
}

impl From<Vec<u8>> for Payload {
    fn from(b: Vec<u8>) -> Self {
        Payload::Binary(Bytes::from(b))
    }
}

/// A reply to a push or a join: its status and its response.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// `ok`, `error` or a custom status.
    pub status: ReplyStatus,
    /// The channel's response (`{}` when it gave none).
    pub response: Payload,
}

impl Reply {
    /// Whether the status is `ok`.
    pub fn is_ok(&self) -> bool {
        self.status.is_ok()
    }

    /// Whether this is Phoenix's "unmatched topic" error: the topic was not joined
    /// (or, for a join, no channel route matches it).
    pub fn is_unmatched_topic(&self) -> bool {
        self.status == ReplyStatus::Error
            && self
                .response
                .as_json()
                .and_then(|v| v.get("reason"))
                .and_then(Value::as_str)
                == Some("unmatched topic")
    }
}

/// One Phoenix Channels message, in either direction.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// The join_ref of the channel incarnation this message belongs to, if any.
    pub join_ref: Option<Ref>,
    /// The message ref (`ref`), used to match replies to requests.
    pub reference: Option<Ref>,
    /// The topic.
    pub topic: Topic,
    /// The event.
    pub event: Event,
    /// The payload; for [`Event::Reply`], the reply's `response`.
    pub payload: Payload,
}

impl Message {
    /// Builds a message.
    pub fn new(
        join_ref: Option<Ref>,
        reference: Option<Ref>,
        topic: impl Into<Topic>,
        event: Event,
        payload: Payload,
    ) -> Self {
        Message {
            join_ref,
            reference,
            topic: topic.into(),
            event,
            payload,
        }
    }

    /// A heartbeat: `[null, ref, "phoenix", "heartbeat", {}]`.
    pub fn heartbeat(reference: Ref) -> Self {
        Message::new(
            None,
            Some(reference),
            Topic::PHOENIX,
            Event::Heartbeat,
            Payload::empty(),
        )
    }

    /// The reply carried by a `phx_reply` message, if this is one.
    pub fn reply(&self) -> Option<Reply> {
        match &self.event {
            Event::Reply(status) => Some(Reply {
                status: status.clone(),
                response: self.payload.clone(),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_refs_print_their_decimal_digits() {
        for n in [0u64, 7, 10, 12345, u64::MAX] {
            let r = Ref::from(n);
            assert_eq!(r.as_str(), n.to_string());
            assert_eq!(r.as_u64(), Some(n));
            assert_eq!(r, Ref::from(n.to_string()));
        }
    }

    #[test]
    fn long_and_unicode_refs_keep_their_text() {
        let long = "r".repeat(100);
        assert_eq!(Ref::from(long.as_str()).as_str(), long);
        assert_eq!(Ref::new("référence").as_str(), "référence");
        assert_eq!(Ref::from("").as_str(), "");
        assert!(Ref::from("a") < Ref::from("b"));
        assert_eq!(Ref::from("abc").as_u64(), None);
    }
}
