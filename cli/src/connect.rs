//! `slipstream connect`: a client whose callbacks print JSON lines, driven by JSON
//! commands read from stdin.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::BufRead;
use std::rc::Rc;
use std::time::Duration;

use actix::{Actor, Addr};
use actix_slipstream::{
    AfterDisconnect, AfterTopicClose, Client, Config, ConnectError, Disconnect, DisconnectReason,
    Event, GetStatus, Join, JoinError, Leave, Payload, Push, PushError, Reconnect, Ref, Reply,
    SlipstreamActor, Socket, Topic, TopicCloseReason,
};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::args::ConnectArgs;
use crate::output::{payload_from_json, payload_json, status_fields, Out};
use crate::shutdown_signal;

/// Commands read from stdin waiting to be handled (the reader blocks beyond it).
const COMMAND_QUEUE: usize = 64;
/// The client's mailbox size, so that commands reach it in the order they were read.
const MAILBOX: usize = 65_536;
/// Pushes awaiting their reply before the next command waits for the oldest one.
const MAX_OUTSTANDING_PUSHES: usize = 4096;
/// How long the closing handshake may take at exit after the close frame was queued.
const CLOSE_LINGER: Duration = Duration::from_millis(100);
/// The longest per-push `timeout_ms` accepted (one day).
const MAX_PUSH_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1000;
/// At exit, how long after the last push's own timeout its reply line may take.
const REPLY_GRACE: Duration = Duration::from_secs(1);
/// The longest wait for the client's answer to a `status` command.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

/// What the printing actor shares with the command loop (both on the System's thread).
struct Shared {
    out: Out,
    /// How many `joined` lines were printed per topic.
    joined: RefCell<HashMap<String, u64>>,
}

impl Shared {
    fn emit(&self, event: &str, fields: &[(&str, Value)]) {
        self.out.emit(event, fields);
    }

    fn joined_count(&self, topic: &str) -> u64 {
        self.joined.borrow().get(topic).copied().unwrap_or(0)
    }
}

/// The client's callbacks: print every event, otherwise keep the library's defaults
/// (reconnect with backoff, rejoin every topic after a reconnect).
struct Printer {
    shared: Rc<Shared>,
    initial_joins: Vec<(String, Value)>,
    failed_connects: u32,
    max_connect_attempts: Option<u32>,
}

impl SlipstreamActor for Printer {
    fn init(&mut self, socket: &mut Socket<'_, Self>) {
        socket.context().set_mailbox_capacity(MAILBOX);
        for (topic, params) in self.initial_joins.drain(..) {
            socket.join(topic, params);
        }
        socket.connect();
    }

    fn handle_connect(&mut self, _socket: &mut Socket<'_, Self>) {
        self.failed_connects = 0;
        self.shared.emit("connected", &[]);
    }

    fn handle_disconnect(
        &mut self,
        reason: &DisconnectReason,
        default: AfterDisconnect,
        _socket: &mut Socket<'_, Self>,
    ) -> AfterDisconnect {
        self.shared.emit(
            "disconnected",
            &[("reason", Value::from(reason.to_string()))],
        );
        if let DisconnectReason::ConnectFailed(e) = reason {
            if let ConnectError::Config(e) = e {
                self.shared.out.error(format!("invalid configuration: {e}"));
                actix_rt::System::current().stop_with_code(2);
                return AfterDisconnect::StayDisconnected;
            }
            self.failed_connects += 1;
            if let Some(max) = self.max_connect_attempts {
                if self.failed_connects >= max {
                    self.shared
                        .out
                        .error(format!("giving up after {max} failed connect attempts"));
                    actix_rt::System::current().stop_with_code(1);
                    return AfterDisconnect::StayDisconnected;
                }
            }
        }
        default
    }

    fn handle_join(&mut self, topic: &Topic, response: &Payload, _: &mut Socket<'_, Self>) {
        *self
            .shared
            .joined
            .borrow_mut()
            .entry(topic.to_string())
            .or_default() += 1;
        self.shared.emit(
            "joined",
            &[
                ("topic", Value::from(topic.as_str())),
                ("response", payload_json(response)),
            ],
        );
    }

    fn handle_message(
        &mut self,
        topic: &Topic,
        event: &Event,
        payload: Payload,
        _: &mut Socket<'_, Self>,
    ) {
        self.shared.emit(
            "message",
            &[
                ("topic", Value::from(topic.as_str())),
                ("name", Value::from(event.as_str())),
                ("payload", payload_json(&payload)),
            ],
        );
    }

