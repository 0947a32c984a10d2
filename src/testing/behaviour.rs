//! Channel behaviour defined by a test: how joins and events are answered.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};

use crate::message::{Payload, ReplyStatus, Topic};

use super::state::SocketId;

/// The most pushes one [`Action::Flood`] sends.
pub const MAX_FLOOD_COUNT: u64 = 10_000_000;
/// The largest `data` string one [`Action::Flood`] message carries, in bytes.
pub const MAX_FLOOD_SIZE: usize = 16 * 1024 * 1024;
/// The longest [`Action::Sleep`] honoured; longer sleeps are cut to this.
pub const MAX_SLEEP: Duration = Duration::from_secs(600);

/// A topic pattern, as in a Phoenix socket's `channel "room:*", RoomChannel`.
///
/// A pattern ending in `*` matches every topic starting with what precedes the `*`
/// (`"*"` alone matches every topic); any other pattern matches that exact topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicPattern(String);

impl TopicPattern {
    /// Creates a pattern.
    pub fn new(pattern: impl Into<String>) -> Self {
        TopicPattern(pattern.into())
    }

    /// Whether the topic matches.
    pub fn matches(&self, topic: &str) -> bool {
        match self.0.strip_suffix('*') {
            Some(prefix) => topic.starts_with(prefix),
            None => topic == self.0,
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for TopicPattern {
    fn from(s: &str) -> Self {
        TopicPattern::new(s)
    }
}

impl From<String> for TopicPattern {
    fn from(s: String) -> Self {
        TopicPattern::new(s)
    }
}

/// What a connect attempt carries, given to the connect predicate
/// ([`TestServerBuilder::accept_connect`](super::TestServerBuilder::accept_connect)).
#[derive(Clone, Debug)]
pub struct ConnectRequest {
    /// The `vsn` connect param (`"1.0.0"` when the client sent none, as in Phoenix);
    /// the server has a serializer for it (other connects are refused before the
    /// predicate runs).
    pub vsn: String,
    /// The query params, in order (including `vsn`).
    pub params: Vec<(String, String)>,
    /// The request headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The auth token from the `Sec-WebSocket-Protocol` header
    /// (`base64url.bearer.phx.<base64>`, as phoenix.js 1.8 sends it), decoded.
    pub auth_token: Option<String>,
}

impl ConnectRequest {
    /// The auth token the client sent in the `Sec-WebSocket-Protocol` header, decoded
    /// (what Phoenix gives `connect/3` as `connect_info[:auth_token]`).
    pub fn auth_token(&self) -> Option<&str> {
        self.auth_token.as_deref()
    }

    /// The value of a connect param, if present.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of a header (name case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A `phx_join`, given to a channel's join handler.
#[derive(Debug)]
pub struct JoinRequest<'a> {
    /// The joining socket.
    pub socket: SocketId,
    /// The topic.
    pub topic: &'a Topic,
    /// The join params (the `phx_join` payload).
    pub params: &'a Payload,
    /// The socket's connect params.
    pub connect_params: &'a [(String, String)],
}

/// A message pushed by the client on a joined channel, given to the event handler.
#[derive(Debug)]
pub struct EventRequest<'a> {
    /// The sending socket.
    pub socket: SocketId,
    /// The topic.
    pub topic: &'a Topic,
    /// The event name.
    pub event: &'a str,
    /// The payload (JSON, or bytes for a V2 binary push).
    pub payload: &'a Payload,
    /// The params the channel was joined with.
    pub join_params: &'a Payload,
    /// The socket's connect params.
    pub connect_params: &'a [(String, String)],
}

/// How a channel answers a join.
#[derive(Clone, Debug, PartialEq)]
pub enum JoinOutcome {
    /// `{:ok, response, socket}`: reply ok with the response, then run the actions
    /// (pushes, a ticker...) in the joined channel.
    Ok {
        /// The reply's response.
        response: Payload,
        /// Actions run right after the reply.
        then: Vec<Action>,
    },
    /// `{:error, payload}`: reply error with the payload; the topic is not joined.
    Error(Payload),
    /// The join raised: reply error `{"reason":"join crashed"}`; the topic is not joined.
    Crash,
}

impl JoinOutcome {
    /// Join ok with this response.
    pub fn ok(response: impl Into<Payload>) -> Self {
        JoinOutcome::Ok {
            response: response.into(),
            then: Vec::new(),
        }
    }

    /// Join refused with this payload.
    pub fn error(payload: impl Into<Payload>) -> Self {
        JoinOutcome::Error(payload.into())
    }

    /// Adds actions to run after an ok reply (ignored for errors and crashes).
    pub fn then(mut self, actions: impl IntoIterator<Item = Action>) -> Self {
        if let JoinOutcome::Ok { then, .. } = &mut self {
            then.extend(actions);
        }
        self
    }
}

/// One thing a channel does in answer to a message, run in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// `{:reply, {status, response}, socket}`: a `phx_reply` to the message
    /// (binary response: a kind 1 binary frame).
    Reply {
        /// The status.
        status: ReplyStatus,
        /// The response.
        response: Payload,
    },
    /// `push(socket, event, payload)`: `[join_ref, null, topic, event, payload]` to this
    /// socket (binary payload: a kind 0 binary frame).
    Push {
        /// The event.
        event: String,
        /// The payload.
        payload: Payload,
    },
    /// `broadcast!`: `[null, null, topic, event, payload]` to every socket joined to
    /// the topic, this one included (binary payload: a kind 2 binary frame).
    Broadcast {
        /// The event.
        event: String,
        /// The payload.
        payload: Payload,
    },
    /// `broadcast_from!`: like [`Action::Broadcast`] but not to this socket.
    BroadcastFrom {
        /// The event.
        event: String,
        /// The payload.
        payload: Payload,
    },
    /// The channel raises: `phx_error` (ref = join_ref); the topic is no longer joined.
    /// Later actions are not run.
    Crash,
    /// `{:stop, :normal, socket}`: `phx_close` (ref = join_ref); the topic is no longer
    /// joined. Later actions are not run.
    Stop,
    /// Delays every later frame of this batch (the channel sleeps). Other messages of
    /// the socket are still handled meanwhile; see the module doc.
    Sleep(Duration),
    /// Pushes `event {"n": n}` (n = 1, 2, ...) every `interval` until the channel ends.
    Ticker {
        /// The event.
        event: String,
        /// The interval (at least 1 ms).
        interval: Duration,
    },
    /// Pushes `count` messages `event {"n": i, "data": "xxx..."}` (`size` bytes of data),
    /// i = 1..=count, as fast as the client reads them.
    Flood {
        /// The event.
        event: String,
        /// How many messages (at most [`MAX_FLOOD_COUNT`]).
        count: u64,
        /// Bytes of `data` per message (at most [`MAX_FLOOD_SIZE`]).
        size: usize,
    },
    /// Closes the whole websocket with this close code.
    CloseSocket(u16),
}

impl Action {
    /// Reply ok with the response.
    pub fn reply_ok(response: impl Into<Payload>) -> Self {
        Action::Reply {
            status: ReplyStatus::Ok,
            response: response.into(),
        }
    }

