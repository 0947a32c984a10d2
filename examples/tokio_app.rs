//! Using the client from a plain `#[tokio::main]` program, without actix code:
//! `Client::spawn` runs the client on an actix thread of its own, and the returned
//! address is used with the awaitable `ClientExt` API and a message stream.
//!
//! ```text
//! cargo run --example tokio_app --features testing
//! cargo run --example tokio_app --features testing -- ws://host:4000/socket TOKEN
//! ```
//!
//! With a URL (or `SLIPSTREAM_URL`; see `examples/README.md`), it joins
//! `SLIPSTREAM_TOPICS` (default `ticker:demo,room:lobby`) on your server, prints the
//! first messages of the first topic and the outcome of an `echo` push on the last.

#[path = "support/target.rs"]
mod target;

use std::time::Duration;

use actix_slipstream::testing::TestServer;
use actix_slipstream::{Client, ClientExt, Payload, SlipstreamActor};
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
    let target = target::Target::from_env();
    let server = if target.bundled() {
        Some(TestServer::phoenix_demo().spawn_in_thread()?)
    } else {
        None
    };
    let client = Client::spawn(
        Headless,
        target.config(server.as_ref().map(TestServer::url)),
    )?;
    let topics = target.topics(&["ticker:demo", "room:lobby"]);

    let mut messages = client.subscribe(topics[0].as_str(), 64).await?;
    for topic in &topics {
        // The bundled server's ticker:* topics tick every `interval_ms`.
        let response = client
            .join(topic.as_str(), json!({"interval_ms": 20}))
            .await?;
        println!("joined {topic}: {}", show(&response));
    }
    let last = &topics[topics.len() - 1];
    match client
        .push(last.as_str(), "echo", json!({"from": "tokio"}))
        .await
    {
        Ok(reply) => println!("echo replied {}: {}", reply.status, show(&reply.response)),
        Err(e) => println!("echo on {last} failed: {e}"),
    }

    for _ in 0..3 {
        match tokio::time::timeout(Duration::from_secs(5), messages.next()).await {
            Ok(Some(Ok(msg))) => println!("{} {} {}", msg.topic, msg.event, show(&msg.payload)),
            Ok(Some(Err(lagged))) => println!("{lagged}"),
            Ok(None) => break,
            Err(_) => {
                println!("no message on {} within 5 s", topics[0]);
                break;
            }
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