    fn handle_reply(
        &mut self,
        topic: &Topic,
        _reference: &Ref,
        result: Result<Reply, PushError>,
        _: &mut Socket<'_, Self>,
    ) {
        // Only pushes made with `socket.push` arrive here; this tool uses `Push`.
        print_reply(&self.shared, topic.as_str(), &Value::Null, result);
    }

    fn handle_leave(&mut self, topic: &Topic, _: &mut Socket<'_, Self>) {
        self.shared
            .emit("left", &[("topic", Value::from(topic.as_str()))]);
    }

    fn handle_topic_close(
        &mut self,
        topic: &Topic,
        reason: &TopicCloseReason,
        default: AfterTopicClose,
        _socket: &mut Socket<'_, Self>,
    ) -> AfterTopicClose {
        match reason {
            TopicCloseReason::JoinFailed(e) => {
                let response = match e {
                    JoinError::Rejected(p) => payload_json(p),
                    _ => Value::Null,
                };
                self.shared.emit(
                    "join_failed",
                    &[
                        ("topic", Value::from(topic.as_str())),
                        ("reason", Value::from(e.to_string())),
                        ("response", response),
                    ],
                );
            }
            _ => self.shared.emit(
                "topic_closed",
                &[
                    ("topic", Value::from(topic.as_str())),
                    ("reason", Value::from(reason.to_string())),
                ],
            ),
        }
        default
    }
}

fn print_reply(shared: &Shared, topic: &str, id: &Value, result: Result<Reply, PushError>) {
    let mut fields = vec![("topic", Value::from(topic)), ("id", id.clone())];
    match result {
        Ok(reply) => {
            fields.push(("status", Value::from(reply.status.as_str())));
            fields.push(("response", payload_json(&reply.response)));
        }
        Err(e) => {
            let status = if e == PushError::Timeout {
                "timeout"
            } else {
                "failed"
            };
            fields.push(("status", Value::from(status)));
            fields.push(("response", Value::Null));
            fields.push(("reason", Value::from(e.to_string())));
        }
    }
    shared.emit("reply", &fields);
}

/// One command line.
#[derive(Debug, PartialEq)]
enum Command {
    Join {
        topic: String,
        params: Value,
    },
    Leave(String),
    Push {
        topic: String,
        event: String,
        payload: Payload,
        id: Value,
        /// The push's own reply timeout (`timeout_ms`), instead of the configured one.
        timeout: Option<Duration>,
    },
    Status,
    Disconnect,
    Reconnect,
    Quit,
}

const COMMANDS: [&str; 7] = [
    "join",
    "leave",
    "push",
    "status",
    "disconnect",
    "reconnect",
    "quit",
];

fn parse_command(line: &str) -> Result<Command, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(mut obj) = value else {
        return Err("a command is a JSON object".into());
    };
    let keys: Vec<&str> = COMMANDS
        .into_iter()
        .filter(|k| obj.contains_key(*k))
        .collect();
    let [key] = keys[..] else {
        return Err(format!(
            "a command has exactly one of the keys {}",
            COMMANDS.join(", ")
        ));
    };
    let string = |obj: &mut Map<String, Value>, k: &str| match obj.remove(k) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        _ => Err(format!("{k:?} must be a non-empty string")),
    };
    let flag = |obj: &Map<String, Value>, k: &str| match obj.get(k) {
        Some(Value::Bool(true)) => Ok(()),
        _ => Err(format!("{k:?} must be true")),
    };
    match key {
        "join" => {
            let topic = string(&mut obj, "join")?;
            let params = match obj.remove("params") {
                None | Some(Value::Null) => json!({}),
                Some(p @ Value::Object(_)) => p,
                Some(_) => return Err("\"params\" must be a JSON object".into()),
            };
            Ok(Command::Join { topic, params })
        }
        "leave" => Ok(Command::Leave(string(&mut obj, "leave")?)),
        "push" => {
            let topic = string(&mut obj, "push")?;
            let event = string(&mut obj, "event")?;
            let payload = payload_from_json(obj.remove("payload").unwrap_or_else(|| json!({})))?;
            let id = obj.remove("id").unwrap_or(Value::Null);
            let timeout = match obj.remove("timeout_ms") {
                None | Some(Value::Null) => None,
                Some(ms) => match ms.as_u64() {
                    Some(ms @ 1..=MAX_PUSH_TIMEOUT_MS) => Some(Duration::from_millis(ms)),
                    _ => {
                        return Err(format!(
                            "\"timeout_ms\" must be an integer from 1 to {MAX_PUSH_TIMEOUT_MS}"
                        ))
                    }
                },
            };
            Ok(Command::Push {
                topic,
                event,
                payload,
                id,
                timeout,
            })
        }
        "status" => flag(&obj, "status").map(|()| Command::Status),
        "disconnect" => flag(&obj, "disconnect").map(|()| Command::Disconnect),
        "reconnect" => flag(&obj, "reconnect").map(|()| Command::Reconnect),
        _ => flag(&obj, "quit").map(|()| Command::Quit),
    }
}

