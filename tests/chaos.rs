//! Chaos: several clients hold topics and push at a steady rate while the server, over
//! `CHAOS_CYCLES` cycles, does one fault at a time at random (seeded; the seed is printed
//! and `CHAOS_SEED` replays it): drops TCP, closes with 1000/1001/1011/1012, goes silent
//! (half-open: heartbeats must find it), stops or is killed then restarts on the same port,
//! crashes channels, refuses connects for a while. After most faults the test waits for full
//! recovery; after the others the next fault comes while the clients are still recovering.
//!
//! Checked afterwards:
//! - every topic each client wants is joined again (on the server and in the client);
//! - every push got exactly one outcome (a reply or an error to its caller), through the
//!   `Push` message and through `handle_reply` alike; a reply carries its own push's id;
//! - no push reached the server twice (nothing is resent), and no reply was delivered twice;
//! - on every socket, no second `phx_join` for a topic while a join for it was in flight
//!   or it was joined (checked live on the server's event stream);
//! - no client ever stopped, and none holds a reply waiter at the end.
//!
//! Short form (CI): `cargo test --all-features --test chaos` (100 cycles, about 10 s).
//! Long form: `CHAOS_CYCLES=1000 cargo test --release --all-features --test chaos -- --nocapture`.
#![cfg(feature = "testing")]

mod common;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_slipstream::testing::{
    Action, Channel, JoinOutcome, Refusal, ServerEvent, ServerState, Silence, SocketId, TestServer,
};
use actix_slipstream::{
    Backoff, Client, ClientExt, Config, ConnectionStatus, GetStatus, Join, Payload, Push,
    PushError, Ref, Reply, SlipstreamActor, Socket, Topic, TopicStatus,
};
use serde_json::json;
use tokio::sync::Notify;

const CLIENTS: usize = 3;
const TOPICS_PER_CLIENT: usize = 4;
/// The time between two pushes of one client.
const PUSH_EVERY: Duration = Duration::from_millis(20);
const PUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest recovery allowed after one fault.
const RECOVERY: Duration = Duration::from_secs(20);

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Every push's outcomes, by push id.
#[derive(Default)]
struct Outcomes {
    by_id: HashMap<u64, Vec<Result<Reply, PushError>>>,
    /// Pushes made through `socket.push`: ref -> id, per client.
    by_ref: HashMap<(usize, String), u64>,
    /// Pushes whose caller gave up waiting (a lost outcome).
    lost: Vec<u64>,
    made: u64,
}

type Shared = Arc<Mutex<Outcomes>>;

/// A client whose pushes made with `socket.push` report to `Outcomes`.
struct ChaosActor {
    client: usize,
    outcomes: Shared,
    changed: Rc<Notify>,
}

impl SlipstreamActor for ChaosActor {
    fn handle_reply(
        &mut self,
        _topic: &Topic,
        reference: &Ref,
        result: Result<Reply, PushError>,
        _socket: &mut Socket<'_, Self>,
    ) {
        let mut o = self.outcomes.lock().unwrap();
        let key = (self.client, reference.to_string());
        let id = *o
            .by_ref
            .get(&key)
            .unwrap_or_else(|| panic!("an outcome for ref {reference} nobody pushed"));
        o.by_id.entry(id).or_default().push(result);
        drop(o);
        self.changed.notify_waiters();
    }
}

/// Push through `socket.push` (outcome in `handle_reply`).
#[derive(Message)]
#[rtype(result = "Result<Ref, PushError>")]
struct CallbackPush {
    topic: String,
    id: u64,
}

impl Handler<CallbackPush> for Client<ChaosActor> {
    type Result = Result<Ref, PushError>;
    fn handle(&mut self, msg: CallbackPush, ctx: &mut Context<Self>) -> Self::Result {
        self.with_socket(ctx, |actor, socket| {
            let r = socket.push(&msg.topic, "echo", json!({ "id": msg.id }))?;
            actor
                .outcomes
                .lock()
                .unwrap()
                .by_ref
                .insert((actor.client, r.to_string()), msg.id);
            Ok(r)
        })
    }
}

fn topics(client: usize) -> Vec<String> {
    (0..TOPICS_PER_CLIENT)
        .map(|t| format!("room:c{client}-t{t}"))
        .collect()
}

