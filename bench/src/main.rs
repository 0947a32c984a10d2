//! `slipstream-bench`: end-to-end benchmarks of actix-slipstream against peers
//! (phoenix.js, raw `ws` on Node, raw tokio-tungstenite), over loopback against the
//! bundled Phoenix-compatible test server (`fast`) and a Phoenix-like server
//! (`phoenix`). See docs/performance.md.
//!
//! ```text
//! slipstream-bench serve [--mode fast|phoenix] [--port N] [--start-delay-ms N] [--stats-file PATH] [knobs]
//! slipstream-bench client --scenario S --url URL [scenario options]
//! slipstream-bench run [--runs 5] [--server fast,phoenix] [--only S,...] [--peers P,...] [--url URL] [--quick] [--out FILE]
//! slipstream-bench help [COMMAND]      (or --help, or COMMAND --help: the usage, exit 0)
//! ```
//!
//! An unknown command or option prints the usage on stderr and exits 2.

mod client;
mod driver;
mod phx;
mod serve;
mod util;

/// One subcommand: its usage lines and the options it takes (without `--`).
struct Subcommand {
    name: &'static str,
    usage: &'static str,
    options: &'static [&'static str],
}

const SERVE: Subcommand = Subcommand {
    name: "serve",
    usage: "  slipstream-bench serve [--mode fast|phoenix] [--port N] [--start-delay-ms 0] [--stats-file PATH]
      Runs the test server (fast) or the Phoenix-like server (phoenix) on 127.0.0.1
      until SIGTERM; prints its URL as a JSON line.
      phoenix knobs: [--threads 2] [--msg-work-us 30] [--push-work-us 0] [--frame-work-us 0]
                     [--write-batch] [--sndbuf BYTES] [--rcvbuf BYTES] [--read-size 131072]
",
    options: &[
        "mode",
        "port",
        "start-delay-ms",
        "stats-file",
        "threads",
        "msg-work-us",
        "push-work-us",
        "frame-work-us",
        "write-batch",
        "sndbuf",
        "rcvbuf",
        "read-size",
    ],
};

const CLIENT: Subcommand = Subcommand {
    name: "client",
    usage: "  slipstream-bench client --scenario S --url URL [scenario options]
      Runs one scenario of our client against a running server; prints its figures as JSON.
      BENCH_COALESCE_READS=0 in the environment turns the client's read coalescing off.
      echo:             [--n 10000] [--inflight 100] [--via socket|ext]
      flood:            [--count 200000] [--size 92]
      memory:           [--sockets 1000] [--topics 1] [--settle-ms 500]
      memory-slope:     [--sockets-from 100] [--sockets-to 1000] [--topics 10] [--settle-ms 500]
      scale:            [--sockets 10000] [--idle-s 30] [--settle-ms 1000]
      rejoin:           [--topics 100] [--restarts 20]        (the driver restarts the server)
      rejoin-storm:     [--sockets 1000] [--topics 10]        (the driver restarts the server)
      heartbeat:        [--interval-ms 1000] [--timeout-ms 500] [--trials 5] (the driver freezes it)
      reconnect-spread: [--clients 1000]                      (the driver kills and restarts it)
",
    options: &[
        "scenario",
        "url",
        "n",
        "inflight",
        "via",
        "count",
        "size",
        "sockets",
        "topics",
        "settle-ms",
        "sockets-from",
        "sockets-to",
        "idle-s",
        "restarts",
        "interval-ms",
        "timeout-ms",
        "trials",
        "clients",
    ],
};

