//! The client's connection: opening it (through the [connector](super::connector)),
//! writing the engine's messages, decoding what is read, and closing it with the
//! websocket closing handshake.

use std::time::{Duration, Instant};

use actix::prelude::*;
use awc::ws;
use futures_util::stream;
use futures_util::StreamExt;
use log::{error, warn};

use super::connector::{self, Upgraded};
use super::transport::close::{close_reason, finish_close, CLOSE_TIMEOUT};
use super::transport::fragments::Reassembler;
use super::transport::{self, QueueError, SharedFrames, WriterHandle};
use super::{Client, Inbound, SlipstreamActor, WriterFailed};
use crate::codec::Frame;
use crate::engine::{ConnId, ConnectError, DisconnectReason, Engine};
use crate::error::{DecodeError, PushError};
use crate::message::{Event, Message};

/// The current connection's I/O handles.
struct Io {
    gen: u64,
    connecting: Option<SpawnHandle>,
    reader: Option<SpawnHandle>,
    /// The reader's frame stream, to take back when the actor stops mid-connection.
    frames: Option<SharedFrames>,
    writer: Option<WriterHandle>,
    /// A fragmented message being reassembled.
    fragments: Reassembler,
}

/// What one inbound frame means for the client.
pub(crate) enum Read {
    /// A message to hand to the engine.
    Message(Message),
    /// Nothing to do (a control frame, a fragment).
    Nothing,
    /// The connection is over.
    Failed(DisconnectReason),
}

/// Connections being closed. Kept out of line, allocated at the first close: most
/// clients rarely close a connection, and every one of them holds a [`Link`].
#[derive(Default)]
struct Closing {
    /// Connections closed by the client, waiting for the server's close frame.
    conns: Vec<(Io, SpawnHandle)>,
    /// Closing handshakes handed off to tasks of their own as the actor stops:
    /// awaited (bounded) before the System of [`Client::spawn`] stops.
    writers: Vec<tokio::task::JoinHandle<()>>,
}

/// The connection (current and closing) of a client.
#[derive(Default)]
pub(crate) struct Link {
    io: Option<Io>,
    closing: Option<Box<Closing>>,
    http: Option<awc::Client>,
}

impl Link {
    fn closing_mut(&mut self) -> &mut Closing {
        self.closing.get_or_insert_with(Box::default)
    }

    /// The closing handshakes handed off to tasks of their own as the actor stopped:
    /// awaited (bounded) before the System of [`Client::spawn`] stops.
    pub(crate) fn take_writers_finishing(&mut self) -> Vec<tokio::task::JoinHandle<()>> {
        self.closing
            .as_mut()
            .map(|c| std::mem::take(&mut c.writers))
            .unwrap_or_default()
    }

    /// Whether `gen` is the current connection and reading.
    pub(crate) fn is_reading(&self, gen: u64) -> bool {
        self.io
            .as_ref()
            .is_some_and(|io| io.gen == gen && io.reader.is_some())
    }

    /// Whether `gen` is the current connection.
    pub(crate) fn is_current(&self, gen: u64) -> bool {
        self.io.as_ref().is_some_and(|io| io.gen == gen)
    }

    /// Starts opening connection `conn` (the engine's [`Effect::Connect`](crate::engine::Effect::Connect)).
    pub(crate) fn connect<A: SlipstreamActor>(
        &mut self,
        engine: &mut Engine,
        conn: ConnId,
        ctx: &mut Context<Client<A>>,
    ) {
        if engine.is_stopped() {
            return;
        }
        self.close_io(engine, 1000, ctx);
        let gen = conn.0;
        let config = engine.config();
        let target = match connector::connect_target(config) {
            Ok(target) => target,
            Err(e) => {
                match &e {
                    ConnectError::Params(panic) => {
                        error!(target: crate::logging::CONNECTION, "connect failed: the params closure panicked: {panic}");
                    }
                    ConnectError::AuthToken(panic) => {
                        error!(target: crate::logging::CONNECTION, "connect failed: the auth token closure panicked: {panic}");
                    }
                    _ => {}
                }
                return self.connect_failed(engine, conn, e);
            }
        };
        let http = match &self.http {
            Some(c) => c.clone(),
            None => match connector::http_client(config) {
                Ok(c) => {
                    self.http = Some(c.clone());
                    c
                }
                Err(e) => return self.connect_failed(engine, conn, ConnectError::Config(e)),
            },
        };
        let handshake = connector::handshake(&http, &target, config);
        let handle = ctx.spawn(
            actix::fut::wrap_future::<_, Client<A>>(handshake)
                .map(move |result, act, ctx| act.handshake_done(conn, result, ctx)),
        );
        self.io = Some(Io {
            gen,
            connecting: Some(handle),
            reader: None,
            frames: None,
            writer: None,
            fragments: Reassembler::default(),
        });
    }

