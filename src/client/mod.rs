//! The actix adapter: the [`Client`] actor runs the [engine](crate::engine) and
//! wires its effects to an awc websocket, one timer and the user's
//! [`SlipstreamActor`] callbacks.
//!
//! Inbound frames are read by the actor itself (so a slow callback slows reading down
//! instead of piling frames up in memory); outbound frames go through a bounded queue
//! to a writer task that batches whatever is queued into one flush and bounds every
//! write with the write timeout.

mod actor;
mod connector;
mod ext;
mod link;
mod messages;
mod socket;
mod subscription;
mod transport;
mod waiters;

use crate::fxhash::FxHashMap;
use std::time::{Duration, Instant};

use actix::prelude::*;
use awc::error::WsProtocolError;
use awc::ws;
use log::debug;
use tokio::sync::broadcast;

pub use actor::SlipstreamActor;
pub use ext::ClientExt;
pub use messages::{
    Disconnect, GetStatus, Join, Leave, Push, Reconnect, SocketPush, Stop, Subscribe,
};
pub use socket::Socket;
pub use subscription::{Lagged, Subscription, TopicMessage};

use crate::config::Config;
use crate::engine::{
    self, AfterDisconnect, AfterTopicClose, ConnId, ConnectError, DisconnectReason, Driver, Engine,
    Outcome, RequestId, Status, TopicCloseReason,
};
use crate::error::PushError;
use crate::message::{Event, Message, Payload, Ref, Reply, Topic};
use connector::Upgraded;
use link::{close_wait, Link, Read};
use waiters::Waiters;

/// The actix actor running a [`SlipstreamActor`] implementation `A`.
///
/// Start it with [`Client::start`](actix::Actor::start) or under
/// [`actix::Supervisor`]; a supervisor restart keeps the topic registry, reconnects
/// and rejoins. Its [`Addr`] takes [`Join`], [`Leave`], [`Push`], [`Disconnect`],
/// [`Reconnect`], [`GetStatus`], [`Stop`] and [`Subscribe`], from any thread; the
/// [`ClientExt`] methods on the `Addr` send them for you.
///
/// # Stopping
///
/// The client never stops by itself on a fault: it stops on [`Stop`], when
/// `handle_disconnect` returns [`AfterDisconnect::Stop`], or when the last handle to
/// it is gone. Once every [`Addr`] (and [`Recipient`]) of it is dropped, nobody can
/// talk to it any more, so it stops as a [`Stop`] does (like dropping the last handle
/// of an async-nats or rumqttc client): it closes the connection with code 1000,
/// every open request gets its outcome, `handle_disconnect` runs with
/// [`DisconnectReason::Stopped`], then `terminate`. Keep an `Addr` for as long as the
/// client should run (the client itself holds only weak addresses of itself; one
/// taken from `socket.context().address()` and kept in your actor would keep it
/// running).
///
/// Under a [`Supervisor`], dropping the last handle stops the client for good:
/// actix restarts only an actor that can still receive messages, so a supervised
/// client whose last `Addr` is dropped closes, runs `terminate` and is not restarted.
///
/// To handle messages of your own, implement [`Handler`] for `Client<YourActor>`
/// and reach your state and the socket through [`Client::with_socket`]:
///
/// ```
/// use actix::{Handler, Message};
/// use actix_slipstream::{Client, SlipstreamActor};
/// use serde_json::json;
///
/// struct Bot { joined: Vec<String> }
/// impl SlipstreamActor for Bot {}
///
/// #[derive(Message)]
/// #[rtype(result = "()")]
/// struct Follow(String);
///
/// impl Handler<Follow> for Client<Bot> {
///     type Result = ();
///     fn handle(&mut self, msg: Follow, ctx: &mut Self::Context) {
///         self.with_socket(ctx, |bot, socket| {
///             socket.join(format!("user:{}", msg.0), json!({}));
///             bot.joined.push(msg.0);
///         });
///     }
/// }
/// ```
pub struct Client<A: SlipstreamActor> {
    user: A,
    engine: Engine,
    link: Link,
    /// The requests awaited through messages.
    waiters: Waiters,
    /// Subscribers of each topic's messages.
    subscribers: FxHashMap<Topic, broadcast::Sender<TopicMessage>>,
    timer: Option<(Instant, SpawnHandle)>,
    /// Stop the actix System when the actor stops (set by [`Client::spawn`]).
    stop_system: bool,
}

