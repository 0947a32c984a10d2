//! Using the client from async code: awaitable joins and pushes, and per-topic
//! message streams.
//!
//! [`ClientExt`] adds `join`, `push`, `push_to_handler`, `leave`, `status` and `subscribe` to the
//! client's [`Addr`], so any async code holding it (on any runtime, on any thread)
//! can use the client without writing callbacks. Each returns its own error type,
//! and a client that has stopped answers with that type's "stopped" value (never a
//! mailbox error):
//!
//! ```no_run
//! use actix::Actor;
//! use actix_slipstream::{Client, ClientExt, Config, SlipstreamActor};
//! use futures_util::StreamExt;
//! use serde_json::json;
//!
//! struct Quiet;
//! impl SlipstreamActor for Quiet {}
//!
//! # #[actix::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::new(Quiet, Config::new("ws://localhost:4000/socket")).start();
//! let mut messages = client.subscribe("room:1", 256).await?;
//! client.join("room:1", json!({})).await?;
//! let reply = client.push("room:1", "new_msg", json!({"body": "hi"})).await?;
//! println!("reply {reply:?}");
//! while let Some(item) = messages.next().await {
//!     match item {
//!         Ok(msg) => println!("{} {}: {:?}", msg.topic, msg.event, msg.payload),
//!         Err(lagged) => eprintln!("{lagged}"),
//!     }
//! }
//! # Ok(()) }
//! ```

use std::future::Future;

use actix::Addr;
use serde_json::Value;

use super::messages::{GetStatus, Join, Leave, Push, SocketPush, Subscribe};
use super::subscription::Subscription;
use super::{Client, SlipstreamActor};
use crate::engine::Status;
use crate::error::{ClientStopped, JoinError, LeaveError, PushError};
use crate::message::{Event, Payload, Ref, Reply, Topic};

/// Awaitable client operations on the client's [`Addr`], usable from any async code.
///
/// One rule for all: each method returns its own error type, and a client that has
/// stopped (its mailbox is closed) answers with that type's stopped value:
/// [`JoinError::Stopped`], [`PushError::Stopped`], [`LeaveError::Stopped`], and
/// [`ClientStopped`] for `status` and `subscribe`.
pub trait ClientExt {
    /// Joins a topic (recorded in the registry, rejoined after reconnects) and
    /// returns the join response. A topic is joined with one set of params at a
    /// time: see [`Join`] ([`JoinError::ParamsConflict`]).
    fn join(
        &self,
        topic: impl Into<Topic>,
        params: Value,
    ) -> impl Future<Output = Result<Payload, JoinError>> + Send;

    /// Pushes an event with the configured push timeout and returns the reply.
    fn push(
        &self,
        topic: impl Into<Topic>,
        event: impl Into<Event>,
        payload: impl Into<Payload>,
    ) -> impl Future<Output = Result<Reply, PushError>> + Send;

    /// Pushes an event whose outcome goes to the actor's
    /// [`handle_reply`](crate::SlipstreamActor::handle_reply) (like
    /// [`Socket::push`](crate::Socket::push) in a callback) and returns its [`Ref`]
    /// at once; see [`SocketPush`] (its `timeout` sets another reply timeout).
    /// A push refused at once returns its [`PushError`] and gets no `handle_reply`.
    fn push_to_handler(
        &self,
        topic: impl Into<Topic>,
        event: impl Into<Event>,
        payload: impl Into<Payload>,
    ) -> impl Future<Output = Result<Ref, PushError>> + Send;

    /// Leaves a topic and resolves once it is left (see [`Leave`]): right after,
    /// `status()` no longer lists it.
    fn leave(&self, topic: impl Into<Topic>)
        -> impl Future<Output = Result<(), LeaveError>> + Send;

    /// A status snapshot.
    fn status(&self) -> impl Future<Output = Result<Status, ClientStopped>> + Send;

    /// A stream of the topic's messages; see [`Subscription`].
    fn subscribe(
        &self,
        topic: impl Into<Topic>,
        capacity: usize,
    ) -> impl Future<Output = Result<Subscription, ClientStopped>> + Send;
}

impl<A: SlipstreamActor> ClientExt for Addr<Client<A>> {
    fn join(
        &self,
        topic: impl Into<Topic>,
        params: Value,
    ) -> impl Future<Output = Result<Payload, JoinError>> + Send {
        let request = self.send(Join::new(topic, params));
        async move { request.await.unwrap_or(Err(JoinError::Stopped)) }
    }

    fn push(
        &self,
        topic: impl Into<Topic>,
        event: impl Into<Event>,
        payload: impl Into<Payload>,
    ) -> impl Future<Output = Result<Reply, PushError>> + Send {
        let request = self.send(Push::new(topic, event, payload));
        async move { request.await.unwrap_or(Err(PushError::Stopped)) }
    }

    fn push_to_handler(
        &self,
        topic: impl Into<Topic>,
        event: impl Into<Event>,
        payload: impl Into<Payload>,
    ) -> impl Future<Output = Result<Ref, PushError>> + Send {
        let request = self.send(SocketPush::new(topic, event, payload));
        async move { request.await.unwrap_or(Err(PushError::Stopped)) }
    }

    fn leave(
        &self,
        topic: impl Into<Topic>,
    ) -> impl Future<Output = Result<(), LeaveError>> + Send {
        let request = self.send(Leave::new(topic));
        async move { request.await.unwrap_or(Err(LeaveError::Stopped)) }
    }

    fn status(&self) -> impl Future<Output = Result<Status, ClientStopped>> + Send {
        let request = self.send(GetStatus);
        async move { request.await.map_err(|_| ClientStopped) }
    }

    fn subscribe(
        &self,
        topic: impl Into<Topic>,
        capacity: usize,
    ) -> impl Future<Output = Result<Subscription, ClientStopped>> + Send {
        let request = self.send(Subscribe {
            topic: topic.into(),
            capacity,
        });
        async move { request.await.map_err(|_| ClientStopped) }
    }
}
