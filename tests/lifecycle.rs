//! Lifecycle: channel ends (a crash is rejoined, a stop is a final leave), stopping
//! the client (every request answered first), dropping its last handle.
#![cfg(feature = "testing")]

mod common;

use std::cell::RefCell;
use std::time::Duration;

use actix::{Handler, Message};
use actix_slipstream::testing::{ServerEvent, TestServer};
use actix_slipstream::{
    Client, ClientExt, Config, DisconnectReason, Join, JoinError, Leave, LeaveError, Payload, Push,
    PushError, Ref, SlipstreamActor, Socket, Stop, TopicCloseReason, TopicStatus,
};
use common::*;
use serde_json::json;
use tokio::sync::mpsc;

#[actix_rt::test]
async fn a_channel_crash_closes_the_topic_then_it_is_rejoined() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    addr.join("room:c", json!({"k": 1})).await.unwrap();
    let before = addr
        .status()
        .await
        .unwrap()
        .topic("room:c")
        .unwrap()
        .join_ref
        .clone();
    let crash = addr.push("room:c", "crash", json!({})).await;
    assert_eq!(
        crash,
        Err(PushError::ChannelClosed),
        "the crashing push gets no reply"
    );
    assert!(matches!(
        events.topic_closed("room:c").await,
        TopicCloseReason::Crashed(_)
    ));
    assert_eq!(
        events.joined("room:c").await,
        Payload::Json(json!({"k": 1})),
        "rejoined with its params"
    );
    let after = addr
        .status()
        .await
        .unwrap()
        .topic("room:c")
        .unwrap()
        .clone();
    assert_eq!(after.status, TopicStatus::Joined);
    assert_ne!(after.join_ref, before, "a fresh join_ref");
    let reply = addr.push("room:c", "echo", json!({"after": "crash"})).await;
    assert!(reply.unwrap().status.is_ok());
}

#[actix_rt::test]
async fn a_channel_stop_is_a_final_leave() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    addr.join("room:s", json!({})).await.unwrap();
    addr.do_send(Push::new("room:s", "stop", json!({})));
    events.left("room:s").await;
    assert!(addr.status().await.unwrap().topic("room:s").is_none());
    // Not rejoined after a reconnect either: it left the registry.
    addr.join("room:keep", json!({})).await.unwrap();
    server.drop_all_connections();
    events.connected().await;
    events.joined("room:keep").await;
    assert_eq!(frames_received(&server, Some("room:s"), "phx_join"), 1);
}

/// `socket.push` from inside the client, as a callback would do it.
#[derive(Message)]
#[rtype(result = "Result<Ref, PushError>")]
struct SocketPush(&'static str);

impl Handler<SocketPush> for Client<Recorder> {
    type Result = Result<Ref, PushError>;
    fn handle(&mut self, msg: SocketPush, ctx: &mut Self::Context) -> Self::Result {
        self.with_socket(ctx, |_, socket| socket.push(msg.0, "echo", json!({})))
    }
}

/// Whether the server saw the client close its websocket with code 1000.
async fn server_saw_close_1000(server: &TestServer) {
    server
        .wait_for(WAIT, |e| {
            matches!(
                e,
                ServerEvent::Disconnected(
                    _,
                    actix_slipstream::testing::DisconnectReason::ClientClosed(Some(1000))
                )
            )
        })
        .await
        .unwrap_or_else(|_| panic!("no close frame with code 1000: {:#?}", server.events()));
}

#[actix_rt::test]
async fn stop_gives_every_push_and_join_its_outcome_before_terminate() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    addr.join("room:joined", json!({})).await.unwrap();
    // From now on replies take long: pushes stay in flight, joins in progress.
    server.set_reply_delay(Duration::from_secs(3));
    let in_flight = addr.send(SocketPush("room:joined")).await.unwrap().unwrap();
    let in_flight_msg = addr.send(Push::new("room:joined", "echo", json!({})));
    let join = addr.send(Join::new("room:joining", json!({})));
    let buffered = addr
        .send(SocketPush("room:joining"))
        .await
        .unwrap()
        .unwrap();
    let buffered_msg = addr.send(Push::new("room:joining", "echo", json!({})));
    let status = addr.status().await.unwrap();
    assert_eq!((status.pending_replies, status.buffered_pushes), (2, 2));

    addr.send(Stop).await.unwrap();
    assert_eq!(in_flight_msg.await.unwrap(), Err(PushError::Stopped));
    assert_eq!(buffered_msg.await.unwrap(), Err(PushError::Stopped));
    assert_eq!(join.await.unwrap(), Err(JoinError::Stopped));
    let seen = events.closed().await;
    let replies: Vec<&Ev> = seen.iter().filter(|e| matches!(e, Ev::Reply(..))).collect();
    assert_eq!(
        replies,
        [
            &Ev::Reply("room:joining".into(), buffered, Err(PushError::Stopped)),
            &Ev::Reply("room:joined".into(), in_flight, Err(PushError::Stopped)),
        ],
        "each socket.push gets exactly one outcome"
    );
    let end = &seen[seen.len() - 2..];
    assert_eq!(
        end,
        [Ev::Disconnected(DisconnectReason::Stopped), Ev::Terminated],
        "outcomes, then handle_disconnect, then terminate: {seen:#?}"
    );
    server_saw_close_1000(&server).await;
}

