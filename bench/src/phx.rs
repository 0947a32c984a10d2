//! `serve --mode phoenix`: a server that answers the way a Phoenix node does.
//!
//! The bundled test server (`--mode fast`) handles a channel's messages inside the
//! socket's task and sends its frames in bursts. A Phoenix node runs a process per
//! socket and one per channel: the socket process decodes each frame and forwards it
//! to the channel's process, the channel handles it and sends its reply (or pushes)
//! back to the socket process, which writes every frame with a write of its own.
//! This server has the same shape on tokio + tokio-tungstenite:
//!
//! - a task per socket: reads and decodes frames, answers heartbeats, starts channel
//!   tasks on `phx_join` and waits for their join result (a synchronous call, like
//!   Phoenix's socket process), forwards every other message to the channel's task,
//!   and writes what the channel tasks send back, one write (and flush) per frame;
//! - a task per joined channel: handles `echo`, `flood`, `push_me`, `error_reply`,
//!   `noreply`, `phx_leave` (reply, then the socket writes `phx_close`), and sends its
//!   frames to the socket's writer through a bounded queue after its own turn;
//! - frames in Phoenix's order and byte for byte as the recorded 1.7.24 server sends
//!   them (`{"response": ..., "status": ...}` replies, `[jr, null, topic, event, payload]`
//!   pushes, `phx_close` after a leave's reply and after a duplicate join's reply);
//! - SIGTERM closes every socket with 1012 (as Phoenix does on shutdown).
//!
//! The knobs (`--threads`, `--msg-work-us`, `--push-work-us`, `--frame-work-us`, `--write-batch`,
//! `--sndbuf`, `--rcvbuf`, `--read-size`) are documented in docs/performance.md; their
//! defaults are the calibrated values.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Map, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::serve::Stats;
use crate::util::Opts;

/// Frames a channel task may queue for its socket's writer before it waits.
const OUT_QUEUE: usize = 1024;
/// Messages the socket task may queue for one channel task before it waits
/// (while waiting it keeps writing, so the two never block each other).
const CHAN_QUEUE: usize = 1024;
/// Connections served at once; more are closed right after the accept.
const MAX_CONNECTIONS: usize = 50_000;
/// Channels one socket may join (Phoenix's `max_channels_per_transport` is 100; the
/// bench joins up to 100 per socket).
const MAX_CHANNELS: usize = 1000;
/// The largest message accepted from a client.
const MAX_MESSAGE: usize = 1 << 20;
/// How long a write (or the websocket handshake) may take before the socket is dropped.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a graceful stop waits for the sockets to be closed.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Upper bounds of the flood event (as the test server's).
const MAX_FLOOD_COUNT: u64 = 10_000_000;
const MAX_FLOOD_SIZE: usize = 1 << 20;

/// The server's tunable behaviour (see docs/performance.md, "The Phoenix-like server").
#[derive(Clone, Debug)]
pub struct Knobs {
    /// Runtime worker threads (a Phoenix node on the reference machine ran 2 schedulers);
    /// 0 is a current-thread runtime.
    pub threads: usize,
    /// Busy work (µs of spinning) per message a channel task handles, standing for the
    /// channel process's decode/handle/encode and message passing.
    pub msg_work_us: u64,
    /// Busy work (µs) per message a channel pushes by itself (`flood`): a push from
    /// inside the channel costs less than a message from the client (no decode, no
    /// routing), so it has a knob of its own.
    pub push_work_us: u64,
    /// Busy work (µs) per frame the socket task writes, standing for the transport's
    /// framing and its `send` per frame.
    pub frame_work_us: u64,
    /// Write every queued frame, then flush once (instead of one write and flush per frame).
    pub write_batch: bool,
    /// SO_SNDBUF / SO_RCVBUF of accepted connections (unset: the kernel's defaults).
    pub sndbuf: Option<usize>,
    pub rcvbuf: Option<usize>,
    /// Bytes read from the socket per read.
    pub read_size: usize,
}