    /// The handshake of `conn` ended: `Some(result)` if it is still the current one.
    pub(crate) fn handshake_done(&mut self, conn: ConnId) -> bool {
        match self.io.as_mut().filter(|io| io.gen == conn.0) {
            Some(io) => {
                io.connecting = None;
                true
            }
            None => false,
        }
    }

    /// A connect failed before or during the handshake.
    pub(crate) fn connect_failed(
        &mut self,
        engine: &mut Engine,
        conn: ConnId,
        error: ConnectError,
    ) {
        self.io = None;
        engine.handle_closed(conn, DisconnectReason::ConnectFailed(error), Instant::now());
    }

    /// The handshake of `conn` succeeded: start reading and writing.
    pub(crate) fn open<A: SlipstreamActor>(
        &mut self,
        engine: &Engine,
        conn: ConnId,
        framed: Upgraded,
        ctx: &mut Context<Client<A>>,
    ) {
        let gen = conn.0;
        let config = engine.config();
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
    }

    /// Tears down the current connection, sending a close frame if it was open.
    pub(crate) fn close_io<A: SlipstreamActor>(
        &mut self,
        engine: &Engine,
        code: u16,
        ctx: &mut Context<Client<A>>,
    ) {
        let Some(mut io) = self.io.take() else { return };
        if let Some(h) = io.connecting.take() {
            ctx.cancel_future(h);
        }
        if let Some(h) = io.reader.take() {
            ctx.cancel_future(h);
        }
        if let Some(writer) = io.writer.take() {
            writer.close(close_reason(code));
            if engine.is_stopped() {
                // The actor is going away: the closing handshake goes on without it.
                self.hand_off_close(engine, io.frames.take(), writer);
            }
        }
    }

    /// Finishes the closing handshake of a connection whose close frame is queued
    /// in a task of its own, as the actor stops.
    fn hand_off_close(
        &mut self,
        engine: &Engine,
        frames: Option<SharedFrames>,
        writer: WriterHandle,
    ) {
        let wait = close_wait(engine);
        let frames = frames.and_then(|f| f.take_back());
        self.closing_mut()
            .writers
            .push(finish_close(frames, writer, wait));
    }

    /// The actor stops: every connection still closing finishes on its own.
    pub(crate) fn hand_off_closing(&mut self, engine: &Engine) {
        let conns = self
            .closing
            .as_mut()
            .map(|c| std::mem::take(&mut c.conns))
            .unwrap_or_default();
        for (mut io, _) in conns {
            if let Some(writer) = io.writer.take() {
                self.hand_off_close(engine, io.frames.take(), writer);
            }
        }
    }

    /// The actor restarts: the old connections' handles are void.
    pub(crate) fn reset(&mut self) {
        self.io = None;
        if let Some(c) = self.closing.as_mut() {
            c.conns.clear();
        }
    }

    /// Sends a close frame on the current connection and keeps reading it until the
    /// server answers with its own close frame (or the connection ends, or the close
    /// timeout passes), as the websocket closing handshake asks.
    pub(crate) fn close_gracefully<A: SlipstreamActor>(
        &mut self,
        engine: &Engine,
        code: u16,
        ctx: &mut Context<Client<A>>,
    ) {
        let Some(mut io) = self.io.take() else { return };
        if io.reader.is_none() || io.writer.is_none() || engine.is_stopped() {
            self.io = Some(io);
            return self.close_io(engine, code, ctx);
        }
        if let Some(writer) = io.writer.as_ref() {
            writer.close(close_reason(code));
        }
        io.fragments.clear();
        let gen = io.gen;
        let timer = ctx.run_later(close_wait(engine), move |act, ctx| {
            act.link.finish_closing(gen, ctx)
        });
        self.closing_mut().conns.push((io, timer));
    }

