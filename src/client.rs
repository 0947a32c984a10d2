//! The actix actor that owns the connection and runs a [`SlipstreamActor`].
//!
//! [`Client`] wires the I/O-free [`State`] to an awc websocket, a writer task, one
//! timer and the user's callbacks. Inbound frames are read by the actor itself (so a
//! slow callback slows reading down instead of piling frames up in memory); outbound
//! frames go through a bounded queue to a writer task that batches whatever is
//! queued into one flush and bounds every write with the write timeout.

use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_codec::Framed;
use awc::error::{WsClientError, WsProtocolError};
use awc::ws;
use awc::BoxedSocket;
use bytes::{Bytes, BytesMut};
use futures_util::stream;
use futures_util::StreamExt;
use log::{debug, error, warn};
use serde_json::Value;
use std::collections::HashMap;
use std::rc::Rc;

use tokio::sync::{broadcast, oneshot};

use crate::actor::SlipstreamActor;
use crate::channel::ReplyTo;
use crate::config::Config;
use crate::error::{ConfigError, JoinError, LeaveError, PushError};
use crate::handle::{Subscribe, Subscription, TopicMessage};
use crate::message::{Event, Message, Payload, Reply, Topic};
use crate::serializer::Frame;
use crate::socket::Socket;
use crate::state::{Callback, ConnectError, DisconnectReason, Effect, State, Status};
use crate::transport::{self, QueueError, SharedFrames, WriterHandle};

/// Most websocket handshakes in flight at once on one thread.
const MAX_HANDSHAKES: usize = 64;

thread_local! {
    /// awc clients shared by the clients of this thread, by (wss, connect timeout).
    static HTTP_CLIENTS: std::cell::RefCell<Vec<((bool, Duration), awc::Client)>> = const { std::cell::RefCell::new(Vec::new()) };
    static HANDSHAKES: Rc<tokio::sync::Semaphore> = Rc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
}

/// The longest wait for the server's close frame after the client closed.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// How much longer than the leave timeout a `Leave` future waits at most.
const LEAVE_GUARD: Duration = Duration::from_secs(1);

/// The actix actor running a [`SlipstreamActor`] implementation `A`.
///
/// Start it with [`Client::start`](actix::Actor::start) or under
/// [`actix::Supervisor`]; a supervisor restart keeps the topic registry, reconnects
/// and rejoins. Its [`Addr`] takes [`Join`], [`Leave`], [`Push`], [`Disconnect`],
/// [`Reconnect`], [`GetStatus`] and [`Stop`], from any thread.
///
/// # Stopping
///
/// The client never stops by itself on a fault: it stops on [`Stop`], when
/// `handle_disconnect` returns [`AfterDisconnect::Stop`](crate::AfterDisconnect::Stop),
/// or when the last handle to it is gone. Once every [`Addr`] (and [`Recipient`]) of
/// it is dropped, nobody can talk to it any more, so it stops as a [`Stop`] does
/// (like dropping the last handle of an async-nats or rumqttc client): it closes the
/// connection with code 1000, every open request gets its outcome,
/// `handle_disconnect` runs with [`DisconnectReason::Stopped`], then `terminate`. Keep
/// an `Addr` for as long as the client should run (the client itself holds only weak
/// addresses of itself; one taken from `socket.context().address()` and kept in your
/// actor would keep it running).
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
    state: State,
    io: Option<Io>,
    /// Connections closed by the client, waiting for the server's close frame.
    closing: Vec<(Io, SpawnHandle)>,
    /// Subscribers of each topic's messages.
    subscribers: HashMap<Topic, broadcast::Sender<TopicMessage>>,
    timer: Option<(Instant, SpawnHandle)>,
    http: Option<awc::Client>,
    /// Closing handshakes handed off to tasks of their own as the actor stops:
    /// awaited (bounded) before the System of [`Client::spawn`] stops.
    writers_finishing: Vec<tokio::task::JoinHandle<()>>,
    /// Stop the actix System when the actor stops (set by [`Client::spawn`]).
    stop_system: bool,
}

/// The current connection's I/O handles.
struct Io {
    gen: u64,
    connecting: Option<SpawnHandle>,
    reader: Option<SpawnHandle>,
    /// The reader's frame stream, to take back when the actor stops mid-connection.
    frames: Option<SharedFrames>,
    writer: Option<WriterHandle>,
    /// A fragmented message being reassembled: (is text, bytes so far).
    partial: Option<(bool, BytesMut)>,
}

