//! TLS: a `wss://` test server with a self-signed certificate made by rcgen. The client
//! verifies certificates always (Mozilla roots by default, or only the configured roots),
//! never falls back to plaintext, and a `ws://` URL never does TLS.
#![cfg(feature = "testing-tls")]

mod common;

use std::time::Duration;

use actix_slipstream::testing::TestServer;
use actix_slipstream::{Backoff, ClientExt, Config, ConnectError, DisconnectReason, Payload};
use common::*;
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A self-signed certificate for these names (IP addresses become IP SANs): (cert, key), DER.
fn self_signed(names: &[&str]) -> (Vec<u8>, Vec<u8>) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let certified = rcgen::generate_simple_self_signed(names).expect("certificate generated");
    (
        certified.cert.der().to_vec(),
        certified.signing_key.serialize_der(),
    )
}

async fn tls_server(names: &[&str]) -> (TestServer, Vec<u8>) {
    let _ = env_logger::builder().is_test(true).try_init();
    let (cert, key) = self_signed(names);
    let server = TestServer::phoenix_demo()
        .tls(vec![cert.clone()], key)
        .start()
        .await
        .expect("wss test server starts");
    assert!(server.url().starts_with("wss://127.0.0.1:"));
    (server, cert)
}

fn tls_error(reason: &DisconnectReason) -> Option<&str> {
    match reason {
        DisconnectReason::ConnectFailed(ConnectError::Io(e)) => Some(e.as_str()),
        _ => None,
    }
}

#[actix_rt::test]
async fn a_self_signed_server_is_rejected_by_default_with_a_tls_error() {
    let (server, _cert) = tls_server(&["127.0.0.1", "localhost"]).await;
    let config = config(&server).reconnect_backoff(Backoff::from_millis(&[50]));
    let (addr, mut events) = start(config);
    for _ in 0..2 {
        let reason = events.disconnected().await;
        let error = tls_error(&reason).unwrap_or_else(|| panic!("{reason:?}"));
        assert!(
            error.to_lowercase().contains("certificate"),
            "a certificate error: {error}"
        );
    }
    assert_eq!(server.counters().accepted, 0, "no upgrade got through");
    assert!(addr.connected());
}

#[actix_rt::test]
async fn a_self_signed_server_is_accepted_with_its_root_configured_and_topics_survive_a_drop() {
    let (server, cert) = tls_server(&["127.0.0.1", "localhost"]).await;
    let config = config(&server).tls_root_certificates(vec![cert]);
    let (addr, mut events) = start(config);
    addr.join("room:tls", json!({"secure": true}))
        .await
        .unwrap();
    let reply = addr
        .push("room:tls", "echo", json!({"over": "tls"}))
        .await
        .unwrap();
    assert_eq!(reply.response, Payload::Json(json!({"over": "tls"})));
    server.drop_all_connections();
    events.disconnected().await;
    events.connected().await;
    events.joined("room:tls").await;
    let status = addr.status().await.unwrap();
    assert_eq!(status.connects, 2);
}

/// Pushes whose frames pass 64 KiB, which the actor writes itself, reach the server
/// over TLS and come back whole. (The flush that TLS may need after such a write is
/// checked in the transport's unit tests, with a stream that holds bytes until then.)
#[actix_rt::test]
async fn pushes_over_64_kib_go_through_tls_whole() {
    let (server, cert) = tls_server(&["127.0.0.1", "localhost"]).await;
    let config = config(&server).tls_root_certificates(vec![cert]);
    let (addr, _events) = start(config);
    addr.join("room:tls", json!({})).await.unwrap();
    for size in [70 * 1024, 200 * 1024, 1024 * 1024] {
        let payload = json!({"pad": "t".repeat(size)});
        let reply = addr
            .push("room:tls", "echo", payload.clone())
            .await
            .unwrap();
        assert_eq!(reply.response, Payload::Json(payload), "{size} bytes");
    }
}

