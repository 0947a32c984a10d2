//! `run`: the driver. Starts `serve` as a child process, runs every scenario for our
//! client and each available peer `--runs` times as child processes (restarting,
//! killing or freezing the server where the scenario asks), on each server mode
//! (`--server fast,phoenix`), takes medians and writes a Markdown report with a table
//! per server mode.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::{epoch_ms, median, percentile, raise_nofile_limit, Opts};

/// The longest one client run may take.
const RUN_DEADLINE: Duration = Duration::from_secs(900);
/// How long the listener stays closed in the scenarios that restart the server like a
/// Phoenix node: 500 ms before the new process starts, then its start (850 ms), about
/// 1.35 s in all as measured on a real node.
const NODE_START_DELAY_MS: u64 = 850;

/// A server mode: `serve --mode NAME` plus its options.
#[derive(Clone, Debug)]
struct Mode {
    name: &'static str,
    args: Vec<String>,
}

// ------------------------------------------------------------------ the server

struct Server {
    child: Child,
    port: u16,
    url: String,
    exe: PathBuf,
    logs: PathBuf,
    mode: Mode,
}

impl Server {
    fn start(exe: &Path, port: u16, logs: &Path, mode: &Mode) -> Result<Server, String> {
        Server::start_with(exe, port, logs, mode, &[])
    }

