//! One websocket connection of the test server: the Phoenix socket and its channels.

use std::collections::{BTreeMap, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, Item, Session};
use bytes::Bytes;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::message::{Event, Message, Payload, Ref, ReplyStatus, Topic};
use crate::serializer::{Frame, Serializer};

use super::behaviour::{
    Action, Channel, EventRequest, JoinOutcome, JoinRequest, MAX_FLOOD_COUNT, MAX_FLOOD_SIZE,
    MAX_SLEEP,
};
use super::command::{RawFrame, Silence, SocketCmd};
use super::server::Shared;
use super::state::{DisconnectReason, LeaveReason, ServerEvent, SocketId};

/// How many frames may wait for a delay (reply delay, `Sleep`) per socket; more are dropped.
const MAX_DELAYED: usize = 100_000;

struct Chan {
    join_ref: Option<Ref>,
    params: Payload,
    channel: Channel,
}

struct Ticker {
    topic: Topic,
    join_ref: Option<Ref>,
    event: String,
    interval: Duration,
    next: Instant,
    n: u64,
}

pub(crate) struct SocketTask {
    pub(crate) id: SocketId,
    pub(crate) serializer: Arc<dyn Serializer>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) session: Session,
    pub(crate) stream: AggregatedMessageStream,
    pub(crate) cmd_rx: mpsc::Receiver<SocketCmd>,
    pub(crate) connect_params: Vec<(String, String)>,
    pub(crate) silence: Option<Silence>,
    channels: HashMap<Topic, Chan>,
    delayed: BTreeMap<(Instant, u64), Message>,
    delayed_seq: u64,
    tickers: Vec<Ticker>,
    last_rx: Instant,
}

type Outcome = Result<(), DisconnectReason>;