/// Tracks joins per socket and topic on the server's event stream.
#[derive(Default)]
struct JoinChecker {
    seen: u64,
    state: HashMap<(SocketId, String), JoinTrack>,
    violations: Vec<String>,
    gaps: u64,
    joins: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum JoinTrack {
    InFlight,
    Joined,
}

impl JoinChecker {
    fn follow(&mut self, s: &ServerState) {
        let mut first = true;
        for r in s.events() {
            if r.seq <= self.seen {
                continue;
            }
            if first && r.seq > self.seen + 1 {
                self.gaps += r.seq - self.seen - 1;
            }
            first = false;
            self.seen = r.seq;
            match &r.event {
                ServerEvent::Frame(sock, m) if m.event == actix_slipstream::Event::Join => {
                    self.joins += 1;
                    let key = (*sock, m.topic.to_string());
                    if let Some(t) = self.state.get(&key) {
                        self.violations.push(format!(
                            "{sock}: second phx_join for {} (join_ref {:?}) while {t:?}",
                            m.topic, m.join_ref
                        ));
                    }
                    self.state.insert(key, JoinTrack::InFlight);
                }
                // The client gave up a join that got no reply (join timeout): a new one may follow.
                ServerEvent::Frame(sock, m) if m.event == actix_slipstream::Event::Leave => {
                    self.state.remove(&(*sock, m.topic.to_string()));
                }
                ServerEvent::Joined(sock, topic, _) => {
                    self.state
                        .insert((*sock, topic.to_string()), JoinTrack::Joined);
                }
                ServerEvent::JoinRefused(sock, topic) | ServerEvent::Left(sock, topic, _) => {
                    self.state.remove(&(*sock, topic.to_string()));
                }
                ServerEvent::Disconnected(sock, _) => {
                    self.state.retain(|(s, _), _| s != sock);
                }
                _ => {}
            }
        }
    }
}

/// Whether every client has a live, unsilenced socket joined to all its topics.
fn all_joined(s: &ServerState) -> bool {
    (0..CLIENTS).all(|c| {
        let id = c.to_string();
        s.sockets().any(|i| {
            i.param("client") == Some(id.as_str())
                && i.silence.is_none()
                && topics(c).iter().all(|t| i.is_joined(t))
        })
    })
}

fn socket_of(server: &TestServer, client: usize) -> Option<SocketId> {
    let id = client.to_string();
    server
        .sockets()
        .into_iter()
        .rev()
        .find(|i| i.param("client") == Some(id.as_str()) && i.silence.is_none())
        .map(|i| i.id)
}

async fn wait_recovered(
    server: &TestServer,
    clients: &[Addr<Client<ChaosActor>>],
    what: &str,
    seed: u64,
) -> Duration {
    let started = Instant::now();
    server
        .wait_until(RECOVERY, all_joined)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "not recovered after {what} within {RECOVERY:?} (seed {seed}): {:#?}",
                server.sockets()
            )
        });
    for (c, addr) in clients.iter().enumerate() {
        let deadline = Instant::now() + RECOVERY;
        loop {
            let status = addr.send(GetStatus).await.expect("the client is running");
            let joined = topics(c)
                .iter()
                .all(|t| status.topic(t).map(|t| t.status) == Some(TopicStatus::Joined));
            if status.connection == ConnectionStatus::Connected && joined {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "client {c} not recovered after {what} (seed {seed}): {status:#?}"
            );
            // The server already sees it joined: the replies are on their way.
            tokio::task::yield_now().await;
        }
    }
    started.elapsed()
}

