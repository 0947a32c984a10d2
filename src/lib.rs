//! # actix-slipstream
//!
//! A [Phoenix Channels](https://hexdocs.pm/phoenix/channels.html) websocket client
//! that runs as an [actix](https://docs.rs/actix) actor: the Rust counterpart of
//! Elixir's Slipstream.
//!
//! Implement [`SlipstreamActor`] on your struct, start it as a [`Client`], and send
//! it [`Join`], [`Leave`] and [`Push`] messages (each answers with its outcome). The client reconnects with backoff,
//! detects dead links with heartbeats, and rejoins every topic it was asked to join
//! ([`TopicRegistry`]), so topics joined dynamically survive reconnects with no code
//! of yours.
//!
//! [`Presences`] keeps the presence lists of Phoenix Presence topics in sync from
//! their `presence_state` and `presence_diff` events, as phoenix.js does, with one
//! line in `handle_message` ([`presence`]).
//!
//! The protocol core ([`serializer`], [`state`]) does no I/O; the actor in
//! [`client`] wires it to an awc websocket. The `testing` feature adds
//! `actix_slipstream::testing`, a Phoenix-compatible server for tests.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod actor;
pub mod backoff;
pub mod channel;
pub mod client;
pub mod config;
pub mod error;
mod frame_guard;
mod fxhash;
pub mod handle;
mod heartbeat;
pub mod logging;
pub mod message;
pub mod presence;
pub mod registry;
pub mod serializer;
pub mod socket;
pub mod state;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
#[cfg(feature = "rustls")]
mod tls;
mod transport;
pub mod url;

pub use actor::{default_after_disconnect, SlipstreamActor};
pub use backoff::Backoff;
pub use channel::{TopicCloseReason, TopicStatus};
pub use client::{Client, Disconnect, GetStatus, Join, Leave, Push, Reconnect, Stop};
pub use config::{Config, ConnectParams, RetryPolicy, TlsConfig};
pub use error::{
    ClientStopped, ConfigError, DecodeError, EncodeError, JoinError, LeaveError, PushError,
};
pub use handle::{ClientExt, Lagged, Subscribe, Subscription, TopicMessage};
pub use message::{Event, Message, Payload, Ref, Reply, ReplyStatus, Topic};
pub use presence::{Presence, PresenceChange, PresenceUpdate, Presences};
pub use registry::TopicRegistry;
pub use serializer::{Frame, Serializer};
pub use socket::Socket;
pub use state::{
    AfterDisconnect, AfterTopicClose, ConnectError, ConnectionStatus, DisconnectReason, Status,
    TopicState, Traffic,
};

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
