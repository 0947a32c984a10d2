//! `slipstream serve`: the library's Phoenix-compatible test server with its demo
//! channels, until SIGINT/SIGTERM.

use actix_slipstream::testing::TestServer;
use serde_json::Value;

use crate::args::ServeArgs;
use crate::output::Out;
use crate::shutdown_signal;

/// Runs the server; returns the exit code.
pub fn run(args: ServeArgs) -> i32 {
    let out = Out::new();
    let system = actix_rt::System::new();
    let result = system.block_on(async move {
        let signal = shutdown_signal().map_err(|e| e.to_string())?;
        let server = TestServer::phoenix_demo()
            .port(args.port)
            .start()
            .await
            .map_err(|e| e.to_string())?;
        out.emit("listening", &[("url", Value::from(server.url()))]);
        signal.await;
        server.stop().await.map_err(|e| e.to_string())?;
        out.emit("stopped", &[]);
        Ok::<(), String>(())
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("slipstream serve: {e}");
            1
        }
    }
}
