//! # actix-slipstream
//!
//! A [Phoenix Channels](https://hexdocs.pm/phoenix/channels.html) websocket client
//! that runs as an [actix](https://docs.rs/actix) actor: the Rust counterpart of
//! Elixir's Slipstream.
//!
//! Implement [`SlipstreamActor`] on your struct, start it as a [`Client`], and join,
//! push and leave through its address ([`ClientExt`]: `client.join(..).await`, or the
//! [`Join`], [`Leave`] and [`Push`] messages, each answering with its outcome). The
//! client reconnects with backoff, detects dead links with heartbeats, and rejoins
//! every topic it was asked to join ([`TopicRegistry`]), so topics joined
//! dynamically survive reconnects with no code of yours.
//!
//! [`presence::Presences`] keeps the presence lists of Phoenix Presence topics in
//! sync from their `presence_state` and `presence_diff` events, as phoenix.js does:
//! return it from the [`presences`](SlipstreamActor::presences) hook and the client
//! feeds it, reporting each change to
//! [`handle_presence`](SlipstreamActor::handle_presence).
//!
//! The layers: [`codec`] (the wire format), [`engine`] (the whole protocol as a
//! sans-IO engine: inputs in, effects out), the actix adapter ([`Client`], the
//! everyday API at the crate root), and, with the `testing` feature,
//! `actix_slipstream::testing`, a Phoenix-compatible server for tests.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod auth;
mod backoff;
mod client;
pub mod codec;
mod config;
pub mod engine;
mod error;
mod fxhash;
mod logging;
mod message;
pub mod presence;
mod serializer;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
mod url;

pub use auth::AuthToken;
pub use backoff::Backoff;
pub use client::{
    Client, ClientExt, Disconnect, GetStatus, Join, Lagged, Leave, Push, Reconnect,
    SlipstreamActor, Socket, SocketPush, Stop, Subscribe, Subscription, TopicMessage,
};
pub use config::{AuthTokenSource, Config, ConnectParams, RetryPolicy, TlsConfig};
pub use engine::connection::{ConnectError, DisconnectKind, DisconnectReason};
pub use engine::effect::{AfterDisconnect, AfterTopicClose};
pub use engine::registry::TopicRegistry;
pub use engine::status::{ConnectionStatus, Status, TopicSnapshot, TopicStatus, Traffic};
pub use engine::topics::TopicCloseReason;
pub use error::{ClientStopped, ConfigError, JoinError, LeaveError, PushError};
pub use message::{Event, Payload, Ref, Reply, ReplyStatus, Topic};

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
