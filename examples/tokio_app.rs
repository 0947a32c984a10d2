//! Using the client from a plain `#[tokio::main]` program, without actix code:
//! `Client::spawn` runs the client on an actix thread of its own, and the returned
//! address is used with the awaitable `ClientExt` API and a message stream.
//!
//! ```text
//! cargo run --example tokio_app --features testing
//! ```

use std::time::Duration;

use actix_slipstream::testing::TestServer;
use actix_slipstream::{Client, ClientExt, Config, Payload, SlipstreamActor};
use futures_util::StreamExt;
use serde_json::json;

/// No callbacks needed: everything goes through the address.
struct Headless;

impl SlipstreamActor for Headless {}

fn show(payload: &Payload) -> String {
    payload
        .as_json()
        .map(ToString::to_string)
        .unwrap_or_else(|| "<binary>".into())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = TestServer::phoenix_demo().spawn_in_thread()?;
    let client = Client::spawn(Headless, Config::new(server.url()).param("token", "demo"))?;

    let mut ticks = client.subscribe("ticker:demo", 64).await?;
    let response = client
        .join("ticker:demo", json!({"interval_ms": 20}))
        .await?;
    println!("joined ticker:demo: {}", show(&response));
    client.join("room:lobby", json!({})).await?;
    let reply = client
        .push("room:lobby", "echo", json!({"from": "tokio"}))
        .await?;
    println!("echo replied {}: {}", reply.status, show(&reply.response));

    for _ in 0..3 {
        match tokio::time::timeout(Duration::from_secs(5), ticks.next()).await? {
            Some(Ok(msg)) => println!("{} {} {}", msg.topic, msg.event, show(&msg.payload)),
            Some(Err(lagged)) => println!("{lagged}"),
            None => break,
        }
    }
    let status = client.status().await?;
    println!(
        "{} topics joined, {} frames in",
        status.topics.len(),
        status.traffic.frames_in
    );
    Ok(())
}
