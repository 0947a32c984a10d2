//! The command line of `slipstream-bench`: `--help` on every subcommand prints its
//! usage and exits 0 without running anything; an unknown command or option prints
//! the usage and exits 2.

use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_slipstream-bench");

/// Runs the program with these arguments; panics (after killing it) if it has not
/// exited within `limit`.
fn run(args: &[&str], limit: Duration) -> Output {
    let child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("slipstream-bench starts");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(output) => output.expect("output read"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("slipstream-bench {args:?} still running after {limit:?}");
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The longest a command that runs nothing may take.
const QUICK: Duration = Duration::from_secs(10);

#[test]
fn run_help_prints_the_usage_and_exits_0_within_a_second_without_running() {
    // Without the fix, `run --help` started a full run: minutes, and a report file.
    let out = run(&["run", "--help"], Duration::from_secs(1));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("usage:\n  slipstream-bench run "),
        "{stdout}"
    );
    assert!(
        stdout.contains("--runs") && stdout.contains("--only"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("slipstream-bench serve"),
        "only run's usage: {stdout}"
    );
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

#[test]
fn help_of_the_program_and_of_each_subcommand_exits_0_with_its_usage() {
    let full = run(&["--help"], QUICK);
    assert_eq!(full.status.code(), Some(0));
    let full = text(&full.stdout);
    for sub in ["serve", "client", "run", "help"] {
        assert!(
            full.contains(&format!("  slipstream-bench {sub} ")),
            "{sub}: {full}"
        );
    }
    for args in [&["-h"][..], &["help"]] {
        let out = run(args, QUICK);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert_eq!(text(&out.stdout), full, "{args:?}");
    }
    for (args, first, option) in [
        (&["serve", "--help"][..], "serve", "--mode"),
        (&["serve", "--port", "0", "-h"], "serve", "--stats-file"),
        (&["client", "--help"], "client", "--scenario"),
        (
            &["client", "--scenario", "echo", "--help"],
            "client",
            "--inflight",
        ),
        (&["help", "client"], "client", "--scenario"),
        (&["help", "run"], "run", "--peers"),
    ] {
        let out = run(args, QUICK);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let stdout = text(&out.stdout);
        assert!(
            stdout.starts_with(&format!("usage:\n  slipstream-bench {first} ")),
            "{args:?}: {stdout}"
        );
        assert!(stdout.contains(option), "{args:?}: {stdout}");
        assert!(out.stderr.is_empty(), "{args:?}: {}", text(&out.stderr));
    }
}

#[test]
fn an_unknown_command_or_option_prints_the_usage_and_exits_2() {
    for (args, message, usage) in [
        (&[][..], "no command given", "slipstream-bench serve"),
        (
            &["frobnicate"],
            "unknown command \"frobnicate\"",
            "slipstream-bench run",
        ),
        (
            &["help", "frobnicate"],
            "unknown command",
            "slipstream-bench client",
        ),
        (
            &["run", "--bogus"],
            "run: unknown option --bogus",
            "slipstream-bench run",
        ),
        (
            &["run", "--runs", "1", "--qiuck"],
            "unknown option --qiuck",
            "slipstream-bench run",
        ),
        (
            &["serve", "--scenario", "echo"],
            "serve: unknown option --scenario",
            "slipstream-bench serve",
        ),
        (
            &["client", "--scenario", "echo", "--nn", "5"],
            "client: unknown option --nn",
            "slipstream-bench client",
        ),
        (
            &["client", "-n", "5"],
            "unexpected argument \"-n\"",
            "slipstream-bench client",
        ),
    ] {
        let out = run(args, QUICK);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
        let stderr = text(&out.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(
            stderr.contains("usage:\n") && stderr.contains(usage),
            "{args:?}: {stderr}"
        );
    }
}
