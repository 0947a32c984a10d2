//! Supervision: a restarted client keeps its topics.
#![cfg(feature = "testing")]

mod common;

use actix::Supervisor;
use actix_slipstream::testing::ServerEvent;
use actix_slipstream::{
    AfterDisconnect, Client, ConnectionStatus, DisconnectReason, GetStatus, Join, Payload,
    SlipstreamActor, Socket, Stop, Topic, TopicStatus,
};
use common::*;
use serde_json::json;
use tokio::sync::mpsc;

#[actix_rt::test]
async fn a_supervisor_restart_keeps_the_topics_reconnects_and_rejoins() {
    let server = demo_server().await;
    let (tx, rx) = mpsc::channel(10_000);
    let config = config(&server);
    let addr = Supervisor::start(move |_| Client::new(Recorder { tx }, config));
    let mut events = common::Events::from_receiver(rx);
    addr.send(Join::new("room:a", json!({})))
        .await
        .unwrap()
        .unwrap();
    addr.send(Join::new("room:b", json!({})))
        .await
        .unwrap()
        .unwrap();
    let first = server.wait_for_sockets(1, WAIT).await.unwrap()[0];
    addr.do_send(Stop);
    events.disconnected().await;
    events.connected().await;
    events.joined("room:a").await;
    events.joined("room:b").await;
    let second = server
        .wait_for_state(WAIT, |s| {
            s.sockets()
                .find(|i| i.id != first && i.channels.len() == 2)
                .map(|i| i.id)
        })
        .await
        .unwrap();
    assert_ne!(first, second);
}

#[actix_rt::test]
async fn a_supervised_client_whose_last_addr_is_dropped_stops_for_good() {
    let server = demo_server().await;
    let (tx, rx) = mpsc::channel(10_000);
    let config = config(&server);
    let addr = Supervisor::start(move |_| Client::new(Recorder { tx }, config));
    let mut events = common::Events::from_receiver(rx);
    addr.send(Join::new("room:a", json!({})))
        .await
        .unwrap()
        .unwrap();
    drop(addr);
    // Closed, terminated, and dropped by the supervisor instead of restarted.
    let seen = events.closed().await;
    assert_eq!(
        &seen[seen.len() - 2..],
        [Ev::Disconnected(DisconnectReason::Stopped), Ev::Terminated]
    );
    assert_eq!(events.count(|e| matches!(e, Ev::Connected)), 1);
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
        .unwrap();
    assert_eq!(server.counters().accepted, 1, "not restarted");
}

/// A client whose `handle_disconnect` asks to connect again at once, whatever the reason.
struct Eager {
    tx: mpsc::Sender<Ev>,
}

impl SlipstreamActor for Eager {
    fn handle_connect(&mut self, socket: &mut Socket<'_, Self>) {
        let _ = self.tx.try_send(Ev::Connected);
        socket.rejoin_registered();
    }

    fn handle_join(&mut self, topic: &Topic, response: &Payload, _: &mut Socket<'_, Self>) {
        let _ = self
            .tx
            .try_send(Ev::Joined(topic.to_string(), response.clone()));
    }

    fn handle_disconnect(
        &mut self,
        reason: &DisconnectReason,
        socket: &mut Socket<'_, Self>,
    ) -> AfterDisconnect {
        let _ = self.tx.try_send(Ev::Disconnected(reason.clone()));
        socket.connect();
        AfterDisconnect::StayDisconnected
    }
}

#[actix_rt::test]
async fn a_connect_asked_for_during_a_supervised_restart_is_ignored_and_init_connects() {
    let server = demo_server().await;
    let (tx, rx) = mpsc::channel(10_000);
    let config = config(&server);
    let addr = Supervisor::start(move |_| Client::new(Eager { tx }, config));
    let mut events = common::Events::from_receiver(rx);
    addr.send(Join::new("room:a", json!({})))
        .await
        .unwrap()
        .unwrap();
    events.joined("room:a").await;
    addr.do_send(Stop);
    assert_eq!(events.disconnected().await, DisconnectReason::Stopped);
    events.connected().await;
    events.joined("room:a").await;
    let status = addr.send(GetStatus).await.unwrap();
    assert_eq!(status.connection, ConnectionStatus::Connected);
    assert_eq!(status.topic("room:a").unwrap().status, TopicStatus::Joined);
    assert_eq!(server.counters().accepted, 2);
}

#[actix_rt::test]
async fn a_stop_while_connecting_lets_the_restarted_client_connect() {
    let server = demo_server().await;
    // The first connect hangs in the upgrade, so the Stop finds the client connecting.
    server.refuse_next(1, actix_slipstream::testing::Refusal::Hang);
    let (tx, rx) = mpsc::channel(10_000);
    let config = config(&server);
    let addr = Supervisor::start(move |_| Client::new(Recorder { tx }, config));
    let mut events = common::Events::from_receiver(rx);
    server
        .wait_until(WAIT, |s| s.counters().tcp_accepted == 1)
        .await
        .unwrap();
    assert_eq!(
        addr.send(GetStatus).await.unwrap().connection,
        ConnectionStatus::Connecting
    );
    addr.do_send(Stop);
    // The restarted client's own connect goes out and completes (it used to be
    // cancelled by the cancellation of the hung connect asked for at the stop).
    events.connected().await;
    addr.send(Join::new("room:a", json!({})))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        addr.send(GetStatus).await.unwrap().connection,
        ConnectionStatus::Connected
    );
    assert_eq!(server.counters().accepted, 1);
}