impl<A: SlipstreamActor> Client<A> {
    /// A client running `user` with `config`. Nothing happens until it is started.
    pub fn new(user: A, config: Config) -> Self {
        Client {
            user,
            engine: Engine::new(config),
            link: Link::default(),
            waiters: Waiters::default(),
            subscribers: FxHashMap::default(),
            timer: None,
            stop_system: false,
        }
    }

    /// Starts the client on a new thread with its own actix System, for programs
    /// that do not run actix themselves (a plain `#[tokio::main]`, or no async
    /// runtime at all). awc's websocket is not `Send`, so the connection must live on
    /// an actix thread; the returned [`Addr`] is `Send` and its `send` futures can be
    /// awaited from any runtime. The thread ends when the actor stops: on [`Stop`],
    /// or once every clone of the returned `Addr` is dropped (the close frame is sent
    /// first).
    ///
    /// # Errors
    /// The thread could not be spawned, or the actor did not start.
    pub fn spawn(user: A, config: Config) -> std::io::Result<Addr<Self>>
    where
        A: Send,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("actix-slipstream".into())
            .spawn(move || {
                let system = actix_rt::System::new();
                system.block_on(async move {
                    let mut client = Client::new(user, config);
                    client.stop_system = true;
                    let _ = tx.send(client.start());
                });
                let _ = system.run();
            })?;
        rx.recv_timeout(Duration::from_secs(10))
            .map_err(|e| std::io::Error::other(format!("client thread did not start: {e}")))
    }

    /// Your actor.
    pub fn user(&self) -> &A {
        &self.user
    }

    /// Your actor, mutably.
    pub fn user_mut(&mut self) -> &mut A {
        &mut self.user
    }

    /// A snapshot of the connection and topics.
    pub fn status(&self) -> Status {
        self.engine.status()
    }

    /// The requests awaited through messages that have no outcome yet (for leak checks).
    #[doc(hidden)]
    pub fn open_waiters(&self) -> usize {
        self.waiters.len()
    }

    /// Runs `f` with your actor and the socket, then carries out what it asked for.
    /// Use it in handlers of your own messages.
    pub fn with_socket<R>(
        &mut self,
        ctx: &mut Context<Self>,
        f: impl FnOnce(&mut A, &mut Socket<'_, A>) -> R,
    ) -> R {
        let r = {
            let mut socket = Socket::new(&mut self.engine, &mut self.link, ctx);
            f(&mut self.user, &mut socket)
        };
        self.drain(ctx);
        r
    }

    /// Starts (or restarts) the client: the last-handle watch, then the user's `init`.
    fn begin(&mut self, ctx: &mut Context<Self>) {
        self.engine.start();
        ctx.spawn(LastHandleWatch);
        self.with_socket(ctx, |user, socket| user.init(socket));
    }

    /// Carries out every queued effect (through [`engine::drive`]), then re-arms the timer.
    fn drain(&mut self, ctx: &mut Context<Self>) {
        self.drain_at(Instant::now(), ctx);
    }

    /// [`drain`](Self::drain) with the time already read by the caller.
    fn drain_at(&mut self, now: Instant, ctx: &mut Context<Self>) {
        let mut wiring = Wiring {
            user: &mut self.user,
            link: &mut self.link,
            waiters: &mut self.waiters,
            subscribers: &mut self.subscribers,
            ctx,
        };
        let next = engine::drive(&mut self.engine, &mut wiring, now);
        self.arm_timer(next, ctx);
    }

    fn arm_timer(&mut self, next: Option<Instant>, ctx: &mut Context<Self>) {
        if self.engine.is_stopped() {
            return;
        }
        let Some(at) = next else {
            return;
        };
        if let Some((current, handle)) = self.timer {
            if current <= at {
                return; // fires first; re-arms then
            }
            ctx.cancel_future(handle);
        }
        let delay = at.saturating_duration_since(Instant::now());
        let handle = ctx.run_later(delay, |act, ctx| {
            act.timer = None;
            let now = Instant::now();
            act.engine.handle_timeout(now);
            act.drain_at(now, ctx);
        });
        self.timer = Some((at, handle));
    }

    /// The handshake of `conn` ended.
    fn handshake_done(
        &mut self,
        conn: ConnId,
        result: Result<Upgraded, ConnectError>,
        ctx: &mut Context<Self>,
    ) {
        if !self.link.handshake_done(conn) {
            return;
        }
        match result {
            Ok(framed) => {
                self.link.open(&self.engine, conn, framed, ctx);
                self.engine.handle_connected(conn, Instant::now());
            }
            Err(e) => self.link.connect_failed(&mut self.engine, conn, e),
        }
        self.drain(ctx);
    }

    /// The current connection failed: tear it down and tell the engine.
    fn connection_failed(&mut self, gen: u64, reason: DisconnectReason, ctx: &mut Context<Self>) {
        if self.link.is_current(gen) {
            self.link.close_io(&self.engine, 1000, ctx);
        }
        self.engine
            .handle_closed(ConnId(gen), reason, Instant::now());
        self.drain(ctx);
    }
}