    /// Starts `serve` with extra options (`--start-delay-ms`, `--stats-file`).
    fn start_with(
        exe: &Path,
        port: u16,
        logs: &Path,
        mode: &Mode,
        extra: &[String],
    ) -> Result<Server, String> {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(logs.join("serve.stderr.log"))
            .map_err(|e| e.to_string())?;
        // A restart may race the old socket's release: retry the bind briefly.
        let mut last_err = String::new();
        for _ in 0..50 {
            let mut child = Command::new(exe)
                .args(["serve", "--mode", mode.name, "--port", &port.to_string()])
                .args(&mode.args)
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(stderr.try_clone().map_err(|e| e.to_string())?)
                .spawn()
                .map_err(|e| format!("cannot start serve: {e}"))?;
            let stdout = child.stdout.take().ok_or("no stdout")?;
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            match serde_json::from_str::<Value>(&line) {
                Ok(v) if v.get("url").is_some() => {
                    return Ok(Server {
                        child,
                        port: v["port"].as_u64().unwrap_or(0) as u16,
                        url: v["url"].as_str().unwrap_or_default().to_owned(),
                        exe: exe.to_owned(),
                        logs: logs.to_owned(),
                        mode: mode.clone(),
                    });
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_err =
                        format!("serve did not start (output {line:?}; see serve.stderr.log)");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        Err(last_err)
    }

    fn signal(&mut self, sig: libc::c_int) {
        // Only while the child has not been reaped (its pid could be reused after that).
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        // SAFETY: sends a signal to our own, still running, child process.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, sig);
        }
    }

    /// Graceful stop (SIGTERM: sockets closed with 1012), waits for the exit.
    fn stop(&mut self) {
        self.signal(libc::SIGCONT);
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.kill();
    }

    /// Kill (SIGKILL: connections dropped without close frames), waits for the exit.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(&mut self, graceful: bool) -> Result<(), String> {
        if graceful {
            self.stop();
        } else {
            self.kill();
        }
        *self = Server::start(
            &self.exe.clone(),
            self.port,
            &self.logs.clone(),
            &self.mode.clone(),
        )?;
        Ok(())
    }

    /// A restart the way a Phoenix node restarts: the listener stays closed
    /// 500 ms + the node's start; the new server counts its accepts into `stats`.
    fn restart_like_node(&mut self, graceful: bool, stats: &Path) -> Result<(), String> {
        if graceful {
            self.stop();
        } else {
            self.kill();
        }
        std::thread::sleep(Duration::from_millis(500));
        let extra = [
            "--start-delay-ms".to_owned(),
            NODE_START_DELAY_MS.to_string(),
            "--stats-file".to_owned(),
            stats.display().to_string(),
        ];
        *self = Server::start_with(
            &self.exe.clone(),
            self.port,
            &self.logs.clone(),
            &self.mode.clone(),
            &extra,
        )?;
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        self.kill();
    }
}

// ----------------------------------------------------------- clients and runs

#[derive(Clone)]
struct ClientSpec {
    name: &'static str,
    cmd: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Control {
    None,
    Rejoin,
    Heartbeat,
    Spread,
    /// As `Spread`, but the server restarts like a Phoenix node (closed ~1.35 s).
    SpreadNode,
    /// Graceful stop, node-like restart; the new server's accept rate is attached.
    Storm,
}

struct Scenario {
    id: &'static str,
    args: Vec<String>,
    control: Control,
    ours_only: bool,
}

fn scenarios(quick: bool) -> Vec<Scenario> {
    let q = |full: u64, small: u64| if quick { small } else { full }.to_string();
    let s = |id: &'static str, args: Vec<String>, control: Control| Scenario {
        id,
        args,
        control,
        ours_only: false,
    };
    let a = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    let n = q(10_000, 2_000);
    vec![
        s(
            "echo-100",
            [
                a(&["--scenario", "echo", "--inflight", "100", "--n"]),
                vec![n.clone()],
            ]
            .concat(),
            Control::None,
        ),
        s(
            "echo-10k",
            [
                a(&["--scenario", "echo", "--n"]),
                vec![n.clone(), "--inflight".into(), n.clone()],
            ]
            .concat(),
            Control::None,
        ),
        Scenario {
            ours_only: true,
            ..s(
                "echo-100-ext",
                [
                    a(&[
                        "--scenario",
                        "echo",
                        "--via",
                        "ext",
                        "--inflight",
                        "100",
                        "--n",
                    ]),
                    vec![n.clone()],
                ]
                .concat(),
                Control::None,
            )
        },
        s(
            "flood",
            [
                a(&["--scenario", "flood", "--size", "92", "--count"]),
                vec![q(200_000, 20_000)],
            ]
            .concat(),
            Control::None,
        ),
        s(
            "memory-1000x1",
            [
                a(&["--scenario", "memory", "--topics", "1", "--sockets"]),
                vec![q(1000, 200)],
            ]
            .concat(),
            Control::None,
        ),
        s(
            "memory-100x10",
            a(&["--scenario", "memory", "--sockets", "100", "--topics", "10"]),
            Control::None,
        ),
        s(
            "rejoin",
            [
                a(&["--scenario", "rejoin", "--topics", "100", "--restarts"]),
                vec![q(20, 4)],
            ]
            .concat(),
            Control::Rejoin,
        ),
        s(
            "heartbeat",
            [
                a(&[
                    "--scenario",
                    "heartbeat",
                    "--interval-ms",
                    "1000",
                    "--timeout-ms",
                    "500",
                    "--trials",
                ]),
                vec![q(5, 2)],
            ]
            .concat(),
            Control::Heartbeat,
        ),
        s(
            "reconnect-spread",
            [
                a(&["--scenario", "reconnect-spread", "--clients"]),
                vec![q(1000, 200)],
            ]
            .concat(),
            Control::Spread,
        ),
        s(
            "reconnect-restart",
            [
                a(&["--scenario", "reconnect-spread", "--clients"]),
                vec![q(1000, 200)],
            ]
            .concat(),
            Control::SpreadNode,
        ),
        s(
            "memory-slope",
            [
                a(&["--scenario", "memory-slope", "--sockets-from"]),
                vec![q(100, 20), "--sockets-to".into(), q(1000, 200)],
                a(&["--topics", "10"]),
            ]
            .concat(),
            Control::None,
        ),
        Scenario {
            ours_only: true,
            ..s(
                "scale-10k",
                [
                    a(&["--scenario", "scale", "--sockets"]),
                    vec![q(10_000, 1000), "--idle-s".into(), q(30, 5)],
                ]
                .concat(),
                Control::None,
            )
        },
        Scenario {
            ours_only: true,
            ..s(
                "rejoin-storm",
                [
                    a(&["--scenario", "rejoin-storm", "--topics", "10", "--sockets"]),
                    vec![q(1000, 200)],
                ]
                .concat(),
                Control::Storm,
            )
        },
    ]
}

fn arg_value(args: &[String], key: &str) -> Option<u64> {
    args.iter()
        .position(|a| a == key)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

fn write_mark(stdin: &mut Option<ChildStdin>, name: &str, value: f64) {
    if let Some(s) = stdin.as_mut() {
        let _ = writeln!(s, "{name} {value:.3}");
        let _ = s.flush();
    }
}

/// Runs one client process for one scenario; returns its result line.
fn run_client(
    client: &ClientSpec,
    sc: &Scenario,
    url: &str,
    server: &mut Option<Server>,
    logs: &Path,
    mode: &str,
    run: usize,
) -> Result<Value, String> {
    let mut args = sc.args.clone();
    args.extend(["--url".to_owned(), url.to_owned()]);
    let tag = format!("{}.{}.{}.{run}", mode, sc.id, client.name);
    let stderr =
        std::fs::File::create(logs.join(format!("{tag}.stderr.log"))).map_err(|e| e.to_string())?;
    let stats_file = logs.join(format!("{tag}.accepts.json"));
    let _ = std::fs::remove_file(&stats_file);
    let mut child = Command::new(&client.cmd[0])
        .args(&client.cmd[1..])
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", client.cmd[0]))?;
    let mut stdin = child.stdin.take();
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + RUN_DEADLINE;
    let mut restarts = 0u64;
    let mut kinds = Vec::new();
    let result = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(l) => l,
            Err(mpsc::RecvTimeoutError::Timeout) => break Err("timed out".to_owned()),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                break Err("exited without a result (see its stderr log)".to_owned())
            }
        };
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue; // not ours: a stray log line
        };
        if let Some(ev) = v.get("event").and_then(Value::as_str) {
            let Some(srv) = server.as_mut() else {
                break Err("this scenario needs a server the driver controls".to_owned());
            };
            match (sc.control, ev) {
                (Control::Rejoin, "ready") => {
                    // Alternate graceful stops (close 1012) and kills (no close frame).
                    let graceful = restarts.is_multiple_of(2);
                    restarts += 1;
                    kinds.push(if graceful { "graceful" } else { "killed" });
                    srv.restart(graceful)?;
                    write_mark(&mut stdin, "restart", epoch_ms());
                }
                (Control::Heartbeat, "ready") => {
                    let interval = arg_value(&sc.args, "--interval-ms").unwrap_or(1000);
                    std::thread::sleep(Duration::from_millis(fastrand::u64(0..interval.max(1))));
                    srv.signal(libc::SIGSTOP);
                    write_mark(&mut stdin, "freeze", epoch_ms());
                }
                (Control::Heartbeat, "detected") => srv.signal(libc::SIGCONT),
                (Control::Spread, "ready") => {
                    write_mark(&mut stdin, "down", epoch_ms());
                    srv.kill();
                    std::thread::sleep(Duration::from_millis(500));
                    *srv = Server::start(&srv.exe.clone(), srv.port, logs, &srv.mode.clone())?;
                    write_mark(&mut stdin, "restart", epoch_ms());
                }
                (Control::SpreadNode | Control::Storm, "ready") => {
                    write_mark(&mut stdin, "down", epoch_ms());
                    srv.restart_like_node(sc.control == Control::Storm, &stats_file)?;
                    write_mark(&mut stdin, "restart", epoch_ms());
                }
                _ => {}
            }
            continue;
        }
        if let Some(e) = v.get("error") {
            break Err(e.as_str().unwrap_or("error").to_owned());
        }
        if v.get("skipped").is_some() || v.get("scenario").is_some() {
            let mut v = v;
            if !kinds.is_empty() {
                v["restart_kinds"] = json!(kinds);
            }
            break Ok(v);
        }
    };
    if let Some(srv) = server.as_mut() {
        srv.signal(libc::SIGCONT);
        if sc.control == Control::Storm {
            // The restarted server writes its accept counts when it stops.
            srv.stop();
        }
    }
    let result = result.map(|mut v| {
        if let Ok(text) = std::fs::read_to_string(&stats_file) {
            if let Ok(stats) = serde_json::from_str::<Value>(&text) {
                v["server_accepts"] = stats;
            }
        }
        v
    });
    drop(stdin);
    let wait_until = Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            _ if Instant::now() > wait_until => {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    result
}

