//! Heartbeats: answered ones keep the connection; a half-open link is detected.
#![cfg(feature = "testing")]

mod common;

use std::time::Duration;

use actix_slipstream::testing::{ServerEvent, Silence};
use actix_slipstream::{ClientExt, DisconnectReason};
use common::*;
use serde_json::json;

#[actix_rt::test]
async fn answered_heartbeats_keep_the_connection_and_measure_the_round_trip() {
    let server = demo_server().await;
    let config = config(&server).heartbeat(Duration::from_millis(50), Duration::from_millis(2000));
    let (addr, mut events) = start(config);
    events.connected().await;
    let mut seen = 0;
    server
        .wait_for(WAIT, |e| {
            if matches!(e, ServerEvent::Frame(_, m) if m.event.as_str() == "heartbeat" && m.topic == "phoenix") {
                seen += 1;
            }
            seen == 3
        })
        .await
        .unwrap();
    let status = addr.status().await.unwrap();
    assert_eq!(status.disconnects, 0);
    assert!(status.last_heartbeat_rtt.is_some());
}

#[actix_rt::test]
async fn a_half_open_link_is_detected_by_the_heartbeat_then_topics_are_rejoined() {
    let server = demo_server().await;
    let config = config(&server).heartbeat(Duration::from_millis(100), Duration::from_millis(100));
    let (addr, mut events) = start(config);
    addr.join("room:hb", json!({})).await.unwrap();
    let socket = server.wait_for_join("room:hb", WAIT).await.unwrap();
    server.silence(socket, Some(Silence::Ignore)).await.unwrap();
    assert_eq!(
        events.disconnected().await,
        DisconnectReason::HeartbeatTimeout
    );
    events.connected().await;
    events.joined("room:hb").await;
}
