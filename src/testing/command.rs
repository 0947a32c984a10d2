//! What tests and other sockets tell a socket task: [`SocketCmd`], with the frames
//! ([`RawFrame`]) and modes ([`Silence`]) it carries. It depends on no other part of
//! the test server, so the server's state and its socket tasks both use it.

use bytes::Bytes;

use crate::message::{Payload, Topic};

/// Commands from the test or other sockets to a socket task.
#[derive(Debug)]
pub(crate) enum SocketCmd {
    /// `[null, null, topic, event, payload]`, if the topic is joined.
    Broadcast {
        topic: Topic,
        event: String,
        payload: Payload,
    },
    /// `[join_ref, null, topic, event, payload]`, if the topic is joined.
    Push {
        topic: Topic,
        event: String,
        payload: Payload,
    },
    /// Close the websocket with this code.
    Close(u16),
    /// Change the silence mode.
    Silence(Option<Silence>),
    /// Send a websocket frame as is, whatever the silence mode.
    Raw(RawFrame),
    /// Crash a joined channel: `phx_error`, as if its process raised.
    Crash(Topic),
    /// Stop a joined channel: `phx_close`, as if its process stopped normally.
    Stop(Topic),
}

/// A websocket frame the test server sends as is, outside the Phoenix protocol (see
/// [`TestServer::send_raw`](super::TestServer::send_raw)): for tests of how a client
/// copes with a hostile or broken server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawFrame {
    /// A text frame with any content (not necessarily a Phoenix message, or JSON).
    Text(String),
    /// A binary frame with any content.
    Binary(Bytes),
    /// A ping (at most 125 bytes of payload, or the frame is invalid).
    Ping(Bytes),
    /// An unsolicited pong.
    Pong(Bytes),
    /// One message split into fragments: a first text (`text: true`) or binary frame,
    /// continuation frames, and a final one. Each part is one frame; the message is the
    /// concatenation (it need not be valid UTF-8 even when `text`). Fewer than two parts
    /// are sent as two frames, the second one empty.
    Fragmented {
        /// Whether the first frame is a text frame (else binary).
        text: bool,
        /// The fragments, in order.
        parts: Vec<Bytes>,
    },
}

/// How a silenced socket behaves (see [`TestServer::silence`](super::TestServer::silence)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Silence {
    /// Frames are still read off the connection and recorded (so the server notices a
    /// peer that goes away), but nothing is answered: no replies, no pongs, no close
    /// handshake, no pushes or broadcasts. From the client's side the link is half-open.
    Ignore,
    /// The server stops reading the connection at all: the client's writes pile up in
    /// the TCP buffers until they block. The server does not notice the peer going
    /// away until the socket is un-silenced, disconnected or dropped.
    Stall,
}