// ------------------------------------------------------------------- metrics

struct Metric {
    label: &'static str,
    get: fn(&Value) -> Option<f64>,
    /// The primary figure of the scenario (ratios are computed on it).
    primary: bool,
}

fn f(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(Value::as_f64)
}

fn metrics(id: &str) -> Vec<Metric> {
    let m = |label, get, primary| Metric {
        label,
        get,
        primary,
    };
    match id {
        "echo-100" | "echo-10k" | "echo-100-ext" => vec![
            m(
                "CPU s per 10k round trips",
                |v| Some(f(v, "cpu_s")? * 10_000.0 / f(v, "n")?),
                true,
            ),
            m(
                "wall s per 10k round trips",
                |v| Some(f(v, "wall_s")? * 10_000.0 / f(v, "n")?),
                false,
            ),
            m("errors", |v| f(v, "errors"), false),
        ],
        "flood" => vec![
            m(
                "CPU s per 100k pushes",
                |v| Some(f(v, "cpu_s")? * 100_000.0 / f(v, "received")?.max(1.0)),
                true,
            ),
            m("messages/s", |v| f(v, "msgs_per_s"), false),
            m("dropped", |v| f(v, "dropped"), false),
            m("frame bytes", |v| f(v, "frame_bytes"), false),
            m(
                "echo ms right after the flood",
                |v| f(v, "echo_after_flood_ms"),
                false,
            ),
        ],
        "memory-1000x1" | "memory-100x10" => vec![
            m("KiB RSS per socket", |v| f(v, "kib_per_socket"), true),
            m("connect+join s", |v| f(v, "connect_join_s"), false),
        ],
        "rejoin" => vec![
            m("median ms open→last join", |v| f(v, "median_ms"), true),
            m("max ms open→last join", |v| f(v, "max_ms"), false),
            m("restarts measured", |v| f(v, "restarts"), false),
        ],
        "heartbeat" => vec![
            m("median ms freeze→detected", |v| f(v, "median_ms"), true),
            m("max ms freeze→detected", |v| f(v, "max_ms"), false),
        ],
        "memory-slope" => vec![
            m(
                "KiB RSS per socket (100→1000)",
                |v| f(v, "rss_per_socket_kib"),
                true,
            ),
            m(
                "KiB anon per socket (100→1000)",
                |v| f(v, "anon_per_socket_kib"),
                false,
            ),
            m(
                "KiB RSS per topic, 100 sockets",
                |v| f(v, "rss_per_topic_small_kib"),
                false,
            ),
            m(
                "KiB anon per topic, 100 sockets",
                |v| f(v, "anon_per_topic_small_kib"),
                false,
            ),
            m(
                "KiB RSS per topic, 1000 sockets",
                |v| f(v, "rss_per_topic_large_kib"),
                false,
            ),
            m(
                "KiB anon per topic, 1000 sockets",
                |v| f(v, "anon_per_topic_large_kib"),
                false,
            ),
        ],
        "scale-10k" => vec![
            m("connect+join s", |v| f(v, "connect_join_s"), true),
            m("connect+join CPU s", |v| f(v, "connect_join_cpu_s"), false),
            m("KiB RSS per socket", |v| f(v, "rss_per_socket_kib"), false),
            m(
                "KiB anon per socket",
                |v| f(v, "anon_per_socket_kib"),
                false,
            ),
            m("idle CPU ms per s", |v| f(v, "idle_cpu_ms_per_s"), false),
            m("connected at the end", |v| f(v, "alive"), false),
        ],
        "rejoin-storm" => vec![
            m("p50 ms restart→all topics back", |v| f(v, "p50_ms"), true),
            m("min ms", |v| f(v, "min_ms"), false),
            m("p10 ms", |v| f(v, "p10_ms"), false),
            m("p90 ms", |v| f(v, "p90_ms"), false),
            m("max ms", |v| f(v, "max_ms"), false),
            m("sockets back", |v| f(v, "back"), false),
            m("peak accepts per 100 ms", peak_accepts, false),
            m("ms listening→last accept", accept_span_ms, false),
        ],
        "reconnect-spread" | "reconnect-restart" => vec![
            m("p50 ms after restart", |v| f(v, "p50_ms"), true),
            m("min ms", |v| f(v, "min_ms"), false),
            m("p10 ms", |v| f(v, "p10_ms"), false),
            m("p90 ms", |v| f(v, "p90_ms"), false),
            m("max ms", |v| f(v, "max_ms"), false),
            m("reconnected", |v| f(v, "reconnected"), false),
            m("p90 ms down→loss seen", |v| f(v, "lost_p90_ms"), false),
        ],
        _ => Vec::new(),
    }
}

