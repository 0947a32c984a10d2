//! Soak: after many reconnect cycles, the process's resident memory and open file
//! descriptors return to their baseline: no leaked actor, socket, timer or reply waiter.
//!
//! Each cycle ends the connection one of three ways (the server drops TCP, the server
//! closes with 1011, the client reconnects on request), waits for the reconnect and the
//! rejoin of every topic, and makes two pushes (one answered, one timing out on a channel
//! that never replies). The baseline is taken after a warm-up; the test then asserts:
//! - open file descriptors (`/proc/self/fd`) come back to the baseline exactly (after the
//!   connections being closed have closed: a bounded wait);
//! - resident memory (`VmRSS`, `/proc/self/status`) grows by at most `RSS_TOLERANCE_KIB`;
//! - the client holds no reply waiter, no buffered push, and no state-machine timer but
//!   its heartbeat's (the next tick, and the timeout of a heartbeat in flight).
//!
//! Short form (CI): `cargo test --all-features --test soak -- --nocapture` (100 cycles).
//! Long form: `SOAK_CYCLES=1000 cargo test --all-features --test soak -- --nocapture`.
//! Linux only (it reads `/proc`).
#![cfg(all(feature = "testing", target_os = "linux"))]

mod common;

use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_slipstream::testing::{Action, Channel, JoinOutcome, TestServer};
use actix_slipstream::{
    Backoff, Client, ClientExt, Config, ConnectionStatus, Push, PushError, Reconnect,
    SlipstreamActor,
};
use common::WAIT;
use serde_json::json;

const TOPICS: usize = 5;
/// Allowed growth of resident memory between the baseline and the end, in KiB. It covers
/// allocator noise and the test server's bounded histories filling up (at most 10,000
/// events and 256 past sockets), which a leak of one connection or actor per cycle
/// (tens of KiB each) would exceed long before 1,000 cycles.
const RSS_TOLERANCE_KIB: u64 = 8 * 1024;

struct Soak;
impl SlipstreamActor for Soak {}

/// The state machine's timer count (a hidden accessor for leak checks).
#[derive(Message)]
#[rtype(result = "usize")]
struct Timers;

