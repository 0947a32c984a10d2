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

use std::time::{Duration, Instant};

use actix::Actor;
use actix_slipstream::testing::TestServer;
use actix_slipstream::{
    AfterDisconnect, Backoff, Client, Config, Disconnect, DisconnectReason, Event, GetStatus, Join,
    Payload, Push, SlipstreamActor, Socket, Topic,
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

    let server = TestServer::phoenix_demo()
        .start()
        .await
        .map_err(|e| e.to_string())?;
    say(format!("test server listening at {}", server.url()));

    let (tx, mut notes) = mpsc::channel(1024);
    let config = Config::new(server.url())
        .param("token", "demo")
        .reconnect_backoff(Backoff::from_millis(&[100, 500, 1000]).with_jitter(0.2));
    let client = Client::new(DemoClient { start, notes: tx }, config).start();

    // Topics joined on request, long after connecting: no handle_connect code of ours.
    let topics = ["room:lobby", "room:42", "room:rust"];
    for topic in topics {
        say(format!("asking the client to join {topic}"));
        client
            .send(Join::new(topic, json!({"user": "demo"})))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("join of {topic} failed: {e}"))?;
    }

    let reply = client
        .send(Push::new("room:lobby", "echo", json!({"hello": "phoenix"})))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    say(format!(
        "push echo on room:lobby answered {}: {}",
        reply.status,
        show(&reply.response)
    ));

    while notes.try_recv().is_ok() {} // what happened so far was printed already
    say("the server drops every connection (no close frame)".into());
    server.drop_all_connections();

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

    for topic in topics {
        let reply = client
            .send(Push::new(topic, "echo", json!({"after": "reconnect"})))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("push on {topic} failed: {e}"))?;
        say(format!(
            "push on {topic} after the reconnect answered {}",
            reply.status
        ));
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
    server.stop().await.map_err(|e| e.to_string())?;
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