impl SocketTask {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: SocketId,
        serializer: Arc<dyn Serializer>,
        shared: Arc<Shared>,
        session: Session,
        stream: AggregatedMessageStream,
        cmd_rx: mpsc::Receiver<SocketCmd>,
        connect_params: Vec<(String, String)>,
        silence: Option<Silence>,
    ) -> Self {
        SocketTask {
            id,
            serializer,
            shared,
            session,
            stream,
            cmd_rx,
            connect_params,
            silence,
            channels: HashMap::new(),
            delayed: BTreeMap::new(),
            delayed_seq: 0,
            tickers: Vec::new(),
            last_rx: Instant::now(),
        }
    }

    pub(crate) async fn run(mut self) {
        let reason = match self.run_loop().await {
            Ok(()) => DisconnectReason::ConnectionLost,
            Err(reason) => reason,
        };
        log::debug!("test server: {} ended: {:?}", self.id, reason);
        let id = self.id;
        let dropped = matches!(
            reason,
            DisconnectReason::SendTimeout | DisconnectReason::Dropped
        );
        self.shared.with_state(|s| {
            if dropped {
                if let Some(conn) = s.sockets.get(&id).and_then(|e| e.conn) {
                    if let Some(c) = s.conns.remove(&conn) {
                        c.abort.abort();
                    }
                }
            }
            s.remove_socket(id, reason);
        });
    }

    fn next_wake(&self) -> Option<Instant> {
        let mut wake = self.delayed.keys().next().map(|(at, _)| *at);
        for t in &self.tickers {
            wake = Some(wake.map_or(t.next, |w| w.min(t.next)));
        }
        if self.silence.is_none() {
            if let Some(idle) = self.shared.cfg.idle_timeout {
                let at = self.last_rx + idle;
                wake = Some(wake.map_or(at, |w| w.min(at)));
            }
        }
        wake
    }

    async fn run_loop(&mut self) -> Outcome {
        loop {
            let wake = self.next_wake();
            let reading = self.silence != Some(Silence::Stall);
            tokio::select! {
                biased;
                cmd = self.cmd_rx.recv() => match cmd {
                    None => return Err(DisconnectReason::Dropped),
                    Some(cmd) => self.on_cmd(cmd).await?,
                },
                msg = self.stream.recv(), if reading => match msg {
                    None => return Err(DisconnectReason::ConnectionLost),
                    Some(msg) => {
                        self.last_rx = Instant::now();
                        self.on_ws(msg).await?;
                    }
                },
                _ = sleep_until_opt(wake), if wake.is_some() => self.on_timers().await?,
            }
        }
    }

    async fn on_cmd(&mut self, cmd: SocketCmd) -> Outcome {
        match cmd {
            SocketCmd::Close(code) => self.close(code).await,
            SocketCmd::Raw(frame) => self.send_raw(frame).await,
            SocketCmd::Crash(topic) => {
                if !self.channels.contains_key(&topic) {
                    return Ok(());
                }
                self.run_actions(topic, None, vec![Action::Crash]).await
            }
            SocketCmd::Stop(topic) => {
                if !self.channels.contains_key(&topic) {
                    return Ok(());
                }
                self.run_actions(topic, None, vec![Action::Stop]).await
            }
            SocketCmd::Silence(s) => {
                self.silence = s;
                let id = self.id;
                self.shared.with_state(|st| {
                    if let Some(e) = st.sockets.get_mut(&id) {
                        e.info.silence = s;
                    }
                });
                Ok(())
            }
            SocketCmd::Broadcast {
                topic,
                event,
                payload,
            } => {
                if self.silence.is_some() || !self.channels.contains_key(&topic) {
                    return Ok(());
                }
                let msg = Message::new(None, None, topic, Event::from(event), payload);
                self.send_now(&msg).await
            }
            SocketCmd::Push {
                topic,
                event,
                payload,
            } => {
                if self.silence.is_some() {
                    return Ok(());
                }
                let Some(chan) = self.channels.get(&topic) else {
                    return Ok(());
                };
                let msg = Message::new(
                    chan.join_ref.clone(),
                    None,
                    topic,
                    Event::from(event),
                    payload,
                );
                self.send_now(&msg).await
            }
        }
    }

    async fn send_raw(&mut self, frame: RawFrame) -> Outcome {
        let send_timeout = self.shared.cfg.send_timeout;
        let mut items: Vec<Item> = Vec::new();
        let sent = match frame {
            RawFrame::Text(t) => tokio::time::timeout(send_timeout, self.session.text(t)).await,
            RawFrame::Binary(b) => tokio::time::timeout(send_timeout, self.session.binary(b)).await,
            RawFrame::Ping(b) => tokio::time::timeout(send_timeout, self.session.ping(&b)).await,
            RawFrame::Pong(b) => tokio::time::timeout(send_timeout, self.session.pong(&b)).await,
            RawFrame::Fragmented { text, mut parts } => {
                while parts.len() < 2 {
                    parts.push(Bytes::new());
                }
                let last = parts.len() - 1;
                for (i, part) in parts.into_iter().enumerate() {
                    items.push(match i {
                        0 if text => Item::FirstText(part),
                        0 => Item::FirstBinary(part),
                        i if i == last => Item::Last(part),
                        _ => Item::Continue(part),
                    });
                }
                Ok(Ok(()))
            }
        };
        let mut sent = sent;
        for item in items {
            sent = tokio::time::timeout(send_timeout, self.session.continuation(item)).await;
            if !matches!(sent, Ok(Ok(()))) {
                break;
            }
        }
        match sent {
            Err(_) => Err(DisconnectReason::SendTimeout),
            Ok(Err(_)) => Err(DisconnectReason::ConnectionLost),
            Ok(Ok(())) => {
                self.shared
                    .with_state_quiet(|s| s.counters.frames_sent += 1);
                Ok(())
            }
        }
    }

    async fn on_timers(&mut self) -> Outcome {
        let now = Instant::now();
        if self.silence.is_none() {
            if let Some(idle) = self.shared.cfg.idle_timeout {
                if now >= self.last_rx + idle {
                    log::debug!("test server: {} idle for {:?}, closing", self.id, idle);
                    return self.close(1002).await;
                }
            }
        }
        while let Some(entry) = self.delayed.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let msg = entry.remove();
            if self.silence.is_none() {
                self.send_now(&msg).await?;
            }
        }
        let mut due = Vec::new();
        for t in &mut self.tickers {
            if t.next <= now {
                t.n += 1;
                // Skip missed ticks rather than bursting.
                while t.next <= now {
                    t.next += t.interval;
                }
                due.push(Message::new(
                    t.join_ref.clone(),
                    None,
                    t.topic.clone(),
                    Event::from(t.event.as_str()),
                    Payload::Json(json!({ "n": t.n })),
                ));
            }
        }
        if self.silence.is_none() {
            for msg in due {
                self.send_now(&msg).await?;
            }
        }
        Ok(())
    }

    async fn on_ws(&mut self, msg: Result<AggregatedMessage, actix_ws::ProtocolError>) -> Outcome {
        let silent = self.silence.is_some();
        match msg {
            Err(e) => {
                log::debug!("test server: {} protocol error: {e}", self.id);
                if silent {
                    return Err(DisconnectReason::ConnectionLost);
                }
                self.close(1002).await
            }
            Ok(AggregatedMessage::Ping(bytes)) => {
                if !silent {
                    self.session
                        .pong(&bytes)
                        .await
                        .map_err(|_| DisconnectReason::ConnectionLost)?;
                }
                Ok(())
            }
            Ok(AggregatedMessage::Pong(_)) => {
                self.shared.with_state(|s| s.counters.pongs_received += 1);
                Ok(())
            }
            Ok(AggregatedMessage::Close(reason)) => {
                if silent {
                    // A half-open link does not answer the close handshake.
                    return Ok(());
                }
                let code = reason.as_ref().map(|r| u16::from(r.code));
                let _ = self.session.clone().close(reason).await;
                Err(DisconnectReason::ClientClosed(code))
            }
            Ok(AggregatedMessage::Text(text)) => {
                let decoded = self.serializer.decode_client_text(text.as_bytes());
                self.on_decoded(decoded.map_err(|e| e.to_string())).await
            }
            Ok(AggregatedMessage::Binary(data)) => {
                let decoded = self.serializer.decode_client_binary(&data);
                self.on_decoded(decoded.map_err(|e| e.to_string())).await
            }
        }
    }

    async fn on_decoded(&mut self, decoded: Result<Message, String>) -> Outcome {
        let id = self.id;
        match decoded {
            Err(error) => {
                log::debug!("test server: {id} invalid frame: {error}");
                let silent = self.silence.is_some();
                self.shared
                    .with_state(|s| s.push_event(ServerEvent::InvalidFrame(id, error)));
                if silent {
                    return Ok(());
                }
                self.close(1011).await
            }
            Ok(msg) => {
                self.shared.with_state(|s| s.record_frame(id, &msg));
                if self.silence.is_some() {
                    return Ok(());
                }
                self.handle(msg).await
            }
        }
    }

    async fn handle(&mut self, msg: Message) -> Outcome {
        if msg.topic.is_phoenix() && msg.event == Event::Heartbeat {
            let reply = reply(
                None,
                msg.reference,
                msg.topic,
                ReplyStatus::Ok,
                Payload::empty(),
            );
            return self.emit_reply(&mut None, reply, Duration::ZERO).await;
        }
        if msg.event == Event::Join {
            return self.join(msg).await;
        }
        let Some(chan) = self.channels.get(&msg.topic) else {
            let response = if msg.event == Event::Leave {
                (ReplyStatus::Ok, Payload::empty())
            } else {
                (
                    ReplyStatus::Error,
                    Payload::Json(json!({"reason": "unmatched topic"})),
                )
            };
            let r = reply(None, msg.reference, msg.topic, response.0, response.1);
            return self.emit_reply(&mut None, r, Duration::ZERO).await;
        };
        let join_ref = chan.join_ref.clone();
        if msg.event == Event::Leave {
            let topic = msg.topic.clone();
            let r = reply(
                join_ref.clone(),
                msg.reference,
                msg.topic,
                ReplyStatus::Ok,
                Payload::empty(),
            );
            let mut batch = None;
            self.emit_reply(&mut batch, r, Duration::ZERO).await?;
            self.end_channel(&topic, LeaveReason::Left);
            let close = Message::new(
                join_ref.clone(),
                join_ref,
                topic,
                Event::Close,
                Payload::empty(),
            );
            return self.emit(&mut batch, close, Duration::ZERO).await;
        }
        let actions = {
            let req = EventRequest {
                socket: self.id,
                topic: &msg.topic,
                event: msg.event.as_str(),
                payload: &msg.payload,
                join_params: &chan.params,
                connect_params: &self.connect_params,
            };
            let handler = &chan.channel.event;
            catch_unwind(AssertUnwindSafe(|| handler(&req))).unwrap_or_else(|_| {
                log::warn!("test server: event handler panicked; crashing the channel");
                vec![Action::Crash]
            })
        };
        self.run_actions(msg.topic, msg.reference, actions).await
    }

    async fn join(&mut self, msg: Message) -> Outcome {
        let id = self.id;
        let topic = msg.topic.clone();
        let route = self
            .shared
            .cfg
            .routes
            .iter()
            .find(|r| r.pattern.matches(topic.as_str()))
            .map(|r| r.channel.clone());
        let Some(channel) = route else {
            self.shared
                .with_state(|s| s.push_event(ServerEvent::JoinRefused(id, topic.clone())));
            let r = reply(
                None,
                msg.reference,
                topic,
                ReplyStatus::Error,
                Payload::Json(json!({"reason": "unmatched topic"})),
            );
            return self.emit_reply(&mut None, r, Duration::ZERO).await;
        };
        let cap = self.shared.cfg.max_channels;
        if self.channels.len() >= cap && !self.channels.contains_key(&topic) {
            self.shared
                .with_state(|s| s.push_event(ServerEvent::JoinRefused(id, topic.clone())));
            let r = reply(
                msg.join_ref,
                msg.reference,
                topic,
                ReplyStatus::Error,
                Payload::Json(json!({"reason": "too many channels joined"})),
            );
            return self.emit_reply(&mut None, r, Duration::ZERO).await;
        }
        let outcome = {
            let req = JoinRequest {
                socket: id,
                topic: &topic,
                params: &msg.payload,
                connect_params: &self.connect_params,
            };
            let handler = &channel.join;
            catch_unwind(AssertUnwindSafe(|| handler(&req))).unwrap_or_else(|_| {
                log::warn!("test server: join handler panicked; replying join crashed");
                JoinOutcome::Crash
            })
        };
        // A duplicate join replaces the existing channel: Phoenix closes the old one,
        // and its phx_close reaches the client after the new join's reply.
        let old = self.channels.remove(&topic);
        if old.is_some() {
            self.tickers.retain(|t| t.topic != topic);
        }
        let mut batch = None;
        let mut then = Vec::new();
        let (status, response) = match outcome {
            JoinOutcome::Ok {
                response,
                then: actions,
            } => {
                then = actions;
                self.channels.insert(
                    topic.clone(),
                    Chan {
                        join_ref: msg.join_ref.clone(),
                        params: msg.payload,
                        channel,
                    },
                );
                let join_ref = msg.join_ref.clone();
                self.shared.with_state(|s| {
                    if old.is_some() {
                        s.push_event(ServerEvent::Left(id, topic.clone(), LeaveReason::Replaced));
                    }
                    if let Some(e) = s.sockets.get_mut(&id) {
                        e.info.channels.insert(topic.clone(), join_ref.clone());
                    }
                    s.push_event(ServerEvent::Joined(id, topic.clone(), join_ref));
                });
                (ReplyStatus::Ok, response)
            }
            JoinOutcome::Error(payload) => {
                self.refused_join(&topic, old.is_some());
                (ReplyStatus::Error, payload)
            }
            JoinOutcome::Crash => {
                self.refused_join(&topic, old.is_some());
                (
                    ReplyStatus::Error,
                    Payload::Json(json!({"reason": "join crashed"})),
                )
            }
        };
        let r = reply(msg.join_ref, msg.reference, topic.clone(), status, response);
        self.emit_reply(&mut batch, r, Duration::ZERO).await?;
        if let Some(old) = old {
            let close = Message::new(
                old.join_ref.clone(),
                old.join_ref,
                topic.clone(),
                Event::Close,
                Payload::empty(),
            );
            self.emit(&mut batch, close, Duration::ZERO).await?;
        }
        if !then.is_empty() {
            self.run_actions_in(batch, topic, None, then).await?;
        }
        Ok(())
    }

    fn refused_join(&mut self, topic: &Topic, replaced: bool) {
        let id = self.id;
        self.shared.with_state(|s| {
            if replaced {
                if let Some(e) = s.sockets.get_mut(&id) {
                    e.info.channels.remove(topic);
                }
                s.push_event(ServerEvent::Left(id, topic.clone(), LeaveReason::Replaced));
            }
            s.push_event(ServerEvent::JoinRefused(id, topic.clone()));
        });
    }

    /// Removes a channel (after a leave, crash or stop) and records it.
    fn end_channel(&mut self, topic: &Topic, reason: LeaveReason) {
        self.channels.remove(topic);
        self.tickers.retain(|t| &t.topic != topic);
        let id = self.id;
        self.shared.with_state(|s| {
            if let Some(e) = s.sockets.get_mut(&id) {
                e.info.channels.remove(topic);
            }
            s.push_event(ServerEvent::Left(id, topic.clone(), reason));
        });
    }

    async fn run_actions(
        &mut self,
        topic: Topic,
        reference: Option<Ref>,
        actions: Vec<Action>,
    ) -> Outcome {
        self.run_actions_in(None, topic, reference, actions).await
    }

    /// Runs a channel's actions in order. `batch` is the time the previous frame of
    /// this batch is scheduled at: later frames never overtake it.
    async fn run_actions_in(
        &mut self,
        mut batch: Option<Instant>,
        topic: Topic,
        reference: Option<Ref>,
        actions: Vec<Action>,
    ) -> Outcome {
        let mut offset = Duration::ZERO;
        for action in actions {
            let Some(chan) = self.channels.get(&topic) else {
                break;
            };
            let join_ref = chan.join_ref.clone();
            match action {
                Action::Reply { status, response } => {
                    let r = reply(join_ref, reference.clone(), topic.clone(), status, response);
                    self.emit_reply(&mut batch, r, offset).await?;
                }
                Action::Push { event, payload } => {
                    let m =
                        Message::new(join_ref, None, topic.clone(), Event::from(event), payload);
                    self.emit(&mut batch, m, offset).await?;
                }
                Action::Broadcast { event, payload } => {
                    self.shared
                        .broadcast_local(Some(self.id), &topic, &event, &payload);
                    let m = Message::new(None, None, topic.clone(), Event::from(event), payload);
                    self.emit(&mut batch, m, offset).await?;
                }
                Action::BroadcastFrom { event, payload } => {
                    self.shared
                        .broadcast_local(Some(self.id), &topic, &event, &payload);
                }
                Action::Crash => {
                    self.end_channel(&topic, LeaveReason::Crashed);
                    let m = Message::new(
                        join_ref.clone(),
                        join_ref,
                        topic.clone(),
                        Event::Error,
                        Payload::empty(),
                    );
                    self.emit(&mut batch, m, offset).await?;
                    break;
                }
                Action::Stop => {
                    self.end_channel(&topic, LeaveReason::Stopped);
                    let m = Message::new(
                        join_ref.clone(),
                        join_ref,
                        topic.clone(),
                        Event::Close,
                        Payload::empty(),
                    );
                    self.emit(&mut batch, m, offset).await?;
                    break;
                }
                Action::Sleep(d) => offset = (offset + d).min(MAX_SLEEP),
                Action::Ticker { event, interval } => {
                    let interval = interval.max(Duration::from_millis(1));
                    self.tickers.push(Ticker {
                        topic: topic.clone(),
                        join_ref,
                        event,
                        interval,
                        next: Instant::now() + offset + interval,
                        n: 0,
                    });
                }
                Action::Flood { event, count, size } => {
                    let data = "x".repeat(size.min(MAX_FLOOD_SIZE));
                    for n in 1..=count.min(MAX_FLOOD_COUNT) {
                        let m = Message::new(
                            join_ref.clone(),
                            None,
                            topic.clone(),
                            Event::from(event.as_str()),
                            Payload::Json(json!({ "n": n, "data": data })),
                        );
                        self.emit(&mut batch, m, offset).await?;
                    }
                }
                Action::CloseSocket(code) => return self.close(code).await,
            }
        }
        Ok(())
    }

    /// Emits a reply, adding the server's reply delay.
    async fn emit_reply(
        &mut self,
        batch: &mut Option<Instant>,
        msg: Message,
        offset: Duration,
    ) -> Outcome {
        let delay = self.shared.with_state_quiet(|s| s.faults.reply_delay);
        self.emit(batch, msg, offset + delay).await
    }

    /// Sends a frame now, or schedules it after `delay`, never before the previous
    /// frame of the batch.
    async fn emit(
        &mut self,
        batch: &mut Option<Instant>,
        msg: Message,
        delay: Duration,
    ) -> Outcome {
        let mut at = (!delay.is_zero()).then(|| Instant::now() + delay);
        if let Some(floor) = *batch {
            at = Some(at.map_or(floor, |a| a.max(floor)));
        }
        match at {
            None => self.send_now(&msg).await,
            Some(at) => {
                *batch = Some(at);
                if self.delayed.len() >= MAX_DELAYED {
                    log::warn!(
                        "test server: {} has {MAX_DELAYED} delayed frames; dropping one",
                        self.id
                    );
                    return Ok(());
                }
                self.delayed_seq += 1;
                self.delayed.insert((at, self.delayed_seq), msg);
                Ok(())
            }
        }
    }

    async fn send_now(&mut self, msg: &Message) -> Outcome {
        let frame = match self.serializer.encode_server(msg) {
            Ok(f) => f,
            Err(e) => {
                log::warn!(
                    "test server: {} cannot encode {} on {}: {e}",
                    self.id,
                    msg.event,
                    msg.topic
                );
                return Ok(());
            }
        };
        let send_timeout = self.shared.cfg.send_timeout;
        let sent = match frame {
            Frame::Text(t) => tokio::time::timeout(send_timeout, self.session.text(t)).await,
            Frame::Binary(b) => tokio::time::timeout(send_timeout, self.session.binary(b)).await,
        };
        match sent {
            Err(_) => Err(DisconnectReason::SendTimeout),
            Ok(Err(_)) => Err(DisconnectReason::ConnectionLost),
            Ok(Ok(())) => {
                let id = self.id;
                self.shared.with_state_quiet(|s| {
                    s.counters.frames_sent += 1;
                    if let Some(e) = s.sockets.get_mut(&id) {
                        e.info.frames_sent += 1;
                    }
                });
                Ok(())
            }
        }
    }

    async fn close(&mut self, code: u16) -> Outcome {
        let reason = CloseReason {
            code: CloseCode::from(code),
            description: None,
        };
        let send_timeout = self.shared.cfg.send_timeout;
        let _ = tokio::time::timeout(send_timeout, self.session.clone().close(Some(reason))).await;
        Err(DisconnectReason::ServerClosed(code))
    }
}

fn reply(
    join_ref: Option<Ref>,
    reference: Option<Ref>,
    topic: Topic,
    status: ReplyStatus,
    response: Payload,
) -> Message {
    Message::new(join_ref, reference, topic, Event::Reply(status), response)
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
