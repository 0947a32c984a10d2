//! Connecting, refusals, backoff, user disconnect, params refreshed at every connect.
#![cfg(feature = "testing")]

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_slipstream::testing::{Refusal, ServerEvent};
use actix_slipstream::{
    Backoff, ConnectError, ConnectionStatus, Disconnect, DisconnectReason, GetStatus,
};
use common::*;

#[actix_rt::test]
async fn refused_connect_is_reported_with_the_http_status() {
    let server = demo_server().await;
    // The demo server refuses sockets without a token param, like the recorded one.
    let config = actix_slipstream::Config::new(server.url())
        .reconnect_backoff(Backoff::from_millis(&[5000]));
    let (addr, mut events) = start(config);
    let reason = events.disconnected().await;
    assert_eq!(
        reason,
        DisconnectReason::ConnectFailed(ConnectError::Refused(403))
    );
    let status = addr.send(GetStatus).await.unwrap();
    assert_eq!(status.connection, ConnectionStatus::WaitingToReconnect);
    assert_eq!(server.counters().accepted, 0);
}

#[actix_rt::test]
async fn user_disconnect_sends_a_close_frame_and_does_not_reconnect() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server));
    events.connected().await;
    addr.send(Disconnect).await.unwrap();
    assert_eq!(events.disconnected().await, DisconnectReason::Requested);
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
        .unwrap_or_else(|_| {
            panic!(
                "the server saw no close frame with code 1000: {:#?}",
                server.events()
            )
        });
    let status = addr.send(GetStatus).await.unwrap();
    assert_eq!(
        status.connection,
        ConnectionStatus::Disconnected,
        "no reconnect planned"
    );
}

#[actix_rt::test]
async fn refused_connects_are_retried_with_the_backoff_delays() {
    let server = demo_server().await;
    server.refuse_next(3, Refusal::Http(503));
    let config = config(&server).reconnect_backoff(Backoff::from_millis(&[100, 200, 300]));
    let (_addr, mut events) = start(config);
    events.connected().await;
    let refusals: Vec<std::time::Instant> = server
        .events()
        .into_iter()
        .filter(|r| matches!(r.event, ServerEvent::Refused(_)))
        .map(|r| r.at)
        .collect();
    let connected = server
        .events()
        .into_iter()
        .find(|r| matches!(r.event, ServerEvent::Connected(_)))
        .map(|r| r.at)
        .unwrap();
    assert_eq!(refusals.len(), 3);
    let failures = events.count(|e| {
        matches!(
            e,
            Ev::Disconnected(DisconnectReason::ConnectFailed(ConnectError::Refused(503)))
        )
    });
    assert_eq!(failures, 3);
    // Timers never fire early, so each gap is at least the listed delay.
    let gaps = [
        refusals[1] - refusals[0],
        refusals[2] - refusals[1],
        connected - refusals[2],
    ];
    for (gap, min) in gaps.iter().zip([100, 200, 300]) {
        assert!(*gap >= Duration::from_millis(min), "gaps {gaps:?}");
    }
}

#[actix_rt::test]
async fn connect_timeout_ends_a_hung_upgrade() {
    let server = demo_server().await;
    server.refuse_next(1, Refusal::Hang);
    let config = config(&server).connect_timeout(Duration::from_millis(200));
    let (_addr, mut events) = start(config);
    assert_eq!(
        events.disconnected().await,
        DisconnectReason::ConnectFailed(ConnectError::Timeout)
    );
    events.connected().await;
}

#[actix_rt::test]
async fn params_closure_gives_a_fresh_token_at_every_connect() {
    let server = demo_server().await;
    let n = Arc::new(AtomicU32::new(0));
    let counter = n.clone();
    let config = config(&server).params_fn(move || {
        vec![(
            "token".into(),
            format!("token-{}", counter.fetch_add(1, Ordering::SeqCst)),
        )]
    });
    let (_addr, mut events) = start(config);
    events.connected().await;
    let first = server.wait_for_sockets(1, WAIT).await.unwrap()[0];
    assert_eq!(
        server.socket(first).unwrap().param("token"),
        Some("token-0")
    );
    server.drop_all_connections();
    events.disconnected().await;
    events.connected().await;
    let second = server
        .wait_for_state(WAIT, |s| s.sockets().map(|i| i.id).find(|id| *id != first))
        .await
        .unwrap();
    assert_eq!(
        server.socket(second).unwrap().param("token"),
        Some("token-1")
    );
}

#[actix_rt::test]
async fn invalid_config_is_reported_and_not_retried() {
    let config = actix_slipstream::Config::new("http://127.0.0.1:1/socket");
    let (addr, mut events) = start(config);
    let reason = events.disconnected().await;
    assert!(
        matches!(
            reason,
            DisconnectReason::ConnectFailed(ConnectError::Config(_))
        ),
        "{reason:?}"
    );
    assert_eq!(
        addr.send(GetStatus).await.unwrap().connection,
        ConnectionStatus::Disconnected
    );
}