impl Knobs {
    pub fn from_opts(opts: &Opts) -> Result<Knobs, String> {
        let opt_usize = |k: &str| -> Result<Option<usize>, String> {
            opts.str(k)
                .map(|v| v.parse().map_err(|_| format!("--{k}: not a number: {v:?}")))
                .transpose()
        };
        Ok(Knobs {
            threads: opts.num("threads", 2)?,
            msg_work_us: opts.num("msg-work-us", 30)?,
            push_work_us: opts.num("push-work-us", 0)?,
            frame_work_us: opts.num("frame-work-us", 0)?,
            write_batch: opts.flag("write-batch"),
            sndbuf: opt_usize("sndbuf")?,
            rcvbuf: opt_usize("rcvbuf")?,
            read_size: opts.num("read-size", 128 * 1024)?.clamp(512, 4 << 20),
        })
    }

    fn ws_config(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(self.read_size)
            .write_buffer_size(if self.write_batch { 128 * 1024 } else { 0 })
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE))
    }
}

/// Spins for `us` microseconds (a stand-in for work; sleeping is far coarser).
fn work(us: u64) {
    if us == 0 {
        return;
    }
    let until = Instant::now() + Duration::from_micros(us);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// Runs the server until SIGTERM/SIGINT; `on_listen` is called once it listens.
pub fn run(
    port: u16,
    knobs: Knobs,
    stats: Arc<Stats>,
    on_listen: impl FnOnce(u16),
) -> Result<(), String> {
    let rt = if knobs.threads == 0 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(knobs.threads)
            .enable_all()
            .build()
    }
    .map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
        let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
        let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
        socket.set_reuseaddr(true).map_err(|e| e.to_string())?;
        socket
            .bind(([127, 0, 0, 1], port).into())
            .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
        let listener = socket.listen(4096).map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        stats.listening();
        on_listen(port);
        let (stop_tx, stop_rx) = watch::channel(false);
        let live = Arc::new(AtomicUsize::new(0));
        let knobs = Arc::new(knobs);
        let writer = stats.clone().spawn_writer();
        tokio::select! {
            _ = accept_loop(listener, knobs, stats.clone(), stop_rx, live.clone()) => {}
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        // Graceful stop: every socket closes with 1012, then the process ends.
        let _ = stop_tx.send(true);
        let deadline = Instant::now() + CLOSE_GRACE;
        while live.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        writer.abort();
        stats.write_file();
        Ok(())
    })
}

