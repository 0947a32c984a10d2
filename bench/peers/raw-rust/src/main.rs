//! Benchmark peer: Phoenix Channels V2 spoken by hand over tokio-tungstenite, with
//! serde_json. Same command line, driver protocol and JSON result line as
//! `slipstream-bench client` (see docs/performance.md in the actix-slipstream repo).
//!
//! raw-rust-peer --runtime current-thread|multi-thread --scenario S --url URL [options]
//!
//! Scenarios: echo, flood, memory, rejoin. Heartbeat and reconnect-spread are not
//! implemented (a raw client has neither): it prints `{"skipped": ...}` for them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Frame = (Option<String>, Option<String>, String, String, Value);
type Res<T> = Result<T, String>;

const TOPIC: &str = "room:bench";

struct Opts(HashMap<String, String>);

impl Opts {
    fn parse() -> Opts {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut map = HashMap::new();
        let mut i = 0;
        while i < args.len() {
            let key = args[i].trim_start_matches("--").to_owned();
            let value = args.get(i + 1).cloned().unwrap_or_default();
            map.insert(key, value);
            i += 2;
        }
        Opts(map)
    }
    fn str(&self, k: &str) -> &str {
        self.0.get(k).map(String::as_str).unwrap_or("")
    }
    fn num(&self, k: &str, default: u64) -> u64 {
        self.0
            .get(k)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct we hand it.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn rss_kib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(f64::NAN)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 0 => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        n => v[n / 2],
    }
}

fn encode(
    join_ref: Option<&str>,
    reference: &str,
    topic: &str,
    event: &str,
    payload: &Value,
) -> Message {
    Message::text(
        serde_json::to_string(&(join_ref, reference, topic, event, payload)).expect("encode"),
    )
}

fn decode(msg: &Message) -> Option<Frame> {
    match msg {
        Message::Text(t) => serde_json::from_slice(t.as_bytes()).ok(),
        _ => None,
    }
}

async fn connect(url: &str, read_buffer: Option<usize>) -> Res<Ws> {
    let url = format!("{url}/websocket?token=bench&vsn=2.0.0");
    let config = read_buffer.map(|n| {
        WebSocketConfig::default()
            .read_buffer_size(n)
            .write_buffer_size(0)
    });
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url.as_str(), config, true)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    Ok(ws)
}

/// Sends a join and waits for its reply.
async fn join(ws: &mut Ws, topic: &str, join_ref: &str) -> Res<()> {
    ws.send(encode(
        Some(join_ref),
        join_ref,
        topic,
        "phx_join",
        &json!({}),
    ))
    .await
    .map_err(|e| e.to_string())?;
    while let Some(m) = ws.next().await {
        let m = m.map_err(|e| e.to_string())?;
        if let Some((_, Some(r), _, ev, _)) = decode(&m) {
            if ev == "phx_reply" && r == join_ref {
                return Ok(());
            }
        }
    }
    Err("closed while joining".into())
}

fn reply_ok(payload: &Value) -> bool {
    payload.get("status").and_then(Value::as_str) == Some("ok")
}

async fn echo(url: &str, o: &Opts) -> Res<Value> {
    let total = o.num("n", 10_000);
    let inflight = o.num("inflight", 100).clamp(1, total.max(1));
    let mut ws = connect(url, None).await?;
    join(&mut ws, TOPIC, "1").await?;
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    let mut sent = 0u64;
    let (mut received, mut errors) = (0u64, 0u64);
    while sent < inflight {
        ws.feed(encode(
            Some("1"),
            &(sent + 2).to_string(),
            TOPIC,
            "echo",
            &json!({ "n": sent }),
        ))
        .await
        .map_err(|e| e.to_string())?;
        sent += 1;
    }
    ws.flush().await.map_err(|e| e.to_string())?;
    while received < total {
        let Some(m) = ws.next().await else {
            return Err("closed".into());
        };
        let m = m.map_err(|e| e.to_string())?;
        if let Some((_, Some(_), _, ev, payload)) = decode(&m) {
            if ev != "phx_reply" {
                continue;
            }
            received += 1;
            if !reply_ok(&payload) {
                errors += 1;
            }
            if sent < total {
                ws.send(encode(
                    Some("1"),
                    &(sent + 2).to_string(),
                    TOPIC,
                    "echo",
                    &json!({ "n": sent }),
                ))
                .await
                .map_err(|e| e.to_string())?;
                sent += 1;
            }
        }
    }
    let (cpu, wall) = (cpu_seconds() - cpu0, t0.elapsed().as_secs_f64());
    Ok(
        json!({"scenario": "echo", "variant": "raw", "n": total, "inflight": inflight,
        "received": received, "errors": errors, "cpu_s": cpu, "wall_s": wall, "rss_kib": rss_kib()}),
    )
}

