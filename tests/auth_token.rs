//! The auth token outside the URL (`Config::auth_token`, `Config::auth_token_fn`): sent
//! as phoenix.js 1.8 sends its `authToken`, in `Sec-WebSocket-Protocol: phoenix,
//! base64url.bearer.phx.<base64 without padding>`, checked against the answered
//! subprotocol, computed at every connect, and retried like any connect failure.
#![cfg(feature = "testing")]

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use actix_slipstream::testing::{ConnectRequest, TestServer};
use actix_slipstream::{ClientExt, Config, ConnectError, Disconnect, DisconnectReason};
use common::{config, demo_server, start, WAIT};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The `Sec-WebSocket-Protocol` value a token is sent in.
fn subprotocols(encoded: &str) -> String {
    format!("phoenix, base64url.bearer.phx.{encoded}")
}

#[actix_rt::test]
async fn tokens_are_encoded_like_phoenix_js_standard_base64_without_padding() {
    let server = demo_server().await;
    // phoenix.js's own vector ("1234"), then tokens whose base64 has `+` and `/`,
    // which must stay as they are despite the "base64url" prefix.
    let vectors: [(&[u8], &str); 4] = [
        (b"1234", "MTIzNA"),
        (b"?>>", "Pz4+"),
        (b"???", "Pz8/"),
        (&[0xfb, 0xff], "+/8"),
    ];
    for (token, encoded) in vectors {
        let (addr, mut events) = start(config(&server).auth_token(token));
        events.connected().await;
        let info = server.sockets().last().cloned().expect("a socket");
        assert_eq!(
            info.header("sec-websocket-protocol"),
            Some(subprotocols(encoded).as_str())
        );
        if let Ok(text) = std::str::from_utf8(token) {
            assert_eq!(
                info.auth_token.as_deref(),
                Some(text),
                "the server decodes it"
            );
        }
        addr.send(Disconnect).await.unwrap();
        assert_eq!(events.disconnected().await, DisconnectReason::Requested);
    }
}

#[actix_rt::test]
async fn without_a_token_no_subprotocol_is_asked_for() {
    let server = demo_server().await;
    let (addr, mut events) = start(config(&server).auth_token(""));
    events.connected().await;
    let info = server.sockets().last().cloned().expect("a socket");
    assert_eq!(info.header("sec-websocket-protocol"), None);
    assert_eq!(info.auth_token, None);
    addr.send(Disconnect).await.unwrap();
}

