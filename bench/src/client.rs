//! `client`: one scenario run with actix-slipstream in this process, printing one JSON
//! result line (and `{"event": ...}` lines for the driver while it runs).
//!
//! The protocol shared with the peers (bench/peers/) is described in
//! docs/performance.md: arguments, the `ready` / `detected` event lines, the marks
//! the driver writes on stdin, and the result fields.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_slipstream::{
    AfterDisconnect, Client, ClientExt, Config, DisconnectReason, Event, Join, Payload, PushError,
    Ref, Reply, SlipstreamActor, Socket, Topic,
};
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::util::{
    anon_kib, cpu_seconds, emit, epoch_ms, median, percentile, r3, raise_nofile_limit, rss_kib,
    voluntary_switches, wait_until, Marks, Opts,
};

/// The topic the single-socket scenarios use.
const TOPIC: &str = "room:bench";
/// The longest any scenario may take before it gives up and reports an error.
const DEADLINE: Duration = Duration::from_secs(600);

pub fn main(opts: &Opts) -> Result<(), String> {
    raise_nofile_limit();
    let scenario = opts
        .str("scenario")
        .ok_or("--scenario is required")?
        .to_owned();
    let url = opts.str("url").ok_or("--url is required")?.to_owned();
    let opts = opts.clone();
    let system = actix_rt::System::new();
    let result = system.block_on(async move {
        let run = async {
            match scenario.as_str() {
                "echo" => echo(&url, &opts).await,
                "flood" => flood(&url, &opts).await,
                "memory" => memory(&url, &opts).await,
                "rejoin" => rejoin(&url, &opts).await,
                "heartbeat" => heartbeat(&url, &opts).await,
                "reconnect-spread" => reconnect_spread(&url, &opts).await,
                "memory-slope" => memory_slope(&url, &opts).await,
                "scale" => scale(&url, &opts).await,
                "rejoin-storm" => rejoin_storm(&url, &opts).await,
                other => Err(format!("unknown scenario {other:?}")),
            }
        };
        match tokio::time::timeout(DEADLINE, run).await {
            Ok(r) => r,
            Err(_) => Err(format!("scenario did not finish within {DEADLINE:?}")),
        }
    });
    match result {
        Ok(mut v) => {
            v["client"] = json!("slipstream");
            emit(&v);
            Ok(())
        }
        Err(e) => {
            emit(&json!({"client": "slipstream", "error": e}));
            Err(e)
        }
    }
}

/// The client's configuration in every scenario. `BENCH_COALESCE_READS=0` in the
/// environment turns read coalescing off (to compare with and without it).
fn config(url: &str) -> Config {
    let coalesce = std::env::var("BENCH_COALESCE_READS").map_or(true, |v| v != "0");
    Config::new(url)
        .param("token", "bench")
        .push_timeout(Duration::from_secs(120))
        .join_timeout(Duration::from_secs(60))
        .connect_timeout(Duration::from_secs(30))
        .coalesce_reads(coalesce)
}

fn event_line(event: &str) {
    emit(&json!({ "event": event }));
}

// ------------------------------------------------------------------------ echo

/// Echo driven from inside the actor: `socket.push` and `handle_reply`, no mailbox.
struct Echo {
    total: u64,
    inflight: u64,
    sent: u64,
    received: u64,
    errors: u64,
    done: Option<oneshot::Sender<()>>,
}

impl Echo {
    fn push_next(&mut self, socket: &mut Socket<'_, Self>) {
        let n = self.sent;
        self.sent += 1;
        if socket.push(TOPIC, "echo", json!({ "n": n })).is_err() {
            self.errors += 1;
            self.received += 1;
        }
    }
}

