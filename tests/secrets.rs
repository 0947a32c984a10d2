//! Secrets: tokens in connect params, headers, the auth token and the URL never reach the log output (at
//! any level up to debug, from this crate or its dependencies) nor `Debug` or `Display`
//! output, through connects, reconnects, refusals, timeouts, TLS and configuration errors.
//!
//! A capturing `log::Log` is installed for the whole test binary (it must be the first
//! logger, so nothing here starts `env_logger`).
#![cfg(feature = "testing")]

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use actix_slipstream::testing::{Refusal, TestServer};
use actix_slipstream::{
    Backoff, ClientExt, Config, ConnectError, Disconnect, DisconnectReason, Reconnect,
};
use common::{start, Ev, Events, WAIT};
use serde_json::json;

const PARAM_TOKEN: &str = "PARAM-TOKEN-7f3a9c";
const HEADER_TOKEN: &str = "HEADER-TOKEN-51be02";
const DYNAMIC_TOKEN: &str = "DYNAMIC-TOKEN-c0ffee";
const URL_TOKEN: &str = "URL-TOKEN-9d8e7f";
const URL_PASSWORD: &str = "URL-PASSWORD-a1b2c3";
const AUTH_TOKEN: &str = "AUTH-TOKEN-e4d5f6";
/// `AUTH_TOKEN` as sent in the `Sec-WebSocket-Protocol` header (base64, unpadded).
const AUTH_TOKEN_ENCODED: &str = "QVVUSC1UT0tFTi1lNGQ1ZjY";
const SECRETS: [&str; 7] = [
    PARAM_TOKEN,
    HEADER_TOKEN,
    DYNAMIC_TOKEN,
    URL_TOKEN,
    URL_PASSWORD,
    AUTH_TOKEN,
    AUTH_TOKEN_ENCODED,
];

struct Capture {
    lines: Mutex<Vec<String>>,
}

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Debug
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let line = format!("{} {} {}", record.level(), record.target(), record.args());
            self.lines
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(line);
        }
    }

    fn flush(&self) {}
}

fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture: &'static Capture = Box::leak(Box::new(Capture {
            lines: Mutex::new(Vec::new()),
        }));
        log::set_logger(capture).expect("the capturing logger is the first logger");
        log::set_max_level(log::LevelFilter::Debug);
        capture
    })
}

/// Asserts no secret appears in anything logged so far, and that logging was captured.
fn assert_no_secret_logged() {
    let lines = capture()
        .lines
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    assert!(
        lines.iter().any(|l| l.contains("connecting to ")),
        "the capture works: {lines:#?}"
    );
    for line in &lines {
        for secret in SECRETS {
            assert!(!line.contains(secret), "secret {secret} logged: {line}");
        }
    }
}

fn assert_no_secret_in(what: &str, shown: &str) {
    for secret in SECRETS {
        assert!(
            !shown.contains(secret),
            "secret {secret} in {what}: {shown}"
        );
    }
}

async fn server() -> TestServer {
    capture();
    TestServer::phoenix_demo()
        .start()
        .await
        .expect("test server starts")
}

fn fast(config: Config) -> Config {
    config
        .reconnect_backoff(Backoff::from_millis(&[10, 20]))
        .rejoin_backoff(Backoff::from_millis(&[10, 20]))
        .connect_timeout(Duration::from_millis(300))
        .join_timeout(Duration::from_secs(5))
        .push_timeout(Duration::from_secs(5))
}

/// Checks every disconnect reason seen so far shows no secret.
fn assert_reasons_clean(events: &Events) {
    for ev in &events.seen {
        if let Ev::Disconnected(reason) = ev {
            assert_no_secret_in("a disconnect reason", &format!("{reason} {reason:?}"));
        }
    }
}

#[actix_rt::test]
async fn tokens_in_params_and_headers_never_reach_the_logs_through_connects_and_failures() {
    let server = server().await;
    let config = fast(
        Config::new(server.url())
            .param("token", PARAM_TOKEN)
            .header("authorization", format!("Bearer {HEADER_TOKEN}")),
    );
    assert_no_secret_in("Config's Debug", &format!("{config:?}"));
    let (addr, mut events) = start(config);
    addr.join("room:1", json!({})).await.unwrap();
    let socket = server.wait_for_join("room:1", WAIT).await.unwrap();
    let info = server.socket(socket).unwrap();
    assert_eq!(info.param("token"), Some(PARAM_TOKEN), "the token was sent");
    assert_eq!(
        info.header("authorization"),
        Some(format!("Bearer {HEADER_TOKEN}").as_str())
    );
    addr.push("room:1", "echo", json!({})).await.unwrap();

    // Dropped connection, server close, HTTP refusal, TCP reset, hung upgrade (timeout).
    server.drop_all_connections();
    events.disconnected().await;
    events.joined("room:1").await;
    server.disconnect_all(1011).await;
    events.disconnected().await;
    events.joined("room:1").await;
    for refusal in [Refusal::Http(403), Refusal::TcpReset, Refusal::Hang] {
        server.refuse_next(1, refusal);
        server.drop_all_connections();
        events.disconnected().await; // the drop
        events.disconnected().await; // the refused connect
        events.joined("room:1").await;
    }
    server.accept_connections();
    addr.send(Reconnect).await.unwrap();
    events.joined("room:1").await;
    addr.send(Disconnect).await.unwrap();
    assert_eq!(events.disconnected().await, DisconnectReason::Requested);
    assert_reasons_clean(&events);
    assert_no_secret_logged();
}

