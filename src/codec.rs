//! The wire format: the [`Message`] of the Phoenix protocol and the [`Serializer`]s
//! that turn it into websocket [`Frame`]s and back: the built-in [`V2`] (V2 JSON and
//! V2 binary) and [`V1Json`], or a serializer of your own (see [`Serializer`]).
//!
//! The client uses them for you; they are public for tools, tests and fuzzers that
//! speak the protocol themselves (and for the [`engine`](crate::engine), whose
//! caller decodes frames).
//!
//! No I/O happens here. Each direction has its own functions because the formats are
//! not symmetric: a V2 binary push from the client carries a `ref` (5-byte header)
//! while one from the server does not (4-byte header), and V1 server frames carry no
//! `join_ref` at all. The client uses [`Serializer::encode_client`] and
//! [`Serializer::decode_server`]; the test server uses [`Serializer::encode_server`]
//! and [`Serializer::decode_client`].
//!
//! ```
//! use actix_slipstream::codec::{Frame, Message, Serializer, V2};
//! use actix_slipstream::{Event, Payload, Ref};
//!
//! let hb = Message::heartbeat(Ref::from(1));
//! let frame = V2.encode_client(&hb).unwrap();
//! assert_eq!(frame, Frame::Text(r#"[null,"1","phoenix","heartbeat",{}]"#.into()));
//!
//! let reply = br#"[null,"1","phoenix","phx_reply",{"response":{},"status":"ok"}]"#;
//! let msg = V2.decode_server_text(reply).unwrap();
//! assert!(matches!(msg.event, Event::Reply(ref s) if s.is_ok()));
//! assert_eq!(msg.payload, Payload::empty());
//! ```

pub use crate::error::{DecodeError, EncodeError};
pub use crate::message::Message;
pub use crate::serializer::{Frame, Serializer, V1Json, V2};