impl SlipstreamActor for Echo {
    fn handle_reply(
        &mut self,
        _topic: &Topic,
        _reference: &Ref,
        result: Result<Reply, PushError>,
        socket: &mut Socket<'_, Self>,
    ) {
        self.received += 1;
        if !result.is_ok_and(|r| r.is_ok()) {
            self.errors += 1;
        }
        if self.sent < self.total {
            self.push_next(socket);
        }
        if self.received >= self.total {
            if let Some(done) = self.done.take() {
                let _ = done.send(());
            }
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct StartEcho(oneshot::Sender<()>);

impl Handler<StartEcho> for Client<Echo> {
    type Result = ();
    fn handle(&mut self, msg: StartEcho, ctx: &mut Self::Context) {
        self.with_socket(ctx, |echo, socket| {
            echo.done = Some(msg.0);
            let first = echo.inflight.min(echo.total);
            for _ in 0..first {
                echo.push_next(socket);
            }
        });
    }
}

#[derive(Message)]
#[rtype(result = "(u64, u64)")]
struct EchoCounts;

impl Handler<EchoCounts> for Client<Echo> {
    type Result = MessageResult<EchoCounts>;
    fn handle(&mut self, _: EchoCounts, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult((self.user().received, self.user().errors))
    }
}

async fn echo(url: &str, opts: &Opts) -> Result<Value, String> {
    let total: u64 = opts.num("n", 10_000)?;
    let inflight: u64 = opts.num("inflight", 100)?.max(1);
    let via = opts.str("via").unwrap_or("socket").to_owned();
    // Room for every push in flight at once (bytes of encoded frames).
    let send_buffer = (inflight as usize * 256).max(4 * 1024 * 1024);
    let cfg = config(url).send_buffer(send_buffer);
    let actor = Echo {
        total,
        inflight,
        sent: 0,
        received: 0,
        errors: 0,
        done: None,
    };
    let addr = Client::new(actor, cfg).start();
    addr.join(TOPIC, json!({}))
        .await
        .map_err(|e| format!("join: {e}"))?;
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    let (received, errors) = match via.as_str() {
        "socket" => {
            let (tx, rx) = oneshot::channel();
            addr.send(StartEcho(tx)).await.map_err(|e| e.to_string())?;
            rx.await.map_err(|e| e.to_string())?;
            addr.send(EchoCounts).await.map_err(|e| e.to_string())?
        }
        "ext" => {
            // K concurrent tasks, each awaiting ClientExt::push (mailbox + oneshot per push).
            let next = Rc::new(Cell::new(0u64));
            let errors = Rc::new(Cell::new(0u64));
            let workers = (0..inflight.min(total)).map(|_| {
                let (addr, next, errors) = (addr.clone(), next.clone(), errors.clone());
                async move {
                    loop {
                        let n = next.get();
                        if n >= total {
                            break;
                        }
                        next.set(n + 1);
                        match addr.push(TOPIC, "echo", json!({ "n": n })).await {
                            Ok(r) if r.is_ok() => {}
                            _ => errors.set(errors.get() + 1),
                        }
                    }
                }
            });
            futures_util::future::join_all(workers).await;
            (total, errors.get())
        }
        other => return Err(format!("unknown --via {other:?} (socket or ext)")),
    };
    let (cpu, wall) = (cpu_seconds() - cpu0, t0.elapsed().as_secs_f64());
    Ok(json!({
        "scenario": "echo",
        "variant": via,
        "n": total,
        "inflight": inflight,
        "received": received,
        "errors": errors,
        "cpu_s": cpu,
        "wall_s": wall,
        "rss_kib": rss_kib(),
    }))
}

// ----------------------------------------------------------------------- flood

struct Flood {
    received: u64,
    done: Option<oneshot::Sender<Result<Reply, PushError>>>,
    /// The flood's reply, held until the echo pushed on its arrival is answered.
    flood_reply: Option<Result<Reply, PushError>>,
    /// When that echo was pushed, and its round trip (the wait a lone reply has right
    /// after a flood, while reads may still be coalesced).
    echo_sent: Option<Instant>,
    echo_after: Option<Duration>,
    /// Process CPU seconds when the flood's reply arrived (the flood's figures end there).
    cpu_at_reply: f64,
}

impl SlipstreamActor for Flood {
    fn handle_message(
        &mut self,
        _topic: &Topic,
        event: &Event,
        _payload: Payload,
        _socket: &mut Socket<'_, Self>,
    ) {
        if event.as_str() == "flooded" {
            self.received += 1;
        }
    }

    fn handle_reply(
        &mut self,
        _topic: &Topic,
        _reference: &Ref,
        result: Result<Reply, PushError>,
        socket: &mut Socket<'_, Self>,
    ) {
        match self.echo_sent {
            None => {
                // The flood's reply: push one echo at once and time its round trip.
                self.cpu_at_reply = cpu_seconds();
                self.flood_reply = Some(result);
                self.echo_sent = Some(Instant::now());
                if socket.push(TOPIC, "echo", json!({})).is_err() {
                    self.echo_after = None;
                    self.finish();
                }
            }
            Some(sent) => {
                self.echo_after = result.is_ok().then(|| sent.elapsed());
                self.finish();
            }
        }
    }
}

impl Flood {
    fn finish(&mut self) {
        if let (Some(done), Some(reply)) = (self.done.take(), self.flood_reply.take()) {
            let _ = done.send(reply);
        }
    }
}

#[derive(Message)]
#[rtype(result = "Result<(), String>")]
struct StartFlood {
    count: u64,
    size: u64,
    done: oneshot::Sender<Result<Reply, PushError>>,
}

impl Handler<StartFlood> for Client<Flood> {
    type Result = Result<(), String>;
    fn handle(&mut self, msg: StartFlood, ctx: &mut Self::Context) -> Self::Result {
        self.with_socket(ctx, |flood, socket| {
            flood.done = Some(msg.done);
            socket
                .push_with_timeout(
                    TOPIC,
                    "flood",
                    json!({"count": msg.count, "size": msg.size}),
                    Duration::from_secs(600),
                )
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
}

#[derive(Message)]
#[rtype(result = "(u64, Option<Duration>, Option<Instant>, f64)")]
struct FloodCount;

impl Handler<FloodCount> for Client<Flood> {
    type Result = MessageResult<FloodCount>;
    fn handle(&mut self, _: FloodCount, _ctx: &mut Self::Context) -> Self::Result {
        let f = self.user();
        MessageResult((f.received, f.echo_after, f.echo_sent, f.cpu_at_reply))
    }
}

async fn flood(url: &str, opts: &Opts) -> Result<Value, String> {
    let count: u64 = opts.num("count", 200_000)?;
    let size: u64 = opts.num("size", 92)?;
    let actor = Flood {
        received: 0,
        done: None,
        flood_reply: None,
        echo_sent: None,
        echo_after: None,
        cpu_at_reply: 0.0,
    };
    let addr = Client::new(actor, config(url)).start();
    addr.join(TOPIC, json!({}))
        .await
        .map_err(|e| format!("join: {e}"))?;
    let before = addr.status().await.map_err(|e| e.to_string())?.traffic;
    let (cpu0, t0, sw0) = (cpu_seconds(), Instant::now(), voluntary_switches());
    let (tx, rx) = oneshot::channel();
    addr.send(StartFlood {
        count,
        size,
        done: tx,
    })
    .await
    .map_err(|e| e.to_string())??;
    let reply = rx.await.map_err(|e| e.to_string())?;
    let switches = voluntary_switches() - sw0;
    let (received, echo_after, reply_at, cpu_at_reply) =
        addr.send(FloodCount).await.map_err(|e| e.to_string())?;
    // The flood ends with its reply (not with the echo pushed after it).
    let reply_at = reply_at.ok_or("no flood reply")?;
    let (cpu, wall) = (
        cpu_at_reply - cpu0,
        reply_at.duration_since(t0).as_secs_f64(),
    );
    let after = addr.status().await.map_err(|e| e.to_string())?.traffic;
    let reply = reply.map_err(|e| format!("flood reply: {e}"))?;
    let reply_count = reply
        .response
        .as_json()
        .and_then(|v| v.get("count"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let frames = after.frames_in - before.frames_in;
    let bytes = after.bytes_in - before.bytes_in;
    Ok(json!({
        "scenario": "flood",
        "count": count,
        "received": received,
        "reply_count": reply_count,
        "dropped": reply_count.saturating_sub(received),
        "ok": received == reply_count && reply_count == count,
        "frame_bytes": r3(bytes as f64 / frames.max(1) as f64),
        "frames_per_wakeup": r3(frames as f64 / switches.max(1) as f64),
        "cpu_s": cpu,
        "wall_s": wall,
        "msgs_per_s": received as f64 / wall,
        "echo_after_flood_ms": echo_after.map(|d| r3(d.as_secs_f64() * 1000.0)),
        "rss_kib": rss_kib(),
    }))
}

// ---------------------------------------------------------------------- memory

/// Joins its topics before connecting: they are sent as soon as the socket opens.
struct Member {
    topics: Vec<String>,
    joined: Rc<Cell<u64>>,
}

impl SlipstreamActor for Member {
    fn init(&mut self, socket: &mut Socket<'_, Self>) {
        for t in &self.topics {
            socket.join(t.as_str(), json!({}));
        }
        socket.connect();
    }

    fn handle_join(&mut self, _topic: &Topic, _response: &Payload, _socket: &mut Socket<'_, Self>) {
        self.joined.set(self.joined.get() + 1);
    }
}

async fn memory(url: &str, opts: &Opts) -> Result<Value, String> {
    let sockets: u64 = opts.num("sockets", 1000)?;
    let topics: u64 = opts.num("topics", 1)?;
    let settle = Duration::from_millis(opts.num("settle-ms", 500)?);
    let joined = Rc::new(Cell::new(0u64));
    // Let the runtime settle, then measure the baseline.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let rss0 = rss_kib();
    let t0 = Instant::now();
    let mut addrs = Vec::with_capacity(sockets as usize);
    for s in 0..sockets {
        let member = Member {
            topics: (0..topics).map(|t| format!("room:s{s}t{t}")).collect(),
            joined: joined.clone(),
        };
        addrs.push(Client::new(member, config(url)).start());
    }
    let want = sockets * topics;
    let all = wait_until(Duration::from_secs(300), Duration::from_millis(10), || {
        joined.get() >= want
    })
    .await;
    let join_s = t0.elapsed().as_secs_f64();
    if !all {
        return Err(format!("only {} of {want} joins succeeded", joined.get()));
    }
    tokio::time::sleep(settle).await;
    if std::env::var_os("BENCH_TRIM").is_some() {
        unsafe { libc::malloc_trim(0) };
    }
    let rss1 = rss_kib();
    Ok(json!({
        "scenario": "memory",
        "sockets": sockets,
        "topics": topics,
        "joined": joined.get(),
        "rss_before_kib": rss0,
        "rss_after_kib": rss1,
        "kib_per_socket": r3((rss1 - rss0) / sockets as f64),
        "connect_join_s": join_s,
        "alive": addrs.iter().filter(|a| a.connected()).count(),
    }))
}

// ---------------------------------------------------------------------- rejoin

/// Records, after each reopen, the time from `handle_connect` to every join reply.
struct Rejoiner {
    topics: Vec<String>,
    restarts: u64,
    cycle: u64,
    opened: Option<Instant>,
    joined_now: u64,
    first_ms: f64,
    results: Rc<RefCell<Vec<(f64, f64)>>>,
    done: Option<oneshot::Sender<()>>,
}

impl SlipstreamActor for Rejoiner {
    fn init(&mut self, socket: &mut Socket<'_, Self>) {
        for t in &self.topics {
            socket.join(t.as_str(), json!({}));
        }
        socket.connect();
    }

    fn handle_connect(&mut self, _socket: &mut Socket<'_, Self>) {
        self.opened = Some(Instant::now());
        self.joined_now = 0;
    }

    fn handle_join(&mut self, _topic: &Topic, _response: &Payload, _socket: &mut Socket<'_, Self>) {
        let ms = self
            .opened
            .map_or(f64::NAN, |t| t.elapsed().as_secs_f64() * 1000.0);
        self.joined_now += 1;
        if self.joined_now == 1 {
            self.first_ms = ms;
        }
        if self.joined_now == self.topics.len() as u64 {
            if self.cycle > 0 {
                self.results.borrow_mut().push((self.first_ms, ms));
            }
            self.cycle += 1;
            if self.cycle > self.restarts {
                if let Some(done) = self.done.take() {
                    let _ = done.send(());
                }
            } else {
                event_line("ready");
            }
        }
    }
}

async fn rejoin(url: &str, opts: &Opts) -> Result<Value, String> {
    let topics: u64 = opts.num("topics", 100)?;
    let restarts: u64 = opts.num("restarts", 20)?;
    let _marks = Marks::from_stdin();
    let results = Rc::new(RefCell::new(Vec::new()));
    let (tx, rx) = oneshot::channel();
    let actor = Rejoiner {
        topics: (0..topics).map(|t| format!("room:r{t}")).collect(),
        restarts,
        cycle: 0,
        opened: None,
        joined_now: 0,
        first_ms: f64::NAN,
        results: results.clone(),
        done: Some(tx),
    };
    let addr = Client::new(actor, config(url)).start();
    rx.await.map_err(|e| e.to_string())?;
    let status = addr.status().await.map_err(|e| e.to_string())?;
    let results = results.borrow();
    let last: Vec<f64> = results.iter().map(|r| r.1).collect();
    let first: Vec<f64> = results.iter().map(|r| r.0).collect();
    Ok(json!({
        "scenario": "rejoin",
        "topics": topics,
        "restarts": results.len(),
        "last_join_ms": last.iter().map(|x| r3(*x)).collect::<Vec<_>>(),
        "first_join_ms": first.iter().map(|x| r3(*x)).collect::<Vec<_>>(),
        "median_ms": r3(median(&last)),
        "max_ms": r3(percentile(&last, 100.0)),
        "connects": status.connects,
        "rejoins": status.rejoins,
    }))
}

// ------------------------------------------------------------------- heartbeat

struct Watcher {
    marks: Marks,
    trials: u64,
    detected: Rc<RefCell<Vec<f64>>>,
    reasons: Rc<RefCell<Vec<String>>>,
    done: Option<oneshot::Sender<()>>,
}

impl SlipstreamActor for Watcher {
    fn handle_connect(&mut self, _socket: &mut Socket<'_, Self>) {
        if (self.detected.borrow().len() as u64) < self.trials {
            event_line("ready");
        }
    }

    fn handle_disconnect(
        &mut self,
        reason: &DisconnectReason,
        default: AfterDisconnect,
        _socket: &mut Socket<'_, Self>,
    ) -> AfterDisconnect {
        let now = epoch_ms();
        if let Some(freeze) = self.marks.take("freeze") {
            self.reasons.borrow_mut().push(reason.kind().to_string());
            self.detected.borrow_mut().push(now - freeze);
            emit(&json!({"event": "detected", "reason": reason.kind().as_str()}));
            if self.detected.borrow().len() as u64 >= self.trials {
                if let Some(done) = self.done.take() {
                    let _ = done.send(());
                }
            }
        }
        default
    }
}

async fn heartbeat(url: &str, opts: &Opts) -> Result<Value, String> {
    let interval = Duration::from_millis(opts.num("interval-ms", 1000)?);
    let timeout = Duration::from_millis(opts.num("timeout-ms", 500)?);
    let trials: u64 = opts.num("trials", 5)?;
    let marks = Marks::from_stdin();
    let detected = Rc::new(RefCell::new(Vec::new()));
    let reasons = Rc::new(RefCell::new(Vec::new()));
    let (tx, rx) = oneshot::channel();
    let actor = Watcher {
        marks,
        trials,
        detected: detected.clone(),
        reasons: reasons.clone(),
        done: Some(tx),
    };
    let cfg = config(url).heartbeat(interval, timeout);
    let _addr = Client::new(actor, cfg).start();
    rx.await.map_err(|e| e.to_string())?;
    let d = detected.borrow();
    Ok(json!({
        "scenario": "heartbeat",
        "interval_ms": interval.as_millis() as u64,
        "timeout_ms": timeout.as_millis() as u64,
        "detect_ms": d.iter().map(|x| r3(*x)).collect::<Vec<_>>(),
        "reasons": *reasons.borrow(),
        "median_ms": r3(median(&d)),
        "max_ms": r3(percentile(&d, 100.0)),
        "bound_ms": (interval + timeout).as_millis() as u64,
    }))
}

// ------------------------------------------------------------ reconnect-spread

struct Spreader {
    connects: Rc<RefCell<Vec<f64>>>,
    /// When each client first saw the connection lost (epoch ms).
    lost: Rc<RefCell<Vec<f64>>>,
    first: bool,
    seen_loss: bool,
    initial: Rc<Cell<u64>>,
}

impl SlipstreamActor for Spreader {
    fn handle_connect(&mut self, _socket: &mut Socket<'_, Self>) {
        if self.first {
            self.first = false;
            self.initial.set(self.initial.get() + 1);
        } else {
            self.connects.borrow_mut().push(epoch_ms());
        }
    }

    fn handle_disconnect(
        &mut self,
        _reason: &DisconnectReason,
        default: AfterDisconnect,
        _socket: &mut Socket<'_, Self>,
    ) -> AfterDisconnect {
        if !self.first && !self.seen_loss {
            self.seen_loss = true;
            self.lost.borrow_mut().push(epoch_ms());
        }
        default
    }
}

async fn reconnect_spread(url: &str, opts: &Opts) -> Result<Value, String> {
    let clients: u64 = opts.num("clients", 1000)?;
    let marks = Marks::from_stdin();
    let connects = Rc::new(RefCell::new(Vec::new()));
    let lost = Rc::new(RefCell::new(Vec::new()));
    let initial = Rc::new(Cell::new(0u64));
    let mut addrs = Vec::new();
    for _ in 0..clients {
        let s = Spreader {
            connects: connects.clone(),
            lost: lost.clone(),
            first: true,
            seen_loss: false,
            initial: initial.clone(),
        };
        let addr = Client::new(s, config(url)).start();
        addr.do_send(Join::new(TOPIC, json!({})));
        addrs.push(addr);
    }
    if !wait_until(Duration::from_secs(120), Duration::from_millis(10), || {
        initial.get() >= clients
    })
    .await
    {
        return Err(format!("only {} of {clients} connected", initial.get()));
    }
    event_line("ready");
    let all = wait_until(Duration::from_secs(120), Duration::from_millis(10), || {
        connects.borrow().len() as u64 >= clients && marks.get("restart").is_some()
    })
    .await;
    let restart = marks
        .get("restart")
        .ok_or("no restart mark from the driver")?;
    let down = marks.get("down");
    let rel: Vec<f64> = connects.borrow().iter().map(|t| t - restart).collect();
    // When the clients noticed the loss, from the driver's `down` mark.
    let lost_rel: Vec<f64> = down
        .map(|d| lost.borrow().iter().map(|t| t - d).collect())
        .unwrap_or_default();
    Ok(json!({
        "scenario": "reconnect-spread",
        "clients": clients,
        "reconnected": rel.len(),
        "complete": all,
        "down_ms": down.map(|d| r3(restart - d)),
        "min_ms": r3(percentile(&rel, 0.0)),
        "p10_ms": r3(percentile(&rel, 10.0)),
        "p50_ms": r3(median(&rel)),
        "p90_ms": r3(percentile(&rel, 90.0)),
        "max_ms": r3(percentile(&rel, 100.0)),
        "histogram_25ms": histogram(&rel, 25.0),
        "lost_p10_ms": r3(percentile(&lost_rel, 10.0)),
        "lost_p50_ms": r3(median(&lost_rel)),
        "lost_p90_ms": r3(percentile(&lost_rel, 90.0)),
        "lost_max_ms": r3(percentile(&lost_rel, 100.0)),
    }))
}

/// Counts per `width`-ms bucket, keyed by the bucket's start.
fn histogram(values: &[f64], width: f64) -> Value {
    let mut buckets = std::collections::BTreeMap::<i64, u64>::new();
    for v in values {
        *buckets.entry((v / width).floor() as i64).or_default() += 1;
    }
    Value::Object(
        buckets
            .into_iter()
            .map(|(b, n)| (format!("{}", b as f64 * width), json!(n)))
            .collect(),
    )
}

// ---------------------------------------------------------------- memory-slope

/// RSS and anonymous memory now, in KiB.
fn mem_now() -> (f64, f64) {
    (rss_kib(), anon_kib())
}

/// Waits until `joined` reaches `want`, then `settle`; the memory then.
async fn joined_then_measure(
    joined: &Rc<Cell<u64>>,
    want: u64,
    settle: Duration,
) -> Result<(f64, f64), String> {
    if !wait_until(Duration::from_secs(300), Duration::from_millis(10), || {
        joined.get() >= want
    })
    .await
    {
        return Err(format!("only {} of {want} joins succeeded", joined.get()));
    }
    tokio::time::sleep(settle).await;
    Ok(mem_now())
}

fn start_members(
    url: &str,
    range: std::ops::Range<u64>,
    joined: &Rc<Cell<u64>>,
    addrs: &mut Vec<Addr<Client<Member>>>,
) {
    for s in range {
        let member = Member {
            topics: vec![format!("room:s{s}t0")],
            joined: joined.clone(),
        };
        addrs.push(Client::new(member, config(url)).start());
    }
}

/// Marginal memory in one process: 100 sockets × 1 topic (A), the same 100 sockets ×
/// 10 topics (B), 900 more sockets × 1 topic (C), those 900 × 10 topics (D).
/// Per socket = (C − B) / 900; per topic at 100 sockets = (B − A) / 900 joins; per
/// topic at 1000 sockets = (D − C) / 8100 joins. RSS and RssAnon alike.
async fn memory_slope(url: &str, opts: &Opts) -> Result<Value, String> {
    let (small, large): (u64, u64) = (
        opts.num("sockets-from", 100)?,
        opts.num("sockets-to", 1000)?,
    );
    let topics: u64 = opts.num("topics", 10)?;
    if small == 0 || large <= small || topics < 2 {
        return Err("need 0 < sockets-from < sockets-to and topics ≥ 2".into());
    }
    let settle = Duration::from_millis(opts.num("settle-ms", 500)?);
    let joined = Rc::new(Cell::new(0u64));
    let mut addrs = Vec::with_capacity(large as usize);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let m0 = mem_now();
    start_members(url, 0..small, &joined, &mut addrs);
    let mut want = small;
    let a = joined_then_measure(&joined, want, settle).await?;
    let join_more = |addrs: &[Addr<Client<Member>>], from: u64| {
        for (i, addr) in addrs.iter().enumerate() {
            let s = from + i as u64;
            for t in 1..topics {
                addr.do_send(Join::new(format!("room:s{s}t{t}"), json!({})));
            }
        }
    };
    join_more(&addrs, 0);
    want += small * (topics - 1);
    let b = joined_then_measure(&joined, want, settle).await?;
    start_members(url, small..large, &joined, &mut addrs);
    want += large - small;
    let c = joined_then_measure(&joined, want, settle).await?;
    join_more(&addrs[small as usize..], small);
    want += (large - small) * (topics - 1);
    let d = joined_then_measure(&joined, want, settle).await?;
    let per = |x: f64, y: f64, n: u64| r3((y - x) / n as f64);
    let new_sockets = large - small;
    Ok(json!({
        "scenario": "memory-slope",
        "sockets_from": small,
        "sockets_to": large,
        "topics": topics,
        "rss_kib": [m0.0, a.0, b.0, c.0, d.0],
        "anon_kib": [m0.1, a.1, b.1, c.1, d.1],
        "rss_per_socket_kib": per(b.0, c.0, new_sockets),
        "anon_per_socket_kib": per(b.1, c.1, new_sockets),
        "rss_per_topic_small_kib": per(a.0, b.0, small * (topics - 1)),
        "anon_per_topic_small_kib": per(a.1, b.1, small * (topics - 1)),
        "rss_per_topic_large_kib": per(c.0, d.0, new_sockets * (topics - 1)),
        "anon_per_topic_large_kib": per(c.1, d.1, new_sockets * (topics - 1)),
        "alive": addrs.iter().filter(|a| a.connected()).count(),
    }))
}

// ----------------------------------------------------------------------- scale

/// Many sockets (10 000) with one topic each: connect+join time, memory, and the CPU
/// the process uses per second once all are joined and only heartbeats flow.
async fn scale(url: &str, opts: &Opts) -> Result<Value, String> {
    let sockets: u64 = opts.num("sockets", 10_000)?;
    let idle = Duration::from_secs(opts.num("idle-s", 30)?);
    let settle = Duration::from_millis(opts.num("settle-ms", 1000)?);
    let joined = Rc::new(Cell::new(0u64));
    let mut addrs = Vec::with_capacity(sockets as usize);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let m0 = mem_now();
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    start_members(url, 0..sockets, &joined, &mut addrs);
    if !wait_until(Duration::from_secs(300), Duration::from_millis(10), || {
        joined.get() >= sockets
    })
    .await
    {
        return Err(format!("only {} of {sockets} joined", joined.get()));
    }
    let (join_s, join_cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
    tokio::time::sleep(settle).await;
    let m1 = mem_now();
    let cpu1 = cpu_seconds();
    tokio::time::sleep(idle).await;
    let idle_cpu = cpu_seconds() - cpu1;
    let alive = addrs.iter().filter(|a| a.connected()).count();
    let mut frames_out = 0u64;
    let mut connects = 0u64;
    // A sample of the sockets' status (all of them would take long with 10 000).
    for a in addrs.iter().take(100) {
        if let Ok(st) = a.status().await {
            frames_out += st.traffic.frames_out;
            connects += st.connects;
        }
    }
    Ok(json!({
        "scenario": "scale",
        "sockets": sockets,
        "joined": joined.get(),
        "connect_join_s": join_s,
        "connect_join_cpu_s": join_cpu,
        "rss_per_socket_kib": r3((m1.0 - m0.0) / sockets as f64),
        "anon_per_socket_kib": r3((m1.1 - m0.1) / sockets as f64),
        "rss_kib": m1.0,
        "idle_s": idle.as_secs_f64(),
        "idle_cpu_ms_per_s": r3(idle_cpu * 1000.0 / idle.as_secs_f64()),
        "alive": alive,
        "sample_frames_out": frames_out,
        "sample_connects": connects,
    }))
}

// ---------------------------------------------------------------- rejoin-storm

/// One socket of the storm: joins its topics, and after each reconnect records when
/// the last of them is joined again.
struct Stormer {
    topics: Vec<String>,
    joined_now: usize,
    cycle: u64,
    initial: Rc<Cell<u64>>,
    reconnected: Rc<RefCell<Vec<f64>>>,
    back: Rc<RefCell<Vec<f64>>>,
}

impl SlipstreamActor for Stormer {
    fn init(&mut self, socket: &mut Socket<'_, Self>) {
        for t in &self.topics {
            socket.join(t.as_str(), json!({}));
        }
        socket.connect();
    }

    fn handle_connect(&mut self, _socket: &mut Socket<'_, Self>) {
        self.joined_now = 0;
        if self.cycle > 0 {
            self.reconnected.borrow_mut().push(epoch_ms());
        }
    }

    fn handle_join(&mut self, _topic: &Topic, _response: &Payload, _socket: &mut Socket<'_, Self>) {
        self.joined_now += 1;
        if self.joined_now == self.topics.len() {
            if self.cycle == 0 {
                self.initial.set(self.initial.get() + 1);
            } else {
                self.back.borrow_mut().push(epoch_ms());
            }
            self.cycle += 1;
        }
    }
}

/// 1000 sockets × 10 topics; the driver restarts the server (marks `down` and
/// `restart`); the distribution of the times from `restart` until each socket has all
/// its topics back.
async fn rejoin_storm(url: &str, opts: &Opts) -> Result<Value, String> {
    let sockets: u64 = opts.num("sockets", 1000)?;
    let topics: u64 = opts.num("topics", 10)?;
    let marks = Marks::from_stdin();
    let initial = Rc::new(Cell::new(0u64));
    let reconnected = Rc::new(RefCell::new(Vec::new()));
    let back = Rc::new(RefCell::new(Vec::new()));
    let mut addrs = Vec::with_capacity(sockets as usize);
    for s in 0..sockets {
        let st = Stormer {
            topics: (0..topics).map(|t| format!("room:s{s}t{t}")).collect(),
            joined_now: 0,
            cycle: 0,
            initial: initial.clone(),
            reconnected: reconnected.clone(),
            back: back.clone(),
        };
        addrs.push(Client::new(st, config(url)).start());
    }
    if !wait_until(Duration::from_secs(300), Duration::from_millis(10), || {
        initial.get() >= sockets
    })
    .await
    {
        return Err(format!(
            "only {} of {sockets} sockets joined",
            initial.get()
        ));
    }
    event_line("ready");
    let complete = wait_until(Duration::from_secs(120), Duration::from_millis(10), || {
        back.borrow().len() as u64 >= sockets && marks.get("restart").is_some()
    })
    .await;
    let restart = marks
        .get("restart")
        .ok_or("no restart mark from the driver")?;
    let rel = |v: &[f64]| v.iter().map(|t| t - restart).collect::<Vec<f64>>();
    let back_ms = rel(&back.borrow());
    let conn_ms = rel(&reconnected.borrow());
    Ok(json!({
        "scenario": "rejoin-storm",
        "sockets": sockets,
        "topics": topics,
        "complete": complete,
        "back": back_ms.len(),
        "down_ms": marks.get("down").map(|d| r3(restart - d)),
        "min_ms": r3(percentile(&back_ms, 0.0)),
        "p10_ms": r3(percentile(&back_ms, 10.0)),
        "p50_ms": r3(median(&back_ms)),
        "p90_ms": r3(percentile(&back_ms, 90.0)),
        "max_ms": r3(percentile(&back_ms, 100.0)),
        "connect_p50_ms": r3(median(&conn_ms)),
        "connect_max_ms": r3(percentile(&conn_ms, 100.0)),
        "histogram_100ms": histogram(&back_ms, 100.0),
    }))
}
