//! # actix-slipstream
//!
//! A [Phoenix Channels](https://hexdocs.pm/phoenix/channels.html) websocket client
//! that runs as an [actix](https://docs.rs/actix) actor.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod error;
pub mod message;
pub mod serializer;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
pub mod url;

pub use error::{ConfigError, DecodeError, EncodeError};
pub use message::{Event, Message, Payload, Ref, Reply, ReplyStatus, Topic};
pub use serializer::{Frame, Serializer};
