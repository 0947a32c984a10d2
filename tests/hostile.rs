//! Hostile or broken servers: every kind of trouble ends in a clear `DisconnectReason` (or
//! is dropped without harm), then the client recovers. Nothing panics, grows without bound
//! or hangs: every wait is bounded.
//!
//! Frame-level trouble goes through the test server's `send_raw` (well-formed websocket
//! frames with hostile content); wire-level trouble (frame headers no sane server sends, a
//! broken upgrade) comes from `RawServer`, a bare TCP listener that does the upgrade by hand.
#![cfg(feature = "testing")]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_slipstream::codec::{DecodeError, Message, Serializer, V2};
use actix_slipstream::testing::{RawFrame, Refusal, SocketId, TestServer};
use actix_slipstream::{
    Backoff, ClientExt, ConnectError, DisconnectReason, Event, Payload, Push, Ref, ReplyStatus,
};
use bytes::Bytes;
use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// A joined client on the demo server: its address, events and the server's socket.
async fn joined_client(
    server: &TestServer,
    config: actix_slipstream::Config,
) -> (
    actix::Addr<actix_slipstream::Client<Recorder>>,
    Events,
    SocketId,
) {
    let (addr, mut events) = start(config);
    addr.join("room:1", json!({})).await.unwrap();
    events.joined("room:1").await;
    let socket = server.wait_for_join("room:1", WAIT).await.unwrap();
    (addr, events, socket)
}

/// Waits for the disconnect, then for the reconnect and the rejoin of `room:1`.
async fn disconnected_then_recovered(events: &mut Events) -> DisconnectReason {
    let reason = events.disconnected().await;
    events.connected().await;
    events.joined("room:1").await;
    reason
}

/// The client still answers: a push gets its echo.
async fn still_works(addr: &actix::Addr<actix_slipstream::Client<Recorder>>) {
    let reply = tokio::time::timeout(
        WAIT,
        addr.send(Push::new("room:1", "echo", json!({"alive": true}))),
    )
    .await
    .expect("push answered in time")
    .unwrap()
    .unwrap();
    assert_eq!(reply.response, Payload::Json(json!({"alive": true})));
}

fn server_text(msg: Message) -> RawFrame {
    match V2.encode_server(&msg).unwrap() {
        actix_slipstream::codec::Frame::Text(t) => RawFrame::Text(t),
        actix_slipstream::codec::Frame::Binary(b) => RawFrame::Binary(b),
    }
}

// ------------------------------------------------------------ frame-level trouble

#[actix_rt::test]
async fn a_frame_larger_than_the_max_frame_size_is_a_protocol_error_then_the_client_recovers() {
    let server = demo_server().await;
    let (addr, mut events, socket) =
        joined_client(&server, config(&server).max_frame_size(4096)).await;
    server
        .send_raw(socket, RawFrame::Text("x".repeat(64 * 1024)))
        .await
        .unwrap();
    let reason = disconnected_then_recovered(&mut events).await;
    assert!(
        matches!(&reason, DisconnectReason::Protocol(e) if e.contains("max_frame_size")),
        "{reason:?}"
    );
    still_works(&addr).await;
}

