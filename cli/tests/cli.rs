//! End-to-end tests of the `slipstream` binary: it runs as a child process against the
//! test server (in-process, or `slipstream serve` as another child), and the tests
//! read its JSON lines with bounded waits.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_slipstream::testing::{
    DisconnectReason, LeaveReason, Refusal, ServerEvent, Silence, SocketId, TestServer,
};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_slipstream");
/// The longest any single wait may take.
const WAIT: Duration = Duration::from_secs(15);

/// A running `slipstream` process: its stdout lines as JSON, its stdin, its stderr.
struct Proc {
    pid: u32,
    stdin: Option<ChildStdin>,
    lines: Receiver<Option<Value>>,
    exit: Receiver<ExitStatus>,
    exited: Option<ExitStatus>,
    stderr: Arc<Mutex<String>>,
    /// Closes when stderr ends.
    stderr_done: Receiver<()>,
    /// Every line read so far.
    seen: Vec<Value>,
    /// Lines read but not matched by a wait yet.
    pending: Vec<Value>,
}

impl Proc {
    fn spawn(args: &[&str]) -> Proc {
        Proc::spawn_env(args, &[])
    }

    /// Spawns with these extra environment variables.
    fn spawn_env(args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut child: Child = Command::new(BIN)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("slipstream starts");
        let pid = child.id();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let stderr_pipe = child.stderr.take().expect("stderr");
        let (line_tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
                if line_tx.send(Some(value)).is_err() {
                    return;
                }
            }
            let _ = line_tx.send(None);
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let (stderr_tx, stderr_done) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            let _done = stderr_tx;
            for line in BufReader::new(stderr_pipe).lines() {
                let Ok(line) = line else { break };
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let (exit_tx, exit) = mpsc::channel();
        std::thread::spawn(move || {
            if let Ok(status) = child.wait() {
                let _ = exit_tx.send(status);
            }
        });
        Proc {
            pid,
            stdin,
            lines,
            exit,
            exited: None,
            stderr,
            stderr_done,
            seen: Vec::new(),
            pending: Vec::new(),
        }
    }

    /// Sends one command line.
    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{line}").expect("write to stdin");
        stdin.flush().expect("flush stdin");
    }

    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([format!("-{sig}"), self.pid.to_string()])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill -{sig} {}", self.pid);
    }

    /// Waits for the first line not matched yet with this `event` that matches `pred`.
    fn wait_for(&mut self, event: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let matches = |v: &Value| v["event"] == event && pred(v);
        if let Some(i) = self.pending.iter().position(matches) {
            return self.pending.remove(i);
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(Some(v)) => {
                    self.seen.push(v.clone());
                    if matches(&v) {
                        return v;
                    }
                    self.pending.push(v);
                }
                Ok(None) | Err(RecvTimeoutError::Disconnected) => {
                    panic!("stdout ended while waiting for {event}; {}", self.report())
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("timed out waiting for {event}; {}", self.report())
                }
            }
        }
    }

    fn event(&mut self, event: &str) -> Value {
        self.wait_for(event, |_| true)
    }

    fn topic_event(&mut self, event: &str, topic: &str) -> Value {
        self.wait_for(event, |v| v["topic"] == topic)
    }

    fn reply(&mut self, id: Value) -> Value {
        self.wait_for("reply", |v| v["id"] == id)
    }

    /// Reads the remaining lines until stdout ends, then the exit code.
    fn finish(&mut self) -> i32 {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(Some(v)) => self.seen.push(v),
                Ok(None) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("stdout did not end; {}", self.report())
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let status = self
            .exit
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("did not exit; {}", self.report()));
        self.exited = Some(status);
        let left = deadline.saturating_duration_since(Instant::now());
        if let Err(RecvTimeoutError::Timeout) = self.stderr_done.recv_timeout(left) {
            panic!("stderr did not end; {}", self.report());
        }
        status
            .code()
            .unwrap_or_else(|| panic!("killed by a signal: {status}; {}", self.report()))
    }

    /// The events seen so far, by name.
    fn events(&self) -> Vec<String> {
        self.seen
            .iter()
            .map(|v| v["event"].as_str().unwrap_or("?").to_owned())
            .collect()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn report(&self) -> String {
        let lines: Vec<String> = self.seen.iter().map(Value::to_string).collect();
        format!(
            "stdout so far:\n{}\nstderr:\n{}",
            lines.join("\n"),
            self.stderr()
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited.is_none() && self.exit.try_recv().is_err() {
            let _ = Command::new("kill")
                .args(["-KILL", &self.pid.to_string()])
                .status();
        }
    }
}

/// The demo server on its own thread, and a runtime for its async methods.
struct Server {
    server: TestServer,
    rt: tokio::runtime::Runtime,
}

impl Server {
    fn start() -> Server {
        let server = TestServer::phoenix_demo()
            .spawn_in_thread()
            .expect("test server starts");
        Server::with(server)
    }

    /// A `wss://` demo server with this certificate (DER) and PKCS#8 key (DER).
    fn start_tls(cert: Vec<u8>, key: Vec<u8>) -> Server {
        let server = TestServer::phoenix_demo()
            .tls(vec![cert], key)
            .spawn_in_thread()
            .expect("wss test server starts");
        assert!(server.url().starts_with("wss://127.0.0.1:"));
        Server::with(server)
    }

    fn with(server: TestServer) -> Server {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Server { server, rt }
    }

    /// The socket of the last connection.
    fn last_socket(&self) -> SocketId {
        self.server.sockets().last().expect("a socket").id
    }

    fn url(&self) -> String {
        self.server.url()
    }

    fn wait_for(&self, what: &str, pred: impl FnMut(&ServerEvent) -> bool) -> ServerEvent {
        self.rt
            .block_on(self.server.wait_for(WAIT, pred))
            .unwrap_or_else(|e| panic!("server never saw {what}: {e}"))
            .event
    }
}

/// A client on the demo server with fast retries, and these extra arguments.
fn client(server: &Server, extra: &[&str]) -> Proc {
    let url = server.url();
    let mut args = vec![
        "connect",
        url.as_str(),
        "-p",
        "token=t",
        "--reconnect-ms",
        "10,20,50",
        "--rejoin-ms",
        "10,20,50",
    ];
    args.extend_from_slice(extra);
    Proc::spawn(&args)
}

fn is_number(v: &Value) -> bool {
    v.as_u64().is_some()
}

#[test]
fn connect_prints_connected_and_joined_then_at_stdin_eof_leaves_closes_with_1000_and_exits_0() {
    let server = Server::start();
    let mut p = client(&server, &["-j", r#"room:1={"user":"ada"}"#, "-j", "room:2"]);
    let connected = p.event("connected");
    assert!(is_number(&connected["ts_ms"]), "{connected}");
    let joined = p.topic_event("joined", "room:1");
    assert_eq!(joined["response"], json!({"user": "ada"}));
    assert!(is_number(&joined["ts_ms"]));
    p.topic_event("joined", "room:2");

    p.close_stdin();
    p.topic_event("left", "room:1");
    p.topic_event("left", "room:2");
    let disconnected = p.event("disconnected");
    assert_eq!(disconnected["reason"], "disconnect requested");
    assert_eq!(p.finish(), 0, "{}", p.report());

    server.wait_for(
        "room:1 left by the client",
        |e| matches!(e, ServerEvent::Left(_, t, LeaveReason::Left) if t == "room:1"),
    );
    server.wait_for("a close frame with code 1000", |e| {
        matches!(
            e,
            ServerEvent::Disconnected(_, DisconnectReason::ClientClosed(Some(1000)))
        )
    });
}

#[test]
fn push_replies_carry_the_command_id_and_the_ok_error_timeout_and_failed_statuses() {
    let server = Server::start();
    let mut p = client(&server, &["-j", "room:1", "--timeout-ms", "1000"]);
    p.topic_event("joined", "room:1");

    p.send(r#"{"push":"room:1","event":"echo","payload":{"n":1},"id":"a"}"#);
    let ok = p.reply(json!("a"));
    assert_eq!(ok["topic"], "room:1");
    assert_eq!(ok["status"], "ok");
    assert_eq!(ok["response"], json!({"n": 1}));

    p.send(r#"{"push":"room:1","event":"error_reply","payload":{"n":2},"id":2}"#);
    let error = p.reply(json!(2));
    assert_eq!(error["status"], "error");

    p.send(r#"{"push":"room:1","event":"sleep","payload":{"ms":5000},"id":{"k":3}}"#);
    let timeout = p.reply(json!({"k": 3}));
    assert_eq!(timeout["status"], "timeout", "{timeout}");

    p.send(r#"{"push":"room:nope","event":"echo","id":4}"#);
    let failed = p.reply(json!(4));
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["reason"], "topic is not joined");

    p.send(r#"{"push":"room:1","event":"phx_join","id":5}"#);
    assert_eq!(p.reply(json!(5))["status"], "failed");

    p.send(r#"{"push":"room:1","event":"echo"}"#);
    assert_eq!(p.reply(Value::Null)["status"], "ok");

    p.send(r#"{"quit":true}"#);
    assert_eq!(p.finish(), 0, "{}", p.report());
}

#[test]
fn messages_and_broadcasts_are_printed_and_binary_payloads_are_base64() {
    let server = Server::start();
    // push_me and push_binary get no reply: a short timeout keeps the exit quick.
    let mut p = client(&server, &["-j", "room:1", "--timeout-ms", "1000"]);
    p.topic_event("joined", "room:1");

    p.send(r#"{"push":"room:1","event":"push_me","payload":{"x":1},"id":1}"#);
    let pushed = p.wait_for("message", |v| v["name"] == "pushed");
    assert_eq!(pushed["topic"], "room:1");
    assert_eq!(pushed["payload"], json!({"x": 1}));

    p.send(r#"{"push":"room:1","event":"push_binary","id":2}"#);
    let binary = p.wait_for("message", |v| v["name"] == "binary_pushed");
    assert_eq!(binary["payload"], json!({"binary_base64": "AAECA/7/"}));

    p.send(r#"{"push":"room:1","event":"echo","payload":{"binary_base64":"AAEC"},"id":3}"#);
    let echoed = p.reply(json!(3));
    assert_eq!(echoed["status"], "ok");
    assert_eq!(echoed["response"], json!({"binary_base64": "AAEC"}));

    p.send(r#"{"push":"room:1","event":"broadcast","payload":{"hello":"all"},"id":4}"#);
    let broadcast = p.wait_for("message", |v| v["name"] == "broadcast");
    assert_eq!(broadcast["payload"], json!({"hello": "all"}));
    p.reply(json!(4));

    server.rt.block_on(
        server
            .server
            .broadcast("room:1", "news", json!({"from": "outside"})),
    );
    let news = p.wait_for("message", |v| v["name"] == "news");
    assert_eq!(news["payload"], json!({"from": "outside"}));

    assert_eq!(p.reply(json!(1))["status"], "timeout");
    assert_eq!(p.reply(json!(2))["status"], "timeout");
    p.close_stdin();
    assert_eq!(p.finish(), 0, "{}", p.report());
}

#[test]
fn a_crashed_channel_prints_topic_closed_then_it_is_joined_again() {
    let server = Server::start();
    let mut p = client(&server, &["-j", r#"room:1={"v":1}"#]);
    p.topic_event("joined", "room:1");

    p.send(r#"{"push":"room:1","event":"crash","id":1}"#);
    let closed = p.topic_event("topic_closed", "room:1");
    assert_eq!(closed["reason"], "channel crashed (phx_error)");
    let rejoined = p.topic_event("joined", "room:1");
    assert_eq!(rejoined["response"], json!({"v": 1}));

    p.send(r#"{"quit":true}"#);
    assert_eq!(p.finish(), 0, "{}", p.report());
}

#[test]
fn leave_and_a_channel_stop_print_left_and_a_leave_of_an_unknown_topic_is_an_error() {
    let server = Server::start();
    let mut p = client(&server, &["-j", "room:1"]);
    p.topic_event("joined", "room:1");

    p.send(r#"{"join":"room:2","params":{"a":2}}"#);
    assert_eq!(
        p.topic_event("joined", "room:2")["response"],
        json!({"a": 2})
    );
    // Joining a joined topic sends nothing and prints its join response again.
    p.send(r#"{"join":"room:2","params":{"a":2}}"#);
    assert_eq!(
        p.topic_event("joined", "room:2")["response"],
        json!({"a": 2})
    );

    p.send(r#"{"leave":"room:2"}"#);
    p.topic_event("left", "room:2");
    server.wait_for(
        "room:2 left",
        |e| matches!(e, ServerEvent::Left(_, t, LeaveReason::Left) if t == "room:2"),
    );

    p.send(r#"{"push":"room:1","event":"stop","id":1}"#);
    p.topic_event("left", "room:1");

    p.send(r#"{"leave":"room:3"}"#);
    let error = p.event("error");
    assert!(
        error["message"].as_str().unwrap().contains("room:3"),
        "{error}"
    );

    p.close_stdin();
    assert_eq!(p.finish(), 0, "{}", p.report());
}

#[test]
fn a_rejected_join_prints_join_failed_with_the_channel_response() {
    let server = Server::start();
    let mut p = client(&server, &[]);
    p.event("connected");

    p.send(r#"{"join":"private:1"}"#);
    let failed = p.topic_event("join_failed", "private:1");
    assert_eq!(failed["response"], json!({"reason": "unauthorized"}));
    assert_eq!(
        failed["reason"],
        r#"join rejected: {"reason":"unauthorized"}"#
    );

    p.send(r#"{"join":"private:2","params":{"token":"secret"}}"#);
    p.topic_event("joined", "private:2");

    p.close_stdin();
    assert_eq!(p.finish(), 0, "{}", p.report());
    assert_eq!(
        p.events().iter().filter(|e| *e == "join_failed").count(),
        1,
        "a rejected join is reported once; {}",
        p.report()
    );
}

#[test]
fn after_the_server_drops_the_connection_it_reconnects_and_rejoins_every_topic() {
    let server = Server::start();
    let mut p = client(&server, &["-j", "room:1", "-j", r#"room:2={"b":2}"#]);
    p.topic_event("joined", "room:1");
    p.topic_event("joined", "room:2");
    p.send(r#"{"join":"room:3"}"#);
    p.topic_event("joined", "room:3");

    assert_eq!(server.server.drop_all_connections(), 1);
    let disconnected = p.event("disconnected");
    assert!(
        disconnected["reason"]
            .as_str()
            .unwrap()
            .starts_with("connection lost"),
        "{disconnected}"
    );
    p.event("connected");
    p.topic_event("joined", "room:1");
    assert_eq!(
        p.topic_event("joined", "room:2")["response"],
        json!({"b": 2})
    );
    p.topic_event("joined", "room:3");

    p.send(r#"{"push":"room:3","event":"echo","id":1}"#);
    assert_eq!(p.reply(json!(1))["status"], "ok");
    p.close_stdin();
    assert_eq!(p.finish(), 0, "{}", p.report());
}

#[test]
fn disconnect_and_reconnect_commands_close_and_reopen_the_socket_with_the_topics() {
    let server = Server::start();
    let mut p = client(&server, &["-j", "room:1"]);
    p.topic_event("joined", "room:1");

    p.send(r#"{"disconnect":true}"#);
    assert_eq!(p.event("disconnected")["reason"], "disconnect requested");
    server.wait_for("a close frame with code 1000", |e| {
        matches!(
            e,
            ServerEvent::Disconnected(_, DisconnectReason::ClientClosed(Some(1000)))
        )
    });

    p.send(r#"{"reconnect":true}"#);
    p.event("connected");
    p.topic_event("joined", "room:1");

    p.send(r#"{"reconnect":true}"#);
    assert_eq!(p.event("disconnected")["reason"], "reconnect requested");
    p.event("connected");
    p.topic_event("joined", "room:1");

    p.close_stdin();
    assert_eq!(p.finish(), 0, "{}", p.report());
}

#[test]
fn malformed_lines_print_an_error_event_and_the_tool_goes_on() {
    let server = Server::start();
    let mut p = client(&server, &["-j", "room:1"]);
    p.topic_event("joined", "room:1");

    let bad = [
        "not json",
        "[1,2]",
        r#"{"unknown":1}"#,
        r#"{"join":"room:2","leave":"room:1"}"#,
        r#"{"push":"room:1"}"#,
        r#"{"push":"room:1","event":"echo","payload":{"binary_base64":"%%%"}}"#,
        r#"{"join":"room:2","params":"nope"}"#,
        r#"{"quit":"yes"}"#,
        r#"{"status":false}"#,
        r#"{"status":true,"quit":true}"#,
        r#"{"push":"room:1","event":"echo","timeout_ms":0}"#,
        r#"{"push":"room:1","event":"echo","timeout_ms":-1}"#,
        r#"{"push":"room:1","event":"echo","timeout_ms":"500"}"#,
        r#"{"push":"room:1","event":"echo","timeout_ms":2.5}"#,
        r#"{"push":"room:1","event":"echo","timeout_ms":86400001}"#,
    ];
    for line in bad {
        p.send(line);
        let error = p.event("error");
        assert!(error["message"].is_string(), "{error}");
    }
    p.send(r#"{"push":"room:1","event":"echo","id":"still here"}"#);
    assert_eq!(p.reply(json!("still here"))["status"], "ok");

    p.close_stdin();
    assert_eq!(p.finish(), 0, "{}", p.report());
    let errors = p.events().iter().filter(|e| *e == "error").count();
    assert_eq!(errors, bad.len(), "{}", p.report());
}

#[test]
fn quit_waits_for_outstanding_replies_before_leaving() {
    let server = Server::start();
    let mut p = client(&server, &["-j", "room:1"]);
    p.topic_event("joined", "room:1");

    p.send(r#"{"push":"room:1","event":"sleep","payload":{"ms":300},"id":"slow"}"#);
    p.send(r#"{"quit":true}"#);
    assert_eq!(p.finish(), 0, "{}", p.report());
    let events = p.events();
    let reply = p
        .seen
        .iter()
        .position(|v| v["event"] == "reply" && v["id"] == "slow" && v["status"] == "ok")
        .unwrap_or_else(|| panic!("no ok reply; {}", p.report()));
    let left = events
        .iter()
        .position(|e| e == "left")
        .unwrap_or_else(|| panic!("no left; {}", p.report()));
    assert!(reply < left, "{}", p.report());
}

#[test]
fn no_stdin_runs_until_sigterm_or_sigint_then_leaves_and_exits_0() {
    let server = Server::start();
    for sig in ["TERM", "INT"] {
        let mut p = client(&server, &["--no-stdin", "-j", "room:1"]);
        p.topic_event("joined", "room:1");
        p.signal(sig);
        p.topic_event("left", "room:1");
        p.event("disconnected");
        assert_eq!(p.finish(), 0, "SIG{sig}: {}", p.report());
    }
}

#[test]
fn it_exits_1_after_max_connect_attempts_failed_connects() {
    // A server that refuses the connect (no token: HTTP 403).
    let server = Server::start();
    let url = server.url();
    let mut p = Proc::spawn(&[
        "connect",
        &url,
        "--reconnect-ms",
        "10",
        "--max-connect-attempts",
        "3",
    ]);
    assert_eq!(p.finish(), 1, "{}", p.report());
    let failures: Vec<&Value> = p
        .seen
        .iter()
        .filter(|v| v["event"] == "disconnected")
        .collect();
    assert_eq!(failures.len(), 3, "{}", p.report());
    assert_eq!(
        failures[0]["reason"],
        "connect failed: upgrade refused with HTTP 403"
    );
    assert_eq!(p.seen.last().unwrap()["event"], "error", "{}", p.report());

    // Nothing listening at all.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("ws://127.0.0.1:{port}/socket");
    let mut p = Proc::spawn(&[
        "connect",
        &url,
        "--reconnect-ms",
        "10",
        "--max-connect-attempts",
        "2",
    ]);
    assert_eq!(p.finish(), 1, "{}", p.report());
    assert_eq!(
        p.events().iter().filter(|e| *e == "disconnected").count(),
        2
    );
}

#[test]
fn a_successful_connect_resets_the_failed_connect_count() {
    let server = Server::start();
    server.server.refuse_next(2, Refusal::Http(500));
    let mut p = client(&server, &["--max-connect-attempts", "3", "-j", "room:1"]);
    p.topic_event("joined", "room:1");
    server.server.refuse_next(2, Refusal::TcpClose);
    server.server.drop_all_connections();
    p.event("disconnected");
    p.event("connected");
    p.topic_event("joined", "room:1");
    p.close_stdin();
    assert_eq!(p.finish(), 0, "{}", p.report());
}

#[test]
fn invalid_arguments_exit_2_with_a_message_on_stderr() {
    let cases: &[&[&str]] = &[
        &["connect", "http://127.0.0.1:1/socket"],
        &["connect", "not a url"],
        &["connect", "ws://127.0.0.1:1/socket", "-j", "room:1={oops"],
        &["connect", "ws://127.0.0.1:1/socket", "-j", "room:1=[1]"],
        &["connect", "ws://127.0.0.1:1/socket", "-H", "no colon"],
        &["connect", "ws://127.0.0.1:1/socket", "-p", "novalue"],
        &["connect", "ws://127.0.0.1:1/socket", "--vsn", "3"],
        &["connect", "ws://127.0.0.1:1/socket", "--timeout-ms", "0"],
        &[
            "connect",
            "ws://127.0.0.1:1/socket",
            "--reconnect-ms",
            "1,x",
        ],
        &[
            "connect",
            "ws://127.0.0.1:1/socket",
            "--max-connect-attempts",
            "0",
        ],
        &[
            "connect",
            "ws://127.0.0.1:1/socket",
            "--max-frame-bytes",
            "10",
        ],
        &["connect", "ws://127.0.0.1:1/socket", "--bogus"],
        &["connect"],
        &["frobnicate"],
        &[],
    ];
    for args in cases {
        let mut p = Proc::spawn(args);
        assert_eq!(p.finish(), 2, "{args:?}: {}", p.report());
        assert!(p.seen.is_empty(), "{args:?}: {}", p.report());
        assert!(!p.stderr().trim().is_empty(), "{args:?}: no message");
    }
}

#[test]
fn serve_prints_its_url_serves_a_client_and_stops_on_sigterm() {
    let mut serve = Proc::spawn(&["serve"]);
    let listening = serve.event("listening");
    let url = listening["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with("ws://127.0.0.1:"), "{url}");
    assert!(url.ends_with("/socket"), "{url}");

    let mut p = Proc::spawn(&["connect", &url, "-p", "token=t", "-j", "room:lobby"]);
    p.topic_event("joined", "room:lobby");
    p.send(r#"{"push":"room:lobby","event":"echo","payload":{"hi":1},"id":1}"#);
    assert_eq!(p.reply(json!(1))["response"], json!({"hi": 1}));
    p.close_stdin();
    assert_eq!(p.finish(), 0, "{}", p.report());

    serve.signal("TERM");
    assert_eq!(serve.finish(), 0, "{}", serve.report());
}

#[test]
fn params_headers_and_heartbeats_reach_the_server_and_tokens_stay_out_of_the_logs() {
    let server = Server::start();
    let url = server.url();
    let mut p = Proc::spawn(&[
        "connect",
        &url,
        "-p",
        "token=SECRET-TOKEN-123",
        "-p",
        "user=ada",
        "-H",
        "Authorization: Bearer SECRET-HEADER-456",
        "-H",
        "x-trace: abc",
        "--heartbeat-ms",
        "50",
        "--log",
        "trace",
        "-j",
        "room:1",
    ]);
    p.topic_event("joined", "room:1");
    let sockets = server.server.sockets();
    let socket = sockets.last().expect("a socket");
    assert_eq!(socket.param("token"), Some("SECRET-TOKEN-123"));
    assert_eq!(socket.param("user"), Some("ada"));
    assert_eq!(socket.header("x-trace"), Some("abc"));
    assert_eq!(
        socket.header("authorization"),
        Some("Bearer SECRET-HEADER-456")
    );
    server.wait_for(
        "a heartbeat",
        |e| matches!(e, ServerEvent::Frame(_, m) if m.topic.is_phoenix()),
    );
    p.close_stdin();
    assert_eq!(p.finish(), 0, "{}", p.report());
    let stderr = p.stderr();
    assert!(!stderr.is_empty(), "trace logs go to stderr");
    assert!(!stderr.contains("SECRET"), "{stderr}");
}

#[test]
fn vsn_1_speaks_the_v1_protocol() {
    let server = Server::start();
    let mut p = client(&server, &["--vsn", "1", "-j", "room:1"]);
    p.topic_event("joined", "room:1");
    p.send(r#"{"push":"room:1","event":"echo","payload":{"v":1},"id":1}"#);
    assert_eq!(p.reply(json!(1))["response"], json!({"v": 1}));
    assert_eq!(server.server.sockets().last().unwrap().vsn, "1.0.0");
    p.close_stdin();
    assert_eq!(p.finish(), 0, "{}", p.report());
}

#[test]
fn a_message_over_max_frame_bytes_disconnects_then_it_reconnects() {
    let server = Server::start();
    let mut p = client(&server, &["--max-frame-bytes", "1024", "-j", "room:1"]);
    p.topic_event("joined", "room:1");
    p.send(r#"{"push":"room:1","event":"flood","payload":{"count":1,"size":4096},"id":1}"#);
    let disconnected = p.event("disconnected");
    assert!(
        disconnected["reason"]
            .as_str()
            .unwrap()
            .contains("max_frame_size"),
        "{disconnected}"
    );
    assert_eq!(p.reply(json!(1))["status"], "failed");
    p.event("connected");
    p.topic_event("joined", "room:1");
    p.close_stdin();
    assert_eq!(p.finish(), 0, "{}", p.report());
}

// ----- per-push timeouts -----

#[test]
fn a_push_timeout_ms_overrides_the_configured_timeout_both_ways() {
    let server = Server::start();
    let mut p = client(&server, &["-j", "room:1", "--timeout-ms", "600"]);
    p.topic_event("joined", "room:1");

    // Shorter than the configured 600 ms: times out although the reply comes in 300.
    p.send(
        r#"{"push":"room:1","event":"sleep","payload":{"ms":300},"id":"short","timeout_ms":50}"#,
    );
    // Longer: a reply after 1200 ms is still awaited.
    p.send(
        r#"{"push":"room:1","event":"sleep","payload":{"ms":1200},"id":"long","timeout_ms":5000}"#,
    );
    // Without the field: the configured 600 ms.
    p.send(r#"{"push":"room:1","event":"sleep","payload":{"ms":1200},"id":"default"}"#);

    let short = p.reply(json!("short"));
    assert_eq!(short["status"], "timeout", "{short}");
    assert_eq!(short["reason"], "no reply within the push timeout");
    assert_eq!(p.reply(json!("default"))["status"], "timeout");
    let long = p.reply(json!("long"));
    assert_eq!(long["status"], "ok", "{long}");
    assert_eq!(long["response"], json!({"ms": 1200}));

    p.close_stdin();
    assert_eq!(p.finish(), 0, "{}", p.report());
}

#[test]
fn at_exit_it_waits_for_a_push_with_a_timeout_ms_longer_than_the_configured_one() {
    let server = Server::start();
    let mut p = client(&server, &["-j", "room:1", "--timeout-ms", "200"]);
    p.topic_event("joined", "room:1");

    p.send(
        r#"{"push":"room:1","event":"sleep","payload":{"ms":800},"id":"slow","timeout_ms":5000}"#,
    );
    p.send(r#"{"quit":true}"#);
    assert_eq!(p.finish(), 0, "{}", p.report());
    let reply = p
        .seen
        .iter()
        .position(|v| v["event"] == "reply" && v["id"] == "slow" && v["status"] == "ok")
        .unwrap_or_else(|| panic!("no ok reply; {}", p.report()));
    let left = p
        .events()
        .iter()
        .position(|e| e == "left")
        .unwrap_or_else(|| panic!("no left; {}", p.report()));
    assert!(reply < left, "{}", p.report());
}

// ----- status -----

/// The keys of a `status` line (the documented, stable shape), sorted.
const STATUS_KEYS: [&str; 16] = [
    "average_heartbeat_rtt_ms",
    "buffered_pushes",
    "bytes_in",
    "bytes_out",
    "connection",
    "connects",
    "disconnects",
    "disconnects_by_reason",
    "event",
    "frames_in",
    "frames_out",
    "last_heartbeat_rtt_ms",
    "pending_replies",
    "rejoins",
    "topics",
    "ts_ms",
];

/// Sends `{"status":true}` and returns the status line, checking its shape.
fn status(p: &mut Proc) -> Value {
    p.send(r#"{"status":true}"#);
    let status = p.event("status");
    let keys: Vec<&str> = status
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, STATUS_KEYS, "{status}");
    status
}

#[test]
fn status_prints_the_connection_each_topic_with_its_join_ref_and_the_counters() {
    let server = Server::start();
    let mut p = client(
        &server,
        &["-j", "room:2", "-j", "room:1", "--heartbeat-ms", "50"],
    );
    p.topic_event("joined", "room:2");
    p.topic_event("joined", "room:1");
    // A heartbeat answered: its reply comes before the echo's on the same socket.
    let socket = server.last_socket();
    server.wait_for(
        "a heartbeat",
        |e| matches!(e, ServerEvent::Frame(s, m) if *s == socket && m.topic.is_phoenix()),
    );
    p.send(r#"{"push":"room:1","event":"echo","id":"after heartbeat"}"#);
    p.reply(json!("after heartbeat"));

    let s = status(&mut p);
    assert_eq!(s["connection"], "connected");
    let info = server.server.socket(socket).expect("the socket");
    let join_ref = |topic: &str| {
        let r = info.channels[topic].as_ref().expect("a join_ref");
        Value::from(r.to_string())
    };
    assert_eq!(
        s["topics"],
        json!([
            {"topic": "room:1", "state": "joined", "join_ref": join_ref("room:1"), "buffered_pushes": 0},
            {"topic": "room:2", "state": "joined", "join_ref": join_ref("room:2"), "buffered_pushes": 0},
        ]),
        "{s}"
    );
    assert_eq!(s["connects"], 1);
    assert_eq!(s["disconnects"], 0);
    assert_eq!(s["disconnects_by_reason"], json!({}));
    assert_eq!(s["rejoins"], 0);
    assert_eq!(s["pending_replies"], 0);
    assert_eq!(s["buffered_pushes"], 0);
    // Two joins, the echo and at least one heartbeat each way.
    assert!(s["frames_out"].as_u64().unwrap() >= 4, "{s}");
    assert!(s["frames_in"].as_u64().unwrap() >= 4, "{s}");
    assert!(s["bytes_out"].as_u64().unwrap() > s["frames_out"].as_u64().unwrap());
    assert!(s["bytes_in"].as_u64().unwrap() > s["frames_in"].as_u64().unwrap());
    assert!(s["last_heartbeat_rtt_ms"].as_f64().is_some(), "{s}");
    assert!(s["average_heartbeat_rtt_ms"].as_f64().is_some(), "{s}");

    // A push awaiting its reply.
    p.send(r#"{"push":"room:1","event":"sleep","payload":{"ms":300},"id":"slow"}"#);
    assert_eq!(status(&mut p)["pending_replies"], 1);
    assert_eq!(p.reply(json!("slow"))["status"], "ok");

    // After a lost connection: counted by kind, every topic rejoined.
    server.server.drop_all_connections();
    p.event("disconnected");
    p.event("connected");
    p.topic_event("joined", "room:1");
    p.topic_event("joined", "room:2");
    let s = status(&mut p);
    assert_eq!(s["connects"], 2);
    assert_eq!(s["disconnects"], 1);
    assert_eq!(s["disconnects_by_reason"], json!({"connection_lost": 1}));
    assert_eq!(s["rejoins"], 2);
    assert_eq!(s["pending_replies"], 0);

    // Disconnected: the topics wait without a join_ref, a push is buffered.
    p.send(r#"{"disconnect":true}"#);
    p.event("disconnected");
    p.send(r#"{"push":"room:1","event":"echo","id":"buffered"}"#);
    let s = status(&mut p);
    assert_eq!(s["connection"], "disconnected");
    assert_eq!(
        s["topics"],
        json!([
            {"topic": "room:1", "state": "errored", "join_ref": null, "buffered_pushes": 1},
            {"topic": "room:2", "state": "errored", "join_ref": null, "buffered_pushes": 0},
        ]),
        "{s}"
    );
    assert_eq!(s["buffered_pushes"], 1);
    assert_eq!(s["disconnects_by_reason"]["requested"], 1);

    // Reconnected: the buffered push goes out once room:1 is joined again.
    p.send(r#"{"reconnect":true}"#);
    assert_eq!(p.reply(json!("buffered"))["status"], "ok");
    p.close_stdin();
    assert_eq!(p.finish(), 0, "{}", p.report());
    assert_eq!(
        p.events().iter().filter(|e| *e == "status").count(),
        4,
        "one status line per command; {}",
        p.report()
    );
}

// ----- heartbeat timeout -----

#[test]
fn a_heartbeat_answered_later_than_heartbeat_timeout_ms_disconnects_then_it_reconnects() {
    let server = Server::start();
    // Replies come 400 ms late: within the next heartbeat (1 s later), so only a
    // heartbeat timeout under 400 ms notices.
    server.server.set_reply_delay(Duration::from_millis(400));
    let mut p = client(
        &server,
        &[
            "-j",
            "room:1",
            "--heartbeat-ms",
            "1000",
            "--heartbeat-timeout-ms",
            "100",
        ],
    );
    p.topic_event("joined", "room:1");
    let disconnected = p.event("disconnected");
    assert_eq!(
        disconnected["reason"],
        "heartbeat timeout",
        "{}",
        p.report()
    );
    server.server.set_reply_delay(Duration::ZERO);
    p.event("connected");
    p.topic_event("joined", "room:1");
    let s = status(&mut p);
    assert!(
        s["disconnects_by_reason"]["heartbeat_timeout"].as_u64() >= Some(1),
        "{s}"
    );
    p.close_stdin();
    assert_eq!(p.finish(), 0, "{}", p.report());
}

#[test]
fn heartbeat_timeout_ms_0_keeps_a_connection_whose_heartbeats_go_unanswered() {
    let server = Server::start();
    let mut p = client(
        &server,
        &[
            "-j",
            "room:1",
            "--heartbeat-ms",
            "50",
            "--heartbeat-timeout-ms",
            "0",
        ],
    );
    p.topic_event("joined", "room:1");
    let socket = server.last_socket();
    let since = server.server.last_seq();
    server
        .rt
        .block_on(server.server.silence(socket, Some(Silence::Ignore)))
        .expect("silenced");
    // With a timeout, the second unanswered heartbeat would close this socket.
    let mut unanswered = 0;
    server
        .rt
        .block_on(server.server.wait_for_after(since, WAIT, |e| {
            if matches!(e, ServerEvent::Frame(s, m) if *s == socket && m.topic.is_phoenix()) {
                unanswered += 1;
            }
            unanswered == 5
        }))
        .unwrap_or_else(|e| panic!("5 unanswered heartbeats: {e}; {}", p.report()));
    let s = status(&mut p);
    assert_eq!(s["connection"], "connected", "{s}");
    assert_eq!(s["connects"], 1, "{s}");
    assert_eq!(s["disconnects"], 0, "{s}");
    assert!(!p.events().contains(&"disconnected".to_owned()));

    server
        .rt
        .block_on(server.server.silence(socket, None))
        .expect("answering again");
    p.close_stdin();
    assert_eq!(p.finish(), 0, "{}", p.report());
}

// ----- --ca-file -----

/// A file under the test target folder, removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(name: &str, contents: &[u8]) -> TempFile {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("cli-{}-{n}-{name}", std::process::id()));
        std::fs::write(&path, contents).expect("temp file written");
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A self-signed certificate for 127.0.0.1: (PEM, DER, PKCS#8 key DER).
fn self_signed() -> (String, Vec<u8>, Vec<u8>) {
    let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
    let certified = rcgen::generate_simple_self_signed(names).expect("certificate generated");
    (
        certified.cert.pem(),
        certified.cert.der().to_vec(),
        certified.signing_key.serialize_der(),
    )
}

#[test]
fn ca_file_trusts_a_self_signed_wss_server_that_is_refused_without_it() {
    let (pem, der, key) = self_signed();
    let server = Server::start_tls(der, key);
    let url = server.url();
    let (other_pem, _, _) = self_signed();
    let server_ca = TempFile::new("server.pem", pem.as_bytes());
    let other_ca = TempFile::new("other.pem", other_pem.as_bytes());

    // Without it (the Mozilla roots), and with only another root: a TLS error.
    let without: &[&str] = &[];
    for extra in [without, &["--ca-file", other_ca.path()]] {
        let mut args = vec![
            "connect",
            url.as_str(),
            "-p",
            "token=t",
            "--max-connect-attempts",
            "1",
        ];
        args.extend_from_slice(extra);
        let mut p = Proc::spawn(&args);
        let disconnected = p.event("disconnected");
        let reason = disconnected["reason"].as_str().unwrap().to_lowercase();
        assert!(
            reason.starts_with("connect failed") && reason.contains("certificate"),
            "{extra:?}: {disconnected}"
        );
        assert_eq!(p.finish(), 1, "{extra:?}: {}", p.report());
        assert!(!p.events().contains(&"connected".to_owned()));
    }
    assert_eq!(
        server.server.counters().accepted,
        0,
        "no upgrade got through"
    );

    // With it (next to another one: the option repeats): connected and joined over TLS.
    let mut p = client(
        &server,
        &[
            "--ca-file",
            other_ca.path(),
            "--ca-file",
            server_ca.path(),
            "-j",
            "room:tls",
        ],
    );
    p.event("connected");
    p.topic_event("joined", "room:tls");
    p.send(r#"{"push":"room:tls","event":"echo","payload":{"over":"tls"},"id":1}"#);
    assert_eq!(p.reply(json!(1))["response"], json!({"over": "tls"}));
    p.close_stdin();
    assert_eq!(p.finish(), 0, "{}", p.report());
    assert_eq!(server.server.counters().accepted, 1);
}

#[test]
fn a_missing_unreadable_or_invalid_ca_file_exits_2_naming_the_file() {
    let (pem, _, _) = self_signed();
    let not_a_cert = "-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n";
    let bad_base64 = "-----BEGIN CERTIFICATE-----\n%%%%\n-----END CERTIFICATE-----\n";
    let key_only = "-----BEGIN PRIVATE KEY-----\nAAECAwQF\n-----END PRIVATE KEY-----\n";
    let empty = TempFile::new("empty.pem", b"");
    let der = TempFile::new("cert.der", &self_signed().1);
    let key = TempFile::new("key.pem", key_only.as_bytes());
    let garbage = TempFile::new("garbage.pem", not_a_cert.as_bytes());
    let base64 = TempFile::new("base64.pem", bad_base64.as_bytes());
    let truncated = TempFile::new("truncated.pem", &pem.as_bytes()[..pem.len() / 2]);
    let good = TempFile::new("good.pem", pem.as_bytes());
    let missing = format!("{}-missing", good.path());
    let folder = env!("CARGO_TARGET_TMPDIR");
    let cases: &[(&str, &str)] = &[
        (&missing, "No such file"),
        (folder, ""),
        (empty.path(), "no PEM certificate"),
        (der.path(), "no PEM certificate"),
        (key.path(), "no PEM certificate"),
        (garbage.path(), "not a usable root certificate"),
        (base64.path(), "bad base64"),
        (truncated.path(), "invalid PEM"),
    ];
    for (path, why) in cases {
        let url = "wss://127.0.0.1:1/socket";
        // A good file first: the bad one is still named.
        let mut p = Proc::spawn(&["connect", url, "--ca-file", good.path(), "--ca-file", path]);
        assert_eq!(p.finish(), 2, "{path}: {}", p.report());
        assert!(p.seen.is_empty(), "{path}: {}", p.report());
        let stderr = p.stderr();
        assert!(
            stderr.contains(&format!("--ca-file {path}: ")) && stderr.contains(why),
            "{path}: {stderr}"
        );
    }
}

// ----- help -----

/// The long options in the options table of docs/cli.md's `connect` section.
fn documented_connect_options() -> Vec<String> {
    let doc = include_str!("../../docs/cli.md");
    let section = doc
        .split("## `slipstream connect")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a connect section");
    let mut options: Vec<String> = section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| {
            let cell = l.split(" | ").next().unwrap_or("");
            cell.match_indices("--")
                .map(|(i, _)| {
                    cell[i..]
                        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                        .next()
                        .unwrap_or("")
                        .to_owned()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    options.sort();
    options.dedup();
    options
}

/// Runs `slipstream ARGS`, expects exit 0 and no stderr, returns stdout.
fn help_text(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("slipstream runs");
    assert_eq!(out.status.code(), Some(0), "{args:?}");
    assert!(out.stderr.is_empty(), "{args:?}");
    String::from_utf8(out.stdout).expect("UTF-8 help")
}

#[test]
fn help_of_every_subcommand_lists_every_documented_option_and_command() {
    let connect = help_text(&["connect", "--help"]);
    assert_eq!(help_text(&["help", "connect"]), connect);
    let mut shown: Vec<String> = connect
        .lines()
        .filter_map(|l| {
            // "  -p, --param <KEY=VALUE>  ..." or "      --vsn <VSN>  ..."
            let l = l.trim_start();
            let l = match l.get(2..4) {
                Some(", ") if l.starts_with('-') => &l[4..],
                _ => l,
            };
            l.strip_prefix("--")
                .map(|o| format!("--{}", o.split(' ').next().unwrap_or("")))
        })
        .filter(|o| o != "--help")
        .collect();
    shown.sort();
    assert_eq!(shown, documented_connect_options(), "{connect}");
    for needle in [
        "--ca-file <PATH>",
        "--heartbeat-timeout-ms <MS>",
        r#"{"status":true}"#,
        r#""timeout_ms":N"#,
        "Exit: 0",
    ] {
        assert!(connect.contains(needle), "{needle}: {connect}");
    }

    let serve = help_text(&["serve", "--help"]);
    for needle in ["--port <PORT>", "--log <LEVEL>", "\"listening\"", "token"] {
        assert!(serve.contains(needle), "{needle}: {serve}");
    }
    let top = help_text(&["--help"]);
    assert!(top.contains("connect") && top.contains("serve"), "{top}");
}

#[test]
fn an_auth_token_from_the_flag_or_the_environment_travels_in_the_subprotocol_header() {
    let server = Server::start();
    let url = server.url();
    for (flag, env) in [(Some("fl@g-t0ken"), None), (None, Some("env-t0ken"))] {
        let mut args = vec!["connect", url.as_str(), "-p", "token=t"];
        if let Some(token) = flag {
            args.extend(["--auth-token", token]);
        }
        let env: Vec<(&str, &str)> = env
            .map(|t| vec![("SLIPSTREAM_AUTH_TOKEN", t)])
            .unwrap_or_default();
        let mut p = Proc::spawn_env(&args, &env);
        p.event("connected");
        let token = flag.or(env.first().map(|(_, t)| *t)).unwrap();
        let info = server
            .server
            .socket(server.last_socket())
            .expect("the socket");
        assert_eq!(info.auth_token.as_deref(), Some(token));
        assert!(
            info.header("sec-websocket-protocol")
                .is_some_and(|h| h.starts_with("phoenix, base64url.bearer.phx.")),
            "{info:?}"
        );
        assert!(
            !info.params.iter().any(|(_, v)| v == token),
            "not in the URL"
        );
        p.close_stdin();
        assert_eq!(p.finish(), 0, "{}", p.report());
        assert!(!p.stderr().contains(token), "{}", p.stderr());
    }
}
