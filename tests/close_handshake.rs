//! The websocket close handshake: a connection the client closes is released as soon as
//! the server answers with its close frame, not at the close timeout. Alone in its file: it
//! counts the process's open descriptors (Linux `/proc`).
#![cfg(all(feature = "testing", target_os = "linux"))]

mod common;

use std::time::{Duration, Instant};

use actix_slipstream::{ClientExt, Disconnect, DisconnectReason};
use common::*;
use serde_json::json;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

#[actix_rt::test]
async fn a_client_close_releases_its_socket_once_the_server_answers() {
    let server = demo_server().await;
    let before = open_fds();
    // The handshake may wait min(write_timeout, 2 s) for the server's close frame; the
    // server answers at once, so the socket must be gone well before that.
    let config = config(&server).write_timeout(Duration::from_secs(10));
    let (addr, mut events) = start(config);
    addr.join("room:1", json!({})).await.unwrap();
    assert!(open_fds() >= before + 2, "client and server sockets");
    let asked = Instant::now();
    addr.send(Disconnect).await.unwrap();
    assert_eq!(events.disconnected().await, DisconnectReason::Requested);
    // Closing sockets has no event to await: poll, bounded.
    while open_fds() > before {
        assert!(
            asked.elapsed() < Duration::from_millis(1500),
            "{} descriptors open {:?} after the disconnect, {before} before the connect",
            open_fds(),
            asked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "close handshake: socket released {:?} after the disconnect",
        asked.elapsed()
    );
}
