//! Command-line arguments, and the client [`Config`] they describe.

use std::path::PathBuf;
use std::time::Duration;

use actix_slipstream::codec::{V1Json, V2};
use actix_slipstream::{Backoff, Config};
use clap::{Args, Parser, Subcommand};
use serde_json::Value;

/// A command-line Phoenix Channels client: JSON lines in, JSON lines out.
#[derive(Debug, Parser)]
#[command(name = "slipstream", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Connect to a Phoenix socket: print one JSON line per event on stdout, read one
    /// JSON command per line on stdin.
    #[command(after_help = CONNECT_AFTER_HELP)]
    Connect(Box<ConnectArgs>),
    /// Run the bundled Phoenix-compatible test server (demo channels `room:*`,
    /// `private:*`, `ticker:*`) until SIGINT/SIGTERM; prints its URL as a JSON line.
    #[command(after_help = SERVE_AFTER_HELP)]
    Serve(ServeArgs),
}

const CONNECT_AFTER_HELP: &str = r#"Commands on stdin, one JSON object per line:
  {"join":T,"params":{...}}                       params optional
  {"leave":T}
  {"push":T,"event":E,"payload":P,"id":ID,"timeout_ms":N}
                                                  payload optional ({}), id echoed on its
                                                  reply line, timeout_ms optional (--timeout-ms)
  {"status":true}                                 print a `status` line (connection, topics, counters)
  {"disconnect":true}  {"reconnect":true}  {"quit":true}
Binary payloads are {"binary_base64":"..."} both ways.

Events on stdout, one JSON object per line with "ts_ms" and "event": connected,
disconnected, joined, join_failed, message, reply, topic_closed, left, status, error.

Exit: 0 at stdin EOF, quit, SIGINT or SIGTERM (after waiting for outstanding replies,
leaving every topic and closing with 1000); 1 after --max-connect-attempts failed
connects; 2 for invalid arguments. See docs/cli.md."#;

const SERVE_AFTER_HELP: &str = r#"Prints {"ts_ms":..,"event":"listening","url":"ws://127.0.0.1:PORT/socket"}, serves until
SIGINT/SIGTERM, then prints {"event":"stopped"} and exits 0. A connect needs a `token`
param (any value; without it: HTTP 403). `room:*` echoes its join params and answers
the events echo, error_reply, broadcast, broadcast_from, noreply, crash, stop,
stop_reply, push_me, push_binary, sleep {"ms":N} and flood; `private:*` joins only
with {"token":"secret"}; `ticker:*` pushes a `tick` every `interval_ms` (a join param,
default 1000). See docs/cli.md."#;

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The socket URL: ws://host:port/socket (or wss://), or .../socket/websocket.
    pub url: String,
    /// A connect param (repeatable).
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// An auth token sent in the Sec-WebSocket-Protocol header, as phoenix.js 1.8's
    /// `authToken` (Phoenix passes it to `connect/3` as `connect_info[:auth_token]`).
    /// Default: the environment variable SLIPSTREAM_AUTH_TOKEN (prefer it: a command
    /// line is visible to other local users).
    #[arg(long, value_name = "TOKEN")]
    pub auth_token: Option<String>,
    /// An HTTP header on the upgrade request (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// The protocol version.
    #[arg(long, default_value = "2", value_parser = ["1", "2"])]
    pub vsn: String,
    /// A topic to join at start, with optional JSON params: TOPIC or 'TOPIC={"k":"v"}'
    /// (repeatable).
    #[arg(short = 'j', long = "join", value_name = "TOPIC[=JSON]", value_parser = parse_join)]
    pub joins: Vec<(String, Value)>,
    /// Heartbeat interval in milliseconds (0 disables heartbeats).
    #[arg(long, value_name = "MS", default_value_t = millis(Config::default().heartbeat_interval))]
    pub heartbeat_ms: u64,
    /// How long a heartbeat may go unanswered before the connection is closed and
    /// reconnected, in milliseconds (0 disables the check).
    #[arg(long, value_name = "MS", default_value_t = millis(Config::default().heartbeat_timeout))]
    pub heartbeat_timeout_ms: u64,
    /// Reply timeout of pushes and joins, in milliseconds [default: 10000].
    #[arg(long, value_name = "MS")]
    pub timeout_ms: Option<u64>,
    /// Reconnect delays in milliseconds, the last one repeating [default: Phoenix's
    /// 10,50,100,150,200,250,500,1000,2000,5000 with 20% jitter; while the port
    /// refuses connections, every ~200 ms for ten seconds, then slower]. Given, the
    /// list is used for every failure.
    #[arg(long, value_name = "MS,MS,...", value_parser = parse_ms_list)]
    pub reconnect_ms: Option<MsList>,
    /// Rejoin delays in milliseconds, the last one repeating [default:
    /// 100,500,1000,2000,5000,10000 with 20% jitter].
    #[arg(long, value_name = "MS,MS,...", value_parser = parse_ms_list)]
    pub rejoin_ms: Option<MsList>,
    /// The largest inbound message accepted, in bytes [default: 8 MiB].
    #[arg(long, value_name = "BYTES")]
    pub max_frame_bytes: Option<usize>,
    /// A PEM file of root certificates trusted for wss:// (repeatable). With it, only
    /// the roots of these files are trusted, not the built-in Mozilla roots.
    #[arg(long = "ca-file", value_name = "PATH")]
    pub ca_files: Vec<PathBuf>,
    /// Exit with code 1 after this many consecutive failed connects.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connect_attempts: Option<u32>,
    /// Do not read commands from stdin: run until SIGINT/SIGTERM.
    #[arg(long)]
    pub no_stdin: bool,
    /// Log level or env_logger filter (logs go to stderr).
    #[arg(long, value_name = "LEVEL", default_value = "warn")]
    pub log: String,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Log level or env_logger filter (logs go to stderr).
    #[arg(long, value_name = "LEVEL", default_value = "warn")]
    pub log: String,
}