impl Handler<Timers> for Client<Soak> {
    type Result = usize;
    fn handle(&mut self, _: Timers, ctx: &mut Context<Self>) -> usize {
        self.with_socket(ctx, |_, socket| socket.timer_count())
    }
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// Waits (bounded) until the open descriptors are at most `target`. Closing sockets has
/// no event to await, so this polls.
async fn fds_settle(target: usize, within: Duration) -> Result<Duration, usize> {
    let started = Instant::now();
    loop {
        let n = open_fds();
        if n <= target {
            return Ok(started.elapsed());
        }
        if started.elapsed() > within {
            return Err(n);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn topic(i: usize) -> String {
    format!("room:{i}")
}

async fn server() -> TestServer {
    let _ = env_logger::builder().is_test(true).try_init();
    TestServer::builder()
        .channel(
            "room:*",
            Channel::new()
                .on_join(|_| JoinOutcome::ok(json!({})))
                .on_event(|ev| match ev.event {
                    "echo" => vec![Action::reply_ok(ev.payload.clone())],
                    _ => vec![], // never answered: the push times out
                }),
        )
        // The soak measures the client: keep the server's own memory flat.
        .record_frames(false)
        .start()
        .await
        .unwrap()
}

fn config(server: &TestServer) -> Config {
    Config::new(server.url())
        .heartbeat(Duration::from_millis(100), Duration::from_millis(500))
        .reconnect_backoff(Backoff::from_millis(&[1, 5]))
        .rejoin_backoff(Backoff::from_millis(&[5]))
        .push_timeout(Duration::from_secs(5))
        .join_timeout(Duration::from_secs(5))
        .write_timeout(Duration::from_secs(10))
}

/// One reconnect cycle: end the connection, wait for all topics on a new socket, push.
async fn cycle(server: &TestServer, addr: &Addr<Client<Soak>>, i: u64) {
    // The newest socket: an older one may still be closing.
    let old = server
        .wait_for_state(WAIT, |s| {
            s.sockets()
                .filter(|s| s.channels.len() == TOPICS)
                .map(|s| s.id)
                .max()
        })
        .await
        .expect("joined before the cycle");
    match i % 3 {
        0 => {
            server.drop_connection(old);
        }
        1 => server.disconnect(old, 1011).await.unwrap(),
        _ => addr.send(Reconnect).await.unwrap(),
    }
    server
        .wait_until(WAIT, |s| {
            s.sockets()
                .any(|s| s.id > old && (0..TOPICS).all(|t| s.is_joined(&topic(t))))
        })
        .await
        .unwrap_or_else(|_| panic!("cycle {i}: not rejoined: {:#?}", server.sockets()));
    let echo = addr.push(topic(0), "echo", json!({"i": i})).await;
    // A reply, or ConnectionLost if the join reply raced the push: one outcome either way.
    assert!(
        matches!(echo, Ok(_) | Err(PushError::ConnectionLost)),
        "{echo:?}"
    );
    let silent = addr
        .send(Push::new(topic(1), "silent", json!({})).timeout(Duration::from_millis(5)))
        .await
        .unwrap();
    assert_eq!(silent, Err(PushError::Timeout));
}

/// Waits until the client is connected with every topic joined (the server saw the joins;
/// the client has processed the replies).
async fn client_settled(addr: &Addr<Client<Soak>>) -> actix_slipstream::Status {
    let deadline = Instant::now() + WAIT;
    loop {
        let status = addr.status().await.unwrap();
        let joined = status.topics.len() == TOPICS
            && status
                .topics
                .iter()
                .all(|t| t.status == actix_slipstream::TopicStatus::Joined);
        if status.connection == ConnectionStatus::Connected && joined {
            return status;
        }
        assert!(Instant::now() < deadline, "client not settled: {status:#?}");
        tokio::task::yield_now().await;
    }
}

#[actix_rt::test]
async fn memory_and_descriptors_return_to_their_baseline_after_many_reconnect_cycles() {
    let cycles: u64 = std::env::var("SOAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let warmup = 30;
    let server = server().await;
    let addr = Client::new(Soak, config(&server)).start();
    for t in 0..TOPICS {
        addr.join(topic(t), json!({})).await.unwrap();
    }
    for i in 0..warmup {
        cycle(&server, &addr, i).await;
    }
    // Baseline: one live connection (two descriptors: client and server side), once the
    // server has no other connection open (the previous ones are closed on both sides).
    client_settled(&addr).await;
    server
        .wait_until(WAIT, |s| s.open_connections() == 1)
        .await
        .unwrap();
    let base_fds = open_fds();
    let base_rss = rss_kib();
    let base_timers = addr.send(Timers).await.unwrap();

    let started = Instant::now();
    for i in warmup..warmup + cycles {
        cycle(&server, &addr, i).await;
    }
    let took = started.elapsed();
    let status = client_settled(&addr).await;
    server
        .wait_until(WAIT, |s| s.open_connections() == 1)
        .await
        .unwrap();
    let settled = fds_settle(base_fds, Duration::from_secs(5))
        .await
        .unwrap_or_else(|n| panic!("descriptors: {base_fds} at the baseline, {n} after"));
    let end_fds = open_fds();
    let end_rss = rss_kib();
    let end_timers = addr.send(Timers).await.unwrap();
    println!(
        "soak: {cycles} reconnect cycles in {took:?} (after {warmup} warm-up); \
         fds {base_fds} -> {end_fds} (settled in {settled:?}); \
         VmRSS {base_rss} KiB -> {end_rss} KiB ({:+} KiB, tolerance {RSS_TOLERANCE_KIB} KiB); \
         timers {base_timers} -> {end_timers}; pending replies {}; connects {}",
        end_rss as i64 - base_rss as i64,
        status.pending_replies,
        status.connects
    );
    assert_eq!(end_fds, base_fds);
    assert!(
        end_rss <= base_rss + RSS_TOLERANCE_KIB,
        "VmRSS grew from {base_rss} KiB to {end_rss} KiB"
    );
    assert_eq!(status.pending_replies, 0);
    assert!(status.topics.iter().all(|t| t.buffered_pushes == 0));
    // A connected client with joined topics holds its heartbeat timers only: the next
    // tick, and the timeout of a heartbeat in flight.
    assert!(
        base_timers <= 2 && end_timers <= 2,
        "timers {base_timers} -> {end_timers}"
    );
    assert!(status.connects >= cycles + warmup);
    assert!(addr.connected());
}