/// Runs the client until stdin ends, `quit`, SIGINT/SIGTERM, or it gives up connecting.
/// Returns the exit code.
pub fn run(args: ConnectArgs) -> i32 {
    let config = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("slipstream: invalid arguments: {e}");
            return 2;
        }
    };
    let system = actix_rt::System::new();
    let started = system.block_on(async move { start(args, config) });
    if let Err(e) = started {
        eprintln!("slipstream: {e}");
        return 1;
    }
    match system.run_with_code() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("slipstream: {e}");
            1
        }
    }
}

fn start(args: ConnectArgs, config: Config) -> std::io::Result<()> {
    let signal = shutdown_signal()?;
    let shared = Rc::new(Shared {
        out: Out::new(),
        joined: RefCell::new(HashMap::new()),
    });
    let commands = if args.no_stdin {
        None
    } else {
        Some(read_stdin()?)
    };
    let push_timeout = config.push_timeout;
    let printer = Printer {
        shared: shared.clone(),
        initial_joins: args.joins,
        failed_connects: 0,
        max_connect_attempts: args.max_connect_attempts,
    };
    let addr = Client::new(printer, config).start();
    actix_rt::spawn(async move {
        let mut driver = Driver {
            addr,
            shared,
            pushes: Vec::new(),
            push_timeout,
            last_push_deadline: None,
        };
        tokio::select! {
            () = driver.read_commands(commands) => {}
            () = signal => {}
        }
        driver.shutdown().await;
        actix_rt::System::current().stop_with_code(0);
    });
    Ok(())
}

/// Reads stdin on a thread of its own; the lines arrive through a bounded channel,
/// which closes at EOF.
fn read_stdin() -> std::io::Result<mpsc::Receiver<String>> {
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    std::thread::Builder::new()
        .name("slipstream-stdin".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.blocking_send(line).is_err() {
                    break;
                }
            }
        })?;
    Ok(rx)
}

/// Carries out commands on the client.
struct Driver {
    addr: Addr<Client<Printer>>,
    shared: Rc<Shared>,
    pushes: Vec<JoinHandle<()>>,
    /// The configured push timeout.
    push_timeout: Duration,
    /// When the push with the latest timeout times out (pushes with `timeout_ms`).
    last_push_deadline: Option<Instant>,
}

impl Driver {
    /// Handles command lines until EOF or `quit` (forever without stdin).
    async fn read_commands(&mut self, commands: Option<mpsc::Receiver<String>>) {
        let Some(mut commands) = commands else {
            return std::future::pending().await;
        };
        while let Some(line) = commands.recv().await {
            if line.trim().is_empty() {
                continue;
            }
            match parse_command(&line) {
                Ok(Command::Quit) => return,
                Ok(command) => self.execute(command).await,
                Err(e) => self.shared.out.error(format!("{e}: {line}")),
            }
        }
    }

    async fn execute(&mut self, command: Command) {
        match command {
            Command::Join { topic, params } => {
                let before = self.shared.joined_count(&topic);
                let request = self.addr.send(Join::new(topic.as_str(), params));
                let shared = self.shared.clone();
                actix_rt::spawn(async move {
                    match request.await {
                        // A join of a topic already joined sends nothing and calls no
                        // callback: print its join response here.
                        Ok(Ok(response)) if shared.joined_count(&topic) == before => {
                            shared.emit(
                                "joined",
                                &[
                                    ("topic", Value::from(topic)),
                                    ("response", payload_json(&response)),
                                ],
                            );
                        }
                        // Nothing was sent and no callback runs: say why here.
                        Ok(Err(e @ JoinError::ParamsConflict)) => {
                            shared.out.error(format!("join of {topic}: {e}"));
                        }
                        // Other failures are printed by the callbacks.
                        _ => {}
                    }
                });
            }
            Command::Leave(topic) => {
                let known = match self.addr.send(GetStatus).await {
                    Ok(status) => status.topic(&topic).is_some(),
                    Err(_) => true,
                };
                if known {
                    self.addr.do_send(Leave::new(topic));
                } else {
                    self.shared
                        .out
                        .error(format!("leave of {topic}: not joined"));
                }
            }
            Command::Push {
                topic,
                event,
                payload,
                id,
                timeout,
            } => {
                self.pushes.retain(|h| !h.is_finished());
                if self.pushes.len() >= MAX_OUTSTANDING_PUSHES {
                    let oldest = self.pushes.remove(0);
                    let _ = oldest.await;
                }
                let mut push = Push::new(topic.as_str(), event.as_str(), payload);
                if let Some(timeout) = timeout {
                    let deadline = Instant::now() + timeout;
                    self.last_push_deadline = self.last_push_deadline.max(Some(deadline));
                    push = push.timeout(timeout);
                }
                let request = self.addr.send(push);
                let shared = self.shared.clone();
                self.pushes.push(actix_rt::spawn(async move {
                    let result = request.await.unwrap_or(Err(PushError::Stopped));
                    print_reply(&shared, &topic, &id, result);
                }));
            }
            Command::Status => match self.addr.send(GetStatus).timeout(STATUS_TIMEOUT).await {
                Ok(status) => self.shared.emit("status", &status_fields(&status)),
                Err(e) => self.shared.out.error(format!("status: {e}")),
            },
            Command::Disconnect => self.addr.do_send(Disconnect),
            Command::Reconnect => self.addr.do_send(Reconnect),
            Command::Quit => {}
        }
    }

