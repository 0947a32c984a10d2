//! Using the client from a plain tokio runtime: `Client::spawn` runs it on an actix
//! thread of its own; its address works from any runtime.
#![cfg(feature = "testing")]

mod common;

use actix_slipstream::testing::TestServer;
use actix_slipstream::{Client, ClientExt, Payload, Stop};
use common::*;
use serde_json::json;
use tokio::sync::mpsc;

#[tokio::test]
async fn a_spawned_client_is_usable_from_a_plain_tokio_runtime() {
    let server = TestServer::phoenix_demo()
        .spawn_in_thread()
        .expect("test server starts");
    let (tx, rx) = mpsc::channel(10_000);
    let addr = Client::spawn(Recorder { tx }, config(&server)).expect("client thread starts");
    let mut events = Events::from_receiver(rx);
    let joined = addr.join("room:tokio", json!({"rt": "tokio"})).await;
    assert_eq!(joined, Ok(Payload::Json(json!({"rt": "tokio"}))));
    let reply = addr
        .push("room:tokio", "echo", json!({"n": 1}))
        .await
        .unwrap();
    assert_eq!(reply.response, Payload::Json(json!({"n": 1})));
    events.joined("room:tokio").await;
    addr.send(Stop).await.unwrap();
    events.disconnected().await;
}
