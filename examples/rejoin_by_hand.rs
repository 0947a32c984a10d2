//! The seed scenario written by hand: a client that joins topics on request keeps
//! its own topic list and rejoins each topic in `handle_connect` (what Slipstream's
//! guide asks its users to do), with the client's own rejoin turned off
//! (`Config::rejoin_on_connect(false)`). Compare with `rejoin_builtin.rs`, which needs
//! none of this code.
//!
//! ```text
//! cargo run --example rejoin_by_hand --features testing
//! cargo run --example rejoin_by_hand --features testing -- ws://host:4000/socket TOKEN
//! ```
//!
//! With a URL (or `SLIPSTREAM_URL`; see `examples/README.md`), it joins
//! `SLIPSTREAM_TOPICS` (default `room:1,room:2`) on your server and forces the
//! reconnect from the client side (`Reconnect`).

#[path = "support/target.rs"]
mod target;

use std::time::Duration;

use actix::{Actor, Handler, Message};
use actix_slipstream::testing::TestServer;
use actix_slipstream::{Backoff, Client, Reconnect, SlipstreamActor, Socket, Topic};
use serde_json::{json, Value};

/// Keeps its own list of topics and params.
struct ByHand {
    topics: Vec<(String, Value)>,
}

impl SlipstreamActor for ByHand {
    // Runs on every connect; the client's own rejoin of its registry is off (see
    // `main`), so the topics are rejoined from our own list.
    fn handle_connect(&mut self, socket: &mut Socket<'_, Self>) {
        println!(
            "connected: rejoining {} topic(s) from our own list",
            self.topics.len()
        );
        for (topic, params) in &self.topics {
            socket.join(topic.as_str(), params.clone());
        }
    }

    // A topic the server closed must leave our list, or it would be rejoined forever.
    fn handle_leave(&mut self, topic: &Topic, _socket: &mut Socket<'_, Self>) {
        self.topics.retain(|(t, _)| t != topic.as_str());
    }
}

/// "Join this topic" from the rest of the application.
#[derive(Message)]
#[rtype(result = "()")]
struct JoinTopic(String, Value);

impl Handler<JoinTopic> for Client<ByHand> {
    type Result = ();
    fn handle(&mut self, msg: JoinTopic, ctx: &mut Self::Context) {
        self.with_socket(ctx, |me, socket| {
            if !me.topics.iter().any(|(t, _)| *t == msg.0) {
                me.topics.push((msg.0.clone(), msg.1.clone()));
            }
            socket.join(msg.0, msg.1);
        });
    }
}

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
        .reconnect_backoff(Backoff::from_millis(&[100]))
        // We rejoin by hand in `handle_connect`.
        .rejoin_on_connect(false);
    let topics = target.topics(&["room:1", "room:2"]);
    let client = Client::new(ByHand { topics: Vec::new() }, config).start();
    for topic in &topics {
        client.send(JoinTopic(topic.clone(), json!({}))).await?;
    }
    let Some(server) = server else {
        target::wait_joined(&client, &topics, 1).await?;
        println!("joined {topics:?}; the client reconnects");
        client.send(Reconnect).await?;
        target::wait_joined(&client, &topics, 2).await?;
        println!("every topic is joined again on the new connection");
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
    println!("both topics are joined again on the new connection");
    server.stop().await?;
    Ok(())
}
