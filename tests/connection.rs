//! Connecting, refusals, backoff, user disconnect, params refreshed at every connect.
#![cfg(feature = "testing")]

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_slipstream::testing::{Refusal, ServerEvent, TestServer};
use actix_slipstream::{
    Backoff, ClientExt, ConnectError, ConnectionStatus, Disconnect, DisconnectKind,
    DisconnectReason, Join, Payload, Push, PushError, TopicStatus,
};
use common::*;
use serde_json::json;

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
    let status = addr.status().await.unwrap();
    assert_eq!(status.connection, ConnectionStatus::WaitingToReconnect);
    assert_eq!(server.counters().accepted, 0);
}

#[actix_rt::test]
async fn a_port_that_refuses_connections_is_polled_on_its_own_schedule_until_the_server_is_back() {
    let _ = env_logger::builder().is_test(true).try_init();
    // A port with nothing behind it: bound, then closed.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    // The normal schedule would wait 60 s after the first failure: only the
    // refused-port schedule can bring the client back within the wait.
    let config = actix_slipstream::Config::new(format!("ws://127.0.0.1:{port}/socket"))
        .param("token", "test")
        .reconnect_backoff(Backoff::from_millis(&[60_000]))
        .reconnect_refused_backoff(Backoff::from_millis(&[20, 50]));
    let (addr, mut events) = start(config);
    for _ in 0..3 {
        assert_eq!(
            events.disconnected().await,
            DisconnectReason::ConnectFailed(ConnectError::ConnectionRefused)
        );
    }
    let server = TestServer::phoenix_demo()
        .port(port)
        .start()
        .await
        .expect("the test server starts on the freed port");
    events.connected().await;
    assert_eq!(server.counters().accepted, 1);
    assert_eq!(
        addr.status().await.unwrap().connection,
        ConnectionStatus::Connected
    );
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
    let status = addr.status().await.unwrap();
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
async fn static_params_and_a_params_closure_both_reach_the_server_in_either_call_order() {
    let server = demo_server().await;
    let fresh = || vec![("token".to_owned(), "fresh".to_owned())];
    // `config` sets the static param token=test; the closure's token wins.
    let before = config(&server).param("room", "1").params_fn(fresh);
    let after = config(&server).params_fn(fresh).param("room", "1");
    let mut seen = Vec::new();
    for cfg in [before, after] {
        let (addr, mut events) = start(cfg);
        events.connected().await;
        let info = server.sockets().last().cloned().expect("a socket");
        assert!(!seen.contains(&info.id), "a new socket");
        seen.push(info.id);
        assert_eq!(
            info.params,
            vec![
                ("room".to_owned(), "1".to_owned()),
                ("token".to_owned(), "fresh".to_owned()),
                ("vsn".to_owned(), "2.0.0".to_owned()),
            ]
        );
        addr.send(Disconnect).await.unwrap();
        assert_eq!(events.disconnected().await, DisconnectReason::Requested);
    }
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
        addr.status().await.unwrap().connection,
        ConnectionStatus::Disconnected
    );
}

#[actix_rt::test]
async fn a_panicking_params_closure_is_a_failed_connect_retried_with_the_backoff() {
    let server = demo_server().await;
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let config = config(&server).params_fn(move || {
        if counter.fetch_add(1, Ordering::SeqCst) < 2 {
            panic!("token service down");
        }
        vec![("token".into(), "fresh".into())]
    });
    let (addr, mut events) = start(config);
    for _ in 0..2 {
        assert_eq!(
            events.disconnected().await,
            DisconnectReason::ConnectFailed(ConnectError::Params("token service down".into()))
        );
    }
    events.connected().await;
    assert_eq!(
        addr.join("room:1", json!({})).await,
        Ok(Payload::Json(json!({})))
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let status = addr.status().await.unwrap();
    assert_eq!(
        status
            .disconnects_by_reason
            .get(&DisconnectKind::ConnectFailed),
        Some(&2)
    );
    assert_eq!(status.connects, 1);
}

/// `n` topics joined with params of `pad` bytes, then the server drops the
/// connection: the client must come back with one connect and every topic.
async fn rejoin_after_a_drop(
    server: &TestServer,
    config: actix_slipstream::Config,
    n: usize,
    pad: usize,
) {
    let (addr, mut events) = start(config);
    let params = json!({"pad": "x".repeat(pad)});
    let joins: Vec<_> = (0..n)
        .map(|i| addr.send(Join::new(format!("room:{i}"), params.clone())))
        .collect();
    for join in futures_util::future::join_all(joins).await {
        assert!(join.unwrap().is_ok());
    }
    let first = server.wait_for_sockets(1, WAIT).await.unwrap()[0];
    server.drop_all_connections();
    events.disconnected().await;
    let mut rejoined = 0;
    events
        .wait_for(&format!("{n} rejoins"), |e| {
            rejoined += usize::from(matches!(e, Ev::Joined(..)));
            rejoined == n
        })
        .await;
    server
        .wait_for_state(WAIT, |s| {
            s.sockets()
                .any(|i| i.id != first && i.channels.len() == n)
                .then_some(())
        })
        .await
        .unwrap_or_else(|_| panic!("not all {n} topics joined on the server"));
    // After exactly one more connect and no other disconnect.
    let status = addr.status().await.unwrap();
    assert_eq!(status.topics.len(), n);
    assert!(status
        .topics
        .iter()
        .all(|t| t.status == TopicStatus::Joined));
    assert_eq!((status.connects, status.disconnects), (2, 1), "{status:?}");
    assert_eq!(server.counters().accepted, 2);
    // Pushes still get their replies afterwards.
    let reply = addr
        .push("room:0", "echo", json!({"after": "rejoin"}))
        .await;
    assert!(reply.unwrap().status.is_ok());
}

#[actix_rt::test]
async fn a_rejoin_larger_than_the_send_buffer_goes_out_on_one_connect() {
    // 40 topics of 1 KiB params: a 40 KiB rejoin through a 16 KiB send buffer.
    let server = demo_server().await;
    let config = config(&server).send_buffer(16 * 1024);
    rejoin_after_a_drop(&server, config, 40, 1024).await;
}

#[actix_rt::test]
async fn six_hundred_topics_of_8_kib_params_are_rejoined_with_the_default_send_buffer() {
    // 4.8 MB of joins at once, over the default 4 MiB send buffer.
    let _ = env_logger::builder().is_test(true).try_init();
    let server = TestServer::phoenix_demo()
        .max_channels(1000)
        .start()
        .await
        .expect("test server starts");
    rejoin_after_a_drop(&server, config(&server), 600, 8 * 1024).await;
}

#[actix_rt::test]
async fn pushes_over_the_send_buffer_budget_still_fail_with_buffer_full() {
    let server = demo_server().await;
    let (addr, _events) = start(config(&server).send_buffer(1024));
    addr.join("room:1", json!({})).await.unwrap();
    let big = json!({"pad": "x".repeat(4096)});
    // All queued in one turn of the client: the first fills the budget.
    let pushes: Vec<_> = (0..3)
        .map(|_| addr.send(Push::new("room:1", "echo", big.clone())))
        .collect();
    let results: Vec<_> = futures_util::future::join_all(pushes)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(results[0].is_ok(), "{results:?}");
    assert_eq!(results[1], Err(PushError::BufferFull));
    assert_eq!(results[2], Err(PushError::BufferFull));
    let status = addr.status().await.unwrap();
    assert_eq!(
        status.disconnects, 0,
        "a full buffer is not a connection failure"
    );
}