#[actix_rt::test]
async fn garbage_text_and_binary_frames_are_invalid_frames_then_the_client_recovers() {
    let server = demo_server().await;
    let (addr, mut events, socket) = joined_client(&server, config(&server)).await;
    let garbage = [
        RawFrame::Text("this is not json {".into()),
        RawFrame::Text("[1, 2, 3]".into()),
        RawFrame::Text(r#"{"topic": "room:1"}"#.into()),
        RawFrame::Binary(Bytes::from_static(&[0xff, 0x00, 0x13, 0x37])),
        RawFrame::Binary(Bytes::from_static(&[1, 200, 200, 200, 200])),
        // Invalid UTF-8 in a text message (only expressible in fragments).
        RawFrame::Fragmented {
            text: true,
            parts: vec![
                Bytes::from_static(b"[null, null, \"room:1\", \"x\", \""),
                Bytes::from_static(&[0xc3, 0x28, b'"', b']']),
            ],
        },
    ];
    for frame in garbage {
        let socket = server.wait_for_join("room:1", WAIT).await.unwrap();
        server.send_raw(socket, frame.clone()).await.unwrap();
        let reason = disconnected_then_recovered(&mut events).await;
        assert!(
            matches!(reason, DisconnectReason::InvalidFrame(_)),
            "{frame:?}: {reason:?}"
        );
    }
    let _ = socket;
    still_works(&addr).await;
    let status = addr.status().await.unwrap();
    assert_eq!(status.disconnects, 6);
    assert_eq!(status.pending_replies, 0);
}

#[actix_rt::test]
async fn a_fragmented_message_under_the_limit_is_reassembled() {
    let server = demo_server().await;
    let (addr, mut events, socket) =
        joined_client(&server, config(&server).max_frame_size(4096)).await;
    let jr = server.socket(socket).unwrap().channels["room:1"].clone();
    // A text message of ~3 KiB in 3 fragments, each under the limit, the whole under it too.
    let big = "y".repeat(3000);
    let msg = Message::new(
        jr.clone(),
        None,
        "room:1",
        Event::from("fragmented"),
        Payload::Json(json!({"big": big})),
    );
    let RawFrame::Text(text) = server_text(msg) else {
        unreachable!()
    };
    let bytes = Bytes::from(text.into_bytes());
    let parts = vec![
        bytes.slice(..1000),
        bytes.slice(1000..2000),
        bytes.slice(2000..),
    ];
    server
        .send_raw(socket, RawFrame::Fragmented { text: true, parts })
        .await
        .unwrap();
    assert_eq!(
        events.message("room:1", "fragmented").await,
        Payload::Json(json!({"big": big}))
    );
    // A binary message (V2 server push) in fragments too, one of them empty.
    let msg = Message::new(
        jr,
        None,
        "room:1",
        Event::from("fragmented_binary"),
        Payload::Binary(Bytes::from(vec![7u8; 2000])),
    );
    let RawFrame::Binary(bin) = server_text(msg) else {
        unreachable!()
    };
    let parts = vec![bin.slice(..10), Bytes::new(), bin.slice(10..)];
    server
        .send_raw(socket, RawFrame::Fragmented { text: false, parts })
        .await
        .unwrap();
    assert_eq!(
        events.message("room:1", "fragmented_binary").await,
        Payload::Binary(Bytes::from(vec![7u8; 2000]))
    );
    still_works(&addr).await;
    assert_eq!(addr.status().await.unwrap().disconnects, 0);
}

#[actix_rt::test]
async fn a_fragmented_message_over_the_limit_is_a_protocol_error_then_the_client_recovers() {
    let server = demo_server().await;
    let (addr, mut events, socket) =
        joined_client(&server, config(&server).max_frame_size(4096)).await;
    // Every fragment is under the limit; together they are over it.
    let parts = (0..10).map(|_| Bytes::from(vec![b'z'; 1000])).collect();
    server
        .send_raw(socket, RawFrame::Fragmented { text: true, parts })
        .await
        .unwrap();
    let reason = disconnected_then_recovered(&mut events).await;
    assert!(
        matches!(&reason, DisconnectReason::Protocol(e) if e.contains("max frame size")),
        "{reason:?}"
    );
    still_works(&addr).await;
}

// ------------------------------------------------------------ stray traffic

#[actix_rt::test]
async fn replies_for_unknown_refs_and_frames_for_unknown_topics_are_dropped_and_the_client_stays_up(
) {
    let server = demo_server().await;
    let (addr, mut events, socket) = joined_client(&server, config(&server)).await;
    let jr = server.socket(socket).unwrap().channels["room:1"].clone();
    let reply = |join_ref: Option<Ref>, reference: &str, topic: &str| {
        server_text(Message::new(
            join_ref,
            Some(Ref::new(reference)),
            topic,
            Event::Reply(ReplyStatus::Ok),
            Payload::Json(json!({})),
        ))
    };
    let stray = vec![
        // Replies to refs the client never used, on a joined topic and elsewhere.
        reply(jr.clone(), "987654", "room:1"),
        reply(jr.clone(), "not-a-number", "room:1"),
        reply(None, "1", "room:elsewhere"),
        reply(None, "77", "phoenix"),
        // Messages, errors and closes for topics the client never joined.
        server_text(Message::new(
            None,
            None,
            "room:unknown",
            Event::from("news"),
            Payload::Json(json!({"stray": true})),
        )),
        server_text(Message::new(
            Some(Ref::new("5")),
            Some(Ref::new("5")),
            "room:unknown",
            Event::Error,
            Payload::Json(json!({})),
        )),
        server_text(Message::new(
            Some(Ref::new("5")),
            Some(Ref::new("5")),
            "room:unknown",
            Event::Close,
            Payload::Json(json!({})),
        )),
        // A phx_close for room:1 with a stale join_ref: not ours, dropped.
        server_text(Message::new(
            Some(Ref::new("999")),
            Some(Ref::new("999")),
            "room:1",
            Event::Close,
            Payload::Json(json!({})),
        )),
    ];
    for frame in stray {
        server.send_raw(socket, frame).await.unwrap();
    }
    // The frames are handled in order: once the echo comes back, all were seen.
    still_works(&addr).await;
    let seen = events.drain_now();
    assert!(
        !seen.iter().any(|e| matches!(
            e,
            Ev::Message(t, ..) | Ev::TopicClosed(t, _) | Ev::Left(t) if t != "room:1"
        )),
        "{seen:#?}"
    );
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, Ev::Left(_) | Ev::Disconnected(_) | Ev::Reply(..))),
        "{seen:#?}"
    );
    let status = addr.status().await.unwrap();
    assert_eq!(status.disconnects, 0);
    assert_eq!(status.pending_replies, 0);
    assert_eq!(
        status.topic("room:1").map(|t| t.status),
        Some(actix_slipstream::TopicStatus::Joined)
    );
    assert!(status.topic("room:unknown").is_none());
}

