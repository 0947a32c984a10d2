//! Shared helpers of the client integration tests: a `SlipstreamActor` that records
//! every callback into a bounded channel, and bounded waits on what it recorded.
#![allow(dead_code)]

use std::time::Duration;

use actix::{Actor, Addr};
use actix_slipstream::testing::{ServerEvent, TestServer};
use actix_slipstream::{
    AfterDisconnect, AfterTopicClose, Backoff, Client, Config, DisconnectReason, Event, Payload,
    PushError, Ref, Reply, SlipstreamActor, Socket, Topic, TopicCloseReason,
};
use tokio::sync::mpsc;

/// The longest any single wait in a test may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// One recorded callback.
#[derive(Debug, Clone, PartialEq)]
pub enum Ev {
    Connected,
    Disconnected(DisconnectReason),
    Joined(String, Payload),
    TopicClosed(String, TopicCloseReason),
    Left(String),
    Message(String, String, Payload),
    Reply(String, Ref, Result<Reply, PushError>),
    /// `terminate` ran.
    Terminated,
}

/// A client that records its callbacks and otherwise behaves as the defaults do.
pub struct Recorder {
    pub tx: mpsc::Sender<Ev>,
}

impl Recorder {
    fn record(&self, ev: Ev) {
        // A test that is over may have dropped its receiver already.
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(ev) {
            panic!("test event channel overflow");
        }
    }
}

impl SlipstreamActor for Recorder {
    fn handle_connect(&mut self, _socket: &mut Socket<'_, Self>) {
        self.record(Ev::Connected);
    }

    fn handle_disconnect(
        &mut self,
        reason: &DisconnectReason,
        default: AfterDisconnect,
        _socket: &mut Socket<'_, Self>,
    ) -> AfterDisconnect {
        self.record(Ev::Disconnected(reason.clone()));
        default
    }

    fn handle_join(&mut self, topic: &Topic, response: &Payload, _socket: &mut Socket<'_, Self>) {
        self.record(Ev::Joined(topic.to_string(), response.clone()));
    }

    fn handle_message(
        &mut self,
        topic: &Topic,
        event: &Event,
        payload: Payload,
        _socket: &mut Socket<'_, Self>,
    ) {
        self.record(Ev::Message(topic.to_string(), event.to_string(), payload));
    }

    fn handle_reply(
        &mut self,
        topic: &Topic,
        reference: &Ref,
        result: Result<Reply, PushError>,
        _: &mut Socket<'_, Self>,
    ) {
        self.record(Ev::Reply(topic.to_string(), reference.clone(), result));
    }

    fn handle_leave(&mut self, topic: &Topic, _socket: &mut Socket<'_, Self>) {
        self.record(Ev::Left(topic.to_string()));
    }

    fn handle_topic_close(
        &mut self,
        topic: &Topic,
        reason: &TopicCloseReason,
        default: AfterTopicClose,
        _socket: &mut Socket<'_, Self>,
    ) -> AfterTopicClose {
        self.record(Ev::TopicClosed(topic.to_string(), reason.clone()));
        default
    }

    fn terminate(&mut self) {
        self.record(Ev::Terminated);
    }
}

/// The recorded callbacks, read with bounded waits.
pub struct Events {
    rx: mpsc::Receiver<Ev>,
    /// Everything received so far, in order.
    pub seen: Vec<Ev>,
}