/// The largest count of accepted connections in a 100 ms bucket of the restarted server.
fn peak_accepts(v: &Value) -> Option<f64> {
    v["server_accepts"]["accepts"]
        .as_array()?
        .iter()
        .filter_map(Value::as_f64)
        .reduce(f64::max)
}

/// The end of the last non-empty accept bucket, in ms after the server listened.
fn accept_span_ms(v: &Value) -> Option<f64> {
    let b = v["server_accepts"]["accepts"].as_array()?;
    let width = v["server_accepts"]["bucket_ms"].as_f64()?;
    let last = b.iter().rposition(|x| x.as_f64().unwrap_or(0.0) > 0.0)?;
    Some((last + 1) as f64 * width)
}

fn target(id: &str) -> &'static str {
    match id {
        "echo-100" => "≤ rawrust-ct",
        "echo-10k" => "≤ 1.2× our echo-100",
        "flood" => "≤ 1.1× rawrust-ct, below every peer, 0 dropped",
        "memory-1000x1" => "≤ 13 KiB",
        "memory-100x10" => "≤ 20 KiB",
        "rejoin" => "≤ 10 ms, every restart",
        "heartbeat" => "≤ interval+timeout; median < phoenixjs",
        "reconnect-spread" | "reconnect-restart" => "spread (not lockstep)",
        "rejoin-storm" => "spread (no thundering herd)",
        _ => "",
    }
}