#[actix_rt::test]
async fn tokens_computed_at_every_connect_never_reach_the_logs() {
    let server = server().await;
    let n = Arc::new(AtomicU32::new(0));
    let counter = n.clone();
    let config = fast(Config::new(server.url()).params_fn(move || {
        let i = counter.fetch_add(1, Ordering::SeqCst);
        vec![("token".into(), format!("{DYNAMIC_TOKEN}-{i}"))]
    }));
    let (addr, mut events) = start(config);
    for _ in 0..3 {
        events.connected().await;
        server.drop_all_connections();
        events.disconnected().await;
    }
    events.connected().await;
    assert!(n.load(Ordering::SeqCst) >= 4);
    addr.send(Disconnect).await.unwrap();
    assert_reasons_clean(&events);
    assert_no_secret_logged();
}

#[actix_rt::test]
async fn tokens_in_the_url_never_reach_the_logs_even_when_the_url_is_invalid() {
    let server = server().await;
    // A valid URL with a token in its query and a password in its user info.
    let url = server
        .url()
        .replacen("ws://", &format!("ws://user:{URL_PASSWORD}@"), 1)
        + &format!("?token={URL_TOKEN}");
    let (addr, mut events) = start(fast(Config::new(url)));
    events.connected().await;
    server.drop_all_connections();
    events.disconnected().await;
    events.connected().await;
    addr.send(Disconnect).await.unwrap();
    // An invalid URL (it sets vsn itself): a configuration error, logged at error level.
    let url = format!("{}?token={URL_TOKEN}&vsn=2.0.0", server.url());
    let config = fast(Config::new(url));
    assert_no_secret_in("Config's Debug", &format!("{config:?}"));
    let (_addr, mut bad) = start(config);
    let reason = bad.disconnected().await;
    assert!(
        matches!(reason, DisconnectReason::ConnectFailed(_)),
        "{reason:?}"
    );
    assert_reasons_clean(&bad);
    assert_reasons_clean(&events);
    assert_no_secret_logged();
}

#[cfg(feature = "rustls")]
#[actix_rt::test]
async fn tokens_never_reach_the_logs_when_tls_fails() {
    let server = server().await;
    let url = server.url().replacen("ws://", "wss://", 1);
    let config = fast(
        Config::new(url)
            .param("token", PARAM_TOKEN)
            .header("authorization", format!("Bearer {HEADER_TOKEN}")),
    );
    let (_addr, mut events) = start(config);
    for _ in 0..2 {
        events.disconnected().await;
    }
    assert_reasons_clean(&events);
    assert_no_secret_logged();
}

#[actix_rt::test]
async fn auth_tokens_never_reach_the_logs_through_connects_refusals_and_a_missing_subprotocol() {
    let server = server().await;
    let n = Arc::new(AtomicU32::new(0));
    let counter = n.clone();
    let config = fast(
        Config::new(server.url())
            .param("token", "t")
            .auth_token_fn(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                AUTH_TOKEN
            }),
    );
    assert_no_secret_in("Config's Debug", &format!("{config:?}"));
    let (addr, mut events) = start(config);
    events.connected().await;
    let socket = server.sockets().last().expect("a socket").id;
    let info = server.socket(socket).unwrap();
    assert_eq!(
        info.auth_token.as_deref(),
        Some(AUTH_TOKEN),
        "the token was sent"
    );
    for refusal in [Refusal::Http(403), Refusal::TcpReset] {
        server.refuse_next(1, refusal);
        server.drop_all_connections();
        events.disconnected().await; // the drop
        events.disconnected().await; // the refused connect
        events.connected().await;
    }
    addr.send(Disconnect).await.unwrap();
    assert!(n.load(Ordering::SeqCst) >= 4);

    // A server that ignores the token: the connect fails with `Subprotocol`.
    let ignoring = TestServer::phoenix_demo()
        .answer_subprotocol(false)
        .start()
        .await
        .expect("test server starts");
    let config = fast(
        Config::new(ignoring.url())
            .param("token", "t")
            .auth_token(AUTH_TOKEN),
    );
    let (addr, mut failing) = start(config);
    let reason = failing.disconnected().await;
    assert!(
        matches!(
            reason,
            DisconnectReason::ConnectFailed(ConnectError::Subprotocol { .. })
        ),
        "{reason:?}"
    );
    addr.send(Disconnect).await.unwrap();
    assert_reasons_clean(&failing);
    assert_reasons_clean(&events);
    assert_no_secret_logged();
}