/// The client's [`Driver`]: effects go to the connection and the waiters,
/// notifications to the user's callbacks.
struct Wiring<'a, A: SlipstreamActor> {
    user: &'a mut A,
    link: &'a mut Link,
    waiters: &'a mut Waiters,
    subscribers: &'a mut FxHashMap<Topic, broadcast::Sender<TopicMessage>>,
    ctx: &'a mut Context<Client<A>>,
}

impl<A: SlipstreamActor> Driver for Wiring<'_, A> {
    fn send(&mut self, engine: &mut Engine, message: Message) {
        self.link.write(engine, message);
    }

    fn connect(&mut self, engine: &mut Engine, conn: ConnId) {
        self.link.connect(engine, conn, self.ctx);
    }

    fn close(&mut self, engine: &mut Engine, code: u16) {
        self.link.close_gracefully(engine, code, self.ctx);
    }

    fn resolve(&mut self, _engine: &mut Engine, request: RequestId, outcome: Outcome) {
        self.waiters.resolve(request, outcome);
    }

    fn connected(&mut self, engine: &mut Engine) {
        self.user
            .handle_connect(&mut Socket::new(engine, self.link, self.ctx));
    }

    fn disconnected(
        &mut self,
        engine: &mut Engine,
        reason: &DisconnectReason,
        default: AfterDisconnect,
    ) -> AfterDisconnect {
        let decision = self.user.handle_disconnect(
            reason,
            default,
            &mut Socket::new(engine, self.link, self.ctx),
        );
        if decision == AfterDisconnect::Stop && !engine.is_stopped() {
            self.ctx.stop();
        }
        decision
    }

    fn joined(&mut self, engine: &mut Engine, topic: &Topic, response: &Payload) {
        self.user.handle_join(
            topic,
            response,
            &mut Socket::new(engine, self.link, self.ctx),
        );
    }

    fn topic_closed(
        &mut self,
        engine: &mut Engine,
        topic: &Topic,
        reason: &TopicCloseReason,
        default: AfterTopicClose,
    ) -> AfterTopicClose {
        self.user.handle_topic_close(
            topic,
            reason,
            default,
            &mut Socket::new(engine, self.link, self.ctx),
        )
    }

    fn left(&mut self, engine: &mut Engine, topic: &Topic) {
        self.user
            .handle_leave(topic, &mut Socket::new(engine, self.link, self.ctx));
    }

    fn message(&mut self, engine: &mut Engine, topic: Topic, event: Event, payload: Payload) {
        publish(self.subscribers, &topic, &event, &payload);
        // The presence tracker is fed here, whatever the user's callbacks are.
        let update = match self.user.presences() {
            Some(p) => p.handle_at(&topic, engine.join_ref(topic.as_str()), &event, &payload),
            None => None,
        };
        let socket = &mut Socket::new(engine, self.link, self.ctx);
        match update {
            Some(update) => self.user.handle_presence(&topic, &update, socket),
            None => self.user.handle_message(&topic, &event, payload, socket),
        }
    }

    fn reply(
        &mut self,
        engine: &mut Engine,
        topic: Topic,
        reference: Ref,
        result: Result<Reply, PushError>,
    ) {
        self.user.handle_reply(
            &topic,
            &reference,
            result,
            &mut Socket::new(engine, self.link, self.ctx),
        );
    }
}

/// Gives a message to the topic's subscribers, if it has any.
fn publish(
    subscribers: &mut FxHashMap<Topic, broadcast::Sender<TopicMessage>>,
    topic: &Topic,
    event: &Event,
    payload: &Payload,
) {
    if subscribers.is_empty() {
        return;
    }
    let Some(tx) = subscribers.get(topic) else {
        return;
    };
    if tx.receiver_count() == 0 {
        subscribers.remove(topic);
        return;
    }
    let _ = tx.send(TopicMessage {
        topic: topic.clone(),
        event: event.clone(),
        payload: payload.clone(),
    });
}

/// A frame (or the end) of connection `gen`.
struct Inbound {
    gen: u64,
    frame: Option<Result<ws::Frame, WsProtocolError>>,
}