fn fmt_num(x: f64) -> String {
    if x.is_nan() {
        "–".into()
    } else if x.abs() >= 1000.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

// ---------------------------------------------------------------------- main

fn machine() -> String {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .nth(1)
        .and_then(|k| k.parse::<f64>().ok())
        .map_or("?".into(), |k| format!("{:.1} GiB", k / 1024.0 / 1024.0));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "nproc {nproc}; CPU {model}; memory {mem}; kernel {}",
        kernel.trim()
    )
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn find_peers(root: &Path, opts: &Opts) -> (Vec<ClientSpec>, Vec<String>) {
    let wanted = opts
        .str("peers")
        .unwrap_or("phoenixjs,rawnode,rawrust-mt,rawrust-ct");
    let mut specs = Vec::new();
    let mut notes = Vec::new();
    let js = root.join("bench/peers/js");
    let node = opts.str("node").unwrap_or("node").to_owned();
    let node_ok = Command::new(&node)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let rawrust_bin = opts.str("rawrust-bin").map(PathBuf::from).or_else(|| {
        let mut c = Vec::new();
        if let Ok(t) = std::env::var("CARGO_TARGET_DIR") {
            c.push(PathBuf::from(t).join("release/raw-rust-peer"));
        }
        if let Some(dir) = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_owned))
        {
            c.push(dir.join("raw-rust-peer"));
        }
        c.push(root.join("bench/peers/raw-rust/target/release/raw-rust-peer"));
        c.into_iter().find(|p| p.exists())
    });
    for peer in wanted
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty() && *p != "none")
    {
        match peer {
            "phoenixjs" | "rawnode" => {
                let (script, module) = if peer == "phoenixjs" {
                    ("phoenix_client.mjs", "phoenix")
                } else {
                    ("raw_ws.mjs", "ws")
                };
                if !node_ok {
                    notes.push(format!("{peer}: skipped, `{node}` not found"));
                } else if !js.join("node_modules").join(module).exists() {
                    notes.push(format!(
                        "{peer}: skipped, not installed (npm install --prefix bench/peers/js)"
                    ));
                } else {
                    let name = if peer == "phoenixjs" { "phoenixjs" } else { "rawnode" };
                    specs.push(ClientSpec {
                        name,
                        cmd: vec![node.clone(), js.join(script).display().to_string()],
                    });
                }
            }
            "rawrust-mt" | "rawrust-ct" => match &rawrust_bin {
                None => notes.push(format!(
                    "{peer}: skipped, not built (cargo build --release --manifest-path bench/peers/raw-rust/Cargo.toml)"
                )),
                Some(bin) => {
                    let (name, rt) = if peer == "rawrust-mt" {
                        ("rawrust-mt", "multi-thread")
                    } else {
                        ("rawrust-ct", "current-thread")
                    };
                    specs.push(ClientSpec {
                        name,
                        cmd: vec![bin.display().to_string(), "--runtime".into(), rt.into()],
                    });
                }
            },
            other => notes.push(format!("{other}: unknown peer, ignored")),
        }
    }
    (specs, notes)
}

