//! The status snapshot: connection, topics, counters.
#![cfg(feature = "testing")]

mod common;

use actix_slipstream::{ClientExt, ConnectionStatus, DisconnectKind};
use common::*;
use serde_json::json;

#[actix_rt::test]
async fn status_counts_frames_bytes_connects_and_disconnects_by_reason() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    addr.join("room:o", json!({})).await.unwrap();
    addr.push("room:o", "echo", json!({"x": 1})).await.unwrap();
    let status = addr.status().await.unwrap();
    assert_eq!(status.connection, ConnectionStatus::Connected);
    let sent = [
        r#"["1","1","room:o","phx_join",{}]"#,
        r#"["1","2","room:o","echo",{"x":1}]"#,
    ];
    let received = [
        r#"["1","1","room:o","phx_reply",{"response":{},"status":"ok"}]"#,
        r#"["1","2","room:o","phx_reply",{"response":{"x":1},"status":"ok"}]"#,
    ];
    let traffic = status.traffic;
    assert_eq!(
        (
            traffic.frames_out,
            traffic.bytes_out,
            traffic.frames_in,
            traffic.bytes_in
        ),
        (
            2,
            sent.iter().map(|s| s.len() as u64).sum(),
            2,
            received.iter().map(|s| s.len() as u64).sum(),
        )
    );
    assert_eq!(
        (status.connects, status.disconnects, status.pending_replies),
        (1, 0, 0)
    );
    let topic = status.topic("room:o").unwrap();
    assert_eq!(topic.join_ref.as_ref().map(|r| r.as_str()), Some("1"));

    server.drop_all_connections();
    events.disconnected().await;
    events.joined("room:o").await;
    let status = addr.status().await.unwrap();
    assert_eq!(status.connects, 2);
    assert_eq!(
        status
            .disconnects_by_reason
            .get(&DisconnectKind::ConnectionLost),
        Some(&1)
    );
    assert_eq!(status.rejoins, 1);
    assert_eq!(status.buffered_pushes, 0);
}
