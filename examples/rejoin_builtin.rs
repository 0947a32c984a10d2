//! The seed scenario with the built-in `TopicRegistry`: topics joined on request are
//! rejoined after a reconnect with no code at all. Compare with `rejoin_by_hand.rs`.
//!
//! ```text
//! cargo run --example rejoin_builtin --features testing
//! cargo run --example rejoin_builtin --features testing -- ws://host:4000/socket TOKEN
//! ```
//!
//! With a URL (or `SLIPSTREAM_URL`; see `examples/README.md`), it joins
//! `SLIPSTREAM_TOPICS` (default `room:1,room:2`) on your server and forces the
//! reconnect from the client side (`Reconnect`) instead of the server dropping the
//! connection.

#[path = "support/target.rs"]
mod target;

use std::time::Duration;

use actix::Actor;
use actix_slipstream::testing::TestServer;
use actix_slipstream::{Backoff, Client, Join, Reconnect, SlipstreamActor};
use serde_json::json;

/// Every callback keeps its default.
struct Builtin;

impl SlipstreamActor for Builtin {}

#[actix_rt::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let target = target::Target::from_env();
    let server = if target.bundled() {
        Some(TestServer::phoenix_demo().start().await?)
    } else {
        None
    };
    let config = target
        .config(server.as_ref().map(TestServer::url))
        .reconnect_backoff(Backoff::from_millis(&[100]));
    let topics = target.topics(&["room:1", "room:2"]);
    let client = Client::new(Builtin, config).start();
    for topic in &topics {
        client.send(Join::new(topic.as_str(), json!({}))).await??;
    }
    let Some(server) = server else {
        println!("joined {topics:?}; the client reconnects");
        client.send(Reconnect).await?;
        target::wait_joined(&client, &topics, 2).await?;
        println!("every topic is joined again on the new connection, with no code of ours");
        return Ok(());
    };
    let wait = Duration::from_secs(10);
    let first = server
        .wait_for_state(wait, |s| {
            s.sockets().find(|i| i.channels.len() == 2).map(|i| i.id)
        })
        .await?;
    println!("joined room:1 and room:2; the server drops the connection");
    server.drop_all_connections();
    server
        .wait_for_state(wait, |s| {
            s.sockets()
                .any(|i| i.id != first && i.channels.len() == 2)
                .then_some(())
        })
        .await?;
    println!("both topics are joined again on the new connection, with no code of ours");
    server.stop().await?;
    Ok(())
}