#[actix_rt::test]
async fn clients_recover_from_random_faults_and_every_push_gets_exactly_one_outcome() {
    let _ = env_logger::builder().is_test(true).try_init();
    let seed = env_u64("CHAOS_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let cycles = env_u64("CHAOS_CYCLES").unwrap_or(100);
    println!("chaos: seed {seed} (replay with CHAOS_SEED={seed}), {cycles} cycles");
    let mut rng = fastrand::Rng::with_seed(seed);

    // The server records every push id it handles: none may arrive twice.
    let server_seen: Arc<Mutex<HashMap<u64, u32>>> = Arc::default();
    let seen = server_seen.clone();
    let server = TestServer::builder()
        .channel(
            "room:*",
            Channel::new()
                .on_join(|_| JoinOutcome::ok(json!({})))
                .on_event(move |ev| {
                    if let Some(id) = ev
                        .payload
                        .as_json()
                        .and_then(|p| p.get("id"))
                        .and_then(|v| v.as_u64())
                    {
                        *seen.lock().unwrap().entry(id).or_default() += 1;
                    }
                    vec![Action::reply_ok(ev.payload.clone())]
                }),
        )
        .close_grace(Duration::from_millis(500))
        .start()
        .await
        .unwrap();

    let outcomes: Shared = Arc::default();
    let changed = Rc::new(Notify::new());
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let config = Config::new(server.url())
            .param("client", c.to_string())
            .heartbeat(Duration::from_millis(100), Duration::from_millis(100))
            .reconnect_backoff(Backoff::from_millis(&[10, 20, 50, 100]))
            .rejoin_backoff(Backoff::from_millis(&[10, 20, 50]))
            .connect_timeout(Duration::from_millis(500))
            .join_timeout(Duration::from_secs(1))
            .push_timeout(PUSH_TIMEOUT)
            .write_timeout(Duration::from_secs(1));
        let actor = ChaosActor {
            client: c,
            outcomes: outcomes.clone(),
            changed: changed.clone(),
        };
        let addr = Client::new(actor, config).start();
        for t in topics(c) {
            addr.do_send(Join::new(t, json!({})));
        }
        clients.push(addr);
    }

    // Follow the server's events live for the duplicate-join check.
    let checker = Rc::new(RefCell::new(JoinChecker::default()));
    let stop_checking = Rc::new(Notify::new());
    let follow = {
        let (server, checker, stop) = (server.clone(), checker.clone(), stop_checking.clone());
        actix_rt::spawn(async move {
            let stopped = stop.notified();
            tokio::pin!(stopped);
            loop {
                let wait = server.wait_until(Duration::from_secs(3600), |s| {
                    checker.borrow_mut().follow(s);
                    false
                });
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = wait => {}
                }
            }
            server.state(|s| checker.borrow_mut().follow(s));
        })
    };
    wait_recovered(&server, &clients, "the first joins", seed).await;

    // Steady pushes: one per client every PUSH_EVERY, alternating `Push` and `socket.push`.
    let pushing = Rc::new(std::cell::Cell::new(true));
    let mut pushers = Vec::new();
    for (c, addr) in clients.iter().enumerate() {
        let (addr, outcomes, changed, pushing) = (
            addr.clone(),
            outcomes.clone(),
            changed.clone(),
            pushing.clone(),
        );
        pushers.push(actix_rt::spawn(async move {
            let mut n = 0u64;
            let mut tick = tokio::time::interval(PUSH_EVERY);
            while pushing.get() {
                tick.tick().await;
                n += 1;
                let id = (c as u64) << 40 | n;
                let topic = topics(c)[n as usize % TOPICS_PER_CLIENT].clone();
                outcomes.lock().unwrap().made += 1;
                if n.is_multiple_of(2) {
                    let (addr, outcomes, changed) =
                        (addr.clone(), outcomes.clone(), changed.clone());
                    actix_rt::spawn(async move {
                        let push = addr.send(Push::new(topic, "echo", json!({ "id": id })));
                        let result = tokio::time::timeout(PUSH_TIMEOUT * 3, push).await;
                        let mut o = outcomes.lock().unwrap();
                        match result {
                            Ok(Ok(r)) => o.by_id.entry(id).or_default().push(r),
                            _ => o.lost.push(id),
                        }
                        drop(o);
                        changed.notify_waiters();
                    });
                } else {
                    let result = addr.send(CallbackPush { topic, id }).await;
                    if let Ok(Err(e)) = result {
                        // Refused at once: that is its one outcome.
                        outcomes
                            .lock()
                            .unwrap()
                            .by_id
                            .entry(id)
                            .or_default()
                            .push(Err(e));
                    } else if result.is_err() {
                        outcomes.lock().unwrap().lost.push(id);
                    }
                }
            }
        }));
    }

    // The faults.
    let mut kinds: HashMap<&'static str, u64> = HashMap::new();
    let mut recoveries = Vec::new();
    let started = Instant::now();
    for cycle in 0..cycles {
        let client = rng.usize(..CLIENTS);
        let fault: &'static str = match rng.u8(..6) {
            0 => {
                if rng.bool() {
                    server.drop_all_connections();
                } else if let Some(s) = socket_of(&server, client) {
                    server.drop_connection(s);
                }
                "drop TCP"
            }
            1 => {
                let code = [1000, 1001, 1011, 1012][rng.usize(..4)];
                if let Some(s) = socket_of(&server, client) {
                    let _ = server.disconnect(s, code).await;
                }
                match code {
                    1000 => "close 1000",
                    1001 => "close 1001",
                    1011 => "close 1011",
                    _ => "close 1012",
                }
            }
            2 => {
                if let Some(s) = socket_of(&server, client) {
                    let _ = server.silence(s, Some(Silence::Ignore)).await;
                }
                "silence (half-open)"
            }
            3 => {
                if rng.bool() {
                    server.stop().await.unwrap();
                } else {
                    server.kill().await.unwrap();
                }
                let down = Duration::from_millis(rng.u64(0..150));
                tokio::time::sleep(down).await; // the schedule's clock: how long it is down
                server.restart().await.unwrap();
                "stop or kill, restart"
            }
            4 => {
                if let Some(s) = socket_of(&server, client) {
                    for t in topics(client) {
                        if rng.bool() {
                            let _ = server.crash_channel(s, t).await;
                        }
                    }
                }
                "crash channels"
            }
            _ => {
                let how =
                    [Refusal::Http(503), Refusal::TcpReset, Refusal::TcpClose][rng.usize(..3)];
                server.refuse_all(how);
                server.drop_all_connections();
                let refusing = Duration::from_millis(rng.u64(50..300));
                tokio::time::sleep(refusing).await; // the schedule's clock: how long it refuses
                server.accept_connections();
                "refuse connects for a while"
            }
        };
        *kinds.entry(fault).or_default() += 1;
        if rng.u8(..10) < 7 {
            let took = wait_recovered(&server, &clients, fault, seed).await;
            recoveries.push(took);
        } else {
            // Overlap: the next fault comes while the clients may still be recovering.
            tokio::time::sleep(Duration::from_millis(rng.u64(10..80))).await;
        }
        if cycles >= 100 && cycle % 100 == 99 {
            println!("chaos: {} cycles, {:?}", cycle + 1, started.elapsed());
        }
    }
    wait_recovered(&server, &clients, "the last fault", seed).await;
    let chaos_time = started.elapsed();

    // Stop pushing; every outstanding push resolves within its timeout.
    pushing.set(false);
    for p in pushers {
        tokio::time::timeout(Duration::from_secs(5), p)
            .await
            .expect("pushers stop")
            .unwrap();
    }
    let deadline = tokio::time::Instant::now() + PUSH_TIMEOUT * 4;
    loop {
        let notified = changed.notified();
        let done = {
            let o = outcomes.lock().unwrap();
            o.by_id.len() as u64 + o.lost.len() as u64 >= o.made
        };
        if done {
            break;
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            break;
        }
    }
    stop_checking.notify_waiters();
    tokio::time::timeout(Duration::from_secs(5), follow)
        .await
        .expect("the checker stops")
        .unwrap();

    // The clients never stopped, and hold no reply waiter.
    let mut connects = 0;
    for addr in &clients {
        assert!(addr.connected(), "a client stopped");
        let status = addr.status().await.unwrap();
        assert_eq!(status.pending_replies, 0, "{status:#?}");
        assert!(status.topics.iter().all(|t| t.buffered_pushes == 0));
        connects += status.connects;
    }

    // Every push: exactly one outcome; a reply carries its own id.
    let o = outcomes.lock().unwrap();
    assert!(o.lost.is_empty(), "pushes without an outcome: {:?}", o.lost);
    let mut replies = 0u64;
    let mut errors: HashMap<String, u64> = HashMap::new();
    for (id, results) in &o.by_id {
        assert_eq!(
            results.len(),
            1,
            "push {id} got {} outcomes: {results:?} (seed {seed})",
            results.len()
        );
        match &results[0] {
            Ok(reply) => {
                replies += 1;
                assert_eq!(reply.response, Payload::Json(json!({ "id": id })));
            }
            Err(e) => *errors.entry(format!("{e:?}")).or_default() += 1,
        }
    }
    assert_eq!(o.by_id.len() as u64, o.made, "every push has an outcome");
    // Nothing reached the server twice, and every reply was handled there.
    let seen = server_seen.lock().unwrap();
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "pushes handled twice: {twice:?} (seed {seed})"
    );
    for (id, results) in &o.by_id {
        if results[0].is_ok() {
            assert!(
                seen.contains_key(id),
                "reply to push {id} the server never handled"
            );
        }
    }
    // No duplicate phx_join on the wire.
    let checker = checker.borrow();
    assert!(
        checker.violations.is_empty(),
        "duplicate joins (seed {seed}): {:#?}",
        checker.violations
    );
    assert_eq!(checker.gaps, 0, "the checker missed server events");
    let mut kinds: Vec<_> = kinds.into_iter().collect();
    kinds.sort();
    recoveries.sort();
    let median = recoveries
        .get(recoveries.len() / 2)
        .copied()
        .unwrap_or_default();
    let max = recoveries.last().copied().unwrap_or_default();
    println!(
        "chaos: seed {seed}, {cycles} cycles in {chaos_time:?}; faults {kinds:?}; \
         {} pushes: {replies} replies, errors {errors:?}; {} phx_join checked; \
         {connects} connects; recovery median {median:?}, max {max:?}",
        o.made, checker.joins
    );
}
