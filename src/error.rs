//! Error types.
//!
//! Each variant's documentation says what a caller can do about it.

use thiserror::Error;

/// A frame could not be decoded. The client logs it, closes the connection
/// (a server that sends garbage is not trusted to be in sync) and reconnects.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The text frame is not valid JSON of the expected shape (not an array, wrong
    /// arity, a ref that is not a string or null, invalid UTF-8, nesting too deep...).
    #[error("invalid frame: {0}")]
    InvalidJson(String),
    /// A binary frame ended before a field it announced.
    #[error("truncated binary frame: {field} needs {needed} bytes, {available} left")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Bytes the header announced.
        needed: usize,
        /// Bytes left in the frame.
        available: usize,
    },
    /// A text field of a binary frame is not UTF-8.
    #[error("binary frame field {field} is not valid UTF-8")]
    InvalidUtf8 {
        /// The field.
        field: &'static str,
    },
    /// A binary frame of a kind this direction does not use.
    #[error("unknown binary frame kind {0}")]
    UnknownBinaryKind(u8),
    /// A `phx_reply` without a well-formed status.
    #[error("invalid reply: {0}")]
    InvalidReply(&'static str),
    /// A binary frame on a socket whose serializer has no binary frames (V1).
    #[error("binary frames are not part of this protocol")]
    BinaryNotSupported,
    /// A frame of a type or direction the serializer does not handle (a text frame
    /// for a binary-only serializer, a client frame for a client-only one).
    #[error("unsupported frame: {0}")]
    Unsupported(&'static str),
    /// A custom [`Serializer`](crate::codec::Serializer)'s own error: the frame is not
    /// in its format.
    #[error("invalid frame: {0}")]
    Custom(String),
}

impl DecodeError {
    pub(crate) fn json(e: serde_json::Error) -> Self {
        DecodeError::InvalidJson(e.to_string())
    }
}

/// A message could not be encoded. Nothing was sent; fix the message.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// A binary frame field (join_ref, ref, topic, event or status) is longer than
    /// 255 UTF-8 bytes, the most the binary header can describe. Use a shorter
    /// topic or event name, or a JSON payload.
    #[error("{field} is {len} bytes long; binary frames allow at most 255")]
    FieldTooLong {
        /// The field.
        field: &'static str,
        /// Its length in UTF-8 bytes.
        len: usize,
    },
    /// A binary payload with a serializer that has none (V1). Use V2 (the default)
    /// or a JSON payload.
    #[error("binary payloads are not supported by this serializer (V2 supports them)")]
    BinaryNotSupported,
    /// The payload could not be serialized to JSON.
    #[error("payload is not serializable: {0}")]
    Json(String),
    /// The message cannot be sent in this direction.
    #[error("unsupported message: {0}")]
    Unsupported(&'static str),
    /// A custom [`Serializer`](crate::codec::Serializer)'s own error: the message
    /// cannot be written in its format.
    #[error("message cannot be encoded: {0}")]
    Custom(String),
}

impl From<serde_json::Error> for EncodeError {
    fn from(e: serde_json::Error) -> Self {
        EncodeError::Json(e.to_string())
    }
}

/// The configuration is not usable. Nothing was attempted; fix the configuration.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The socket URL cannot be parsed.
    #[error("invalid socket URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given, without its query, fragment and user info (they may hold secrets).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A setting is out of range.
    #[error("invalid setting {name}: {reason}")]
    InvalidSetting {
        /// The setting.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Why a push got no reply. Every push ends in exactly one reply or one of these.
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum PushError {
    /// The topic is not wanted: never joined, given up, or being left (with no join
    /// of it asked for since). Join it first (or check for a typo).
    #[error("topic is not joined")]
    NotJoined,
    /// No reply within the push timeout (counted from when the push was made,
    /// buffered time included). The server may or may not have handled it.
    #[error("no reply within the push timeout")]
    Timeout,
    /// Too many pushes are buffered for the topic, or the writer queue holds
    /// `send_buffer` bytes already. Nothing was sent. Slow down, or raise
    /// `max_buffered_pushes` / `send_buffer`.
    #[error("push buffer is full")]
    BufferFull,
    /// The push was sent but the connection was lost before its reply; the server
    /// may or may not have handled it. Retry if the push is idempotent.
    #[error("connection lost before the reply")]
    ConnectionLost,
    /// The channel crashed (`phx_error`) or was closed before the reply.
    #[error("channel closed before the reply")]
    ChannelClosed,
    /// The topic was left, or its join failed for good, before the push was sent or answered.
    #[error("topic left before the reply")]
    Left,
    /// The client stopped before the push was answered (or had stopped for good
    /// before it got the push). A push already sent may or may not have been handled
    /// by the server; a buffered one was never sent.
    #[error("client stopped")]
    Stopped,
    /// The push cannot be encoded (a binary push on V1, or a topic or event over 255 bytes).
    #[error("push cannot be encoded: {0}")]
    Encode(#[from] EncodeError),
}

/// Why a join failed.
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum JoinError {
    /// The channel's `join/3` returned an error; the response says why (often
    /// `{"reason": "unauthorized"}`). Retried only as `RetryPolicy` says.
    #[error("join rejected: {}", show_payload(.0))]
    Rejected(crate::message::Payload),
    /// No channel route on the server matches the topic.
    #[error("unmatched topic: no channel on the server handles it")]
    UnmatchedTopic,
    /// No reply within the join timeout. The client sent `phx_leave` and retries
    /// with the rejoin backoff (by default).
    #[error("no join reply within the join timeout")]
    Timeout,
    /// The topic was left before the join completed (a [`Leave`](crate::Leave) came
    /// first). Join it again if you still want it.
    #[error("topic left before the join completed")]
    Left,
    /// The topic is already wanted (joined, joining, or waiting for a reconnect or a
    /// rejoin) with other params. Nothing was sent and nothing changed: each topic is
    /// joined with one set of params at a time. To join it with new params, leave it
    /// first (await the [`Leave`](crate::Leave): it resolves once the topic is left),
    /// then join again.
    #[error("topic already joined with other params; leave it first, then join with the new ones")]
    ParamsConflict,
    /// The client stopped before the join completed. Under a supervisor, a topic
    /// still in the registry is rejoined after the restart (a new `Join` with the
    /// same params answers with that join's outcome).
    #[error("client stopped")]
    Stopped,
}

/// Why a [`Leave`](crate::Leave) was not confirmed by the server. Either way the topic
/// is left on the client's side: it is out of the registry (never rejoined),
/// [`handle_leave`](crate::SlipstreamActor::handle_leave) ran, and its pushes got
/// their outcomes.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaveError {
    /// Neither the leave reply nor `phx_close` came within the leave timeout (the
    /// configured push timeout). The topic is left locally anyway; the server drops
    /// the channel at the latest when the socket closes. Nothing to do unless you
    /// must know the server handled the leave.
    #[error("leave not confirmed within the leave timeout")]
    Timeout,
    /// The client stopped before the leave was confirmed (or had stopped for good
    /// before it got the leave). Its connection is closed, which ends the socket's
    /// channels on the server, and the topic is not rejoined.
    #[error("client stopped")]
    Stopped,
}

/// The client has stopped for good (its mailbox is closed): the answer of
/// [`ClientExt::status`](crate::ClientExt::status) and
/// [`ClientExt::subscribe`](crate::ClientExt::subscribe) then. Start a new client.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[error("the client has stopped")]
pub struct ClientStopped;

/// A payload in an error message: its JSON, or its size when binary.
fn show_payload(payload: &crate::message::Payload) -> String {
    match payload {
        crate::message::Payload::Json(v) => v.to_string(),
        crate::message::Payload::Binary(b) => format!("<{} bytes>", b.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Payload;

    #[test]
    fn a_rejected_join_displays_the_response_as_json() {
        let e = JoinError::Rejected(Payload::Json(serde_json::json!({"reason": "unauthorized"})));
        assert_eq!(e.to_string(), r#"join rejected: {"reason":"unauthorized"}"#);
        let e = JoinError::Rejected(Payload::Binary(bytes::Bytes::from_static(b"abc")));
        assert_eq!(e.to_string(), "join rejected: <3 bytes>");
    }
}
