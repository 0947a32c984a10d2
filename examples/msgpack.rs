//! A custom serializer: MessagePack instead of JSON.
//!
//! Each message is one binary websocket frame holding the MessagePack array
//! `[join_ref, ref, topic, event, payload]` (a reply's payload is the map
//! `{"status": .., "response": ..}`, as in Phoenix's JSON serializers). JSON payloads
//! become MessagePack values, binary payloads MessagePack `bin` values. On the Phoenix
//! side, such a serializer is a module implementing `Phoenix.Socket.Serializer`,
//! listed in the socket's options: `websocket: [serializer: [{MyApp.MsgpackSerializer,
//! "~> 3.0.0"}, ...]]`; clients ask for it with `vsn=3.0.0`.
//!
//! The example starts the bundled test server speaking this format for `vsn=3.0.0`,
//! connects with it, joins a room, pushes `echo` (JSON and binary) and `broadcast`, and
//! prints the replies and the server's push.
//!
//! ```text
//! cargo run --example msgpack --features testing
//! ```

use std::time::Duration;

use actix_slipstream::codec::{DecodeError, EncodeError, Frame, Message, Serializer};
use actix_slipstream::testing::TestServer;
use actix_slipstream::{
    Client, ClientExt, Config, Event, Payload, Ref, ReplyStatus, SlipstreamActor,
};
use bytes::Bytes;
use futures_util::StreamExt;
use rmpv::Value as Mp;
use serde_json::{json, Number, Value as Json};

/// Deepest MessagePack nesting accepted (serde_json's own limit is 128 too).
const MAX_DEPTH: usize = 128;

/// `[join_ref, ref, topic, event, payload]` as MessagePack, in binary frames.
#[derive(Clone, Copy, Debug)]
struct Msgpack;

impl Msgpack {
    /// The same format in both directions.
    fn encode(&self, msg: &Message) -> Result<Frame, EncodeError> {
        let payload = match &msg.event {
            Event::Reply(status) => Mp::Map(vec![
                (Mp::from("status"), Mp::from(status.as_str())),
                (Mp::from("response"), payload_to_mp(&msg.payload)),
            ]),
            _ => payload_to_mp(&msg.payload),
        };
        let opt_ref = |r: &Option<Ref>| r.as_ref().map_or(Mp::Nil, |r| Mp::from(r.as_str()));
        let frame = Mp::Array(vec![
            opt_ref(&msg.join_ref),
            opt_ref(&msg.reference),
            Mp::from(msg.topic.as_str()),
            Mp::from(msg.event.as_str()),
            payload,
        ]);
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, &frame)
            .map_err(|e| EncodeError::Custom(e.to_string()))?;
        Ok(Frame::Binary(Bytes::from(out)))
    }

    fn decode(&self, data: &Bytes) -> Result<Message, DecodeError> {
        let bad = |what: String| DecodeError::Custom(what);
        let mut rest: &[u8] = data;
        let value = rmpv::decode::read_value_with_max_depth(&mut rest, MAX_DEPTH)
            .map_err(|e| bad(format!("not MessagePack: {e}")))?;
        if !rest.is_empty() {
            return Err(bad(format!("{} bytes after the message", rest.len())));
        }
        let Mp::Array(items) = value else {
            return Err(bad("a message is an array".into()));
        };
        let Ok([join_ref, reference, topic, event, payload]) = <[Mp; 5]>::try_from(items) else {
            return Err(bad("a message has 5 elements".into()));
        };
        let opt_ref = |v: Mp, field: &str| match v {
            Mp::Nil => Ok(None),
            Mp::String(s) => s
                .into_str()
                .map(|s| Some(Ref::from(s)))
                .ok_or_else(|| bad(format!("{field} is not UTF-8"))),
            _ => Err(bad(format!("{field} is not a string or nil"))),
        };
        let text = |v: Mp, field: &str| match v {
            Mp::String(s) => s
                .into_str()
                .ok_or_else(|| bad(format!("{field} is not UTF-8"))),
            _ => Err(bad(format!("{field} is not a string"))),
        };
        let join_ref = opt_ref(join_ref, "join_ref")?;
        let reference = opt_ref(reference, "ref")?;
        let topic = text(topic, "topic")?;
        let event = text(event, "event")?;
        let (event, payload) = if event == "phx_reply" {
            let Mp::Map(entries) = payload else {
                return Err(bad("a reply's payload is a map".into()));
            };
            let (mut status, mut response) = (None, None);
            for (k, v) in entries {
                match k.as_str() {
                    Some("status") => status = Some(text(v, "status")?),
                    Some("response") => response = Some(v),
                    _ => {}
                }
            }
            let status = status.ok_or_else(|| bad("a reply has a status".into()))?;
            let response = response.unwrap_or_else(|| Mp::Map(Vec::new()));
            (Event::Reply(ReplyStatus::from(status)), response)
        } else {
            (Event::from(event), payload)
        };
        let payload = match payload {
            Mp::Binary(b) => Payload::Binary(Bytes::from(b)),
            other => Payload::Json(mp_to_json(other)?),
        };
        Ok(Message::new(join_ref, reference, topic, event, payload))
    }
}

impl Serializer for Msgpack {
    fn vsn(&self) -> &str {
        "3.0.0"
    }