impl<A: SlipstreamActor> StreamHandler<Inbound> for Client<A> {
    fn handle(&mut self, item: Inbound, ctx: &mut Context<Self>) {
        let gen = item.gen;
        if !self.link.is_reading(gen) {
            // A connection the client is closing: the handshake is done once the server
            // answers with its close frame (or the connection ends).
            if matches!(
                item.frame,
                None | Some(Err(_)) | Some(Ok(ws::Frame::Close(_)))
            ) {
                self.link.finish_closing(gen, ctx);
            }
            return;
        }
        match item.frame {
            Some(Ok(frame)) => match self.link.read(&mut self.engine, frame) {
                Read::Message(msg) => {
                    let now = Instant::now();
                    self.engine.handle_message(msg, now);
                    self.drain_at(now, ctx);
                }
                Read::Nothing => {}
                Read::Failed(reason) => self.connection_failed(gen, reason, ctx),
            },
            Some(Err(e)) => {
                let reason = match e {
                    WsProtocolError::Overflow => DisconnectReason::Protocol(format!(
                        "frame larger than max_frame_size ({} bytes)",
                        self.engine.config().max_frame_size
                    )),
                    WsProtocolError::Io(e) => DisconnectReason::ConnectionLost(e.to_string()),
                    e => DisconnectReason::Protocol(e.to_string()),
                };
                self.connection_failed(gen, reason, ctx);
            }
            None => {
                let reason =
                    DisconnectReason::ConnectionLost("closed without a close frame".into());
                self.connection_failed(gen, reason, ctx);
            }
        }
    }

    fn finished(&mut self, _ctx: &mut Context<Self>) {
        // The end of the stream arrives as an item (frame: None); the actor lives on.
    }
}

/// The writer of connection `gen` failed.
#[derive(actix::Message)]
#[rtype(result = "()")]
struct WriterFailed {
    gen: u64,
    error: String,
}

impl<A: SlipstreamActor> Handler<WriterFailed> for Client<A> {
    type Result = ();
    fn handle(&mut self, msg: WriterFailed, ctx: &mut Context<Self>) {
        if self.link.is_current(msg.gen) {
            self.connection_failed(msg.gen, DisconnectReason::WriteFailed(msg.error), ctx);
        }
    }
}

/// Stops the client once its last [`Addr`] is dropped.
///
/// actix wakes an actor's context when the last sender of its mailbox is dropped,
/// and the context then polls all its items: this one checks for senders on each
/// poll, with no timer and no cost per message. (The client itself only ever holds
/// weak addresses of itself.)
struct LastHandleWatch;

impl<A: SlipstreamActor> ActorFuture<Client<A>> for LastHandleWatch {
    type Output = ();

    fn poll(
        self: std::pin::Pin<&mut Self>,
        _act: &mut Client<A>,
        ctx: &mut Context<Client<A>>,
        _task: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if ctx.connected() {
            return std::task::Poll::Pending;
        }
        debug!(target: crate::logging::CONNECTION, "the last handle of the client was dropped: stopping");
        ctx.stop();
        std::task::Poll::Ready(())
    }
}

impl<A: SlipstreamActor> Actor for Client<A> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Nothing is spawned from `started` itself. After a supervisor restart, actix
        // still holds the cancellations asked for before the stop (`cancel_future` of
        // the connect, the reader, the timer...) and numbers the restarted actor's
        // futures from the start again: it applies those cancellations right after
        // `started` returns, so a future spawned here with a reused number would be
        // cancelled (the first connect, say, leaving the client connecting for ever).
        // A `wait` item runs right after that clean-up, before any message.
        ctx.wait(actix::fut::ready(()).map(|(), act: &mut Self, ctx| act.begin(ctx)));
    }

    fn stopped(&mut self, ctx: &mut Context<Self>) {
        // Every open request gets its outcome (callbacks included), the connection
        // closes with 1000 and `handle_disconnect(Stopped)` runs, all before `terminate`.
        self.engine.stop(Instant::now());
        self.drain(ctx);
        self.link.close_io(&self.engine, 1000, ctx);
        self.link.hand_off_closing(&self.engine);
        self.timer = None;
        self.user.terminate();
        let writers = self.link.take_writers_finishing();
        if self.stop_system {
            // Let the closing handshakes finish before the System (and its tasks)
            // goes away.
            let wait = close_wait(&self.engine);
            let system = actix_rt::System::current();
            actix_rt::spawn(async move {
                let all = futures_util::future::join_all(writers);
                let _ = actix_rt::time::timeout(wait, all).await;
                system.stop();
            });
        }
    }
}

impl<A: SlipstreamActor> Supervised for Client<A> {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        debug!(target: crate::logging::CONNECTION, "restarting: the topic registry is kept");
        self.link.reset();
        self.timer = None;
    }
}
