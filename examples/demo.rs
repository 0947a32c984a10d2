//! The main demo: a client joins topics on request, the server drops the connection,
//! and the client reconnects and rejoins every topic by itself.
//!
//! It starts the bundled Phoenix-compatible test server in-process, so nothing else
//! is needed:
//!
//! ```text
//! cargo run --example demo --features testing
//! ```
//!
//! It prints a timeline and exits 0 once every topic is back and a push on each
//! has been answered.
//!
//! Against your own Phoenix server (see `examples/README.md`):
//!
//! ```text
//! cargo run --example demo --features testing -- ws://host:4000/socket TOKEN
//! SLIPSTREAM_URL=wss://host/socket SLIPSTREAM_AUTH_TOKEN=... SLIPSTREAM_TOPICS=room:a,room:b \
//!     cargo run --example demo --features testing
//! ```
//!
//! it joins `SLIPSTREAM_TOPICS` (default `room:lobby,room:42,room:rust`), forces the
//! reconnect from the client side (`Reconnect`), and prints the outcome of an `echo`
//! push on each topic (an error reply or a timeout if your channel has no `echo`).

#[path = "support/target.rs"]
mod target;

use std::time::{Duration, Instant};

use actix::Actor;
use actix_slipstream::testing::TestServer;
use actix_slipstream::{
    AfterDisconnect, Backoff, Client, Disconnect, DisconnectReason, Event, GetStatus, Join,
    Payload, Push, Reconnect, SlipstreamActor, Socket, Topic,
};
use serde_json::json;
use tokio::sync::mpsc;

/// What the demo client tells `main` about.
#[derive(Debug)]
enum Note {
    Connected,
    Disconnected,
    Joined(String),
}

/// A client that prints what happens and otherwise keeps every default: the
/// default `handle_connect` rejoins every topic ever joined.
struct DemoClient {
    start: Instant,
    notes: mpsc::Sender<Note>,
}

impl DemoClient {
    fn say(&self, what: impl std::fmt::Display) {
        println!(
            "[{:>5} ms] client  {what}",
            self.start.elapsed().as_millis()
        );
    }
}

impl SlipstreamActor for DemoClient {
    fn handle_connect(&mut self, socket: &mut Socket<'_, Self>) {
        let topics = socket.registry().len();
        self.say(format!(
            "connected; rejoining the {topics} registered topic(s)"
        ));
        let _ = self.notes.try_send(Note::Connected);
    }

    fn handle_disconnect(
        &mut self,
        reason: &DisconnectReason,
        default: AfterDisconnect,
        _socket: &mut Socket<'_, Self>,
    ) -> AfterDisconnect {
        self.say(format!("disconnected: {reason}"));
        let _ = self.notes.try_send(Note::Disconnected);
        // The client's own choice: reconnect unless the disconnect was asked for.
        default
    }

    fn handle_join(&mut self, topic: &Topic, response: &Payload, _socket: &mut Socket<'_, Self>) {
        self.say(format!("joined {topic}, response {}", show(response)));
        let _ = self.notes.try_send(Note::Joined(topic.to_string()));
    }

    fn handle_message(
        &mut self,
        topic: &Topic,
        event: &Event,
        payload: Payload,
        _socket: &mut Socket<'_, Self>,
    ) {
        self.say(format!("message {event} on {topic}: {}", show(&payload)));
    }
}

fn show(payload: &Payload) -> String {
    match payload {
        Payload::Json(v) => v.to_string(),
        Payload::Binary(b) => format!("<{} bytes>", b.len()),
    }
}

async fn next_note(rx: &mut mpsc::Receiver<Note>) -> Result<Note, String> {
    match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
        Ok(Some(note)) => Ok(note),
        Ok(None) => Err("the client stopped".into()),
        Err(_) => Err("nothing happened for 10 s".into()),
    }
}