async fn accept_loop(
    listener: TcpListener,
    knobs: Arc<Knobs>,
    stats: Arc<Stats>,
    stop: watch::Receiver<bool>,
    live: Arc<AtomicUsize>,
) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and friends: wait a little rather than spin.
                eprintln!("phoenix-like server: accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        stats.accepted();
        if live.load(Ordering::Acquire) >= MAX_CONNECTIONS {
            continue; // dropped: closed at once
        }
        let _ = stream.set_nodelay(true);
        let sock = socket2::SockRef::from(&stream);
        if let Some(n) = knobs.sndbuf {
            let _ = sock.set_send_buffer_size(n);
        }
        if let Some(n) = knobs.rcvbuf {
            let _ = sock.set_recv_buffer_size(n);
        }
        live.fetch_add(1, Ordering::AcqRel);
        let (knobs, stop, live) = (knobs.clone(), stop.clone(), live.clone());
        tokio::spawn(async move {
            if let Err(e) = serve_connection(stream, knobs, stop).await {
                eprintln!("phoenix-like server: connection: {e}");
            }
            live.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

/// The upgrade: `/socket/websocket` with a `token` param and `vsn=2.0.0`, else 403.
// The signature is tungstenite's handshake callback: its error is an HTTP response.
#[allow(clippy::result_large_err)]
fn check_request(req: &Request, resp: Response) -> Result<Response, ErrorResponse> {
    let query = req.uri().query().unwrap_or("");
    let params: Vec<(&str, &str)> = query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .collect();
    let ok = req.uri().path() == "/socket/websocket"
        && params.iter().any(|(k, _)| *k == "token")
        && params.iter().any(|(k, v)| *k == "vsn" && *v == "2.0.0");
    if ok {
        Ok(resp)
    } else {
        let mut e = ErrorResponse::new(None);
        *e.status_mut() = StatusCode::FORBIDDEN;
        Err(e)
    }
}

async fn serve_connection(
    stream: TcpStream,
    knobs: Arc<Knobs>,
    stop: watch::Receiver<bool>,
) -> Result<(), String> {
    let ws = tokio::time::timeout(
        IO_TIMEOUT,
        tokio_tungstenite::accept_hdr_async_with_config(
            stream,
            check_request,
            Some(knobs.ws_config()),
        ),
    )
    .await
    .map_err(|_| "handshake timed out".to_owned())?
    .map_err(|e| format!("handshake: {e}"))?;
    let (out_tx, out_rx) = mpsc::channel(OUT_QUEUE);
    let mut socket = SocketTask {
        ws,
        knobs,
        out_tx,
        out_rx,
        channels: HashMap::new(),
        next_channel: 0,
    };
    socket.run(stop).await
}

/// A message for a channel task.
enum ToChan {
    Event {
        reference: Option<String>,
        event: String,
        payload: Value,
    },
    Leave {
        reference: Option<String>,
    },
}

/// What a channel task sends its socket.
enum Out {
    /// An encoded frame to write.
    Frame(String),
    /// The channel ended after a leave: the socket writes `phx_close`.
    Left { id: u64, topic: String },
}

struct ChanHandle {
    id: u64,
    join_ref: Option<String>,
    tx: mpsc::Sender<ToChan>,
}

struct SocketTask {
    ws: WebSocketStream<TcpStream>,
    knobs: Arc<Knobs>,
    out_tx: mpsc::Sender<Out>,
    out_rx: mpsc::Receiver<Out>,
    channels: HashMap<String, ChanHandle>,
    next_channel: u64,
}

type Frame = (Option<String>, Option<String>, String, String, Value);

fn encode(
    join_ref: Option<&str>,
    reference: Option<&str>,
    topic: &str,
    event: &str,
    payload: &Value,
) -> String {
    // Serializing strings and JSON values cannot fail.
    serde_json::to_string(&(join_ref, reference, topic, event, payload)).unwrap_or_default()
}

fn reply_payload(status: &str, response: Value) -> Value {
    let mut m = Map::new();
    m.insert("response".into(), response);
    m.insert("status".into(), Value::String(status.into()));
    Value::Object(m)
}

fn reply(
    join_ref: Option<&str>,
    reference: Option<&str>,
    topic: &str,
    status: &str,
    r: Value,
) -> String {
    encode(
        join_ref,
        reference,
        topic,
        "phx_reply",
        &reply_payload(status, r),
    )
}

impl SocketTask {
    async fn run(&mut self, mut stop: watch::Receiver<bool>) -> Result<(), String> {
        loop {
            tokio::select! {
                biased;
                _ = stop.changed() => {
                    let close = CloseFrame { code: CloseCode::Restart, reason: "".into() };
                    let _ = tokio::time::timeout(IO_TIMEOUT, self.ws.close(Some(close))).await;
                    // Let the close frame leave before the socket is dropped.
                    let _ = tokio::time::timeout(Duration::from_millis(500), async {
                        while let Some(Ok(_)) = self.ws.next().await {}
                    }).await;
                    return Ok(());
                }
                out = self.out_rx.recv() => {
                    // The socket holds a sender itself: recv never returns None.
                    if let Some(out) = out {
                        self.write_out(out).await?;
                    }
                }
                msg = self.ws.next() => match msg {
                    None => return Ok(()),
                    Some(Err(e)) => return Err(format!("read: {e}")),
                    Some(Ok(Message::Text(t))) => {
                        match serde_json::from_str::<Frame>(t.as_str()) {
                            Ok(frame) => self.handle(frame).await?,
                            Err(e) => {
                                // Phoenix's socket process crashes on invalid JSON: 1011.
                                eprintln!("phoenix-like server: invalid frame: {e}");
                                let close = CloseFrame { code: CloseCode::Error, reason: "".into() };
                                let _ = tokio::time::timeout(IO_TIMEOUT, self.ws.close(Some(close))).await;
                                return Ok(());
                            }
                        }
                    }
                    Some(Ok(Message::Close(_))) => return Ok(()),
                    Some(Ok(_)) => {} // pings are answered by tungstenite; binary is not used
                },
            }
        }
    }

    async fn write_out(&mut self, out: Out) -> Result<(), String> {
        match out {
            Out::Frame(f) => self.write(f).await?,
            Out::Left { id, topic } => {
                if let Some(ch) = self.channels.get(&topic).filter(|c| c.id == id) {
                    let jr = ch.join_ref.clone();
                    self.channels.remove(&topic);
                    let close = encode(
                        jr.as_deref(),
                        jr.as_deref(),
                        &topic,
                        "phx_close",
                        &json!({}),
                    );
                    self.write(close).await?;
                }
            }
        }
        if self.knobs.write_batch {
            // Everything queued now goes out with the same flush.
            while let Ok(more) = self.out_rx.try_recv() {
                match more {
                    Out::Frame(f) => self.write(f).await?,
                    left @ Out::Left { .. } => return Box::pin(self.write_out(left)).await,
                }
            }
            tokio::time::timeout(IO_TIMEOUT, self.ws.flush())
                .await
                .map_err(|_| "flush timed out".to_owned())?
                .map_err(|e| format!("flush: {e}"))?;
        }
        Ok(())
    }

    /// Writes one frame: a write and a flush of its own (or only queued, with `write_batch`).
    async fn write(&mut self, frame: String) -> Result<(), String> {
        work(self.knobs.frame_work_us);
        let msg = Message::text(frame);
        let res = if self.knobs.write_batch {
            tokio::time::timeout(IO_TIMEOUT, self.ws.feed(msg)).await
        } else {
            tokio::time::timeout(IO_TIMEOUT, self.ws.send(msg)).await
        };
        res.map_err(|_| "write timed out".to_owned())?
            .map_err(|e| format!("write: {e}"))
    }

    async fn handle(
        &mut self,
        (join_ref, reference, topic, event, payload): Frame,
    ) -> Result<(), String> {
        if topic == "phoenix" && event == "heartbeat" {
            let r = reply(None, reference.as_deref(), &topic, "ok", json!({}));
            return self.write(r).await;
        }
        if event == "phx_join" {
            return self.join(join_ref, reference, topic, payload).await;
        }
        let Some(ch) = self.channels.get(&topic) else {
            let (status, response) = if event == "phx_leave" {
                ("ok", json!({}))
            } else {
                ("error", json!({"reason": "unmatched topic"}))
            };
            let r = reply(None, reference.as_deref(), &topic, status, response);
            return self.write(r).await;
        };
        let tx = ch.tx.clone();
        let msg = if event == "phx_leave" {
            ToChan::Leave { reference }
        } else {
            ToChan::Event {
                reference,
                event,
                payload,
            }
        };
        self.forward(&tx, msg).await
    }

    /// Hands a message to a channel task; while its queue is full, keeps writing.
    async fn forward(&mut self, tx: &mpsc::Sender<ToChan>, msg: ToChan) -> Result<(), String> {
        loop {
            tokio::select! {
                biased;
                permit = tx.reserve() => {
                    if let Ok(p) = permit {
                        p.send(msg);
                    } // else the channel has just ended: the message is dropped, as Phoenix does
                    return Ok(());
                }
                out = self.out_rx.recv() => {
                    if let Some(out) = out {
                        self.write_out(out).await?;
                    }
                }
            }
        }
    }

    /// `phx_join`: starts the channel's task and waits for its join (a call, as Phoenix's
    /// socket process makes), then writes the reply (and the replaced channel's `phx_close`).
    async fn join(
        &mut self,
        join_ref: Option<String>,
        reference: Option<String>,
        topic: String,
        params: Value,
    ) -> Result<(), String> {
        if !topic.starts_with("room:") {
            let r = reply(
                None,
                reference.as_deref(),
                &topic,
                "error",
                json!({"reason": "unmatched topic"}),
            );
            return self.write(r).await;
        }
        if self.channels.len() >= MAX_CHANNELS && !self.channels.contains_key(&topic) {
            let r = reply(
                join_ref.as_deref(),
                reference.as_deref(),
                &topic,
                "error",
                json!({"reason": "too many channels joined"}),
            );
            return self.write(r).await;
        }
        self.next_channel += 1;
        let id = self.next_channel;
        let (tx, rx) = mpsc::channel(CHAN_QUEUE);
        let (joined_tx, joined_rx) = oneshot::channel();
        let chan = ChannelTask {
            id,
            topic: topic.clone(),
            join_ref: join_ref.clone(),
            out: self.out_tx.clone(),
            knobs: self.knobs.clone(),
        };
        tokio::spawn(chan.run(rx, params, joined_tx));
        let response = tokio::time::timeout(IO_TIMEOUT, joined_rx)
            .await
            .ok()
            .and_then(Result::ok);
        let Some(response) = response else {
            let r = reply(
                join_ref.as_deref(),
                reference.as_deref(),
                &topic,
                "error",
                json!({"reason": "join crashed"}),
            );
            return self.write(r).await;
        };
        let old = self.channels.insert(
            topic.clone(),
            ChanHandle {
                id,
                join_ref: join_ref.clone(),
                tx,
            },
        );
        let r = reply(
            join_ref.as_deref(),
            reference.as_deref(),
            &topic,
            "ok",
            response,
        );
        self.write(r).await?;
        if let Some(old) = old {
            // Dropping its sender ends the replaced channel's task.
            let jr = old.join_ref.as_deref();
            self.write(encode(jr, jr, &topic, "phx_close", &json!({})))
                .await?;
        }
        Ok(())
    }
}

struct ChannelTask {
    id: u64,
    topic: String,
    join_ref: Option<String>,
    out: mpsc::Sender<Out>,
    knobs: Arc<Knobs>,
}

impl ChannelTask {
    async fn run(
        self,
        mut rx: mpsc::Receiver<ToChan>,
        params: Value,
        joined: oneshot::Sender<Value>,
    ) {
        work(self.knobs.msg_work_us);
        // The join's reply echoes the params (the recorded `room:*` channel).
        if joined.send(params).is_err() {
            return;
        }
        while let Some(msg) = rx.recv().await {
            work(self.knobs.msg_work_us);
            let more = match msg {
                ToChan::Leave { reference } => {
                    let r = self.reply(reference.as_deref(), "ok", json!({}));
                    let _ = self.out.send(Out::Frame(r)).await;
                    let _ = self
                        .out
                        .send(Out::Left {
                            id: self.id,
                            topic: self.topic.clone(),
                        })
                        .await;
                    false
                }
                ToChan::Event {
                    reference,
                    event,
                    payload,
                } => self.event(reference.as_deref(), &event, payload).await,
            };
            if !more {
                return;
            }
        }
    }

    fn reply(&self, reference: Option<&str>, status: &str, response: Value) -> String {
        reply(
            self.join_ref.as_deref(),
            reference,
            &self.topic,
            status,
            response,
        )
    }

    fn push(&self, event: &str, payload: &Value) -> String {
        encode(self.join_ref.as_deref(), None, &self.topic, event, payload)
    }

    /// Handles one event; false once the socket is gone.
    async fn event(&self, reference: Option<&str>, event: &str, payload: Value) -> bool {
        let frames = match event {
            "echo" => vec![self.reply(reference, "ok", payload)],
            "error_reply" => vec![self.reply(reference, "error", payload)],
            "noreply" => vec![],
            "push_me" => vec![self.push("pushed", &payload)],
            "flood" => {
                let count = payload
                    .get("count")
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
                    .min(MAX_FLOOD_COUNT);
                let size = payload
                    .get("size")
                    .and_then(Value::as_u64)
                    .map_or(0, |s| usize::try_from(s).unwrap_or(MAX_FLOOD_SIZE))
                    .min(MAX_FLOOD_SIZE);
                let data = "x".repeat(size);
                // One push per message, each its own frame, as `push/3` in a loop does.
                for n in 1..=count {
                    work(self.knobs.push_work_us);
                    let f = self.push("flooded", &json!({"n": n, "data": data}));
                    if self.out.send(Out::Frame(f)).await.is_err() {
                        return false;
                    }
                }
                vec![self.reply(reference, "ok", json!({ "count": count }))]
            }
            other => vec![self.reply(
                reference,
                "error",
                json!({"event": other, "reason": "unknown event"}),
            )],
        };
        for f in frames {
            if self.out.send(Out::Frame(f)).await.is_err() {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    //! The server's frames and their order, against the recorded Phoenix 1.7.24 server.
    use super::*;
    use tokio_tungstenite::client_async;

    type Client = WebSocketStream<TcpStream>;

    const WAIT: Duration = Duration::from_secs(10);

    /// A server on 127.0.0.1:0 with no work knobs; returns its port and stop switch.
    async fn server() -> (u16, watch::Sender<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (stop_tx, stop_rx) = watch::channel(false);
        let knobs = Arc::new(Knobs {
            threads: 1,
            msg_work_us: 0,
            push_work_us: 0,
            frame_work_us: 0,
            write_batch: false,
            sndbuf: None,
            rcvbuf: None,
            read_size: 4096,
        });
        let stats = Stats::new(None, "phoenix");
        stats.listening();
        let live = Arc::new(AtomicUsize::new(0));
        tokio::spawn(accept_loop(listener, knobs, stats, stop_rx, live));
        (port, stop_tx)
    }

    async fn connect(port: u16, query: &str) -> Result<Client, String> {
        let tcp = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        let url = format!("ws://127.0.0.1:{port}/socket/websocket?{query}");
        let (ws, _) = client_async(url, tcp).await.map_err(|e| e.to_string())?;
        Ok(ws)
    }

    async fn send(ws: &mut Client, text: &str) {
        tokio::time::timeout(WAIT, ws.send(Message::text(text)))
            .await
            .expect("send in time")
            .expect("send");
    }

    async fn recv(ws: &mut Client) -> Message {
        tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("a frame")
    }

    async fn recv_text(ws: &mut Client) -> String {
        match recv(ws).await {
            Message::Text(t) => t.as_str().to_owned(),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn frames_match_the_recorded_server() {
        let (port, _stop) = server().await;
        let mut ws = connect(port, "token=x&vsn=2.0.0").await.expect("connect");
        send(
            &mut ws,
            r#"["1","1","room:lobby","phx_join",{"hello":"world"}]"#,
        )
        .await;
        assert_eq!(
            recv_text(&mut ws).await,
            r#"["1","1","room:lobby","phx_reply",{"response":{"hello":"world"},"status":"ok"}]"#
        );
        send(
            &mut ws,
            r#"["1","2","room:lobby","echo",{"msg":"hi","n":1,"nested":{"a":[1,2]}}]"#,
        )
        .await;
        assert_eq!(
            recv_text(&mut ws).await,
            r#"["1","2","room:lobby","phx_reply",{"response":{"msg":"hi","n":1,"nested":{"a":[1,2]}},"status":"ok"}]"#
        );
        send(&mut ws, r#"["1","3","room:lobby","push_me",{"p":42}]"#).await;
        assert_eq!(
            recv_text(&mut ws).await,
            r#"["1",null,"room:lobby","pushed",{"p":42}]"#
        );
        send(&mut ws, r#"[null,"4","phoenix","heartbeat",{}]"#).await;
        assert_eq!(
            recv_text(&mut ws).await,
            r#"[null,"4","phoenix","phx_reply",{"response":{},"status":"ok"}]"#
        );
        // Leave: the channel's reply, then the socket's phx_close; then the topic is unmatched.
        send(&mut ws, r#"["1","5","room:lobby","phx_leave",{}]"#).await;
        assert_eq!(
            recv_text(&mut ws).await,
            r#"["1","5","room:lobby","phx_reply",{"response":{},"status":"ok"}]"#
        );
        assert_eq!(
            recv_text(&mut ws).await,
            r#"["1","1","room:lobby","phx_close",{}]"#
        );
        send(
            &mut ws,
            r#"["1","6","room:lobby","echo",{"after":"leave"}]"#,
        )
        .await;
        assert_eq!(
            recv_text(&mut ws).await,
            r#"[null,"6","room:lobby","phx_reply",{"response":{"reason":"unmatched topic"},"status":"error"}]"#
        );
    }

    #[tokio::test]
    async fn a_duplicate_join_is_answered_before_the_old_channel_closes() {
        let (port, _stop) = server().await;
        let mut ws = connect(port, "token=x&vsn=2.0.0").await.expect("connect");
        send(&mut ws, r#"["1","1","room:lobby","phx_join",{"n":1}]"#).await;
        recv_text(&mut ws).await;
        send(&mut ws, r#"["3","3","room:lobby","phx_join",{"n":2}]"#).await;
        assert_eq!(
            recv_text(&mut ws).await,
            r#"["3","3","room:lobby","phx_reply",{"response":{"n":2},"status":"ok"}]"#
        );
        assert_eq!(
            recv_text(&mut ws).await,
            r#"["1","1","room:lobby","phx_close",{}]"#
        );
        send(&mut ws, r#"["3","4","room:lobby","echo",{"after":"dup"}]"#).await;
        assert_eq!(
            recv_text(&mut ws).await,
            r#"["3","4","room:lobby","phx_reply",{"response":{"after":"dup"},"status":"ok"}]"#
        );
    }

    #[tokio::test]
    async fn flood_pushes_every_message_then_replies_with_the_count() {
        let (port, _stop) = server().await;
        let mut ws = connect(port, "token=bench&vsn=2.0.0")
            .await
            .expect("connect");
        send(&mut ws, r#"["1","1","room:bench","phx_join",{}]"#).await;
        recv_text(&mut ws).await;
        send(
            &mut ws,
            r#"["1","2","room:bench","flood",{"count":300,"size":3}]"#,
        )
        .await;
        for n in 1..=300 {
            assert_eq!(
                recv_text(&mut ws).await,
                format!(r#"["1",null,"room:bench","flooded",{{"data":"xxx","n":{n}}}]"#)
            );
        }
        assert_eq!(
            recv_text(&mut ws).await,
            r#"["1","2","room:bench","phx_reply",{"response":{"count":300},"status":"ok"}]"#
        );
    }

    #[tokio::test]
    async fn a_connect_without_token_or_vsn_is_refused() {
        let (port, _stop) = server().await;
        let no_token = connect(port, "vsn=2.0.0").await;
        assert!(no_token.is_err_and(|e| e.contains("403")));
        let no_vsn = connect(port, "token=x").await;
        assert!(no_vsn.is_err_and(|e| e.contains("403")));
    }

    #[tokio::test]
    async fn a_graceful_stop_closes_every_socket_with_1012() {
        let (port, stop) = server().await;
        let mut a = connect(port, "token=x&vsn=2.0.0").await.expect("connect");
        let mut b = connect(port, "token=x&vsn=2.0.0").await.expect("connect");
        // Both sockets are served (a heartbeat answered) before the stop.
        for ws in [&mut a, &mut b] {
            send(ws, r#"[null,"1","phoenix","heartbeat",{}]"#).await;
            recv_text(ws).await;
        }
        stop.send(true)
            .expect("the server listens to its stop switch");
        for ws in [&mut a, &mut b] {
            match recv(ws).await {
                Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1012),
                other => panic!("expected close 1012, got {other:?}"),
            }
        }
    }
}