impl<A: SlipstreamActor> Client<A> {
    /// A client running `user` with `config`. Nothing happens until it is started.
    pub fn new(user: A, config: Config) -> Self {
        Client {
            user,
            state: State::new(config),
            io: None,
            closing: Vec::new(),
            subscribers: HashMap::new(),
            timer: None,
            http: None,
            writers_finishing: Vec::new(),
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
        self.state.status()
    }

    /// Runs `f` with your actor and the socket, then carries out what it asked for.
    /// Use it in handlers of your own messages.
    pub fn with_socket<R>(
        &mut self,
        ctx: &mut Context<Self>,
        f: impl FnOnce(&mut A, &mut Socket<'_, A>) -> R,
    ) -> R {
        let r = {
            let mut socket = Socket {
                state: &mut self.state,
                ctx,
            };
            f(&mut self.user, &mut socket)
        };
        self.drain(ctx);
        r
    }

    /// Starts (or restarts) the client: the last-handle watch, then the user's `init`.
    fn begin(&mut self, ctx: &mut Context<Self>) {
        self.state.start();
        ctx.spawn(LastHandleWatch);
        self.with_socket(ctx, |user, socket| user.init(socket));
    }

    /// Carries out every queued effect, then re-arms the timer.
    fn drain(&mut self, ctx: &mut Context<Self>) {
        while let Some(effect) = self.state.pop_effect() {
            match effect {
                Effect::Send(msg) => self.write(msg),
                Effect::Connect { gen } => self.start_connect(gen, ctx),
                Effect::Close { code } => self.close_gracefully(code, ctx),
                Effect::Callback(cb) => self.dispatch(cb, ctx),
            }
        }
        self.arm_timer(ctx);
    }

    fn dispatch(&mut self, cb: Callback, ctx: &mut Context<Self>) {
        let mut socket = Socket {
            state: &mut self.state,
            ctx,
        };
        match cb {
            Callback::Connected => {
                self.user.handle_connect(&mut socket);
                self.state.after_connect(Instant::now());
            }
            Callback::Disconnected(reason) => {
                let decision = self.user.handle_disconnect(&reason, &mut socket);
                if self.state.is_stopped() {
                    return;
                }
                if decision == crate::state::AfterDisconnect::Stop {
                    ctx.stop();
                } else {
                    self.state.after_disconnect(decision, Instant::now());
                }
            }
            Callback::Joined { topic, response } => {
                self.user.handle_join(&topic, &response, &mut socket)
            }
            Callback::TopicClosed { topic, reason } => {
                let decision = self.user.handle_topic_close(&topic, &reason, &mut socket);
                self.state
                    .after_topic_close(&topic, decision, Instant::now());
            }
            Callback::Left { topic } => self.user.handle_leave(&topic, &mut socket),
            Callback::Message {
                topic,
                event,
                payload,
            } => {
                publish(&mut self.subscribers, &topic, &event, &payload);
                let update = match self.user.presences() {
                    Some(p) => {
                        let join_ref = socket.state.join_ref(topic.as_str());
                        p.handle_at(&topic, join_ref, &event, &payload)
                    }
                    None => None,
                };
                match update {
                    Some(update) => self.user.handle_presence(&topic, &update, &mut socket),
                    None => self
                        .user
                        .handle_message(&topic, &event, payload, &mut socket),
                }
            }
            Callback::Reply {
                topic,
                reference,
                result,
            } => self
                .user
                .handle_reply(&topic, &reference, result, &mut socket),
        }
    }

    fn arm_timer(&mut self, ctx: &mut Context<Self>) {
        if self.state.is_stopped() {
            return;
        }
        let Some(at) = self.state.next_deadline() else {
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
            act.state.on_tick(Instant::now());
            act.drain(ctx);
        });
        self.timer = Some((at, handle));
    }

    // ------------------------------------------------------------ connecting

    fn http_client(&mut self) -> Result<awc::Client, ConfigError> {
        if let Some(c) = &self.http {
            return Ok(c.clone());
        }
        let config = self.state.config();
        let wss = config.url.starts_with("wss:");
        // Clients on one thread with the same settings share one awc client (its
        // connector and TLS setup); custom roots get a client of their own.
        let key = (wss, config.connect_timeout);
        let shareable = config.tls.root_certificates.is_empty();
        if shareable {
            if let Some(c) = HTTP_CLIENTS.with(|m| {
                m.borrow()
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, c)| c.clone())
            }) {
                self.http = Some(c.clone());
                return Ok(c);
            }
        }
        #[allow(unused_mut)]
        let mut connector = awc::Connector::new()
            .timeout(config.connect_timeout)
            .limit(0); // no cap on simultaneous sockets per shared client
                       // TLS (and its root store) only for wss:// sockets; a ws:// URL never does TLS.
        #[cfg(feature = "rustls")]
        if wss {
            connector = connector.rustls_0_23(crate::tls::client_config(&config.tls)?);
        }
        // No `max_http_version` here: awc's builder rebuilds the connector's TLS config
        // for it, which drops ours (no TLS at all, or other roots). Websockets are HTTP/1.1
        // anyway, and our rustls config offers only `http/1.1` through ALPN.
        let client = awc::Client::builder()
            .connector(connector)
            .timeout(config.connect_timeout)
            .finish();
        if shareable {
            HTTP_CLIENTS.with(|m| m.borrow_mut().push((key, client.clone())));
        }
        self.http = Some(client.clone());
        Ok(client)
    }

    fn start_connect(&mut self, gen: u64, ctx: &mut Context<Self>) {
        if self.state.is_stopped() {
            return;
        }
        self.close_io(1000, ctx);
        let url = {
            let config = self.state.config();
            config
                .validate()
                .map_err(ConnectError::Config)
                .and_then(|()| {
                    // A panic in the user's closure is a failed connect, retried with the
                    // backoff, never the end of the actor.
                    let params = config.params.try_resolve().map_err(ConnectError::Params)?;
                    crate::url::socket_url(&config.url, &params, config.serializer)
                        .map_err(ConnectError::Config)
                })
        };
        let url = match url {
            Ok(url) => url,
            Err(e) => {
                if let ConnectError::Params(panic) = &e {
                    error!(target: crate::logging::CONNECTION, "connect failed: the params closure panicked: {panic}");
                }
                return self.connect_failed(gen, e, ctx);
            }
        };
        let http = match self.http_client() {
            Ok(c) => c,
            Err(e) => return self.connect_failed(gen, ConnectError::Config(e), ctx),
        };
        let config = self.state.config();
        let mut request = http.ws(url.as_str()).max_frame_size(config.max_frame_size);
        for (name, value) in &config.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let timeout = config.connect_timeout;
        let fut = async move {
            actix_rt::time::timeout(timeout, async move {
                // awc holds two 8 KiB buffers per handshake; bounding the handshakes in
                // flight on this thread bounds that memory when many clients connect at
                // once (after a server restart, say).
                let handshakes = HANDSHAKES.with(Rc::clone);
                let _permit = handshakes.acquire().await;
                request.connect().await
            })
            .await
        };
        let handle = ctx.spawn(fut.into_actor(self).map(move |result, act, ctx| {
            if let Some(io) = act.io.as_mut().filter(|io| io.gen == gen) {
                io.connecting = None;
            } else {
                return;
            }
            match result {
                Err(_) => act.connect_failed(gen, ConnectError::Timeout, ctx),
                Ok(Err(WsClientError::InvalidResponseStatus(status))) => {
                    act.connect_failed(gen, ConnectError::Refused(status.as_u16()), ctx)
                }
                Ok(Err(WsClientError::SendRequest(
                    awc::error::SendRequestError::Timeout
                    | awc::error::SendRequestError::Connect(awc::error::ConnectError::Timeout),
                ))) => act.connect_failed(gen, ConnectError::Timeout, ctx),
                Ok(Err(e)) => act.connect_failed(gen, ConnectError::Io(e.to_string()), ctx),
                Ok(Ok((_response, framed))) => act.open(gen, framed, ctx),
            }
        }));
        self.io = Some(Io {
            gen,
            connecting: Some(handle),
            reader: None,
            frames: None,
            writer: None,
            partial: None,
        });
    }

    fn connect_failed(&mut self, gen: u64, error: ConnectError, ctx: &mut Context<Self>) {
        self.io = None;
        self.state
            .on_closed(gen, DisconnectReason::ConnectFailed(error), Instant::now());
        self.drain(ctx);
    }

    fn open(&mut self, gen: u64, framed: Framed<BoxedSocket, ws::Codec>, ctx: &mut Context<Self>) {
        let config = self.state.config();
        let parts = framed.into_parts();
        let weak = ctx.address().downgrade();
        let (frames, writer) = transport::split(
            parts.io,
            &parts.read_buf,
            config.max_frame_size,
            config.send_buffer,
            config.write_timeout,
            move |error| {
                if let Some(addr) = weak.upgrade() {
                    addr.do_send(WriterFailed { gen, error });
                }
            },
        );
        let shared = frames.handle();
        let frames = frames
            .map(move |frame| Inbound {
                gen,
                frame: Some(frame),
            })
            .chain(stream::once(async move { Inbound { gen, frame: None } }));
        let reader = ctx.add_stream(frames);
        if let Some(io) = self.io.as_mut() {
            io.reader = Some(reader);
            io.frames = Some(shared);
            io.writer = Some(writer);
        }
        self.state.on_connected(gen, Instant::now());
        self.drain(ctx);
    }

    /// Tears down the current connection, sending a close frame if it was open.
    fn close_io(&mut self, code: u16, ctx: &mut Context<Self>) {
        let Some(mut io) = self.io.take() else { return };
        if let Some(h) = io.connecting.take() {
            ctx.cancel_future(h);
        }
        if let Some(h) = io.reader.take() {
            ctx.cancel_future(h);
        }
        if let Some(writer) = io.writer.take() {
            writer.close(close_reason(code));
            if self.state.is_stopped() {
                // The actor is going away: the closing handshake goes on without it.
                self.hand_off_close(io.frames.take(), writer);
            }
        }
    }

    /// Finishes the closing handshake of a connection whose close frame is queued
    /// in a task of its own, as the actor stops.
    fn hand_off_close(&mut self, frames: Option<SharedFrames>, writer: WriterHandle) {
        let wait = self.state.config().write_timeout.min(CLOSE_TIMEOUT);
        let frames = frames.and_then(|f| f.take_back());
        self.writers_finishing
            .push(transport::finish_close(frames, writer, wait));
    }

    /// Sends a close frame on the current connection and keeps reading it until the
    /// server answers with its own close frame (or the connection ends, or the close
    /// timeout passes), as the websocket closing handshake asks.
    fn close_gracefully(&mut self, code: u16, ctx: &mut Context<Self>) {
        let Some(mut io) = self.io.take() else { return };
        if io.reader.is_none() || io.writer.is_none() || self.state.is_stopped() {
            self.io = Some(io);
            return self.close_io(code, ctx);
        }
        if let Some(writer) = io.writer.as_ref() {
            writer.close(close_reason(code));
        }
        io.partial = None;
        let gen = io.gen;
        let wait = self.state.config().write_timeout.min(CLOSE_TIMEOUT);
        let timer = ctx.run_later(wait, move |act, ctx| act.finish_closing(gen, ctx));
        self.closing.push((io, timer));
    }

    /// Drops a connection that was closing.
    fn finish_closing(&mut self, gen: u64, ctx: &mut Context<Self>) {
        let Some(i) = self.closing.iter().position(|(io, _)| io.gen == gen) else {
            return;
        };
        let (mut io, timer) = self.closing.swap_remove(i);
        ctx.cancel_future(timer);
        if let Some(h) = io.reader.take() {
            ctx.cancel_future(h);
        }
        // Dropping the queue lets the writer shut the connection down.
        io.writer = None;
    }

    /// The current connection failed: tear it down and tell the state machine.
    fn connection_failed(&mut self, gen: u64, reason: DisconnectReason, ctx: &mut Context<Self>) {
        if self.io.as_ref().is_some_and(|io| io.gen == gen) {
            self.close_io(1000, ctx);
        }
        self.state.on_closed(gen, reason, Instant::now());
        self.drain(ctx);
    }

    // ------------------------------------------------------------ frames

    fn write(&mut self, msg: Message) {
        let frame = match self.state.config().serializer.encode_client(&msg) {
            Ok(f) => f,
            Err(e) => {
                error!(target: crate::logging::PUSH, "could not encode {} on {}: {e}", msg.event, msg.topic);
                if let (Some(r), Event::Custom(_)) = (&msg.reference, &msg.event) {
                    self.state.send_failed(r, PushError::Encode(e));
                }
                return;
            }
        };
        let (ws_msg, len) = match frame {
            Frame::Text(s) => {
                let len = s.len();
                (ws::Message::Text(s.into()), len)
            }
            Frame::Binary(b) => {
                let len = b.len();
                (ws::Message::Binary(b), len)
            }
        };
        let Some(io) = self.io.as_ref() else {
            if let (Some(r), Event::Custom(_)) = (&msg.reference, &msg.event) {
                self.state.send_failed(r, PushError::ConnectionLost);
            }
            return;
        };
        let Some(writer) = io.writer.as_ref() else {
            return;
        };
        // Only user pushes count against `send_buffer`: the client's own frames
        // (joins, leaves, heartbeats) always go out, so a rejoin of any size does.
        let push = match (&msg.reference, &msg.event) {
            (Some(r), Event::Custom(_)) => Some(r),
            _ => None,
        };
        match writer.queue(ws_msg, push.is_some()) {
            Ok(_) => self.state.count_out(len),
            Err(QueueError::Full) => {
                if let Some(r) = push {
                    warn!(target: crate::logging::PUSH, "send buffer full: push {r} on {} failed", msg.topic);
                    self.state.send_failed(r, PushError::BufferFull);
                }
            }
            // The writer ended; its failure report is on its way.
            Err(QueueError::Closed) => {}
        }
    }

    /// Queues a pong, within the send buffer's budget (a server flooding pings
    /// cannot grow the queue; RFC 6455 allows answering only the latest ping).
    fn write_pong(&mut self, msg: ws::Message) {
        if let Some(writer) = self.io.as_ref().and_then(|io| io.writer.as_ref()) {
            let _ = writer.queue(msg, true);
        }
    }

    fn inbound(&mut self, gen: u64, frame: ws::Frame, ctx: &mut Context<Self>) {
        let serializer = self.state.config().serializer;
        let max = self.state.config().max_frame_size;
        let decoded = match frame {
            ws::Frame::Text(b) => {
                self.state.count_in(b.len());
                serializer.decode_server_text(&b)
            }
            ws::Frame::Binary(b) => {
                self.state.count_in(b.len());
                serializer.decode_server_binary(&b)
            }
            ws::Frame::Continuation(item) => match self.reassemble(item, max) {
                Ok(None) => return,
                Ok(Some((true, b))) => {
                    self.state.count_in(b.len());
                    serializer.decode_server_text(&b)
                }
                Ok(Some((false, b))) => {
                    self.state.count_in(b.len());
                    serializer.decode_server_binary(&b)
                }
                Err(e) => {
                    return self.connection_failed(gen, DisconnectReason::Protocol(e.into()), ctx)
                }
            },
            ws::Frame::Ping(b) => {
                self.write_pong(ws::Message::Pong(b));
                return;
            }
            ws::Frame::Pong(_) => return,
            ws::Frame::Close(reason) => {
                let (code, description) = match reason {
                    Some(r) => (Some(u16::from(r.code)), r.description),
                    None => (None, None),
                };
                return self.connection_failed(
                    gen,
                    DisconnectReason::ServerClosed { code, description },
                    ctx,
                );
            }
        };
        match decoded {
            Ok(msg) => {
                self.state.on_message(msg, Instant::now());
                self.drain(ctx);
            }
            Err(e) => {
                warn!(target: crate::logging::WIRE, "undecodable frame from the server: {e}");
                self.connection_failed(gen, DisconnectReason::InvalidFrame(e), ctx);
            }
        }
    }

    fn reassemble(
        &mut self,
        item: actix_http::ws::Item,
        max: usize,
    ) -> Result<Option<(bool, Bytes)>, &'static str> {
        let io = self.io.as_mut().ok_or("no connection")?;
        let (first, chunk, last) = match item {
            actix_http::ws::Item::FirstText(b) => (Some(true), b, false),
            actix_http::ws::Item::FirstBinary(b) => (Some(false), b, false),
            actix_http::ws::Item::Continue(b) => (None, b, false),
            actix_http::ws::Item::Last(b) => (None, b, true),
        };
        match (first, io.partial.as_mut()) {
            (Some(_), Some(_)) => return Err("new fragmented message before the last one ended"),
            (None, None) => return Err("continuation frame without a first frame"),
            (Some(text), None) => io.partial = Some((text, BytesMut::new())),
            (None, Some(_)) => {}
        }
        let Some((text, buf)) = io.partial.as_mut() else {
            return Err("no fragmented message");
        };
        if buf.len() + chunk.len() > max {
            return Err("fragmented message exceeds the max frame size");
        }
        buf.extend_from_slice(&chunk);
        if !last {
            return Ok(None);
        }
        let text = *text;
        let bytes = io
            .partial
            .take()
            .map(|(_, b)| b.freeze())
            .unwrap_or_default();
        Ok(Some((text, bytes)))
    }
}

