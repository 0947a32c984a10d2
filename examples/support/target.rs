//! Where an example connects: your own Phoenix socket, or the bundled test server.
//!
//! ```text
//! cargo run --example NAME --features testing -- [URL [TOKEN]]
//! ```
//!
//! or, from the environment (arguments win):
//! - `SLIPSTREAM_URL`: the socket URL (`ws[s]://host:port/socket`);
//! - `SLIPSTREAM_TOKEN`: sent as the connect param `token` (default `demo`);
//! - `SLIPSTREAM_AUTH_TOKEN`: sent in the `Sec-WebSocket-Protocol` header
//!   (`Config::auth_token`, for a Phoenix socket declared with `auth_token: true`);
//! - `SLIPSTREAM_TOPICS`: comma-separated topics, for the examples that join topics.
//!
//! Without a URL, the example starts the bundled Phoenix-compatible test server.
#![allow(dead_code)] // each example uses a part

use std::time::Duration;

use actix::Addr;
use actix_slipstream::{Client, Config, GetStatus, SlipstreamActor, TopicStatus};

/// The socket to connect to, and what to send.
pub struct Target {
    /// Your own socket URL; `None`: the bundled test server.
    pub url: Option<String>,
    token: String,
    auth_token: Option<String>,
    topics: Vec<String>,
}

impl Target {
    /// From the command line and the environment.
    pub fn from_env() -> Target {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mut args = std::env::args().skip(1);
        Target {
            url: args.next().or_else(|| env("SLIPSTREAM_URL")),
            token: args
                .next()
                .or_else(|| env("SLIPSTREAM_TOKEN"))
                .unwrap_or_else(|| "demo".into()),
            auth_token: env("SLIPSTREAM_AUTH_TOKEN"),
            topics: env("SLIPSTREAM_TOPICS")
                .map(|t| t.split(',').map(|s| s.trim().to_owned()).collect())
                .unwrap_or_default(),
        }
    }

    /// Whether the example runs against the bundled test server.
    pub fn bundled(&self) -> bool {
        self.url.is_none()
    }

    /// The client configuration: the target's URL (else `bundled_url`), its token as
    /// the `token` param, and its auth token if any.
    pub fn config(&self, bundled_url: Option<String>) -> Config {
        let url = self.url.clone().or(bundled_url).unwrap_or_default();
        let config = Config::new(url).param("token", self.token.as_str());
        match &self.auth_token {
            Some(token) => config.auth_token(token.as_str()),
            None => config,
        }
    }

    /// `SLIPSTREAM_TOPICS`, or these.
    pub fn topics(&self, defaults: &[&str]) -> Vec<String> {
        if self.topics.is_empty() {
            defaults.iter().map(|t| (*t).to_owned()).collect()
        } else {
            self.topics.clone()
        }
    }
}

/// Waits (at most 10 s) until the client has connected `connects` times and every
/// topic is joined, reading its status.
pub async fn wait_joined<A: SlipstreamActor>(
    client: &Addr<Client<A>>,
    topics: &[String],
    connects: u64,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = client.send(GetStatus).await.map_err(|e| e.to_string())?;
        let joined = topics.iter().all(|t| {
            status
                .topic(t)
                .is_some_and(|s| s.status == TopicStatus::Joined)
        });
        if status.connects >= connects && joined {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "topics not joined within 10 s: {:?}",
                status.topics
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
