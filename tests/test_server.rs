//! The test server's fault injection and observation, seen by a raw websocket client.
#![cfg(feature = "testing")]

use std::time::{Duration, Instant};

use actix_slipstream::codec::{Serializer, V2};
use actix_slipstream::testing::{
    Action, Channel, DisconnectReason, JoinOutcome, LeaveReason, Refusal, ServerEvent, Silence,
    TestServer,
};
use actix_slipstream::{Event, Payload};
use awc::error::WsClientError;
use awc::ws;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(5);

type Conn = actix_codec::Framed<awc::BoxedSocket, ws::Codec>;

async fn try_connect(server: &TestServer, query: &str) -> Result<Conn, WsClientError> {
    let url = server.websocket_url(query);
    match tokio::time::timeout(WAIT, awc::Client::new().ws(url).connect()).await {
        Ok(Ok((_, conn))) => Ok(conn),
        Ok(Err(e)) => Err(e),
        Err(_) => panic!("connect did not finish within {WAIT:?}"),
    }
}

async fn connect(server: &TestServer) -> Conn {
    try_connect(server, "token=x&vsn=2.0.0")
        .await
        .expect("connect")
}

async fn send(conn: &mut Conn, text: &str) {
    tokio::time::timeout(WAIT, conn.send(ws::Message::Text(text.into())))
        .await
        .expect("send in time")
        .expect("send");
}

/// The next non-ping frame; None when the stream ended (or failed).
async fn next(conn: &mut Conn) -> Option<ws::Frame> {
    loop {
        match tokio::time::timeout(WAIT, conn.next())
            .await
            .expect("a frame in time")
        {
            None | Some(Err(_)) => return None,
            Some(Ok(ws::Frame::Ping(_) | ws::Frame::Pong(_))) => {}
            Some(Ok(frame)) => return Some(frame),
        }
    }
}