async fn flood(url: &str, o: &Opts) -> Res<Value> {
    let count = o.num("count", 200_000);
    let size = o.num("size", 92);
    let mut ws = connect(url, None).await?;
    join(&mut ws, TOPIC, "1").await?;
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    ws.send(encode(
        Some("1"),
        "2",
        TOPIC,
        "flood",
        &json!({"count": count, "size": size}),
    ))
    .await
    .map_err(|e| e.to_string())?;
    let (mut received, mut frames, mut bytes) = (0u64, 0u64, 0u64);
    let reply_count;
    loop {
        let Some(m) = ws.next().await else {
            return Err("closed".into());
        };
        let m = m.map_err(|e| e.to_string())?;
        frames += 1;
        bytes += m.len() as u64;
        let Some((_, r, _, ev, payload)) = decode(&m) else {
            continue;
        };
        if ev == "flooded" {
            received += 1;
        } else if ev == "phx_reply" && r.as_deref() == Some("2") {
            reply_count = payload["response"]["count"].as_u64().unwrap_or(0);
            break;
        }
    }
    let (cpu, wall) = (cpu_seconds() - cpu0, t0.elapsed().as_secs_f64());
    Ok(
        json!({"scenario": "flood", "count": count, "received": received, "reply_count": reply_count,
        "dropped": reply_count.saturating_sub(received), "ok": received == reply_count && reply_count == count,
        "frame_bytes": bytes as f64 / frames.max(1) as f64, "cpu_s": cpu, "wall_s": wall,
        "msgs_per_s": received as f64 / wall, "rss_kib": rss_kib()}),
    )
}