#[actix_rt::test]
async fn a_flood_of_pings_is_answered_with_pongs_and_the_client_stays_up() {
    const PINGS: u64 = 5_000;
    let server = demo_server().await;
    let (addr, _events, socket) = joined_client(&server, config(&server)).await;
    for i in 0..PINGS {
        server
            .send_raw(socket, RawFrame::Ping(Bytes::from(i.to_string())))
            .await
            .unwrap();
    }
    server
        .wait_until(WAIT, |s| s.counters().pongs_received >= PINGS)
        .await
        .unwrap_or_else(|_| panic!("pongs: {}", server.counters().pongs_received));
    still_works(&addr).await;
    let status = addr.status().await.unwrap();
    assert_eq!(status.disconnects, 0);
}

// ------------------------------------------------------------ connection-level trouble

#[actix_rt::test]
async fn an_upgrade_answered_500_404_or_403_is_a_refused_connect_then_the_client_recovers() {
    let server = demo_server().await;
    for status in [500, 404, 403] {
        server.refuse_next(1, Refusal::Http(status));
        let (addr, mut events) = start(config(&server));
        assert_eq!(
            events.disconnected().await,
            DisconnectReason::ConnectFailed(ConnectError::Refused(status))
        );
        events.connected().await;
        addr.join("room:1", json!({})).await.unwrap();
        still_works(&addr).await;
        addr.send(actix_slipstream::Stop).await.unwrap();
    }
    // A real 404: no socket at this path. Retried with the backoff, never a hot loop.
    let url = format!("ws://127.0.0.1:{}/elsewhere", server.port());
    let config = actix_slipstream::Config::new(url)
        .param("token", "t")
        .reconnect_backoff(Backoff::from_millis(&[50]));
    let (addr, mut events) = start(config);
    for _ in 0..3 {
        assert_eq!(
            events.disconnected().await,
            DisconnectReason::ConnectFailed(ConnectError::Refused(404))
        );
    }
    assert!(addr.connected());
}

#[actix_rt::test]
async fn a_server_that_accepts_tcp_but_never_answers_the_upgrade_hits_the_connect_timeout() {
    let server = demo_server().await;
    server.refuse_next(2, Refusal::Hang);
    let config = config(&server).connect_timeout(Duration::from_millis(200));
    let (addr, mut events) = start(config);
    for _ in 0..2 {
        assert_eq!(
            events.disconnected().await,
            DisconnectReason::ConnectFailed(ConnectError::Timeout)
        );
    }
    events.connected().await;
    addr.join("room:1", json!({})).await.unwrap();
    still_works(&addr).await;
}

// ------------------------------------------------------------ wire-level trouble

/// What a [`RawServer`] does after accepting a connection.
#[derive(Clone, Copy, Debug)]
enum Hostile {
    /// Upgrade, then send these bytes as they are and keep the connection open.
    AfterUpgrade(&'static [u8]),
    /// Answer the upgrade with these bytes instead of a proper 101.
    Upgrade(&'static [u8]),
    /// Upgrade, send this frame header, then stream up to this many payload bytes (and
    /// count how many could be written before the client closed the connection).
    Stream(&'static [u8], u64),
}

/// A bare TCP listener that does the websocket upgrade by hand, then misbehaves.
/// Reports every accepted connection.
async fn raw_server(hostile: Hostile) -> (u16, mpsc::UnboundedReceiver<()>, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    let written = Arc::new(AtomicU64::new(0));
    let counter = written.clone();
    actix_rt::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = tx.send(());
            actix_rt::spawn(serve_raw(stream, hostile, counter.clone()));
        }
    });
    (port, rx, written)
}