/// The head of an HTTP message (up to the blank line), read from `stream` and
/// forwarded to `to`, then everything else forwarded as it comes.
async fn forward_recording_head(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    head: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut recording = true;
    while let Ok(Ok(n)) = tokio::time::timeout(WAIT, from.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        if recording {
            let mut h = head.lock().unwrap();
            h.extend_from_slice(&buf[..n]);
            if let Some(end) = h.windows(4).position(|w| w == b"\r\n\r\n") {
                h.truncate(end);
                recording = false;
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
}

/// A TCP proxy in front of `target` that records the request and response heads of
/// its first connection.
async fn recording_proxy(target: u16) -> (u16, Arc<Mutex<Vec<u8>>>, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let request = Arc::new(Mutex::new(Vec::new()));
    let response = Arc::new(Mutex::new(Vec::new()));
    let (req, resp) = (request.clone(), response.clone());
    actix_rt::spawn(async move {
        if let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(("127.0.0.1", target)).await.unwrap();
            let (client_r, client_w) = client.into_split();
            let (server_r, server_w) = server.into_split();
            actix_rt::spawn(forward_recording_head(client_r, server_w, req));
            actix_rt::spawn(forward_recording_head(server_r, client_w, resp));
        }
    });
    (port, request, response)
}

/// Shows the handshake of a client with a token on the wire: the request (its query
/// and headers), the response, and the first frames the server got.
#[actix_rt::test]
async fn the_handshake_carries_the_token_in_the_subprotocol_header_and_not_in_the_url() {
    let server = demo_server().await;
    let (port, request, response) = recording_proxy(server.port()).await;
    let url = format!("ws://127.0.0.1:{port}/socket");
    let cfg = Config::new(url)
        .param("token", "t")
        .auth_token("my-token-1234");
    let (addr, mut events) = start(cfg);
    events.connected().await;
    addr.join("room:lobby", json!({"user": "ada"}))
        .await
        .unwrap();
    addr.push("room:lobby", "echo", json!({"hello": "world"}))
        .await
        .unwrap();
    let request = String::from_utf8(request.lock().unwrap().clone()).unwrap();
    let response = String::from_utf8(response.lock().unwrap().clone()).unwrap();
    println!("--- request ---\n{request}\n--- response ---\n{response}");
    let request_line = request.lines().next().unwrap();
    assert_eq!(
        request_line,
        "GET /socket/websocket?token=t&vsn=2.0.0 HTTP/1.1"
    );
    assert!(!request.contains("my-token-1234"));
    assert!(
        request.lines().any(|l| l.eq_ignore_ascii_case(&format!(
            "sec-websocket-protocol: {}",
            subprotocols("bXktdG9rZW4tMTIzNA")
        ))),
        "{request}"
    );
    assert!(response.starts_with("HTTP/1.1 101"), "{response}");
    assert!(
        response
            .lines()
            .any(|l| l.eq_ignore_ascii_case("sec-websocket-protocol: phoenix")),
        "{response}"
    );
    let socket = server.sockets().last().cloned().expect("a socket");
    assert_eq!(socket.auth_token.as_deref(), Some("my-token-1234"));
    let frames = server.frames(socket.id);
    println!("--- first frames received by the server ---");
    for frame in &frames {
        println!("{frame:?}");
    }
    let events_of: Vec<&str> = frames.iter().map(|m| m.event.as_str()).collect();
    assert_eq!(&events_of[..2], &["phx_join", "echo"], "{frames:?}");
    addr.send(Disconnect).await.unwrap();
}

#[actix_rt::test]
async fn the_token_closure_runs_at_every_connect_so_a_reconnect_carries_a_new_token() {
    let server = demo_server().await;
    let n = Arc::new(AtomicU32::new(0));
    let counter = n.clone();
    let cfg = config(&server)
        .auth_token_fn(move || format!("token-{}", counter.fetch_add(1, Ordering::SeqCst)));
    let (addr, mut events) = start(cfg);
    events.connected().await;
    let first = server.sockets().last().cloned().expect("a socket");
    assert_eq!(first.auth_token.as_deref(), Some("token-0"));
    server.drop_all_connections();
    events.disconnected().await;
    events.connected().await;
    let second = server.sockets().last().cloned().expect("a socket");
    assert_ne!(first.id, second.id);
    assert_eq!(second.auth_token.as_deref(), Some("token-1"));
    assert_eq!(n.load(Ordering::SeqCst), 2);
    addr.send(Disconnect).await.unwrap();
}

#[actix_rt::test]
async fn a_refused_token_is_a_403_and_the_next_connect_with_a_fresh_token_succeeds() {
    let server = TestServer::phoenix_demo()
        .accept_connect(|c: &ConnectRequest| c.auth_token() == Some("good"))
        .start()
        .await
        .unwrap();
    let n = Arc::new(AtomicU32::new(0));
    let counter = n.clone();
    let cfg = config(&server).auth_token_fn(move || {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            "stale"
        } else {
            "good"
        }
    });
    let (addr, mut events) = start(cfg);
    assert_eq!(
        events.disconnected().await,
        DisconnectReason::ConnectFailed(ConnectError::Refused(403))
    );
    events.connected().await;
    assert_eq!(server.counters().refused, 1);
    assert_eq!(
        server.sockets().last().and_then(|s| s.auth_token.clone()),
        Some("good".to_owned())
    );
    addr.send(Disconnect).await.unwrap();
}

#[actix_rt::test]
async fn a_server_that_does_not_answer_the_phoenix_subprotocol_fails_the_connect_and_it_is_retried()
{
    let server = TestServer::phoenix_demo()
        .answer_subprotocol(false)
        .start()
        .await
        .unwrap();
    let (addr, mut events) = start(config(&server).auth_token("t0k"));
    for _ in 0..2 {
        let reason = events.disconnected().await;
        assert_eq!(
            reason,
            DisconnectReason::ConnectFailed(ConnectError::Subprotocol { answered: None })
        );
        let text = reason.to_string();
        assert!(
            text.contains("phoenix") && text.contains("auth_token: true"),
            "{text}"
        );
        assert!(!text.contains("t0k"), "{text}");
    }
    assert!(server.counters().accepted >= 2, "retried");
    addr.send(Disconnect).await.unwrap();
}

#[actix_rt::test]
async fn a_panicking_token_closure_is_a_failed_connect_retried_with_backoff() {
    let server = demo_server().await;
    let n = Arc::new(AtomicU32::new(0));
    let counter = n.clone();
    let cfg = config(&server).auth_token_fn(move || {
        if counter.fetch_add(1, Ordering::SeqCst) < 2 {
            panic!("token service down");
        }
        "fresh"
    });
    let (addr, mut events) = start(cfg);
    for _ in 0..2 {
        assert_eq!(
            events.disconnected().await,
            DisconnectReason::ConnectFailed(ConnectError::AuthToken("token service down".into()))
        );
    }
    events.connected().await;
    assert_eq!(
        server.sockets().last().and_then(|s| s.auth_token.clone()),
        Some("fresh".to_owned())
    );
    assert!(addr.connected());
    addr.send(Disconnect).await.unwrap();
}

#[actix_rt::test]
async fn a_token_that_is_not_base64_is_refused_by_the_server_with_400() {
    let server = demo_server().await;
    // The header set by hand (no auth token configured), as a broken client would.
    let cfg = config(&server).header("sec-websocket-protocol", "phoenix, base64url.bearer.phx.@@");
    let (addr, mut events) = start(cfg);
    assert_eq!(
        events.disconnected().await,
        DisconnectReason::ConnectFailed(ConnectError::Refused(400))
    );
    assert_eq!(server.counters().accepted, 0);
    addr.send(Disconnect).await.unwrap();
}