const RUN: Subcommand = Subcommand {
    name: "run",
    usage: "  slipstream-bench run [--runs 5] [--server fast,phoenix] [--only echo-100,flood,...] [--quick]
      [--phoenix-knobs msg-work-us=30,threads=2,...]
      [--peers phoenixjs,rawnode,rawrust-mt,rawrust-ct] [--url URL] [--out target/bench-report.md]
      [--rawrust-bin PATH] [--node node] [--root REPO]
      Runs every scenario for our client and each peer, on each server mode, and writes
      a Markdown report. Scenarios (--only): echo-100, echo-10k, echo-100-ext, flood,
      memory-1000x1, memory-100x10, rejoin, heartbeat, reconnect-spread,
      reconnect-restart, memory-slope, scale-10k, rejoin-storm.
",
    options: &[
        "runs",
        "server",
        "only",
        "quick",
        "phoenix-knobs",
        "peers",
        "url",
        "out",
        "rawrust-bin",
        "node",
        "root",
    ],
};

const SUBCOMMANDS: [&Subcommand; 3] = [&SERVE, &CLIENT, &RUN];

const HELP_USAGE: &str = "  slipstream-bench help [COMMAND]   (or --help, or COMMAND --help)
";

/// The usage of every subcommand.
fn usage() -> String {
    let mut text = String::from("usage:\n");
    for sub in SUBCOMMANDS {
        text.push_str(sub.usage);
    }
    text.push_str(HELP_USAGE);
    text
}

/// The usage of one subcommand.
fn sub_usage(sub: &Subcommand) -> String {
    format!("usage:\n{}", sub.usage)
}

