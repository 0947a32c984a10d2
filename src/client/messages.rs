//! Every command the client's [`Addr`](actix::Addr) takes, with its handler.

use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::Value;
use tokio::sync::{broadcast, oneshot};

use super::subscription::Subscription;
use super::waiters::Waiter;
use super::{Client, SlipstreamActor};
use crate::engine::Status;
use crate::error::{JoinError, LeaveError, PushError};
use crate::message::{Event, Payload, Ref, Reply, Topic};

/// How much longer than the leave timeout a `Leave` future waits at most.
const LEAVE_GUARD: Duration = Duration::from_secs(1);

/// Join a topic with params; it is recorded in the registry and rejoined after every
/// reconnect.
///
/// A topic is wanted with one set of params at a time (Slipstream's rule: to begin a
/// new session with a topic, leave it, then join it again):
///
/// - a `Join` of a topic not wanted joins it (if a leave of it is in flight, the
///   join is sent once the leave is done) and responds with the join response, or
///   why the join failed ([`JoinError::Timeout`] after the join timeout, while rejoins
///   go on as the retry policy says);
/// - a `Join` with the params the topic is already wanted with sends nothing and
///   responds with the current join's outcome: the join response if joined, else the
///   outcome of the join in flight or of the next one;
/// - a `Join` with other params, while the topic is wanted (joined, joining, or
///   waiting for a reconnect or a rejoin), changes nothing, sends nothing and
///   responds at once with [`JoinError::ParamsConflict`]. Await a [`Leave`] of the
///   topic first, then join with the new params.
///
/// [`ClientExt::join`](crate::ClientExt::join) sends it and awaits the response.
#[derive(Debug, Clone)]
pub struct Join {
    /// The topic.
    pub topic: Topic,
    /// The join params (a JSON object).
    pub params: Value,
}

impl Join {
    /// A join of `topic` with `params`.
    pub fn new(topic: impl Into<Topic>, params: Value) -> Self {
        Join {
            topic: topic.into(),
            params,
        }
    }
}

impl actix::Message for Join {
    type Result = Result<Payload, JoinError>;
}

impl<A: SlipstreamActor> Handler<Join> for Client<A> {
    type Result = ResponseFuture<Result<Payload, JoinError>>;
    fn handle(&mut self, msg: Join, ctx: &mut Context<Self>) -> Self::Result {
        // Joins whose caller gave up waiting are forgotten, so a topic that never
        // joins does not collect them.
        for request in self.waiters.abandoned_joins() {
            self.engine.cancel(request);
            self.waiters.remove(request);
        }
        let (tx, rx) = oneshot::channel();
        let request = self.waiters.insert(Waiter::Join(tx));
        self.engine
            .join(msg.topic, msg.params, Some(request), Instant::now());
        self.drain(ctx);
        let timeout = self.engine.config().join_timeout;
        Box::pin(async move {
            match actix_rt::time::timeout(timeout, rx).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(JoinError::Stopped),
                Err(_) => Err(JoinError::Timeout),
            }
        })
    }
}

/// Leave a topic and remove it from the registry (it is not rejoined any more).
///
/// Responds once the topic is left, like the `leave()` push of phoenix.js:
/// `Ok(())` when the server replied to the leave or closed the channel (`phx_close`),
/// the channel crashed meanwhile (`phx_error`), or the connection closed while
/// leaving; at once when the topic was not joined or wanted at all (leaving is
/// idempotent, as in Phoenix, whose leave of an unknown topic replies ok). Right
/// after it, [`GetStatus`] no longer lists the topic (unless it was joined again
/// meanwhile). [`LeaveError::Timeout`] when no confirmation came within the leave
/// timeout (the configured push timeout): the topic is left locally anyway.
/// [`LeaveError::Stopped`] when the client stopped first.
///
/// [`handle_leave`](crate::SlipstreamActor::handle_leave) runs once for the left
/// topic, whatever the path. Join waiters of the topic get [`JoinError::Left`],
/// its pushes [`PushError::Left`].
#[derive(Debug, Clone)]
pub struct Leave {
    /// The topic.
    pub topic: Topic,
}

impl Leave {
    /// A leave of `topic`.
    pub fn new(topic: impl Into<Topic>) -> Self {
        Leave {
            topic: topic.into(),
        }
    }
}

impl actix::Message for Leave {
    type Result = Result<(), LeaveError>;
}