/// A duration in whole milliseconds (for defaults shown by `--help`).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A list of delays in milliseconds.
#[derive(Debug, Clone)]
pub struct MsList(pub Vec<u64>);

fn parse_param(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err("expected KEY=VALUE".to_owned()),
    }
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((name, value))
            if !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':') =>
        {
            Ok((name.to_owned(), value.trim().to_owned()))
        }
        _ => Err("expected 'Name: value' with a token as the name".to_owned()),
    }
}

fn parse_join(s: &str) -> Result<(String, Value), String> {
    let (topic, params) = match s.split_once('=') {
        Some((topic, json)) => {
            let params: Value =
                serde_json::from_str(json).map_err(|e| format!("invalid JSON params: {e}"))?;
            if !params.is_object() {
                return Err("join params must be a JSON object".to_owned());
            }
            (topic, params)
        }
        None => (s, Value::Object(Default::default())),
    };
    if topic.is_empty() {
        return Err("empty topic".to_owned());
    }
    Ok((topic.to_owned(), params))
}

fn parse_ms_list(s: &str) -> Result<MsList, String> {
    s.split(',')
        .map(|part| {
            part.trim()
                .parse::<u64>()
                .map_err(|e| format!("{part:?}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(MsList)
}

/// The environment variable giving the auth token when `--auth-token` is not given.
pub const AUTH_TOKEN_ENV: &str = "SLIPSTREAM_AUTH_TOKEN";

impl ConnectArgs {
    /// The client configuration, validated.
    pub fn config(&self) -> Result<Config, String> {
        let mut config = Config::new(self.url.clone());
        for (k, v) in &self.params {
            config = config.param(k.clone(), v.clone());
        }
        for (name, value) in &self.headers {
            config = config.header(name.clone(), value.clone());
        }
        let token = self
            .auth_token
            .clone()
            .or_else(|| std::env::var(AUTH_TOKEN_ENV).ok())
            .filter(|t| !t.is_empty());
        if let Some(token) = token {
            config = config.auth_token(token);
        }
        config = if self.vsn == "1" {
            config.serializer(V1Json)
        } else {
            config.serializer(V2)
        };
        config = config.heartbeat(
            Duration::from_millis(self.heartbeat_ms),
            Duration::from_millis(self.heartbeat_timeout_ms),
        );
        if let Some(ms) = self.timeout_ms {
            config = config
                .push_timeout(Duration::from_millis(ms))
                .join_timeout(Duration::from_millis(ms));
        }
        if let Some(MsList(list)) = &self.reconnect_ms {
            // The list is the whole schedule, a refused port included.
            config = config
                .reconnect_backoff(Backoff::from_millis(list))
                .reconnect_refused_backoff(Backoff::from_millis(list));
        }
        if let Some(MsList(list)) = &self.rejoin_ms {
            config = config.rejoin_backoff(Backoff::from_millis(list));
        }
        if let Some(bytes) = self.max_frame_bytes {
            config = config.max_frame_size(bytes);
        }
        if !self.ca_files.is_empty() {
            let mut roots = Vec::new();
            for path in &self.ca_files {
                roots.extend(crate::ca::read_roots(path)?);
            }
            config = config.tls_root_certificates(roots);
        }
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_argument_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn join_specs_take_an_optional_json_object() {
        assert_eq!(
            parse_join("room:1").unwrap(),
            ("room:1".into(), serde_json::json!({}))
        );
        assert_eq!(
            parse_join(r#"room:1={"a":1}"#).unwrap(),
            ("room:1".into(), serde_json::json!({"a": 1}))
        );
        assert!(parse_join("room:1={oops").is_err());
        assert!(parse_join("room:1=[1]").is_err());
    }

    #[test]
    fn headers_need_a_name_and_a_colon() {
        assert_eq!(
            parse_header("x-api-key: abc").unwrap(),
            ("x-api-key".into(), "abc".into())
        );
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("bad name: v").is_err());
    }

    #[test]
    fn backoff_lists_are_comma_separated_milliseconds() {
        assert_eq!(parse_ms_list("10, 50,100").unwrap().0, vec![10, 50, 100]);
        assert!(parse_ms_list("10,x").is_err());
    }
}