/// Gives a message to the topic's subscribers, if it has any.
fn publish(
    subscribers: &mut HashMap<Topic, broadcast::Sender<TopicMessage>>,
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

fn close_reason(code: u16) -> ws::CloseReason {
    ws::CloseReason {
        code: ws::CloseCode::from(code),
        description: None,
    }
}

struct Inbound {
    gen: u64,
    frame: Option<Result<ws::Frame, WsProtocolError>>,
}

impl<A: SlipstreamActor> StreamHandler<Inbound> for Client<A> {
    fn handle(&mut self, item: Inbound, ctx: &mut Context<Self>) {
        let gen = item.gen;
        if !self
            .io
            .as_ref()
            .is_some_and(|io| io.gen == gen && io.reader.is_some())
        {
            // A connection the client is closing: the handshake is done once the server
            // answers with its close frame (or the connection ends).
            if matches!(
                item.frame,
                None | Some(Err(_)) | Some(Ok(ws::Frame::Close(_)))
            ) {
                self.finish_closing(gen, ctx);
            }
            return;
        }
        match item.frame {
            Some(Ok(frame)) => self.inbound(gen, frame, ctx),
            Some(Err(e)) => {
                let reason = match e {
                    WsProtocolError::Overflow => DisconnectReason::Protocol(format!(
                        "frame larger than max_frame_size ({} bytes)",
                        self.state.config().max_frame_size
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

#[derive(Message)]
#[rtype(result = "()")]
struct WriterFailed {
    gen: u64,
    error: String,
}

impl<A: SlipstreamActor> Handler<WriterFailed> for Client<A> {
    type Result = ();
    fn handle(&mut self, msg: WriterFailed, ctx: &mut Context<Self>) {
        if self.io.as_ref().is_some_and(|io| io.gen == msg.gen) {
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
        self.state.stop(Instant::now());
        self.drain(ctx);
        self.close_io(1000, ctx);
        for (mut io, _) in std::mem::take(&mut self.closing) {
            if let Some(writer) = io.writer.take() {
                self.hand_off_close(io.frames.take(), writer);
            }
        }
        self.timer = None;
        self.user.terminate();
        let writers = std::mem::take(&mut self.writers_finishing);
        if self.stop_system {
            // Let the closing handshakes finish before the System (and its tasks)
            // goes away.
            let wait = self.state.config().write_timeout.min(CLOSE_TIMEOUT);
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
        self.io = None;
        self.closing.clear();
        self.timer = None;
    }
}

// ---------------------------------------------------------------- messages

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
        let (tx, rx) = oneshot::channel();
        self.state
            .join(msg.topic, msg.params, Some(tx), Instant::now());
        self.drain(ctx);
        let timeout = self.state.config().join_timeout;
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
        self.state
            .leave_with(msg.topic.as_str(), Some(tx), Instant::now());
        self.drain(ctx);
        // The state machine answers by the leave timeout; this bound only guards it.
        let timeout = self.state.config().push_timeout + LEAVE_GUARD;
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
        let timeout = msg.timeout.unwrap_or(self.state.config().push_timeout);
        let result = self.state.push(
            msg.topic.as_str(),
            msg.event,
            msg.payload,
            timeout,
            ReplyTo::Sender(tx),
            Instant::now(),
        );
        self.drain(ctx);
        Box::pin(async move {
            result?;
            rx.await.unwrap_or(Err(PushError::Stopped))
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
        self.state.disconnect(Instant::now());
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
        self.state.reconnect(Instant::now());
        self.drain(ctx);
    }
}

/// Get a [`Status`] snapshot.
#[derive(Debug, Clone, Copy, actix::Message)]
#[rtype(result = "Status")]
pub struct GetStatus;

impl<A: SlipstreamActor> Handler<GetStatus> for Client<A> {
    type Result = MessageResult<GetStatus>;
    fn handle(&mut self, _: GetStatus, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.state.status())
    }
}

/// Stop the actor.
///
/// Before [`terminate`](crate::SlipstreamActor::terminate) runs, every open request
/// gets its outcome: buffered and in-flight pushes fail with [`PushError::Stopped`]
/// (`handle_reply` runs for those made with `socket.push`), join waiters get
/// [`JoinError::Stopped`], leave waiters [`LeaveError::Stopped`] (topics being left
/// are left: `handle_leave` runs); the connection closes with code 1000 and
/// `handle_disconnect` runs with [`DisconnectReason::Stopped`]. Connects asked for
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