async fn run() -> Result<(), String> {
    let start = Instant::now();
    let say = |what: String| println!("[{:>5} ms] main    {what}", start.elapsed().as_millis());

    let target = target::Target::from_env();
    let server = if target.bundled() {
        let server = TestServer::phoenix_demo()
            .start()
            .await
            .map_err(|e| e.to_string())?;
        say(format!("test server listening at {}", server.url()));
        Some(server)
    } else {
        None
    };

    let (tx, mut notes) = mpsc::channel(1024);
    let config = target
        .config(server.as_ref().map(TestServer::url))
        .reconnect_backoff(Backoff::from_millis(&[100, 500, 1000]).with_jitter(0.2));
    let client = Client::new(DemoClient { start, notes: tx }, config).start();

    // Topics joined on request, long after connecting: no handle_connect code of ours.
    let topics = target.topics(&["room:lobby", "room:42", "room:rust"]);
    for topic in &topics {
        say(format!("asking the client to join {topic}"));
        client
            .send(Join::new(topic.as_str(), json!({"user": "demo"})))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("join of {topic} failed: {e}"))?;
    }

    // The bundled server answers `echo`; yours may not: its outcome is only printed.
    let echo = |topic: String, payload: serde_json::Value| {
        let push = client.send(Push::new(topic.as_str(), "echo", payload));
        let strict = server.is_some();
        async move {
            match push.await.map_err(|e| e.to_string())? {
                Ok(reply) => Ok(format!(
                    "push echo on {topic} answered {}: {}",
                    reply.status,
                    show(&reply.response)
                )),
                Err(e) if strict => Err(format!("push on {topic} failed: {e}")),
                Err(e) => Ok(format!("push echo on {topic} failed: {e}")),
            }
        }
    };
    say(echo(topics[0].clone(), json!({"hello": "phoenix"})).await?);

    while notes.try_recv().is_ok() {} // what happened so far was printed already
    if let Some(server) = &server {
        say("the server drops every connection (no close frame)".into());
        server.drop_all_connections();
    } else {
        say("the client closes its connection and connects again".into());
        client.send(Reconnect).await.map_err(|e| e.to_string())?;
    }

    while !matches!(next_note(&mut notes).await?, Note::Connected) {}
    let mut rejoined = Vec::new();
    while rejoined.len() < topics.len() {
        if let Note::Joined(t) = next_note(&mut notes).await? {
            rejoined.push(t);
        }
    }
    say(format!(
        "all {} topics are back: {}",
        rejoined.len(),
        rejoined.join(", ")
    ));

    for topic in &topics {
        say(echo(topic.clone(), json!({"after": "reconnect"})).await?);
    }

    let status = client.send(GetStatus).await.map_err(|e| e.to_string())?;
    say(format!(
        "status: {}; {} connects, {} disconnects {:?}, {} rejoins",
        status.connection,
        status.connects,
        status.disconnects,
        status.disconnects_by_reason,
        status.rejoins
    ));
    say(format!(
        "traffic: {} frames / {} bytes in, {} frames / {} bytes out; {} replies pending, {} pushes buffered",
        status.traffic.frames_in,
        status.traffic.bytes_in,
        status.traffic.frames_out,
        status.traffic.bytes_out,
        status.pending_replies,
        status.buffered_pushes
    ));
    for t in &status.topics {
        let join_ref = t
            .join_ref
            .as_ref()
            .map(|r| r.to_string())
            .unwrap_or_default();
        say(format!("  {} {} (join_ref {join_ref})", t.topic, t.status));
    }

    client.send(Disconnect).await.map_err(|e| e.to_string())?;
    while !matches!(next_note(&mut notes).await?, Note::Disconnected) {}
    if let Some(server) = server {
        server.stop().await.map_err(|e| e.to_string())?;
    }
    say("done".into());
    Ok(())
}

#[actix_rt::main]
async fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    if let Err(e) = run().await {
        eprintln!("demo failed: {e}");
        std::process::exit(1);
    }
}