impl Events {
    /// Waits for the next event matching `pred`; everything before it is kept in `seen`.
    pub async fn wait_for(&mut self, what: &str, mut pred: impl FnMut(&Ev) -> bool) -> Ev {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(ev)) => {
                    self.seen.push(ev.clone());
                    if pred(&ev) {
                        return ev;
                    }
                }
                Ok(None) => panic!(
                    "client stopped while waiting for {what}; seen: {:#?}",
                    self.seen
                ),
                Err(_) => panic!("timed out waiting for {what}; seen: {:#?}", self.seen),
            }
        }
    }

    pub async fn connected(&mut self) {
        self.wait_for("connected", |e| matches!(e, Ev::Connected))
            .await;
    }

    pub async fn disconnected(&mut self) -> DisconnectReason {
        match self
            .wait_for("disconnected", |e| matches!(e, Ev::Disconnected(_)))
            .await
        {
            Ev::Disconnected(r) => r,
            _ => unreachable!(),
        }
    }

    pub async fn joined(&mut self, topic: &str) -> Payload {
        match self
            .wait_for(
                &format!("joined {topic}"),
                |e| matches!(e, Ev::Joined(t, _) if t == topic),
            )
            .await
        {
            Ev::Joined(_, p) => p,
            _ => unreachable!(),
        }
    }

    pub async fn topic_closed(&mut self, topic: &str) -> TopicCloseReason {
        match self
            .wait_for(
                &format!("topic closed {topic}"),
                |e| matches!(e, Ev::TopicClosed(t, _) if t == topic),
            )
            .await
        {
            Ev::TopicClosed(_, r) => r,
            _ => unreachable!(),
        }
    }

    pub async fn left(&mut self, topic: &str) {
        self.wait_for(
            &format!("left {topic}"),
            |e| matches!(e, Ev::Left(t) if t == topic),
        )
        .await;
    }

    pub async fn message(&mut self, topic: &str, event: &str) -> Payload {
        match self
            .wait_for(
                &format!("message {event} on {topic}"),
                |e| matches!(e, Ev::Message(t, ev, _) if t == topic && ev == event),
            )
            .await
        {
            Ev::Message(_, _, p) => p,
            _ => unreachable!(),
        }
    }

    /// Waits until the client is gone (its recorder dropped, so its event channel
    /// closed); returns the events that came before.
    pub async fn closed(&mut self) -> Vec<Ev> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(ev)) => self.seen.push(ev),
                Ok(None) => return self.seen.clone(),
                Err(_) => panic!(
                    "timed out waiting for the client to be dropped; seen: {:#?}",
                    self.seen
                ),
            }
        }
    }

    /// Events received so far without waiting.
    pub fn drain_now(&mut self) -> Vec<Ev> {
        while let Ok(ev) = self.rx.try_recv() {
            self.seen.push(ev);
        }
        self.seen.clone()
    }

    /// Counts the events seen so far that match.
    pub fn count(&self, pred: impl Fn(&Ev) -> bool) -> usize {
        self.seen.iter().filter(|e| pred(e)).count()
    }
}

/// Fast settings for tests: short backoffs without jitter, the demo server's token.
pub fn config(server: &TestServer) -> Config {
    Config::new(server.url())
        .param("token", "test")
        .reconnect_backoff(Backoff::from_millis(&[10, 20, 40]))
        .rejoin_backoff(Backoff::from_millis(&[10, 20, 40]))
        .heartbeat(Duration::from_secs(30), Duration::from_secs(10))
        .push_timeout(Duration::from_secs(5))
        .join_timeout(Duration::from_secs(5))
}

/// Starts a recording client.
pub fn start(config: Config) -> (Addr<Client<Recorder>>, Events) {
    let (tx, rx) = mpsc::channel(100_000);
    let addr = Client::new(Recorder { tx }, config).start();
    (
        addr,
        Events {
            rx,
            seen: Vec::new(),
        },
    )
}

/// How many frames with this event (and topic, if given) the server received so far,
/// over all sockets.
pub fn frames_received(server: &TestServer, topic: Option<&str>, event: &str) -> usize {
    server
        .events()
        .iter()
        .filter(|r| {
            matches!(&r.event, ServerEvent::Frame(_, m)
                if m.event.as_str() == event && topic.is_none_or(|t| m.topic == t))
        })
        .count()
}

/// Starts the demo server, like the recorded Phoenix server.
pub async fn demo_server() -> TestServer {
    let _ = env_logger::builder().is_test(true).try_init();
    TestServer::phoenix_demo()
        .start()
        .await
        .expect("test server starts")
}

impl Events {
    /// Wraps a receiver fed by a `Recorder` built by hand (e.g. under a supervisor).
    pub fn from_receiver(rx: mpsc::Receiver<Ev>) -> Self {
        Events {
            rx,
            seen: Vec::new(),
        }
    }
}