pub fn main(opts: &Opts) -> Result<(), String> {
    raise_nofile_limit();
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // The repository root: the workspace that holds this crate (bench/).
    let root = match opts.str("root") {
        Some(r) => PathBuf::from(r),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or(Path::new("."))
            .to_path_buf(),
    };
    let runs: usize = opts.num("runs", 5)?;
    let quick = opts.flag("quick");
    let only: Option<Vec<String>> = opts
        .str("only")
        .map(|s| s.split(',').map(|x| x.trim().to_owned()).collect());
    let out = PathBuf::from(
        opts.str("out")
            .map(str::to_owned)
            .unwrap_or_else(|| root.join("target/bench-report.md").display().to_string()),
    );
    let logs = out.parent().unwrap_or(Path::new(".")).join("bench-logs");
    std::fs::create_dir_all(&logs).map_err(|e| e.to_string())?;
    let external_url = opts.str("url").map(str::to_owned);
    // Server modes; `--phoenix-knobs k=v,k=v` passes `--k v` to `serve --mode phoenix`.
    let mut modes = Vec::new();
    for name in opts.str("server").unwrap_or("fast,phoenix").split(',') {
        match name.trim() {
            "fast" => modes.push(Mode {
                name: "fast",
                args: Vec::new(),
            }),
            "phoenix" => {
                let mut args = Vec::new();
                for kv in opts.str("phoenix-knobs").unwrap_or("").split(',') {
                    let kv = kv.trim();
                    if kv.is_empty() {
                        continue;
                    }
                    let (k, v) = kv.split_once('=').unwrap_or((kv, "true"));
                    args.extend([format!("--{k}"), v.to_owned()]);
                }
                modes.push(Mode {
                    name: "phoenix",
                    args,
                });
            }
            other => return Err(format!("unknown --server {other:?} (fast, phoenix)")),
        }
    }
    if external_url.is_some() {
        // One external server: its mode is whatever it is.
        modes.truncate(1);
    }

    let mut clients = vec![ClientSpec {
        name: "slipstream",
        cmd: vec![exe.display().to_string(), "client".into()],
    }];
    let (peers, mut notes) = find_peers(&root, opts);
    clients.extend(peers);

    let load_start = loadavg();
    let started = Instant::now();
    // results[mode][scenario][client] = one Value per run
    let mut results: Results = BTreeMap::new();
    let mut commands = Vec::new();
    let all = scenarios(quick);
    for mode in &modes {
        for sc in &all {
            if only.as_ref().is_some_and(|o| !o.iter().any(|x| x == sc.id)) {
                continue;
            }
            if external_url.is_some() && sc.control != Control::None {
                notes.push(format!(
                    "{}: skipped, needs a server the driver can restart or freeze (not with --url)",
                    sc.id
                ));
                continue;
            }
            // Run by run, every client in turn (run 1 of each, then run 2...): a drift
            // of the machine's speed then spreads over all the clients instead of
            // landing on the one whose runs it happened during.
            let mut skipped: Vec<&str> = Vec::new();
            for run in 0..runs {
                for client in &clients {
                    if (sc.ours_only && client.name != "slipstream")
                        || skipped.contains(&client.name)
                    {
                        continue;
                    }
                    let mut server = match &external_url {
                        Some(_) => None,
                        None => Some(Server::start(&exe, 0, &logs, mode)?),
                    };
                    let url = external_url
                        .clone()
                        .or_else(|| server.as_ref().map(|s| s.url.clone()))
                        .unwrap_or_default();
                    if run == 0 {
                        commands.push(format!(
                            "{} {} --url {url}    # server: serve --mode {} {}",
                            client.cmd.join(" "),
                            sc.args.join(" "),
                            mode.name,
                            mode.args.join(" ")
                        ));
                    }
                    eprintln!(
                        "[{:>6.1}s] {} / {} / {} run {}/{runs}",
                        started.elapsed().as_secs_f64(),
                        mode.name,
                        sc.id,
                        client.name,
                        run + 1
                    );
                    let r = run_client(client, sc, &url, &mut server, &logs, mode.name, run);
                    drop(server);
                    match r {
                        Ok(v) => {
                            eprintln!("          {v}");
                            if let Some(s) = v.get("skipped") {
                                notes.push(format!(
                                    "{} / {} / {}: skipped by the client: {s}",
                                    mode.name, sc.id, client.name
                                ));
                                skipped.push(client.name);
                                continue;
                            }
                            results
                                .entry(mode.name)
                                .or_default()
                                .entry(sc.id)
                                .or_default()
                                .entry(client.name)
                                .or_default()
                                .push(v);
                        }
                        Err(e) => {
                            eprintln!("          failed: {e}");
                            notes.push(format!(
                                "{} / {} / {} run {}: failed: {e}",
                                mode.name,
                                sc.id,
                                client.name,
                                run + 1
                            ));
                        }
                    }
                }
            }
        }
    }

    let report = render(
        &all,
        &clients,
        &results,
        &notes,
        &commands,
        runs,
        quick,
        &load_start,
    );
    if let Some(dir) = out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(&out, &report).map_err(|e| format!("{}: {e}", out.display()))?;
    let raw = out.with_extension("json");
    let _ = std::fs::write(
        &raw,
        serde_json::to_string_pretty(&json!(results)).unwrap_or_default(),
    );
    println!("{report}");
    eprintln!(
        "report written to {} (raw results: {})",
        out.display(),
        raw.display()
    );
    Ok(())
}