async fn memory(url: &str, o: &Opts) -> Res<Value> {
    let sockets = o.num("sockets", 1000);
    let topics = o.num("topics", 1);
    let settle = Duration::from_millis(o.num("settle-ms", 500));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let rss0 = rss_kib();
    let t0 = Instant::now();
    let joined = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for s in 0..sockets {
        let (url, joined, failed) = (url.to_owned(), joined.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let run = async {
                let mut ws = connect(&url, Some(4096)).await?;
                for t in 0..topics {
                    let jr = (t + 1).to_string();
                    ws.send(encode(
                        Some(&jr),
                        &jr,
                        &format!("room:s{s}t{t}"),
                        "phx_join",
                        &json!({}),
                    ))
                    .await
                    .map_err(|e| e.to_string())?;
                }
                // Read forever (replies counted), as a client holding the socket would.
                while let Some(m) = ws.next().await {
                    let m = m.map_err(|e| e.to_string())?;
                    if let Some((_, Some(_), _, ev, _)) = decode(&m) {
                        if ev == "phx_reply" {
                            joined.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Ok::<(), String>(())
            };
            if run.await.is_err() {
                failed.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let want = sockets * topics;
    let deadline = Instant::now() + Duration::from_secs(300);
    while joined.load(Ordering::Relaxed) < want {
        if Instant::now() > deadline {
            return Err(format!(
                "only {} of {want} joined",
                joined.load(Ordering::Relaxed)
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let join_s = t0.elapsed().as_secs_f64();
    tokio::time::sleep(settle).await;
    let rss1 = rss_kib();
    let v = json!({"scenario": "memory", "sockets": sockets, "topics": topics, "joined": joined.load(Ordering::Relaxed),
        "rss_before_kib": rss0, "rss_after_kib": rss1, "kib_per_socket": (rss1 - rss0) / sockets as f64,
        "connect_join_s": join_s, "failed": failed.load(Ordering::Relaxed)});
    for t in tasks {
        t.abort();
    }
    Ok(v)
}

async fn rejoin(url: &str, o: &Opts) -> Res<Value> {
    let topics = o.num("topics", 100);
    let restarts = o.num("restarts", 20);
    let mut results: Vec<(f64, f64)> = Vec::new();
    let mut cycle = 0u64;
    let mut next_ref = 1u64;
    let mut connects = 0u64;
    let mut attempt = 0usize;
    let backoff = [10u64, 50, 100, 150, 200, 250, 500, 1000, 2000, 5000];
    while cycle <= restarts {
        let mut ws = match connect(url, None).await {
            Ok(ws) => ws,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(
                    backoff[attempt.min(backoff.len() - 1)],
                ))
                .await;
                attempt += 1;
                continue;
            }
        };
        attempt = 0;
        connects += 1;
        let opened = Instant::now();
        // Every join at once: one flush.
        let mut pending = std::collections::HashSet::new();
        for t in 0..topics {
            let r = next_ref.to_string();
            next_ref += 1;
            ws.feed(encode(
                Some(&r),
                &r,
                &format!("room:r{t}"),
                "phx_join",
                &json!({}),
            ))
            .await
            .map_err(|e| e.to_string())?;
            pending.insert(r);
        }
        ws.flush().await.map_err(|e| e.to_string())?;
        let mut first = f64::NAN;
        while let Some(Ok(m)) = ws.next().await {
            let Some((_, Some(r), _, ev, _)) = decode(&m) else {
                continue;
            };
            if ev == "phx_reply" && pending.remove(&r) {
                let ms = opened.elapsed().as_secs_f64() * 1000.0;
                if first.is_nan() {
                    first = ms;
                }
                if pending.is_empty() {
                    if cycle > 0 {
                        results.push((first, ms));
                    }
                    cycle += 1;
                    if cycle > restarts {
                        break;
                    }
                    println!("{}", json!({"event": "ready"}));
                }
            }
        }
    }
    let last: Vec<f64> = results.iter().map(|r| r.1).collect();
    Ok(
        json!({"scenario": "rejoin", "topics": topics, "restarts": results.len(),
        "last_join_ms": last, "first_join_ms": results.iter().map(|r| r.0).collect::<Vec<_>>(),
        "median_ms": median(&last), "max_ms": last.iter().copied().fold(f64::NAN, f64::max), "connects": connects}),
    )
}

fn main() {
    let o = Opts::parse();
    let runtime = o.str("runtime").to_owned();
    let rt = match runtime.as_str() {
        "multi-thread" => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    }
    .expect("runtime");
    let client = if runtime == "multi-thread" {
        "rawrust-mt"
    } else {
        "rawrust-ct"
    };
    let scenario = o.str("scenario").to_owned();
    let url = o.str("url").to_owned();
    let result = rt.block_on(async {
        match scenario.as_str() {
            "echo" => echo(&url, &o).await,
            "flood" => flood(&url, &o).await,
            "memory" => memory(&url, &o).await,
            "rejoin" => rejoin(&url, &o).await,
            "heartbeat" | "reconnect-spread" => {
                Ok(json!({"skipped": "not implemented by the raw client"}))
            }
            other => Err(format!("unknown scenario {other:?}")),
        }
    });
    let mut v = match result {
        Ok(v) => v,
        Err(e) => json!({"error": e}),
    };
    v["client"] = json!(client);
    println!("{v}");
    std::process::exit(if v.get("error").is_some() { 1 } else { 0 });
}
