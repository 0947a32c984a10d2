//! The built-in rejoin: topics joined at any time come back after any reconnect.
#![cfg(feature = "testing")]

mod common;

use actix_slipstream::testing::Refusal;
use actix_slipstream::{ClientExt, DisconnectReason, Join, Payload, TopicStatus};
use common::*;
use serde_json::json;

/// The test client overrides `handle_connect` (to record it) and rejoins nothing
/// itself: the client's own rejoin cannot be lost by overriding the callback.
#[actix_rt::test]
async fn dynamically_joined_topics_come_back_after_the_server_drops_the_connection() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    events.connected().await;
    for i in 0..5 {
        addr.join(format!("room:{i}"), json!({"i": i}))
            .await
            .unwrap();
    }
    let first = server.wait_for_sockets(1, WAIT).await.unwrap()[0];
    server.drop_all_connections();
    events.disconnected().await;
    events.connected().await;
    for i in 0..5 {
        assert_eq!(
            events.joined(&format!("room:{i}")).await,
            Payload::Json(json!({"i": i}))
        );
    }
    let socket = server
        .wait_for_state(WAIT, |s| {
            s.sockets()
                .find(|i| i.id != first && i.channels.len() == 5)
                .map(|i| i.id)
        })
        .await
        .unwrap();
    assert!((0..5).all(|i| server
        .socket(socket)
        .unwrap()
        .is_joined(&format!("room:{i}"))));
}

async fn restart_rejoins_all_100_topics(kill: bool) {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    for i in 0..100 {
        addr.do_send(Join::new(format!("room:{i}"), json!({})));
    }
    let first = server
        .wait_for_state(WAIT, |s| {
            s.sockets().find(|i| i.channels.len() == 100).map(|i| i.id)
        })
        .await
        .unwrap();
    let port = server.port();
    if kill {
        server.kill().await.unwrap();
    } else {
        server.stop().await.unwrap();
    }
    let reason = events.disconnected().await;
    if !kill {
        assert!(
            matches!(
                reason,
                DisconnectReason::ServerClosed {
                    code: Some(1012),
                    ..
                }
            ),
            "{reason:?}"
        );
    }
    server.restart().await.unwrap();
    assert_eq!(server.port(), port);
    server
        .wait_for_state(WAIT, |s| {
            s.sockets()
                .any(|i| i.id != first && i.channels.len() == 100)
                .then_some(())
        })
        .await
        .expect("all 100 topics rejoined");
}

#[actix_rt::test]
async fn a_graceful_server_restart_on_the_same_port_rejoins_all_100_topics() {
    restart_rejoins_all_100_topics(false).await;
}

#[actix_rt::test]
async fn a_killed_server_restarted_on_the_same_port_gets_all_100_topics_back() {
    restart_rejoins_all_100_topics(true).await;
}

#[actix_rt::test]
async fn pushes_buffered_across_a_disconnect_are_delivered_exactly_once() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    addr.join("room:buf", json!({})).await.unwrap();
    server.refuse_next(2, Refusal::Http(503));
    server.drop_all_connections();
    events.disconnected().await;
    // Disconnected, reconnects refused for a while: the push is buffered.
    let reply = addr.push("room:buf", "echo", json!({"once": true})).await;
    assert_eq!(
        reply.unwrap().response,
        Payload::Json(json!({"once": true}))
    );
    assert_eq!(frames_received(&server, None, "echo"), 1);
}

#[actix_rt::test]
async fn with_rejoin_on_connect_off_the_client_leaves_the_rejoins_to_the_user() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server).rejoin_on_connect(false));
    events.connected().await;
    addr.join("room:1", json!({})).await.unwrap();
    server.drop_all_connections();
    events.disconnected().await;
    events.connected().await;
    // Rejoins go out before `handle_connect` runs: none went out.
    let status = addr.status().await.unwrap();
    assert_eq!(status.topic("room:1").unwrap().status, TopicStatus::Errored);
    assert_eq!(status.rejoins, 0);
    assert_eq!(status.connects, 2);
    // Still registered: the user rejoins it by hand when it suits them.
    assert_eq!(
        frames_received(&server, Some("room:1"), "phx_join"),
        1,
        "one join: the first"
    );
}