/// `results[mode][scenario][client]`: one result per run.
type Results = BTreeMap<&'static str, BTreeMap<&'static str, BTreeMap<&'static str, Vec<Value>>>>;

/// What each server mode is, for the report.
fn mode_title(mode: &str) -> &'static str {
    match mode {
        "fast" => {
            "server `fast`: the bundled test server (answers in the socket's task, in bursts)"
        }
        "phoenix" => {
            "server `phoenix`: the Phoenix-like server (a task per channel, one write per frame)"
        }
        _ => "server",
    }
}

#[allow(clippy::too_many_arguments)]
fn render(
    all: &[Scenario],
    clients: &[ClientSpec],
    results: &Results,
    notes: &[String],
    commands: &[String],
    runs: usize,
    quick: bool,
    load_start: &str,
) -> String {
    let mut s = String::new();
    s.push_str("# actix-slipstream end-to-end benchmark\n\n");
    s.push_str(&format!("- machine: {}\n", machine()));
    s.push_str(&format!(
        "- load average: {load_start} at the start, {} at the end\n",
        loadavg()
    ));
    s.push_str(&format!(
        "- runs per figure: {runs} (median; [min–max] of the runs beside the primary figures){}\n",
        if quick {
            "; --quick (reduced counts)"
        } else {
            ""
        }
    ));
    s.push_str("- client CPU = user+sys of the client process around the scenario only\n");
    let names: Vec<&str> = clients.iter().map(|c| c.name).collect();
    for (mode, results) in results {
        s.push_str(&format!("\n## {}\n\n", mode_title(mode)));
        render_mode(&mut s, all, &names, results);
    }
    if !notes.is_empty() {
        s.push_str("\n## Notes\n\n");
        for n in notes {
            s.push_str(&format!("- {n}\n"));
        }
    }
    s.push_str("\n## Commands (first run of each; the URL changes per run)\n\n```\n");
    for c in commands {
        s.push_str(c);
        s.push('\n');
    }
    s.push_str("```\n");
    s
}