    /// Drops a connection that was closing.
    pub(crate) fn finish_closing<A: SlipstreamActor>(
        &mut self,
        gen: u64,
        ctx: &mut Context<Client<A>>,
    ) {
        let Some(closing) = self.closing.as_mut() else {
            return;
        };
        let Some(i) = closing.conns.iter().position(|(io, _)| io.gen == gen) else {
            return;
        };
        let (mut io, timer) = closing.conns.swap_remove(i);
        if closing.conns.is_empty() && closing.writers.is_empty() {
            self.closing = None;
        }
        ctx.cancel_future(timer);
        if let Some(h) = io.reader.take() {
            ctx.cancel_future(h);
        }
        // Dropping the queue lets the writer shut the connection down.
        io.writer = None;
    }

    /// Encodes and queues a message of the engine; a push that cannot go out fails
    /// at once.
    pub(crate) fn write(&mut self, engine: &mut Engine, msg: Message) {
        let frame = match engine.config().serializer.encode_client(&msg) {
            Ok(f) => f,
            Err(e) => {
                error!(target: crate::logging::PUSH, "could not encode {} on {}: {e}", msg.event, msg.topic);
                if let (Some(r), Event::Custom(_)) = (&msg.reference, &msg.event) {
                    engine.send_failed(r, PushError::Encode(e));
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
                engine.send_failed(r, PushError::ConnectionLost);
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
            Ok(_) => engine.record_outbound(len),
            Err(QueueError::Full) => {
                if let Some(r) = push {
                    warn!(target: crate::logging::PUSH, "send buffer full: push {r} on {} failed", msg.topic);
                    engine.send_failed(r, PushError::BufferFull);
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

    /// Reads one frame of the current connection: decodes data frames (counting
    /// them), reassembles fragments, answers pings, and reports the end.
    pub(crate) fn read(&mut self, engine: &mut Engine, frame: ws::Frame) -> Read {
        let max = engine.config().max_frame_size;
        let (text, bytes) = match frame {
            ws::Frame::Text(b) => (true, b),
            ws::Frame::Binary(b) => (false, b),
            ws::Frame::Continuation(item) => {
                let Some(io) = self.io.as_mut() else {
                    return Read::Nothing;
                };
                match io.fragments.push(item, max) {
                    Ok(None) => return Read::Nothing,
                    Ok(Some(message)) => message,
                    Err(e) => return Read::Failed(DisconnectReason::Protocol(e.into())),
                }
            }
            ws::Frame::Ping(b) => {
                self.write_pong(ws::Message::Pong(b));
                return Read::Nothing;
            }
            ws::Frame::Pong(_) => return Read::Nothing,
            ws::Frame::Close(reason) => {
                let (code, description) = match reason {
                    Some(r) => (Some(u16::from(r.code)), r.description),
                    None => (None, None),
                };
                return Read::Failed(DisconnectReason::ServerClosed { code, description });
            }
        };
        engine.record_inbound(bytes.len());
        let serializer = &engine.config().serializer;
        let decoded: Result<Message, DecodeError> = if text {
            serializer.decode_server_text(&bytes)
        } else {
            serializer.decode_server_binary(&bytes)
        };
        match decoded {
            Ok(msg) => Read::Message(msg),
            Err(e) => {
                warn!(target: crate::logging::WIRE, "undecodable frame from the server: {e}");
                Read::Failed(DisconnectReason::InvalidFrame(e))
            }
        }
    }
}

/// How long the closing handshake may take.
pub(crate) fn close_wait(engine: &Engine) -> Duration {
    engine.config().write_timeout.min(CLOSE_TIMEOUT)
}
