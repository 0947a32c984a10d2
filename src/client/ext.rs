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

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use actix::Addr;
use futures_util::stream::{self, Stream};
use serde_json::Value;
use tokio::sync::broadcast;

use super::messages::{GetStatus, Join, Leave, Push, SocketPush, Subscribe};
use super::{Client, SlipstreamActor};
use crate::engine::Status;
use crate::error::{ClientStopped, JoinError, LeaveError, PushError};
use crate::message::{Event, Payload, Ref, Reply, Topic};

/// A message received on a topic (a server push or a broadcast), as given to
/// subscribers.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicMessage {
    /// The topic.
    pub topic: Topic,
    /// The event.
    pub event: Event,
    /// The payload.
    pub payload: Payload,
}

/// A subscriber fell behind: this many messages were skipped. The stream goes on
/// with the oldest message still buffered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("subscriber lagged behind: {0} message(s) skipped")]
pub struct Lagged(pub u64);

/// A stream of one topic's messages, from [`Subscribe`](crate::Subscribe) or [`ClientExt::subscribe`].
///
/// It survives reconnects and rejoins (it observes the topic, it does not join
/// it). It is bounded: a consumer that falls more than the subscription's
/// capacity behind gets `Err(Lagged(n))` and then the newest messages, never
/// unbounded memory. It ends when the client stops.
pub struct Subscription {
    inner: Pin<Box<dyn Stream<Item = Result<TopicMessage, Lagged>> + Send>>,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Subscription")
    }
}

impl Subscription {
    pub(crate) fn new(rx: broadcast::Receiver<TopicMessage>) -> Self {
        let inner = stream::unfold(rx, |mut rx| async move {
            match rx.recv().await {
                Ok(msg) => Some((Ok(msg), rx)),
                Err(broadcast::error::RecvError::Lagged(n)) => Some((Err(Lagged(n)), rx)),
                Err(broadcast::error::RecvError::Closed) => None,
            }
        });
        Subscription {
            inner: Box::pin(inner),
        }
    }
}

impl Stream for Subscription {
    type Item = Result<TopicMessage, Lagged>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

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