    /// Reply error with the response.
    pub fn reply_error(response: impl Into<Payload>) -> Self {
        Action::Reply {
            status: ReplyStatus::Error,
            response: response.into(),
        }
    }

    /// Push an event to this socket on this channel.
    pub fn push(event: impl Into<String>, payload: impl Into<Payload>) -> Self {
        Action::Push {
            event: event.into(),
            payload: payload.into(),
        }
    }

    /// Broadcast an event to every socket joined to the topic, this one included.
    pub fn broadcast(event: impl Into<String>, payload: impl Into<Payload>) -> Self {
        Action::Broadcast {
            event: event.into(),
            payload: payload.into(),
        }
    }

    /// Broadcast an event to every other socket joined to the topic.
    pub fn broadcast_from(event: impl Into<String>, payload: impl Into<Payload>) -> Self {
        Action::BroadcastFrom {
            event: event.into(),
            payload: payload.into(),
        }
    }
}

pub(crate) type ConnectFn = Arc<dyn Fn(&ConnectRequest) -> bool + Send + Sync>;
pub(crate) type JoinFn = Arc<dyn Fn(&JoinRequest<'_>) -> JoinOutcome + Send + Sync>;
pub(crate) type EventFn = Arc<dyn Fn(&EventRequest<'_>) -> Vec<Action> + Send + Sync>;

/// A channel's behaviour: a join handler and an event handler.
///
/// Defaults: a join is accepted and the reply echoes the join params; an event is
/// answered with an ok reply echoing its payload.
///
/// ```
/// use actix_slipstream::testing::{Action, Channel, JoinOutcome};
/// use serde_json::json;
///
/// let channel = Channel::new()
///     .on_join(|join| {
///         if join.topic.as_str().ends_with(":forbidden") {
///             JoinOutcome::error(json!({"reason": "forbidden"}))
///         } else {
///             JoinOutcome::ok(json!({}))
///         }
///     })
///     .on_event(|ev| match ev.event {
///         "ping" => vec![Action::reply_ok(json!({"pong": true}))],
///         "shout" => vec![Action::broadcast("shout", ev.payload.clone())],
///         _ => vec![Action::Crash],
///     });
/// # let _ = channel;
/// ```
#[derive(Clone)]
pub struct Channel {
    pub(crate) join: JoinFn,
    pub(crate) event: EventFn,
}

impl Default for Channel {
    fn default() -> Self {
        Channel::new()
    }
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel").finish_non_exhaustive()
    }
}

impl Channel {
    /// A channel with the default behaviour (join echoes params, events echo payloads).
    pub fn new() -> Self {
        Channel {
            join: Arc::new(|j: &JoinRequest<'_>| JoinOutcome::ok(j.params.clone())),
            event: Arc::new(|e: &EventRequest<'_>| vec![Action::reply_ok(e.payload.clone())]),
        }
    }

    /// Sets the join handler.
    pub fn on_join<F>(mut self, f: F) -> Self
    where
        F: Fn(&JoinRequest<'_>) -> JoinOutcome + Send + Sync + 'static,
    {
        self.join = Arc::new(f);
        self
    }

    /// Sets the event handler: the actions returned are run in order (an empty list
    /// means no reply, `{:noreply, socket}`).
    pub fn on_event<F>(mut self, f: F) -> Self
    where
        F: Fn(&EventRequest<'_>) -> Vec<Action> + Send + Sync + 'static,
    {
        self.event = Arc::new(f);
        self
    }
}

#[derive(Clone)]
pub(crate) struct Route {
    pub(crate) pattern: TopicPattern,
    pub(crate) channel: Channel,
}

/// The events of the recorded server's `room:*` channel (also used by `private:*` and `ticker:*`).
pub(crate) fn demo_event(ev: &EventRequest<'_>) -> Vec<Action> {
    let payload = ev.payload.clone();
    let json_u64 = |key: &str| {
        ev.payload
            .as_json()
            .and_then(|v| v.get(key))
            .and_then(Value::as_u64)
    };
    match ev.event {
        "echo" => vec![Action::reply_ok(payload)],
        "error_reply" => vec![Action::reply_error(payload)],
        "broadcast" => vec![
            Action::broadcast("broadcast", payload),
            Action::reply_ok(json!({})),
        ],
        "broadcast_from" => vec![
            Action::broadcast_from("broadcast_from", payload),
            Action::reply_ok(json!({})),
        ],
        "noreply" => vec![],
        "crash" => vec![Action::Crash],
        "stop" => vec![Action::Stop],
        "stop_reply" => vec![Action::reply_ok(payload), Action::Stop],
        "push_me" => vec![Action::push("pushed", payload)],
        "push_binary" => vec![Action::push(
            "binary_pushed",
            Payload::Binary(Bytes::from_static(&[0, 1, 2, 3, 0xfe, 0xff])),
        )],
        "sleep" => {
            let ms = json_u64("ms").unwrap_or(0);
            vec![
                Action::Sleep(Duration::from_millis(ms)),
                Action::reply_ok(payload),
            ]
        }
        "flood" => {
            let count = json_u64("count").unwrap_or(0).min(MAX_FLOOD_COUNT);
            let size = json_u64("size")
                .map(|s| usize::try_from(s).unwrap_or(MAX_FLOOD_SIZE))
                .unwrap_or(0)
                .min(MAX_FLOOD_SIZE);
            vec![
                Action::Flood {
                    event: "flooded".into(),
                    count,
                    size,
                },
                Action::reply_ok(json!({ "count": count })),
            ]
        }
        other => vec![Action::reply_error(
            json!({"event": other, "reason": "unknown event"}),
        )],
    }
}

pub(crate) fn demo_routes() -> Vec<Route> {
    vec![
        Route {
            pattern: "room:*".into(),
            channel: Channel::new()
                .on_join(|j| JoinOutcome::ok(j.params.clone()))
                .on_event(demo_event),
        },
        Route {
            pattern: "private:*".into(),
            channel: Channel::new()
                .on_join(|j| {
                    let token = j
                        .params
                        .as_json()
                        .and_then(|v| v.get("token"))
                        .and_then(Value::as_str);
                    if token == Some("secret") {
                        JoinOutcome::ok(json!({}))
                    } else {
                        JoinOutcome::error(json!({"reason": "unauthorized"}))
                    }
                })
                .on_event(demo_event),
        },
        Route {
            pattern: "ticker:*".into(),
            channel: Channel::new()
                .on_join(|j| {
                    let ms = j
                        .params
                        .as_json()
                        .and_then(|v| v.get("interval_ms"))
                        .and_then(Value::as_u64)
                        .unwrap_or(1000)
                        .max(1);
                    JoinOutcome::ok(j.params.clone()).then([Action::Ticker {
                        event: "tick".into(),
                        interval: Duration::from_millis(ms),
                    }])
                })
                .on_event(demo_event),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_pattern_matches_by_prefix_and_plain_pattern_exactly() {
        assert!(TopicPattern::new("room:*").matches("room:lobby"));
        assert!(TopicPattern::new("room:*").matches("room:"));
        assert!(!TopicPattern::new("room:*").matches("rooms"));
        assert!(TopicPattern::new("*").matches("anything"));
        assert!(TopicPattern::new("exact").matches("exact"));
        assert!(!TopicPattern::new("exact").matches("exact2"));
    }

    #[test]
    fn demo_unknown_event_replies_error_naming_the_event() {
        let topic = Topic::from("room:x");
        let payload = Payload::empty();
        let req = EventRequest {
            socket: SocketId(1),
            topic: &topic,
            event: "nope",
            payload: &payload,
            join_params: &payload,
            connect_params: &[],
        };
        assert_eq!(
            demo_event(&req),
            vec![Action::reply_error(
                json!({"event": "nope", "reason": "unknown event"})
            )]
        );
    }
}
