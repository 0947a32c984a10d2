//! `serve`: the bundled Phoenix-compatible test server (phoenix_demo) in this process.
//!
//! Prints `{"url": ..., "port": ...}` once listening, then runs until signalled:
//! SIGTERM (or SIGINT) stops it gracefully (every socket closed with 1012, like
//! Phoenix on shutdown) and exits; SIGKILL kills it; SIGSTOP/SIGCONT freeze it.

use std::time::Duration;

use actix_slipstream::testing::TestServer;
use serde_json::json;
use tokio::signal::unix::{signal, SignalKind};

use crate::util::{emit, raise_nofile_limit, Opts};

pub fn main(opts: &Opts) -> Result<(), String> {
    raise_nofile_limit();
    let port: u16 = opts.num("port", 0)?;
    let system = actix_rt::System::new();
    system.block_on(async move {
        let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
        let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
        let server = TestServer::phoenix_demo()
            .record_frames(false)
            .max_connections(50_000)
            // Benchmarks join as many topics per socket as they are asked to
            // (`rejoin --topics N`), beyond Phoenix's default cap of 100.
            .max_channels(100_000)
            .close_grace(Duration::from_secs(2))
            .port(port)
            .start()
            .await
            .map_err(|e| e.to_string())?;
        emit(&json!({"url": server.url(), "port": server.port()}));
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        server.stop().await.map_err(|e| e.to_string())?;
        Ok(())
    })
}
