//! Supervision: a restarted client keeps its topics.
#![cfg(feature = "testing")]

mod common;

use actix::Supervisor;
use actix_slipstream::{Client, Join, Stop};
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
