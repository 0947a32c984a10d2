//! `slipstream-bench`: end-to-end benchmarks of actix-slipstream against peers
//! (phoenix.js, raw `ws` on Node, raw tokio-tungstenite), over loopback against the
//! bundled Phoenix-compatible test server. See docs/performance.md.
//!
//! ```text
//! slipstream-bench serve [--port N]
//! slipstream-bench client --scenario S --url URL [scenario options]
//! slipstream-bench run [--runs 5] [--only S,...] [--peers P,...] [--url URL] [--quick] [--out FILE]
//! ```

mod client;
mod driver;
mod serve;
mod util;

const USAGE: &str = "usage:
  slipstream-bench serve [--port N]
  slipstream-bench client --scenario echo|flood|memory|rejoin|heartbeat|reconnect-spread --url URL
      echo:             [--n 10000] [--inflight 100] [--via socket|ext]
      flood:            [--count 200000] [--size 92]
      memory:           [--sockets 1000] [--topics 1] [--settle-ms 500]
      rejoin:           [--topics 100] [--restarts 20]        (the driver restarts the server)
      heartbeat:        [--interval-ms 1000] [--timeout-ms 500] [--trials 5] (the driver freezes it)
      reconnect-spread: [--clients 1000]                      (the driver kills and restarts it)
  slipstream-bench run [--runs 5] [--only echo-100,flood,...] [--quick]
      [--peers phoenixjs,rawnode,rawrust-mt,rawrust-ct] [--url URL] [--out target/bench-report.md]
      [--rawrust-bin PATH] [--node node] [--root REPO]
";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprint!("{USAGE}");
        std::process::exit(2);
    };
    let opts = match util::Opts::parse(&args[1..]) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let result = match cmd.as_str() {
        "serve" => serve::main(&opts),
        "client" => client::main(&opts),
        "run" => driver::main(&opts),
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command {other:?}\n{USAGE}")),
    };
    if let Err(e) = result {
        eprintln!("slipstream-bench: {e}");
        std::process::exit(1);
    }
}