fn render_mode(
    s: &mut String,
    all: &[Scenario],
    names: &[&str],
    results: &BTreeMap<&'static str, BTreeMap<&'static str, Vec<Value>>>,
) {
    s.push_str(&format!(
        "| scenario | figure | {} | ours/rawrust-ct | ours/phoenixjs | target |\n",
        names.join(" | ")
    ));
    s.push_str(&format!(
        "|---|---|{}---|---|---|\n",
        "---:|".repeat(names.len())
    ));
    let vals = |id: &str, client: &str, get: fn(&Value) -> Option<f64>| -> Vec<f64> {
        results
            .get(id)
            .and_then(|m| m.get(client))
            .map(|v| v.iter().filter_map(get).collect())
            .unwrap_or_default()
    };
    let med = |id: &str, client: &str, get: fn(&Value) -> Option<f64>| -> f64 {
        median(&vals(id, client, get))
    };
    for sc in all {
        if !results.contains_key(sc.id) {
            continue;
        }
        for m in metrics(sc.id) {
            let cells: Vec<String> = names
                .iter()
                .map(|c| {
                    let v = vals(sc.id, c, m.get);
                    let x = median(&v);
                    if m.primary && v.len() > 1 {
                        format!(
                            "{} [{}–{}]",
                            fmt_num(x),
                            fmt_num(percentile(&v, 0.0)),
                            fmt_num(percentile(&v, 100.0))
                        )
                    } else {
                        fmt_num(x)
                    }
                })
                .collect();
            let ours = med(sc.id, "slipstream", m.get);
            let ratio = |peer: &str| {
                let p = med(sc.id, peer, m.get);
                if m.primary && p > 0.0 && !ours.is_nan() {
                    format!("{:.2}×", ours / p)
                } else {
                    String::new()
                }
            };
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                sc.id,
                m.label,
                cells.join(" | "),
                ratio("rawrust-ct"),
                ratio("phoenixjs"),
                if m.primary { target(sc.id) } else { "" }
            ));
        }
    }
    // Derived checks.
    let cpu = |id: &str| {
        med(id, "slipstream", |v| {
            Some(f(v, "cpu_s")? * 10_000.0 / f(v, "n")?)
        })
    };
    let (e100, e10k) = (cpu("echo-100"), cpu("echo-10k"));
    if !e100.is_nan() && !e10k.is_nan() {
        s.push_str(&format!(
            "\nours echo-10k / echo-100 CPU: {:.2}× (target ≤ 1.2×)\n",
            e10k / e100
        ));
    }
    // Each peer's CPU relative to rawrust-ct (the calibration of the Phoenix-like server).
    let primary = |id: &str| metrics(id).into_iter().find(|m| m.primary).map(|m| m.get);
    let mut ratios = String::new();
    for id in ["echo-100", "echo-10k", "flood"] {
        let Some(get) = primary(id) else { continue };
        let ct = med(id, "rawrust-ct", get);
        if ct.is_nan() || ct <= 0.0 {
            continue;
        }
        let cells: Vec<String> = names
            .iter()
            .map(|c| {
                let x = med(id, c, get);
                format!(
                    "{c} {}",
                    if x.is_nan() {
                        "–".into()
                    } else {
                        format!("{:.2}", x / ct)
                    }
                )
            })
            .collect();
        ratios.push_str(&format!("- {id}: {}\n", cells.join(", ")));
    }
    if !ratios.is_empty() {
        s.push_str("\nCPU relative to rawrust-ct (medians):\n\n");
        s.push_str(&ratios);
    }
    if let Some(runs) = results.get("rejoin").and_then(|m| m.get("slipstream")) {
        let all_ms: Vec<f64> = runs
            .iter()
            .flat_map(|v| {
                v["last_join_ms"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|x| x.as_f64())
            })
            .collect();
        s.push_str(&format!(
            "\nours rejoin, every restart of every run (graceful and killed alternately): {} restarts, max {} ms, p90 {} ms\n",
            all_ms.len(),
            fmt_num(percentile(&all_ms, 100.0)),
            fmt_num(percentile(&all_ms, 90.0))
        ));
    }
    if let Some(runs) = results
        .get("rejoin-storm")
        .and_then(|m| m.get("slipstream"))
    {
        s.push_str("\nrejoin-storm, accepted connections per 100 ms after the restarted server listened (per run):\n\n");
        for (i, v) in runs.iter().enumerate() {
            let b: Vec<String> = v["server_accepts"]["accepts"]
                .as_array()
                .map(|a| a.iter().map(|x| x.to_string()).collect())
                .unwrap_or_default();
            s.push_str(&format!("- run {}: [{}]\n", i + 1, b.join(", ")));
        }
        s.push_str("\nrejoin-storm, sockets with all topics back per 100 ms after the restart (per run):\n\n");
        for (i, v) in runs.iter().enumerate() {
            s.push_str(&format!("- run {}: {}\n", i + 1, v["histogram_100ms"]));
        }
    }
}
