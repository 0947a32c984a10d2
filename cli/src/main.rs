//! `slipstream`: a command-line Phoenix Channels client (websocat for Phoenix), built
//! on the `actix-slipstream` library, and the library's Phoenix-compatible test
//! server. See `docs/cli.md`.
//!
//! ```text
//! slipstream connect ws://127.0.0.1:4000/socket -p token=t -j room:lobby
//! slipstream serve --port 4000
//! ```

mod args;
mod ca;
mod connect;
mod output;
mod serve;

use std::future::Future;
use std::pin::Pin;

use clap::Parser;

fn main() {
    let cli = args::Cli::parse(); // exits 2 on invalid arguments
    let code = match cli.command {
        args::Command::Connect(args) => {
            init_logs(&args.log);
            connect::run(*args)
        }
        args::Command::Serve(args) => {
            init_logs(&args.log);
            serve::run(args)
        }
    };
    std::process::exit(code);
}

/// Logs at `filter` go to stderr, never stdout (which carries the events).
fn init_logs(filter: &str) {
    env_logger::Builder::new()
        .parse_filters(filter)
        .target(env_logger::Target::Stderr)
        .init();
}

/// Resolves at the first SIGINT or SIGTERM (Ctrl-C elsewhere). Must be called inside
/// the System, before the work that the signal interrupts starts.
pub(crate) fn shutdown_signal() -> std::io::Result<Pin<Box<dyn Future<Output = ()>>>> {
    #[cfg(unix)]
    {
        use actix_rt::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(Box::pin(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        }))
    }
    #[cfg(not(unix))]
    {
        Ok(Box::pin(async {
            let _ = actix_rt::signal::ctrl_c().await;
        }))
    }
}