    fn supports_binary(&self) -> bool {
        true
    }

    fn encode_client(&self, msg: &Message) -> Result<Frame, EncodeError> {
        self.encode(msg)
    }

    fn decode_server_binary(&self, data: &Bytes) -> Result<Message, DecodeError> {
        self.decode(data)
    }

    // The server direction, for the test server.
    fn encode_server(&self, msg: &Message) -> Result<Frame, EncodeError> {
        self.encode(msg)
    }

    fn decode_client_binary(&self, data: &Bytes) -> Result<Message, DecodeError> {
        self.decode(data)
    }
}

fn payload_to_mp(payload: &Payload) -> Mp {
    match payload {
        Payload::Json(v) => json_to_mp(v),
        Payload::Binary(b) => Mp::Binary(b.to_vec()),
    }
}

fn json_to_mp(v: &Json) -> Mp {
    match v {
        Json::Null => Mp::Nil,
        Json::Bool(b) => Mp::Boolean(*b),
        Json::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Mp::from(u),
            (_, Some(i)) => Mp::from(i),
            _ => Mp::F64(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Mp::from(s.as_str()),
        Json::Array(a) => Mp::Array(a.iter().map(json_to_mp).collect()),
        Json::Object(o) => Mp::Map(
            o.iter()
                .map(|(k, v)| (Mp::from(k.as_str()), json_to_mp(v)))
                .collect(),
        ),
    }
}

fn mp_to_json(v: Mp) -> Result<Json, DecodeError> {
    let bad = |what: &str| DecodeError::Custom(format!("payload: {what}"));
    Ok(match v {
        Mp::Nil => Json::Null,
        Mp::Boolean(b) => Json::Bool(b),
        Mp::Integer(i) => match (i.as_u64(), i.as_i64()) {
            (Some(u), _) => Json::from(u),
            (_, Some(i)) => Json::from(i),
            _ => return Err(bad("integer out of range")),
        },
        Mp::F32(f) => Number::from_f64(f64::from(f))
            .map(Json::Number)
            .ok_or_else(|| bad("NaN or infinite float"))?,
        Mp::F64(f) => Number::from_f64(f)
            .map(Json::Number)
            .ok_or_else(|| bad("NaN or infinite float"))?,
        Mp::String(s) => Json::String(s.into_str().ok_or_else(|| bad("string not UTF-8"))?),
        Mp::Array(a) => Json::Array(a.into_iter().map(mp_to_json).collect::<Result<_, _>>()?),
        Mp::Map(m) => Json::Object(
            m.into_iter()
                .map(|(k, v)| match k {
                    Mp::String(k) => Ok((
                        k.into_str().ok_or_else(|| bad("key not UTF-8"))?,
                        mp_to_json(v)?,
                    )),
                    _ => Err(bad("map key is not a string")),
                })
                .collect::<Result<_, _>>()?,
        ),
        Mp::Binary(_) => return Err(bad("binary inside a JSON payload")),
        Mp::Ext(..) => return Err(bad("extension type")),
    })
}

/// No callbacks needed: everything goes through the address.
struct Headless;

impl SlipstreamActor for Headless {}

fn show(payload: &Payload) -> String {
    match payload {
        Payload::Json(v) => v.to_string(),
        Payload::Binary(b) => format!("<binary {:02x?}>", &b[..]),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The demo server, which also speaks MessagePack to clients asking for vsn=3.0.0.
    let server = TestServer::phoenix_demo()
        .serializer("3.0.0", Msgpack)
        .spawn_in_thread()?;
    let config = Config::new(server.url())
        .param("token", "demo")
        .serializer(Msgpack);
    println!("connecting to {}", config.connect_url()?);
    let client = Client::spawn(Headless, config)?;

    let mut room = client.subscribe("room:lobby", 16).await?;
    let joined = client.join("room:lobby", json!({"user": "ada"})).await?;
    println!("joined room:lobby: {}", show(&joined));

    let reply = client
        .push(
            "room:lobby",
            "echo",
            json!({"text": "hello", "n": 42, "pi": 3.25}),
        )
        .await?;
    println!("echo replied {}: {}", reply.status, show(&reply.response));

    let reply = client
        .push("room:lobby", "echo", Payload::from(vec![0xca, 0xfe]))
        .await?;
    println!(
        "binary echo replied {}: {}",
        reply.status,
        show(&reply.response)
    );

    // `broadcast` sends the payload to every member of the room (this client too), then
    // replies.
    let reply = client
        .push("room:lobby", "broadcast", json!({"note": "to everyone"}))
        .await?;
    println!(
        "broadcast replied {}: {}",
        reply.status,
        show(&reply.response)
    );
    let pushed = tokio::time::timeout(Duration::from_secs(5), room.next())
        .await?
        .ok_or("the subscription ended")??;
    println!(
        "server push on {}: {} {}",
        pushed.topic,
        pushed.event,
        show(&pushed.payload)
    );

    let socket = server.sockets().pop().ok_or("no socket on the server")?;
    println!(
        "the server's socket speaks vsn {}: {} frames in, {} out",
        socket.vsn, socket.frames_received, socket.frames_sent
    );
    Ok(())
}