async fn serve_raw(mut stream: TcpStream, hostile: Hostile, written: Arc<AtomicU64>) {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        match tokio::time::timeout(WAIT, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => request.extend_from_slice(&buf[..n]),
            _ => return,
        }
    }
    let request = String::from_utf8_lossy(&request);
    let key = request
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-key")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    let accept = actix_http::ws::hash_key(key.as_bytes());
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: {}\r\n\r\n",
        String::from_utf8_lossy(&accept)
    );
    match hostile {
        Hostile::Upgrade(bytes) => {
            let _ = stream.write_all(bytes).await;
        }
        Hostile::AfterUpgrade(bytes) => {
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(bytes).await;
        }
        Hostile::Stream(header, total) => {
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(header).await;
            let chunk = vec![0u8; 64 * 1024];
            let mut sent = 0;
            while sent < total {
                match tokio::time::timeout(WAIT, stream.write(&chunk)).await {
                    Ok(Ok(n)) if n > 0 => {
                        sent += n as u64;
                        written.fetch_add(n as u64, Ordering::SeqCst);
                    }
                    _ => break,
                }
            }
            return;
        }
    }
    // Hold the connection until the client gives up on it (bounded).
    let _ = tokio::time::timeout(WAIT, async {
        while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// Starts a client on the raw server; returns the first disconnect reason after checking
/// that the client comes back (a second connection) with the backoff, not in a hot loop.
async fn against_raw_server(hostile: Hostile) -> DisconnectReason {
    let (port, mut accepted, _) = raw_server(hostile).await;
    let config = actix_slipstream::Config::new(format!("ws://127.0.0.1:{port}/socket"))
        .reconnect_backoff(Backoff::from_millis(&[100]))
        .connect_timeout(Duration::from_secs(2));
    let started = std::time::Instant::now();
    let (addr, mut events) = start(config);
    let reason = events.disconnected().await;
    for _ in 0..2 {
        tokio::time::timeout(WAIT, accepted.recv())
            .await
            .expect("the client connects again")
            .unwrap();
    }
    // Two connections, one backoff delay between them at least.
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert!(addr.connected(), "the client is still running");
    addr.send(actix_slipstream::Stop).await.unwrap();
    reason
}

#[actix_rt::test]
async fn a_frame_header_announcing_an_exabyte_is_refused_without_allocating_it() {
    // FIN + text, no mask, 127 = 64-bit length: 2^63 - 1 bytes announced.
    const HEADER: &[u8] = &[0x81, 0x7f, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    let reason = against_raw_server(Hostile::AfterUpgrade(HEADER)).await;
    assert!(
        matches!(&reason, DisconnectReason::Protocol(e) if e.contains("max_frame_size")),
        "{reason:?}"
    );
}

#[actix_rt::test]
async fn a_huge_frame_streamed_by_the_server_is_refused_at_its_header_not_buffered() {
    // FIN + binary, 64-bit length: 1 GiB announced, then streamed.
    const HEADER: &[u8] = &[0x82, 0x7f, 0, 0, 0, 0, 0x40, 0, 0, 0];
    const STREAMED: u64 = 256 * 1024 * 1024;
    let (port, mut accepted, written) = raw_server(Hostile::Stream(HEADER, STREAMED)).await;
    let config = actix_slipstream::Config::new(format!("ws://127.0.0.1:{port}/socket"))
        .max_frame_size(64 * 1024)
        .reconnect_backoff(Backoff::from_millis(&[60_000]));
    let (addr, mut events) = start(config);
    let reason = events.disconnected().await;
    assert!(
        matches!(&reason, DisconnectReason::Protocol(e) if e.contains("max_frame_size")),
        "{reason:?}"
    );
    tokio::time::timeout(WAIT, accepted.recv())
        .await
        .unwrap()
        .unwrap();
    // The server can write only what the socket buffers hold before the client hangs up.
    let before = written.load(Ordering::SeqCst);
    assert!(
        before < 32 * 1024 * 1024,
        "the client read {before} bytes of a frame it must refuse"
    );
    assert!(addr.connected());
}

#[actix_rt::test]
async fn a_frame_with_a_reserved_opcode_is_a_protocol_error() {
    const FRAME: &[u8] = &[0x83, 0x02, b'h', b'i'];
    let reason = against_raw_server(Hostile::AfterUpgrade(FRAME)).await;
    assert!(
        matches!(reason, DisconnectReason::Protocol(_)),
        "{reason:?}"
    );
}

#[actix_rt::test]
async fn a_masked_frame_from_the_server_is_a_protocol_error() {
    // Servers must not mask: FIN + text, mask bit, 2 bytes, a mask key, masked "hi".
    const FRAME: &[u8] = &[0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
    let reason = against_raw_server(Hostile::AfterUpgrade(FRAME)).await;
    assert!(
        matches!(reason, DisconnectReason::Protocol(_)),
        "{reason:?}"
    );
}

#[actix_rt::test]
async fn a_continuation_without_a_first_frame_is_a_protocol_error() {
    // FIN + continuation opcode, with no message started.
    const FRAME: &[u8] = &[0x80, 0x02, b'h', b'i'];
    let reason = against_raw_server(Hostile::AfterUpgrade(FRAME)).await;
    assert!(
        matches!(reason, DisconnectReason::Protocol(_)),
        "{reason:?}"
    );
}

#[actix_rt::test]
async fn a_data_frame_inside_a_fragmented_message_is_a_protocol_error() {
    // A first text fragment (FIN clear), then a whole text frame before the message
    // ended: the websocket codec refuses it.
    const FRAMES: &[u8] = &[0x01, 0x02, b'h', b'i', 0x81, 0x02, b'y', b'o'];
    let reason = against_raw_server(Hostile::AfterUpgrade(FRAMES)).await;
    assert!(
        matches!(&reason, DisconnectReason::Protocol(e) if e.contains("continuation")),
        "{reason:?}"
    );
}

#[actix_rt::test]
async fn an_upgrade_with_a_wrong_accept_key_is_a_failed_connect() {
    const ANSWER: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: d3JvbmcgYWNjZXB0IGtleSE=\r\n\r\n";
    let reason = against_raw_server(Hostile::Upgrade(ANSWER)).await;
    assert!(
        matches!(reason, DisconnectReason::ConnectFailed(ConnectError::Io(_))),
        "{reason:?}"
    );
}

#[actix_rt::test]
async fn an_upgrade_answered_with_garbage_is_a_failed_connect() {
    let reason = against_raw_server(Hostile::Upgrade(b"\x00\x01garbage\r\n\r\n")).await;
    assert!(
        matches!(reason, DisconnectReason::ConnectFailed(_)),
        "{reason:?}"
    );
}

#[actix_rt::test]
async fn a_decode_error_names_what_was_wrong() {
    // The reason carries the decoder's error, so logs say what the server sent.
    let server = demo_server().await;
    let (_addr, mut events, socket) = joined_client(&server, config(&server)).await;
    server
        .send_raw(socket, RawFrame::Binary(Bytes::from_static(&[9, 1, 2])))
        .await
        .unwrap();
    let reason = disconnected_then_recovered(&mut events).await;
    assert_eq!(
        reason,
        DisconnectReason::InvalidFrame(DecodeError::UnknownBinaryKind(9))
    );
}

#[actix_rt::test]
async fn a_server_that_stops_reading_ends_in_a_write_timeout_then_the_client_recovers() {
    let server = demo_server().await;
    // No heartbeat: only the write timeout can notice this server.
    let config = config(&server)
        .heartbeat(Duration::ZERO, Duration::ZERO)
        .write_timeout(Duration::from_millis(300))
        .push_timeout(Duration::from_secs(30))
        .send_buffer(256 * 1024 * 1024);
    let (addr, mut events, socket) = joined_client(&server, config).await;
    server
        .silence(socket, Some(actix_slipstream::testing::Silence::Stall))
        .await
        .unwrap();
    // Far more than the loopback socket buffers hold: the writes block.
    let big = "x".repeat(1024 * 1024);
    for _ in 0..64 {
        addr.do_send(Push::new("room:1", "noreply", json!({ "data": big })));
    }
    let reason = disconnected_then_recovered(&mut events).await;
    assert!(
        matches!(&reason, DisconnectReason::WriteFailed(e) if e.contains("write timeout")),
        "{reason:?}"
    );
    still_works(&addr).await;
}