#[actix_rt::test]
async fn stop_resolves_a_leave_in_flight_and_the_topic_is_left() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    addr.join("room:bye", json!({})).await.unwrap();
    server.set_reply_delay(Duration::from_secs(3));
    let leave = addr.send(Leave::new("room:bye"));
    server
        .wait_for(
            WAIT,
            |e| matches!(e, ServerEvent::Frame(_, m) if m.event.as_str() == "phx_leave"),
        )
        .await
        .unwrap();
    addr.send(Stop).await.unwrap();
    assert_eq!(leave.await.unwrap(), Err(LeaveError::Stopped));
    let seen = events.closed().await;
    assert_eq!(seen.iter().filter(|e| matches!(e, Ev::Left(_))).count(), 1);
}

#[actix_rt::test]
async fn dropping_the_last_addr_closes_the_client_and_runs_terminate() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    addr.join("room:1", json!({})).await.unwrap();
    let second = addr.clone();
    drop(addr);
    // Another handle keeps it running.
    assert!(second.status().await.unwrap().topic("room:1").is_some());
    drop(second);
    let seen = events.closed().await;
    assert_eq!(
        &seen[seen.len() - 2..],
        [Ev::Disconnected(DisconnectReason::Stopped), Ev::Terminated]
    );
    server_saw_close_1000(&server).await;
    assert_eq!(server.counters().accepted, 1, "no reconnect");
}

/// What a spawned client reports, across threads.
struct Spawned {
    tx: mpsc::UnboundedSender<&'static str>,
}

/// Reports the end of the thread it lives on (thread-locals are dropped then).
struct ThreadEnd(mpsc::UnboundedSender<&'static str>);

impl Drop for ThreadEnd {
    fn drop(&mut self) {
        let _ = self.0.send("thread ended");
    }
}

thread_local! {
    static THREAD_END: RefCell<Option<ThreadEnd>> = const { RefCell::new(None) };
}

impl SlipstreamActor for Spawned {
    fn init(&mut self, socket: &mut Socket<'_, Self>) {
        let guard = ThreadEnd(self.tx.clone());
        THREAD_END.with(|t| *t.borrow_mut() = Some(guard));
        socket.connect();
    }

    fn handle_connect(&mut self, _socket: &mut Socket<'_, Self>) {
        let _ = self.tx.send("connected");
    }

    fn handle_disconnect(
        &mut self,
        reason: &DisconnectReason,
        default: actix_slipstream::AfterDisconnect,
        _: &mut Socket<'_, Self>,
    ) -> actix_slipstream::AfterDisconnect {
        if *reason == DisconnectReason::Stopped {
            let _ = self.tx.send("stopped");
        }
        default
    }

    fn terminate(&mut self) {
        let _ = self.tx.send("terminate");
    }
}

async fn next(rx: &mut mpsc::UnboundedReceiver<&'static str>) -> Option<&'static str> {
    tokio::time::timeout(WAIT, rx.recv()).await.ok().flatten()
}

#[tokio::test]
async fn dropping_the_last_addr_of_a_spawned_client_closes_it_and_ends_its_thread() {
    let server = TestServer::phoenix_demo()
        .spawn_in_thread()
        .expect("test server starts");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let config = Config::new(server.url()).param("token", "t");
    let addr = Client::spawn(Spawned { tx }, config).expect("client thread starts");
    assert_eq!(next(&mut rx).await, Some("connected"));
    assert_eq!(
        addr.join("room:1", json!({})).await,
        Ok(Payload::Json(json!({})))
    );
    drop(addr);
    assert_eq!(next(&mut rx).await, Some("stopped"));
    assert_eq!(next(&mut rx).await, Some("terminate"));
    assert_eq!(next(&mut rx).await, Some("thread ended"));
    server_saw_close_1000(&server).await;
}

/// The state machine's timer count (a hidden accessor for leak checks).
#[derive(Message)]
#[rtype(result = "usize")]
struct Timers;

impl Handler<Timers> for Client<Recorder> {
    type Result = usize;
    fn handle(&mut self, _: Timers, ctx: &mut Self::Context) -> usize {
        self.with_socket(ctx, |_, socket| socket.timer_count())
    }
}

#[actix_rt::test]
async fn a_channel_stopped_before_its_join_reply_is_left_with_no_timer_behind() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    events.connected().await;
    // The join reply comes late: the server's phx_close overtakes it.
    server.set_reply_delay(Duration::from_millis(500));
    let join = addr.send(Join::new("room:early", json!({})));
    let socket = server.wait_for_join("room:early", WAIT).await.unwrap();
    server.stop_channel(socket, "room:early").await.unwrap();
    assert_eq!(join.await.unwrap(), Err(JoinError::Left));
    events.left("room:early").await;
    assert!(addr.status().await.unwrap().topic("room:early").is_none());
    assert_eq!(
        addr.send(Timers).await.unwrap(),
        1,
        "only the heartbeat's timer: the join timeout went with the topic"
    );
}
