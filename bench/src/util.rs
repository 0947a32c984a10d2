//! Shared helpers: command-line options, process CPU and RSS, wall-clock marks, stats.

use std::collections::HashMap;
use std::io::BufRead;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `--key value` options (and bare `--flag`s, stored as "true").
#[derive(Debug, Default, Clone)]
pub struct Opts {
    map: HashMap<String, String>,
}

impl Opts {
    pub fn parse(args: &[String]) -> Result<Opts, String> {
        let mut map = HashMap::new();
        let mut i = 0;
        while i < args.len() {
            let Some(key) = args[i].strip_prefix("--") else {
                return Err(format!("unexpected argument {:?}", args[i]));
            };
            if let Some((k, v)) = key.split_once('=') {
                map.insert(k.to_owned(), v.to_owned());
                i += 1;
            } else if i + 1 < args.len() && !args[i + 1].starts_with("--") {
                map.insert(key.to_owned(), args[i + 1].clone());
                i += 2;
            } else {
                map.insert(key.to_owned(), "true".to_owned());
                i += 1;
            }
        }
        Ok(Opts { map })
    }

    /// The option names given (without `--`).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }

    pub fn flag(&self, key: &str) -> bool {
        self.map.get(key).is_some_and(|v| v != "false")
    }

    pub fn num<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, String> {
        match self.map.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{key}: not a number: {v:?}")),
        }
    }
}

/// User + system CPU time of this process so far, in seconds (getrusage(RUSAGE_SELF)).
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes into the struct we hand it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if rc != 0 {
        return f64::NAN;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Voluntary context switches of this process so far (getrusage(RUSAGE_SELF)): each is
/// a thread going to sleep because it had nothing to do, so the count of wake-ups.
pub fn voluntary_switches() -> u64 {
    // SAFETY: getrusage only writes into the struct we hand it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if rc != 0 {
        return 0;
    }
    u64::try_from(usage.ru_nvcsw).unwrap_or(0)
}

/// VmRSS of this process in KiB, from /proc/self/status.
pub fn rss_kib() -> f64 {
    status_kib("VmRSS:")
}

/// RssAnon of this process in KiB (resident anonymous memory: the heap and stacks,
/// not the mapped code), from /proc/self/status.
pub fn anon_kib() -> f64 {
    status_kib("RssAnon:")
}

fn status_kib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(f64::NAN)
}

/// Milliseconds since the Unix epoch (comparable across processes of this machine).
pub fn epoch_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// Raises the soft limit of open files to the hard limit (1000 sockets need it).
pub fn raise_nofile_limit() {
    // SAFETY: plain syscalls on a struct we own.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Marks written by the driver on the client's stdin, one per line: `NAME EPOCH_MS`
/// (e.g. `freeze 1732700000123.4` right after it froze the server). The latest value
/// of each name is kept.
#[derive(Clone, Default)]
pub struct Marks {
    inner: Arc<Mutex<HashMap<String, f64>>>,
}

impl Marks {
    /// Starts a thread reading marks from stdin until it closes.
    pub fn from_stdin() -> Marks {
        let marks = Marks::default();
        let m = marks.clone();
        std::thread::spawn(move || {
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                let Ok(line) = line else { break };
                let mut parts = line.split_whitespace();
                if let (Some(name), Some(value)) = (parts.next(), parts.next()) {
                    if let Ok(v) = value.parse::<f64>() {
                        let mut g = m.inner.lock().unwrap_or_else(|e| e.into_inner());
                        g.insert(name.to_owned(), v);
                    }
                }
            }
        });
        marks
    }

    /// The latest value of a mark.
    pub fn get(&self, name: &str) -> Option<f64> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.get(name).copied()
    }

    /// Takes (removes) a mark.
    pub fn take(&self, name: &str) -> Option<f64> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.remove(name)
    }
}

/// Waits (async, polling every `step`) until `f` is true or `timeout` passes.
pub async fn wait_until(timeout: Duration, step: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(step).await;
    }
}

/// The median of the values (NaN for none).
pub fn median(values: &[f64]) -> f64 {
    percentile(values, 50.0)
}

/// The p-th percentile (nearest rank on the sorted values; NaN for none).
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    if p >= 100.0 {
        return v[v.len() - 1];
    }
    if (p - 50.0).abs() < f64::EPSILON && v.len().is_multiple_of(2) {
        return (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Prints one JSON line on stdout (flushed: stdout is line-buffered).
pub fn emit(value: &serde_json::Value) {
    println!("{value}");
}

/// Rounds to 3 decimals for output.
pub fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