impl<A: SlipstreamActor> Handler<Leave> for Client<A> {
    type Result = ResponseFuture<Result<(), LeaveError>>;
    fn handle(&mut self, msg: Leave, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        let request = self.waiters.insert(Waiter::Leave(tx));
        self.engine
            .leave(msg.topic.as_str(), Some(request), Instant::now());
        self.drain(ctx);
        // The engine answers by the leave timeout; this bound only guards it.
        let timeout = self.engine.config().push_timeout + LEAVE_GUARD;
        Box::pin(async move {
            match actix_rt::time::timeout(timeout, rx).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(LeaveError::Stopped),
                Err(_) => Err(LeaveError::Timeout),
            }
        })
    }
}

/// Push an event to a topic and get its reply.
///
/// Responds with the reply (status ok, error or custom, with its response) or a
/// [`PushError`]. A push to a topic that is joining, waiting for a reconnect or a
/// rejoin, or joined again while its leave is still in flight, is buffered and sent
/// once it is joined; its timeout counts from now.
#[derive(Debug, Clone)]
pub struct Push {
    /// The topic (joined or joining).
    pub topic: Topic,
    /// The event name.
    pub event: Event,
    /// The payload: JSON, or binary (V2 only).
    pub payload: Payload,
    /// The reply timeout; `None` uses the configured push timeout.
    pub timeout: Option<Duration>,
}

impl Push {
    /// A push of `event` with `payload` on `topic`.
    pub fn new(
        topic: impl Into<Topic>,
        event: impl Into<Event>,
        payload: impl Into<Payload>,
    ) -> Self {
        Push {
            topic: topic.into(),
            event: event.into(),
            payload: payload.into(),
            timeout: None,
        }
    }

    /// Sets the reply timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

impl actix::Message for Push {
    type Result = Result<Reply, PushError>;
}

impl<A: SlipstreamActor> Handler<Push> for Client<A> {
    type Result = ResponseFuture<Result<Reply, PushError>>;
    fn handle(&mut self, msg: Push, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        let request = self.waiters.insert(Waiter::Push(tx));
        let timeout = msg.timeout.unwrap_or(self.engine.config().push_timeout);
        let result = self.engine.push(
            msg.topic.as_str(),
            msg.event,
            msg.payload,
            timeout,
            Some(request),
            Instant::now(),
        );
        if result.is_err() {
            // Refused at once: no outcome will come for it.
            self.waiters.remove(request);
        }
        self.drain(ctx);
        Box::pin(async move {
            result?;
            rx.await.unwrap_or(Err(PushError::Stopped))
        })
    }
}

/// Push an event whose outcome goes to
/// [`handle_reply`](crate::SlipstreamActor::handle_reply), from outside a callback:
/// what [`Socket::push`](crate::Socket::push) does inside one, with no message type or
/// `Handler` of yours.
///
/// Responds at once with the push's [`Ref`] (the one `handle_reply` gets with the
/// outcome), or the [`PushError`] of a push refused at once (not joined, buffer full,
/// not encodable), which then gets no `handle_reply`. Every accepted push gets
/// exactly one `handle_reply`: the reply, or [`PushError::Timeout`],
/// [`PushError::Stopped`] when the client stops first, and so on.
/// [`ClientExt::push_to_handler`](crate::ClientExt::push_to_handler) sends it.
///
/// ```no_run
/// # use actix::Actor;
/// # use actix_slipstream::{Client, ClientExt, Config, PushError, Ref, Reply, SlipstreamActor, Socket, Topic};
/// # use serde_json::json;
/// struct Chat;
///
/// impl SlipstreamActor for Chat {
///     fn handle_reply(&mut self, topic: &Topic, reference: &Ref,
///                     result: Result<Reply, PushError>, _: &mut Socket<'_, Self>) {
///         println!("{topic} push {reference}: {result:?}");
///     }
/// }
///
/// # #[actix::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let chat = Client::new(Chat, Config::new("ws://localhost:4000/socket")).start();
/// chat.join("room:lobby", json!({})).await?;
/// let reference = chat.push_to_handler("room:lobby", "new_msg", json!({"body": "hi"})).await?;
/// println!("sent as {reference}; the reply goes to handle_reply");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SocketPush(Push);

impl SocketPush {
    /// A push of `event` with `payload` on `topic`.
    pub fn new(
        topic: impl Into<Topic>,
        event: impl Into<Event>,
        payload: impl Into<Payload>,
    ) -> Self {
        SocketPush(Push::new(topic, event, payload))
    }

