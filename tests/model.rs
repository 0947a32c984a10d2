//! A model-based test of the whole client: seeded random sequences of user commands
//! and server faults, run against the bundled test server and checked against a small
//! reference model, with shrinking to a minimal failing sequence.
//!
//! Each sequence runs on a fresh client and server. The checks (see
//! `model_support/mod.rs` and docs/testing.md, "The model-based test"):
//!
//! - every join, leave and push gets exactly one answer (its response, or one
//!   `handle_reply` for a `socket.push`), and the answer agrees with what happened
//!   (a params conflict or `NotJoined` exactly when the model says so, a join answered
//!   Ok was joined on the server with its params, a pushed reply echoes what the server
//!   received, an error is explained by a leave, a stop, a crash, a lost connection or a
//!   fault that justifies a timeout);
//! - never two `phx_join` of a topic in flight on a socket, never a ref or a push
//!   written twice;
//! - `handle_leave` once per removal of a topic, `terminate` once per stop;
//! - the client stops only when asked; after healing every fault, the wanted topics, the
//!   client's registry and topics, and the server's joins on the client's socket are
//!   the same, with no request, waiter or timer left behind; when stopped or dropped it
//!   closes its connection and runs `terminate` last; a client started with
//!   `Client::spawn` (one sequence in five; the others run it plain or under
//!   `actix::Supervisor`) also ends its thread.
//!
//! Knobs: `MODEL_CASES` (default 160), `MODEL_SEED` (default 20261201), `MODEL_STEPS`
//! (default 30), `MODEL_SHRINK_ITERS` (default 400), `MODEL_SHRINK_SECS` (default 300),
//! `MODEL_VERBOSE` (print every sequence). A failure is shrunk, printed step by step,
//! and its seed saved in `model.proptest-regressions`, which later runs replay first.
#![cfg(feature = "testing")]

mod model_support;

use std::sync::Mutex;
use std::time::Instant;

use model_support::{case_strategy, run_case, Knobs, Totals};
use proptest::test_runner::{
    Config, FileFailurePersistence, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner,
};

#[test]
fn the_client_agrees_with_the_model_over_random_sequences() {
    let _ = env_logger::builder().is_test(true).try_init();
    let knobs = Knobs::from_env();
    let config = Config {
        cases: knobs.cases,
        max_shrink_iters: knobs.shrink_iters,
        // A failing sequence may take up to its wait bounds each time it is re-run.
        max_shrink_time: knobs.shrink_secs.saturating_mul(1000),
        // Each case runs for real (sockets, timers): no extra local rejects or forks.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/model.proptest-regressions"
        )))),
        source_file: Some(file!()),
        ..Config::default()
    };
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&knobs.seed.to_le_bytes());
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
    let totals = Mutex::new(Totals::default());
    let started = Instant::now();
    let result = runner.run(&case_strategy(knobs.steps), |case| {
        let outcome = run_case(&case);
        if std::env::var_os("MODEL_VERBOSE").is_some() {
            println!("{case:?}=> {outcome:?}");
        }
        let mut t = totals.lock().unwrap();
        match outcome {
            Ok(stats) => {
                t.add(&stats);
                Ok(())
            }
            Err(why) => {
                t.sequences += 1;
                t.failed += 1;
                Err(TestCaseError::fail(why))
            }
        }
    });
    let t = totals.lock().unwrap().clone();
    println!(
        "model: seed {}, {} sequences run ({} failing, shrinking included), {} steps, {} requests answered of {}, {} frames received by the server, in {:.1?}",
        knobs.seed,
        t.sequences,
        t.failed,
        t.steps,
        t.answered,
        t.requests,
        t.server_frames,
        started.elapsed()
    );
    println!("model: answers: {:?}", t.outcomes);
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, case)) => {
            panic!(
                "the model found a failing sequence (seed {}); shrunk to:\n{case:?}\nwhy: {why}",
                knobs.seed
            )
        }
        Err(TestError::Abort(why)) => panic!("the model run aborted: {why}"),
    }
}