    /// Waits for outstanding replies (up to the push timeout, or the latest
    /// `timeout_ms` of a push), leaves every topic, and closes the connection with
    /// code 1000.
    async fn shutdown(&mut self) {
        let pushes = futures_util::future::join_all(self.pushes.drain(..));
        let mut wait = self.push_timeout;
        if let Some(deadline) = self.last_push_deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            wait = wait.max(left.saturating_add(REPLY_GRACE));
        }
        let _ = tokio::time::timeout(wait, pushes).await;

        let Ok(status) = self.addr.send(GetStatus).await else {
            return;
        };
        // Each leave resolves once its topic is left (or after the leave timeout).
        let leaves = status
            .topics
            .iter()
            .map(|topic| self.addr.send(Leave::new(topic.topic.clone())));
        let _ = futures_util::future::join_all(leaves).await;

        if self.addr.send(Disconnect).await.is_ok() {
            // Give the writer the moment it needs to send the close frame.
            tokio::time::sleep(CLOSE_LINGER).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_from_json_lines() {
        assert_eq!(
            parse_command(r#"{"join":"room:1","params":{"a":1}}"#).unwrap(),
            Command::Join {
                topic: "room:1".into(),
                params: json!({"a": 1})
            }
        );
        assert_eq!(
            parse_command(r#"{"push":"room:1","event":"echo","id":7}"#).unwrap(),
            Command::Push {
                topic: "room:1".into(),
                event: "echo".into(),
                payload: Payload::Json(json!({})),
                id: json!(7),
                timeout: None,
            }
        );
        assert_eq!(
            parse_command(r#"{"push":"room:1","event":"e","payload":1,"timeout_ms":250}"#).unwrap(),
            Command::Push {
                topic: "room:1".into(),
                event: "e".into(),
                payload: Payload::Json(json!(1)),
                id: Value::Null,
                timeout: Some(Duration::from_millis(250)),
            }
        );
        assert_eq!(
            parse_command(r#"{"push":"room:1","event":"e","timeout_ms":null}"#).unwrap(),
            Command::Push {
                topic: "room:1".into(),
                event: "e".into(),
                payload: Payload::Json(json!({})),
                id: Value::Null,
                timeout: None,
            }
        );
        assert_eq!(
            parse_command(r#"{"status":true}"#).unwrap(),
            Command::Status
        );
        assert_eq!(
            parse_command(r#"{"leave":"room:1"}"#).unwrap(),
            Command::Leave("room:1".into())
        );
        assert_eq!(parse_command(r#"{"quit":true}"#).unwrap(), Command::Quit);
    }

    #[test]
    fn malformed_commands_are_errors() {
        for line in [
            "not json",
            "[1]",
            "{}",
            r#"{"join":"a","leave":"b"}"#,
            r#"{"join":5}"#,
            r#"{"join":"a","params":[1]}"#,
            r#"{"push":"room:1"}"#,
            r#"{"push":"room:1","event":"e","payload":{"binary_base64":"!"}}"#,
            r#"{"quit":false}"#,
            r#"{"status":1}"#,
            r#"{"status":true,"quit":true}"#,
            r#"{"push":"room:1","event":"e","timeout_ms":0}"#,
            r#"{"push":"room:1","event":"e","timeout_ms":-5}"#,
            r#"{"push":"room:1","event":"e","timeout_ms":1.5}"#,
            r#"{"push":"room:1","event":"e","timeout_ms":"100"}"#,
            r#"{"push":"room:1","event":"e","timeout_ms":86400001}"#,
        ] {
            assert!(parse_command(line).is_err(), "{line}");
        }
    }
}
