//! The seed scenario with the built-in `TopicRegistry`: topics joined on request are
//! rejoined after a reconnect with no code at all. Compare with `rejoin_by_hand.rs`.
//!
//! ```text
//! cargo run --example rejoin_builtin --features testing
//! ```

use std::time::Duration;

use actix::Actor;
use actix_slipstream::testing::TestServer;
use actix_slipstream::{Backoff, Client, Config, Join, SlipstreamActor};
use serde_json::json;

/// Every callback keeps its default.
struct Builtin;

impl SlipstreamActor for Builtin {}

#[actix_rt::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = TestServer::phoenix_demo().start().await?;
    let config = Config::new(server.url())
        .param("token", "demo")
        .reconnect_backoff(Backoff::from_millis(&[100]));
    let client = Client::new(Builtin, config).start();
    client.send(Join::new("room:1", json!({}))).await??;
    client.send(Join::new("room:2", json!({}))).await??;
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