/// What the command line asks for.
#[derive(Debug)]
enum Parsed {
    /// Print this on stdout and exit 0.
    Help(String),
    /// Run this subcommand with these options.
    Run(&'static str, util::Opts),
}

/// A command line that cannot run: the message and the usage to print (exit 2).
#[derive(Debug)]
struct UsageError {
    message: String,
    usage: String,
}

fn is_help(arg: &str) -> bool {
    matches!(arg, "-h" | "--help")
}

/// Parses the command line (without the program name). Help is found before any
/// option is parsed, so `COMMAND --help` never runs `COMMAND`.
fn parse(args: &[String]) -> Result<Parsed, UsageError> {
    let error = |message: String, usage: String| UsageError { message, usage };
    let Some(cmd) = args.first() else {
        return Err(error("no command given".into(), usage()));
    };
    if is_help(cmd) {
        return Ok(Parsed::Help(usage()));
    }
    if cmd == "help" {
        return match args.get(1).map(String::as_str) {
            None => Ok(Parsed::Help(usage())),
            Some(name) => match SUBCOMMANDS.iter().find(|s| s.name == name) {
                Some(sub) => Ok(Parsed::Help(sub_usage(sub))),
                None => Err(error(format!("unknown command {name:?}"), usage())),
            },
        };
    }
    let Some(sub) = SUBCOMMANDS.iter().find(|s| s.name == cmd) else {
        return Err(error(format!("unknown command {cmd:?}"), usage()));
    };
    if args[1..].iter().any(|a| is_help(a)) {
        return Ok(Parsed::Help(sub_usage(sub)));
    }
    let opts = util::Opts::parse(&args[1..]).map_err(|e| error(e, sub_usage(sub)))?;
    let mut unknown: Vec<&str> = opts.keys().filter(|k| !sub.options.contains(k)).collect();
    unknown.sort_unstable();
    if let Some(key) = unknown.first() {
        return Err(error(
            format!("{}: unknown option --{key}", sub.name),
            sub_usage(sub),
        ));
    }
    Ok(Parsed::Run(sub.name, opts))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, opts) = match parse(&args) {
        Ok(Parsed::Help(text)) => {
            print!("{text}");
            return;
        }
        Ok(Parsed::Run(cmd, opts)) => (cmd, opts),
        Err(e) => {
            eprint!("slipstream-bench: {}\n{}", e.message, e.usage);
            std::process::exit(2);
        }
    };
    let result = match cmd {
        "serve" => serve::main(&opts),
        "client" => client::main(&opts),
        _ => driver::main(&opts),
    };
    if let Err(e) = result {
        eprintln!("slipstream-bench: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(line: &str) -> Result<Parsed, UsageError> {
        let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        parse(&args)
    }

    #[test]
    fn help_in_any_position_prints_the_usage_and_runs_nothing() {
        for (line, expected) in [
            ("--help", usage()),
            ("-h", usage()),
            ("help", usage()),
            ("help run", sub_usage(&RUN)),
            ("run --help", sub_usage(&RUN)),
            ("run --runs 1 -h", sub_usage(&RUN)),
            ("run --bogus --help", sub_usage(&RUN)),
            ("serve --help", sub_usage(&SERVE)),
            ("client --scenario echo --help", sub_usage(&CLIENT)),
        ] {
            match parse_str(line) {
                Ok(Parsed::Help(text)) => assert_eq!(text, expected, "{line}"),
                other => panic!("{line}: {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_commands_and_options_are_usage_errors() {
        for (line, message) in [
            ("", "no command given"),
            ("frobnicate", "unknown command \"frobnicate\""),
            ("help frobnicate", "unknown command \"frobnicate\""),
            ("run --bogus", "run: unknown option --bogus"),
            ("run --runs 1 --zz 2 --aa", "run: unknown option --aa"),
            // An option of another subcommand.
            ("serve --scenario echo", "serve: unknown option --scenario"),
            ("client stray", "unexpected argument \"stray\""),
        ] {
            match parse_str(line) {
                Err(e) => assert_eq!(e.message, message, "{line}"),
                Ok(other) => panic!("{line}: {other:?}"),
            }
        }
    }

    #[test]
    fn known_options_run_the_subcommand() {
        match parse_str("run --runs 1 --quick --only echo-100") {
            Ok(Parsed::Run("run", opts)) => {
                assert_eq!(opts.num("runs", 5).unwrap(), 1);
                assert!(opts.flag("quick"));
            }
            other => panic!("{other:?}"),
        }
    }

    /// The option names a source file reads with `opts.str/num/flag("name")` (and
    /// `opt_usize("name")` in phx.rs).
    fn options_read_by(source: &str) -> Vec<String> {
        let mut found = Vec::new();
        for pattern in ["opts.str(\"", "opts.num(\"", "opts.flag(\"", "opt_usize(\""] {
            for (i, _) in source.match_indices(pattern) {
                let rest = &source[i + pattern.len()..];
                if let Some(end) = rest.find('"') {
                    found.push(rest[..end].to_owned());
                }
            }
        }
        found
    }

    /// The `--name` options a usage text shows.
    fn options_shown_by(usage: &str) -> Vec<String> {
        let mut shown: Vec<String> = usage
            .match_indices("[--")
            .chain(usage.match_indices(" --"))
            .map(|(i, m)| {
                usage[i + m.len()..]
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                    .next()
                    .unwrap_or("")
                    .to_owned()
            })
            .filter(|name| !name.is_empty() && name != "help")
            .collect();
        shown.sort();
        shown.dedup();
        shown
    }

    #[test]
    fn every_option_the_code_reads_is_accepted_and_shown_in_the_usage() {
        let sources = [
            (&SERVE, include_str!("serve.rs")),
            (&SERVE, include_str!("phx.rs")),
            (&CLIENT, include_str!("client.rs")),
            (&RUN, include_str!("driver.rs")),
        ];
        for (sub, source) in sources {
            let read = options_read_by(source);
            assert!(!read.is_empty(), "{}", sub.name);
            for name in read {
                assert!(
                    sub.options.contains(&name.as_str()),
                    "{} reads --{name} but does not accept it",
                    sub.name
                );
            }
        }
        for sub in SUBCOMMANDS {
            let mut accepted: Vec<String> = sub.options.iter().map(|o| o.to_string()).collect();
            accepted.sort();
            assert_eq!(options_shown_by(sub.usage), accepted, "{}", sub.name);
        }
    }
}