#[actix_rt::test]
async fn a_certificate_for_another_name_is_rejected_even_from_a_trusted_root() {
    let (server, cert) = tls_server(&["example.com"]).await;
    let config = config(&server)
        .tls_root_certificates(vec![cert])
        .reconnect_backoff(Backoff::from_millis(&[5_000]));
    let (_addr, mut events) = start(config);
    let reason = events.disconnected().await;
    let error = tls_error(&reason).unwrap_or_else(|| panic!("{reason:?}"));
    assert!(
        error.to_lowercase().contains("certificate"),
        "a certificate error: {error}"
    );
    assert_eq!(server.counters().accepted, 0);
}

#[actix_rt::test]
async fn a_wss_url_to_a_plain_server_fails_and_never_falls_back_to_plaintext() {
    let server = demo_server().await;
    let url = server.url().replacen("ws://", "wss://", 1);
    let config = Config::new(url)
        .param("token", "t")
        .reconnect_backoff(Backoff::from_millis(&[20]))
        .connect_timeout(Duration::from_secs(2));
    let (addr, mut events) = start(config);
    for _ in 0..3 {
        let reason = events.disconnected().await;
        // The error names the likely cause and the scheme to try.
        assert!(
            matches!(
                &reason,
                DisconnectReason::ConnectFailed(ConnectError::SchemeMismatch {
                    tls: false,
                    suggested: "ws",
                    ..
                })
            ),
            "{reason:?}"
        );
        let text = reason.to_string();
        println!("{text}");
        assert!(
            text.contains("plain HTTP") && text.contains("ws://"),
            "{text}"
        );
    }
    let counters = server.counters();
    assert!(counters.tcp_accepted >= 3, "{counters:?}");
    assert_eq!(counters.accepted, 0, "never a plaintext websocket");
    assert!(addr.connected());
}

#[actix_rt::test]
async fn a_ws_url_to_a_tls_server_fails() {
    let (server, cert) = tls_server(&["127.0.0.1"]).await;
    let url = server.url().replacen("wss://", "ws://", 1);
    let config = Config::new(url)
        .param("token", "t")
        .tls_root_certificates(vec![cert])
        .reconnect_backoff(Backoff::from_millis(&[5_000]))
        .connect_timeout(Duration::from_secs(2));
    let (_addr, mut events) = start(config);
    let reason = events.disconnected().await;
    assert!(
        matches!(
            &reason,
            DisconnectReason::ConnectFailed(ConnectError::SchemeMismatch {
                tls: true,
                suggested: "wss",
                ..
            })
        ),
        "{reason:?}"
    );
    let text = reason.to_string();
    println!("{text}");
    assert!(text.contains("TLS") && text.contains("wss://"), "{text}");
    assert_eq!(server.counters().accepted, 0);
}

/// Listens on a bare TCP port and reports the first bytes of every connection.
async fn first_bytes_listener() -> (u16, mpsc::UnboundedReceiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    actix_rt::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            actix_rt::spawn(async move {
                let mut buf = vec![0u8; 5];
                if let Ok(Ok(_)) = tokio::time::timeout(WAIT, stream.read_exact(&mut buf)).await {
                    let _ = tx.send(buf);
                }
            });
        }
    });
    (port, rx)
}

#[actix_rt::test]
async fn a_wss_url_starts_with_a_tls_handshake_and_a_ws_url_with_plain_http() {
    for (scheme, tls) in [("wss", true), ("ws", false)] {
        let (port, mut first) = first_bytes_listener().await;
        let config = Config::new(format!("{scheme}://127.0.0.1:{port}/socket"))
            .connect_timeout(Duration::from_millis(500))
            .reconnect_backoff(Backoff::from_millis(&[5_000]));
        let (_addr, _events) = start(config);
        let bytes = tokio::time::timeout(WAIT, first.recv())
            .await
            .expect("the client connects")
            .unwrap();
        if tls {
            // A TLS handshake record: content type 22, version 3.x.
            assert_eq!(&bytes[..2], &[0x16, 0x03], "{bytes:?}");
        } else {
            assert_eq!(&bytes[..4], b"GET ", "{bytes:?}");
        }
    }
}