async fn next_json(conn: &mut Conn) -> Value {
    match next(conn).await {
        Some(ws::Frame::Text(t)) => serde_json::from_slice(&t).expect("JSON"),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

async fn join(conn: &mut Conn, join_ref: &str, topic: &str, params: Value) -> Value {
    send(
        conn,
        &json!([join_ref, join_ref, topic, "phx_join", params]).to_string(),
    )
    .await;
    next_json(conn).await
}

fn close_code(frame: Option<ws::Frame>) -> Option<u16> {
    match frame {
        Some(ws::Frame::Close(Some(r))) => Some(u16::from(r.code)),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

async fn demo() -> TestServer {
    TestServer::phoenix_demo().start().await.expect("server")
}

#[actix_rt::test]
async fn url_points_at_the_socket_path_on_localhost() {
    let server = demo().await;
    assert_eq!(
        server.url(),
        format!("ws://127.0.0.1:{}/socket", server.port())
    );
    assert_ne!(server.port(), 0);
}

#[actix_rt::test]
async fn sockets_list_params_headers_vsn_and_joined_topics_with_join_refs() {
    let server = demo().await;
    let mut conn = connect(&server).await;
    join(&mut conn, "7", "room:a", json!({})).await;
    let ids = server.wait_for_sockets(1, WAIT).await.unwrap();
    server
        .wait_until(WAIT, |s| s.joined_to("room:a") == ids)
        .await
        .unwrap();
    let info = server.socket(ids[0]).unwrap();
    assert_eq!(info.vsn, "2.0.0");
    assert_eq!(info.param("token"), Some("x"));
    assert!(info.header("host").is_some());
    assert_eq!(info.channels.get("room:a"), Some(&Some("7".into())));
    let frames = server.frames(ids[0]);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].event, Event::Join);
    assert_eq!(server.counters().accepted, 1);
}

#[actix_rt::test]
async fn wait_for_finds_an_event_that_happened_before_the_call() {
    let server = demo().await;
    let mut conn = connect(&server).await;
    join(&mut conn, "1", "room:a", json!({})).await;
    // The join already happened: the history still has it.
    let rec = server
        .wait_for(
            WAIT,
            |e| matches!(e, ServerEvent::Joined(_, t, _) if t == "room:a"),
        )
        .await
        .unwrap();
    // Waiting after its sequence number only sees later events.
    let later = server
        .wait_for_after(rec.seq, Duration::from_millis(50), |e| {
            matches!(e, ServerEvent::Joined(..))
        })
        .await;
    assert!(later.is_err());
}

#[actix_rt::test]
async fn disconnect_closes_the_socket_with_the_chosen_code() {
    let server = demo().await;
    let mut conn = connect(&server).await;
    let id = server.wait_for_sockets(1, WAIT).await.unwrap()[0];
    server.disconnect(id, 4001).await.unwrap();
    assert_eq!(close_code(next(&mut conn).await), Some(4001));
    let rec = server
        .wait_for(WAIT, |e| matches!(e, ServerEvent::Disconnected(..)))
        .await
        .unwrap();
    assert_eq!(
        rec.event,
        ServerEvent::Disconnected(id, DisconnectReason::ServerClosed(4001))
    );
    assert!(server.sockets().is_empty());
}

#[actix_rt::test]
async fn drop_connection_ends_the_stream_without_a_close_frame() {
    let server = demo().await;
    let mut conn = connect(&server).await;
    join(&mut conn, "1", "room:a", json!({})).await;
    let id = server.wait_for_sockets(1, WAIT).await.unwrap()[0];
    assert!(server.drop_connection(id));
    assert!(next(&mut conn).await.is_none(), "no close frame expected");
    let rec = server
        .wait_for(WAIT, |e| matches!(e, ServerEvent::Disconnected(..)))
        .await
        .unwrap();
    assert_eq!(
        rec.event,
        ServerEvent::Disconnected(id, DisconnectReason::Dropped)
    );
    assert!(server
        .events()
        .iter()
        .any(|r| r.event == ServerEvent::Left(id, "room:a".into(), LeaveReason::Disconnected)));
}

#[actix_rt::test]
async fn silenced_socket_records_frames_but_answers_nothing_until_unsilenced() {
    let server = demo().await;
    let mut conn = connect(&server).await;
    let id = server.wait_for_sockets(1, WAIT).await.unwrap()[0];
    server.silence(id, Some(Silence::Ignore)).await.unwrap();
    send(&mut conn, r#"[null,"1","phoenix","heartbeat",{}]"#).await;
    server
        .wait_until(WAIT, |s| s.socket(id).unwrap().frames_received == 1)
        .await
        .unwrap();
    server.silence(id, None).await.unwrap();
    send(&mut conn, r#"[null,"2","phoenix","heartbeat",{}]"#).await;
    // The first reply the client sees is the second heartbeat's: the first got none.
    assert_eq!(next_json(&mut conn).await[1], "2");
}

#[actix_rt::test]
async fn stalled_socket_reads_nothing_until_resumed() {
    let server = demo().await;
    let mut conn = connect(&server).await;
    let id = server.wait_for_sockets(1, WAIT).await.unwrap()[0];
    server.silence(id, Some(Silence::Stall)).await.unwrap();
    send(&mut conn, r#"[null,"1","phoenix","heartbeat",{}]"#).await;
    let read = server
        .wait_until(Duration::from_millis(200), |s| {
            s.socket(id).unwrap().frames_received > 0
        })
        .await;
    assert!(read.is_err(), "a stalled socket must not read");
    server.silence(id, None).await.unwrap();
    // Once resumed, the buffered heartbeat is read and answered.
    assert_eq!(next_json(&mut conn).await[1], "1");
}

#[actix_rt::test]
async fn new_connections_start_silenced_until_silence_is_turned_off() {
    let server = demo().await;
    server.silence_new_connections(Some(Silence::Ignore));
    let mut conn = connect(&server).await;
    let id = server.wait_for_sockets(1, WAIT).await.unwrap()[0];
    assert_eq!(server.socket(id).unwrap().silence, Some(Silence::Ignore));
    send(&mut conn, r#"[null,"1","phoenix","heartbeat",{}]"#).await;
    server
        .wait_for(WAIT, |e| matches!(e, ServerEvent::Frame(..)))
        .await
        .unwrap();
    server.silence_all(None).await;
    send(&mut conn, r#"[null,"2","phoenix","heartbeat",{}]"#).await;
    assert_eq!(next_json(&mut conn).await[1], "2");
    let mut conn2 = connect(&server).await;
    send(&mut conn2, r#"[null,"1","phoenix","heartbeat",{}]"#).await;
    assert_eq!(next_json(&mut conn2).await[1], "1");
}

#[actix_rt::test]
async fn refuse_next_answers_with_http_statuses_then_accepts() {
    let server = demo().await;
    for status in [500u16, 404] {
        server.refuse_next(1, Refusal::Http(status));
        match try_connect(&server, "token=x&vsn=2.0.0").await {
            Err(WsClientError::InvalidResponseStatus(s)) => assert_eq!(s.as_u16(), status),
            other => panic!("expected HTTP {status}, got {:?}", other.map(|_| ())),
        }
    }
    server.refuse_next(2, Refusal::Http(403));
    for _ in 0..2 {
        assert!(try_connect(&server, "token=x&vsn=2.0.0").await.is_err());
    }
    connect(&server).await;
    let c = server.counters();
    assert_eq!((c.refused, c.accepted), (4, 1));
}

#[actix_rt::test]
async fn connect_predicate_and_bad_vsn_get_403() {
    let server = demo().await;
    for query in ["vsn=2.0.0", "token=x&vsn=3.0.0"] {
        match try_connect(&server, query).await {
            Err(WsClientError::InvalidResponseStatus(s)) => assert_eq!(s.as_u16(), 403),
            other => panic!("expected 403 for {query}, got {:?}", other.map(|_| ())),
        }
    }
    let mut conn = try_connect(&server, "token=x").await.unwrap();
    let id = server.wait_for_sockets(1, WAIT).await.unwrap()[0];
    assert_eq!(server.socket(id).unwrap().vsn, "1.0.0");
    send(
        &mut conn,
        r#"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"1"}"#,
    )
    .await;
    assert_eq!(next_json(&mut conn).await["ref"], "1");
}

#[actix_rt::test]
async fn tcp_level_refusals_end_the_connection_before_any_http_response() {
    let server = demo().await;
    for how in [Refusal::TcpClose, Refusal::TcpReset] {
        server.refuse_next(1, how);
        match try_connect(&server, "token=x&vsn=2.0.0").await {
            Err(WsClientError::InvalidResponseStatus(s)) => panic!("{how:?} gave HTTP {s}"),
            Err(_) => {}
            Ok(_) => panic!("{how:?} accepted"),
        }
        server
            .wait_for(WAIT, |e| *e == ServerEvent::Refused(how))
            .await
            .unwrap();
    }
    connect(&server).await;
    assert_eq!(server.counters().refused, 2);
}

#[actix_rt::test]
async fn hang_accepts_tcp_but_never_answers_the_upgrade() {
    let server = demo().await;
    server.refuse_next(1, Refusal::Hang);
    let url = server.websocket_url("token=x&vsn=2.0.0");
    let attempt = tokio::time::timeout(
        Duration::from_millis(300),
        awc::Client::new().ws(url).connect(),
    )
    .await;
    assert!(attempt.is_err(), "the upgrade must not be answered");
    server
        .wait_for(WAIT, |e| *e == ServerEvent::Refused(Refusal::Hang))
        .await
        .unwrap();
    server.accept_connections();
    connect(&server).await;
    assert_eq!(server.counters().tcp_accepted, 2);
}

#[actix_rt::test]
async fn graceful_stop_closes_with_1012_and_restart_listens_on_the_same_port() {
    let server = demo().await;
    let port = server.port();
    let mut conn = connect(&server).await;
    server.wait_for_sockets(1, WAIT).await.unwrap();
    server.stop().await.unwrap();
    assert_eq!(close_code(next(&mut conn).await), Some(1012));
    assert!(!server.is_running());
    match try_connect(&server, "token=x&vsn=2.0.0").await {
        Err(WsClientError::SendRequest(_)) => {}
        other => panic!("expected a refused connection, got {:?}", other.map(|_| ())),
    }
    server.restart().await.unwrap();
    assert_eq!(server.port(), port);
    let mut conn = connect(&server).await;
    send(&mut conn, r#"[null,"1","phoenix","heartbeat",{}]"#).await;
    assert_eq!(next_json(&mut conn).await[1], "1");
}

#[actix_rt::test]
async fn kill_drops_sockets_without_a_close_frame() {
    let server = demo().await;
    let mut conn = connect(&server).await;
    server.wait_for_sockets(1, WAIT).await.unwrap();
    server.kill().await.unwrap();
    assert!(next(&mut conn).await.is_none());
    server.restart().await.unwrap();
    connect(&server).await;
}

#[actix_rt::test]
async fn dropping_the_last_handle_kills_the_server() {
    let server = demo().await;
    let url = server.websocket_url("token=x&vsn=2.0.0");
    let mut conn = connect(&server).await;
    server.wait_for_sockets(1, WAIT).await.unwrap();
    drop(server);
    assert!(next(&mut conn).await.is_none());
    assert!(awc::Client::new().ws(url).connect().await.is_err());
}

#[actix_rt::test]
async fn reply_delay_holds_replies_back() {
    let server = demo().await;
    let mut conn = connect(&server).await;
    join(&mut conn, "1", "room:a", json!({})).await;
    server.set_reply_delay(Duration::from_millis(300));
    let start = Instant::now();
    send(&mut conn, r#"["1","2","room:a","stop_reply",{"x":1}]"#).await;
    let reply = next_json(&mut conn).await;
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(reply[3], "phx_reply");
    // The phx_close of stop_reply still follows its delayed reply.
    assert_eq!(next_json(&mut conn).await[3], "phx_close");
    server.set_reply_delay(Duration::ZERO);
    send(&mut conn, r#"[null,"3","phoenix","heartbeat",{}]"#).await;
    assert_eq!(next_json(&mut conn).await[1], "3");
}

#[actix_rt::test]
async fn channel_cap_refuses_joins_beyond_it_but_allows_rejoins() {
    let server = TestServer::phoenix_demo()
        .max_channels(2)
        .start()
        .await
        .unwrap();
    let mut conn = connect(&server).await;
    assert_eq!(
        join(&mut conn, "1", "room:a", json!({})).await[4]["status"],
        "ok"
    );
    assert_eq!(
        join(&mut conn, "2", "room:b", json!({})).await[4]["status"],
        "ok"
    );
    assert_eq!(
        join(&mut conn, "3", "room:c", json!({})).await,
        json!(["3", "3", "room:c", "phx_reply", {"response": {"reason": "too many channels joined"}, "status": "error"}])
    );
    assert_eq!(
        join(&mut conn, "4", "room:a", json!({})).await[4]["status"],
        "ok"
    );
    assert_eq!(
        next_json(&mut conn).await,
        json!(["1", "1", "room:a", "phx_close", {}])
    );
}

#[actix_rt::test]
async fn a_socket_joins_at_most_100_channels_by_default_as_on_phoenix() {
    assert_eq!(actix_slipstream::testing::DEFAULT_MAX_CHANNELS, 100);
    let server = demo().await;
    let mut conn = connect(&server).await;
    for i in 1..=100 {
        let r = i.to_string();
        let reply = join(&mut conn, &r, &format!("room:{i}"), json!({})).await;
        assert_eq!(reply[4]["status"], "ok", "join {i}: {reply}");
    }
    assert_eq!(
        join(&mut conn, "101", "room:101", json!({})).await,
        json!(["101", "101", "room:101", "phx_reply", {"response": {"reason": "too many channels joined"}, "status": "error"}])
    );
}

#[actix_rt::test]
async fn push_and_broadcast_from_the_test_reach_joined_sockets() {
    let server = demo().await;
    let mut a = connect(&server).await;
    let mut b = connect(&server).await;
    join(&mut a, "1", "room:x", json!({})).await;
    join(&mut b, "5", "room:x", json!({})).await;
    let ids = server
        .wait_for_state(WAIT, |s| {
            let ids = s.joined_to("room:x");
            (ids.len() == 2).then_some(ids)
        })
        .await
        .unwrap();
    assert_eq!(server.broadcast("room:x", "news", json!({"n": 1})).await, 2);
    for conn in [&mut a, &mut b] {
        assert_eq!(
            next_json(conn).await,
            json!([null, null, "room:x", "news", {"n": 1}])
        );
    }
    server
        .push(ids[1], "room:x", "direct", json!({"to": "b"}))
        .await
        .unwrap();
    assert_eq!(
        next_json(&mut b).await,
        json!(["5", null, "room:x", "direct", {"to": "b"}])
    );
    assert!(server
        .push(ids[0], "room:other", "direct", json!({}))
        .await
        .is_err());
}

#[actix_rt::test]
async fn broadcast_from_a_channel_reaches_others_and_binary_broadcast_is_kind_2() {
    let server = demo().await;
    let mut a = connect(&server).await;
    let mut b = connect(&server).await;
    join(&mut a, "1", "room:x", json!({})).await;
    join(&mut b, "1", "room:x", json!({})).await;
    server
        .wait_until(WAIT, |s| s.joined_to("room:x").len() == 2)
        .await
        .unwrap();
    send(&mut a, r#"["1","2","room:x","broadcast_from",{"m":1}]"#).await;
    assert_eq!(
        next_json(&mut b).await,
        json!([null, null, "room:x", "broadcast_from", {"m": 1}])
    );
    assert_eq!(next_json(&mut a).await[3], "phx_reply");
    // A binary push of "broadcast": every joined socket gets a kind 2 frame.
    let push = V2
        .encode_client(&actix_slipstream::codec::Message::new(
            Some("1".into()),
            Some("3".into()),
            "room:x",
            Event::from("broadcast"),
            Payload::from(vec![9u8, 8]),
        ))
        .unwrap();
    let actix_slipstream::codec::Frame::Binary(bytes) = push else {
        panic!("binary expected")
    };
    a.send(ws::Message::Binary(bytes)).await.unwrap();
    let mut want = vec![2u8, 6, 9];
    want.extend_from_slice(b"room:xbroadcast");
    want.extend_from_slice(&[9, 8]);
    for conn in [&mut a, &mut b] {
        match next(conn).await {
            Some(ws::Frame::Binary(got)) => assert_eq!(got.as_ref(), want.as_slice()),
            other => panic!("expected a binary broadcast, got {other:?}"),
        }
    }
}

#[actix_rt::test]
async fn custom_channels_define_joins_and_events_and_a_panicking_handler_crashes_the_channel() {
    let server = TestServer::builder()
        .channel(
            "game:*",
            Channel::new()
                .on_join(|j| match j.topic.as_str() {
                    "game:crash" => JoinOutcome::Crash,
                    "game:no" => JoinOutcome::error(json!({"reason": "no"})),
                    _ => {
                        JoinOutcome::ok(json!({"hi": 1})).then([Action::push("welcome", json!({}))])
                    }
                })
                .on_event(|ev| match ev.event {
                    "boom" => panic!("handler bug"),
                    _ => vec![
                        Action::push("seen", ev.payload.clone()),
                        Action::reply_ok(json!({"ok": true})),
                    ],
                }),
        )
        .start()
        .await
        .unwrap();
    let mut conn = try_connect(&server, "vsn=2.0.0").await.unwrap();
    assert_eq!(
        join(&mut conn, "1", "game:crash", json!({})).await[4],
        json!({"response": {"reason": "join crashed"}, "status": "error"})
    );
    assert_eq!(
        join(&mut conn, "2", "game:no", json!({})).await[4],
        json!({"response": {"reason": "no"}, "status": "error"})
    );
    assert_eq!(
        join(&mut conn, "3", "game:1", json!({})).await,
        json!(["3", "3", "game:1", "phx_reply", {"response": {"hi": 1}, "status": "ok"}])
    );
    assert_eq!(
        next_json(&mut conn).await,
        json!(["3", null, "game:1", "welcome", {}])
    );
    send(&mut conn, r#"["3","4","game:1","move",{"x":1}]"#).await;
    assert_eq!(
        next_json(&mut conn).await,
        json!(["3", null, "game:1", "seen", {"x": 1}])
    );
    assert_eq!(
        next_json(&mut conn).await[4]["response"],
        json!({"ok": true})
    );
    send(&mut conn, r#"["3","5","game:1","boom",{}]"#).await;
    assert_eq!(
        next_json(&mut conn).await,
        json!(["3", "3", "game:1", "phx_error", {}])
    );
    assert_eq!(
        join(&mut conn, "6", "other", json!({})).await,
        json!([null, "6", "other", "phx_reply", {"response": {"reason": "unmatched topic"}, "status": "error"}])
    );
}

#[actix_rt::test]
async fn flood_pushes_count_messages_of_the_given_size_then_replies() {
    let server = demo().await;
    let mut conn = connect(&server).await;
    join(&mut conn, "1", "room:f", json!({})).await;
    send(
        &mut conn,
        r#"["1","2","room:f","flood",{"count":50,"size":10}]"#,
    )
    .await;
    for n in 1..=50u64 {
        let m = next_json(&mut conn).await;
        assert_eq!(m[3], "flooded");
        assert_eq!(m[4], json!({"n": n, "data": "xxxxxxxxxx"}));
    }
    assert_eq!(
        next_json(&mut conn).await,
        json!(["1", "2", "room:f", "phx_reply", {"response": {"count": 50}, "status": "ok"}])
    );
}

#[actix_rt::test]
async fn sleep_delays_the_reply_without_blocking_heartbeats() {
    let server = demo().await;
    let mut conn = connect(&server).await;
    join(&mut conn, "1", "room:s", json!({})).await;
    send(&mut conn, r#"["1","2","room:s","sleep",{"ms":200}]"#).await;
    send(&mut conn, r#"[null,"3","phoenix","heartbeat",{}]"#).await;
    assert_eq!(next_json(&mut conn).await[1], "3");
    assert_eq!(
        next_json(&mut conn).await,
        json!(["1", "2", "room:s", "phx_reply", {"response": {"ms": 200}, "status": "ok"}])
    );
}

#[actix_rt::test]
async fn idle_timeout_closes_a_quiet_socket_with_1002() {
    let server = TestServer::phoenix_demo()
        .idle_timeout(Duration::from_millis(200))
        .start()
        .await
        .unwrap();
    let mut conn = connect(&server).await;
    assert_eq!(close_code(next(&mut conn).await), Some(1002));
}

#[test]
fn spawn_in_thread_serves_clients_outside_an_actix_system() {
    let server = TestServer::phoenix_demo().spawn_in_thread().unwrap();
    let url = server.websocket_url("token=x&vsn=2.0.0");
    actix_rt::System::new().block_on(async {
        let (_, mut conn) = awc::Client::new().ws(url).connect().await.unwrap();
        send(&mut conn, r#"[null,"1","phoenix","heartbeat",{}]"#).await;
        assert_eq!(next_json(&mut conn).await[1], "1");
        server.wait_for_sockets(1, WAIT).await.unwrap();
        server.stop().await.unwrap();
        assert_eq!(close_code(next(&mut conn).await), Some(1012));
    });
}

#[actix_rt::test]
async fn crash_channel_sends_phx_error_and_stop_channel_sends_phx_close() {
    let server = demo().await;
    let mut conn = connect(&server).await;
    join(&mut conn, "1", "room:a", json!({})).await;
    join(&mut conn, "2", "room:b", json!({})).await;
    let id = server.wait_for_sockets(1, WAIT).await.unwrap()[0];

    server.crash_channel(id, "room:a").await.unwrap();
    assert_eq!(
        next_json(&mut conn).await,
        json!(["1", "1", "room:a", "phx_error", {}])
    );
    server
        .wait_for(WAIT, |e| {
            matches!(e, ServerEvent::Left(s, t, LeaveReason::Crashed) if *s == id && t == "room:a")
        })
        .await
        .unwrap();

    server.stop_channel(id, "room:b").await.unwrap();
    assert_eq!(
        next_json(&mut conn).await,
        json!(["2", "2", "room:b", "phx_close", {}])
    );
    server
        .wait_for(WAIT, |e| {
            matches!(e, ServerEvent::Left(s, t, LeaveReason::Stopped) if *s == id && t == "room:b")
        })
        .await
        .unwrap();
    assert!(server.socket(id).unwrap().channels.is_empty());

    // Neither works on a channel that is not joined any more.
    assert!(matches!(
        server.stop_channel(id, "room:b").await,
        Err(actix_slipstream::testing::Error::NotJoined(..))
    ));
    assert!(matches!(
        server.crash_channel(id, "room:a").await,
        Err(actix_slipstream::testing::Error::NotJoined(..))
    ));
}