    /// Sets the reply timeout (default: the configured push timeout).
    pub fn timeout(self, timeout: Duration) -> Self {
        SocketPush(self.0.timeout(timeout))
    }

    /// The push it makes.
    pub fn push(&self) -> &Push {
        &self.0
    }
}

impl From<Push> for SocketPush {
    /// The same push, its outcome going to `handle_reply` instead of the sender.
    fn from(push: Push) -> Self {
        SocketPush(push)
    }
}

impl actix::Message for SocketPush {
    type Result = Result<Ref, PushError>;
}

impl<A: SlipstreamActor> Handler<SocketPush> for Client<A> {
    type Result = Result<Ref, PushError>;
    fn handle(&mut self, msg: SocketPush, ctx: &mut Context<Self>) -> Self::Result {
        let SocketPush(msg) = msg;
        self.with_socket(ctx, |_, socket| match msg.timeout {
            Some(timeout) => {
                socket.push_with_timeout(msg.topic.as_str(), msg.event, msg.payload, timeout)
            }
            None => socket.push(msg.topic.as_str(), msg.event, msg.payload),
        })
    }
}

/// Close the connection with code 1000 and stay disconnected (topics stay registered).
#[derive(Debug, Clone, Copy, actix::Message)]
#[rtype(result = "()")]
pub struct Disconnect;

impl<A: SlipstreamActor> Handler<Disconnect> for Client<A> {
    type Result = ();
    fn handle(&mut self, _: Disconnect, ctx: &mut Context<Self>) {
        self.engine.disconnect(Instant::now());
        self.drain(ctx);
    }
}

/// Close the connection, if any, and connect again now.
#[derive(Debug, Clone, Copy, actix::Message)]
#[rtype(result = "()")]
pub struct Reconnect;

impl<A: SlipstreamActor> Handler<Reconnect> for Client<A> {
    type Result = ();
    fn handle(&mut self, _: Reconnect, ctx: &mut Context<Self>) {
        self.engine.reconnect(Instant::now());
        self.drain(ctx);
    }
}

/// Get a [`Status`] snapshot ([`ClientExt::status`](crate::ClientExt::status) sends it).
#[derive(Debug, Clone, Copy, actix::Message)]
#[rtype(result = "Status")]
pub struct GetStatus;

impl<A: SlipstreamActor> Handler<GetStatus> for Client<A> {
    type Result = MessageResult<GetStatus>;
    fn handle(&mut self, _: GetStatus, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.engine.status())
    }
}

/// Stop the actor.
///
/// Before [`terminate`](crate::SlipstreamActor::terminate) runs, every open request
/// gets its outcome: buffered and in-flight pushes fail with [`PushError::Stopped`]
/// (`handle_reply` runs for those made with `socket.push`), join waiters get
/// [`JoinError::Stopped`], leave waiters [`LeaveError::Stopped`] (topics being left
/// are left: `handle_leave` runs); the connection closes with code 1000 and
/// `handle_disconnect` runs with
/// [`DisconnectReason::Stopped`](crate::DisconnectReason::Stopped). Connects asked for
/// meanwhile (`socket.connect()` in `handle_disconnect`) are ignored.
///
/// Under a [`Supervisor`] the actor is then restarted: it keeps its topic registry,
/// `init` connects again and the topics are rejoined.
#[derive(Debug, Clone, Copy, actix::Message)]
#[rtype(result = "()")]
pub struct Stop;

impl<A: SlipstreamActor> Handler<Stop> for Client<A> {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Subscribe to a topic's messages. Responds with a [`Subscription`]
/// ([`ClientExt::subscribe`](crate::ClientExt::subscribe) sends it).
///
/// `capacity` bounds how far a subscriber may fall behind before it gets
/// [`Lagged`](crate::Lagged); subscribers of one topic share the capacity of the first one.
#[derive(Debug, Clone)]
pub struct Subscribe {
    /// The topic.
    pub topic: Topic,
    /// Messages buffered per subscriber (at least 1).
    pub capacity: usize,
}

impl actix::Message for Subscribe {
    type Result = Subscription;
}

impl<A: SlipstreamActor> Handler<Subscribe> for Client<A> {
    type Result = MessageResult<Subscribe>;
    fn handle(&mut self, msg: Subscribe, _ctx: &mut Context<Self>) -> Self::Result {
        let tx = self
            .subscribers
            .entry(msg.topic)
            .or_insert_with(|| broadcast::channel(msg.capacity.max(1)).0);
        MessageResult(Subscription::new(tx.subscribe()))
    }
}
