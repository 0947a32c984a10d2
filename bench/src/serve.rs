//! `serve`: the server the scenarios run against, in this process.
//!
//! `--mode fast` (the default): the bundled Phoenix-compatible test server
//! (`TestServer::phoenix_demo`), which answers in the socket's own task and in bursts.
//! `--mode phoenix`: a server shaped like a Phoenix node (a task per channel, one write
//! per frame; see `phx.rs`).
//!
//! Prints `{"url": ..., "port": ...}` once listening, then runs until signalled:
//! SIGTERM (or SIGINT) stops it gracefully (every socket closed with 1012, like
//! Phoenix on shutdown) and exits; SIGKILL kills it; SIGSTOP/SIGCONT freeze it.
//!
//! `--start-delay-ms N` waits N ms before listening (a Phoenix node takes about a
//! second to start). `--stats-file PATH` writes the accepted TCP connections per
//! 100 ms since listening to PATH (every second, and on a graceful stop).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_slipstream::testing::TestServer;
use serde_json::json;
use tokio::signal::unix::{signal, SignalKind};

use crate::phx;
use crate::util::{emit, epoch_ms, raise_nofile_limit, Opts};

/// Width of an accept-rate bucket.
pub const BUCKET_MS: u64 = 100;
/// Buckets kept (one hour); accepts after that are not counted.
const MAX_BUCKETS: usize = 36_000;

/// Accepted connections per 100 ms since the listener opened.
pub struct Stats {
    inner: Mutex<StatsInner>,
    file: Option<PathBuf>,
    mode: &'static str,
}

struct StatsInner {
    t0: Option<Instant>,
    listen_epoch_ms: f64,
    buckets: Vec<u64>,
    total: u64,
}

impl Stats {
    pub fn new(file: Option<PathBuf>, mode: &'static str) -> Arc<Stats> {
        Arc::new(Stats {
            inner: Mutex::new(StatsInner {
                t0: None,
                listen_epoch_ms: f64::NAN,
                buckets: Vec::new(),
                total: 0,
            }),
            file,
            mode,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StatsInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The listener is open: buckets count from now.
    pub fn listening(&self) {
        let mut g = self.lock();
        g.t0 = Some(Instant::now());
        g.listen_epoch_ms = epoch_ms();
    }

    /// One connection accepted now.
    pub fn accepted(&self) {
        self.add(1);
    }

    /// `n` connections accepted now.
    pub fn add(&self, n: u64) {
        if n == 0 {
            return;
        }
        let mut g = self.lock();
        let Some(t0) = g.t0 else { return };
        let i = (t0.elapsed().as_millis() / u128::from(BUCKET_MS)) as usize;
        g.total += n;
        if i < MAX_BUCKETS {
            if g.buckets.len() <= i {
                g.buckets.resize(i + 1, 0);
            }
            g.buckets[i] += n;
        }
    }

    /// Writes the file (if asked for); errors are reported on stderr.
    pub fn write_file(&self) {
        let Some(path) = &self.file else { return };
        let v = {
            let g = self.lock();
            json!({
                "mode": self.mode,
                "listen_epoch_ms": g.listen_epoch_ms,
                "bucket_ms": BUCKET_MS,
                "accepted": g.total,
                "accepts": g.buckets,
            })
        };
        let tmp = path.with_extension("tmp");
        let res = std::fs::write(&tmp, v.to_string()).and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = res {
            eprintln!("serve: cannot write {}: {e}", path.display());
        }
    }

    /// Rewrites the file every second (so a killed server leaves its counts too).
    pub fn spawn_writer(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                self.write_file();
            }
        })
    }
}

pub fn main(opts: &Opts) -> Result<(), String> {
    raise_nofile_limit();
    let port: u16 = opts.num("port", 0)?;
    let delay = Duration::from_millis(opts.num("start-delay-ms", 0)?);
    let stats_file = opts.str("stats-file").map(PathBuf::from);
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    match opts.str("mode").unwrap_or("fast") {
        "fast" => fast(port, Stats::new(stats_file, "fast")),
        "phoenix" => {
            let knobs = phx::Knobs::from_opts(opts)?;
            phx::run(port, knobs, Stats::new(stats_file, "phoenix"), |port| {
                emit(&json!({"url": format!("ws://127.0.0.1:{port}/socket"), "port": port}));
            })
        }
        other => Err(format!("unknown --mode {other:?} (fast or phoenix)")),
    }
}

/// The bundled test server. Its accepts are sampled from its counters every 10 ms.
fn fast(port: u16, stats: Arc<Stats>) -> Result<(), String> {
    let system = actix_rt::System::new();
    system.block_on(async move {
        let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
        let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
        let server = TestServer::phoenix_demo()
            .record_frames(false)
            .max_connections(50_000)
            // Benchmarks join as many topics per socket as they are asked to
            // (`rejoin --topics N`), beyond Phoenix's default cap of 100.
            .max_channels(100_000)
            .close_grace(Duration::from_secs(2))
            .port(port)
            .start()
            .await
            .map_err(|e| e.to_string())?;
        stats.listening();
        emit(&json!({"url": server.url(), "port": server.port()}));
        let writer = stats.clone().spawn_writer();
        let sample = async {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                let n = server.state(|s| s.counters().tcp_accepted);
                stats.add(n.saturating_sub(last));
                last = n;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            _ = sample => {}
        }
        writer.abort();
        server.stop().await.map_err(|e| e.to_string())?;
        stats.write_file();
        Ok(())
    })
}
