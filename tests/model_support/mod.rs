//! The model-based test's machinery: the operations of a sequence and their
//! generators, a client that reports its callbacks, the harness that runs one sequence
//! against the bundled test server, and the reference model it is checked against.
//!
//! A sequence mixes user commands (join, leave, push through the `Push` message or
//! `socket.push`, disconnect, reconnect, supervisor restart) with server faults (TCP
//! drops, close codes, channel crashes and stops, refused or hung connects, silence,
//! reply delays, server stops and restarts) and ends in one of three ways: heal and
//! wait for quiescence, `Stop`, or dropping every handle. User commands are not
//! awaited one by one: each request's answer is collected when it comes, so requests
//! overlap with each other and with the faults. The client is started plain, under
//! `actix::Supervisor`, or with `Client::spawn` (then its thread must end with it).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix::Supervisor;
use actix_slipstream::testing::{
    EventRecord, LeaveReason, Refusal, ServerEvent, Silence, SocketId, TestServer, EVENT_HISTORY,
};
use actix_slipstream::{
    AfterDisconnect, AfterTopicClose, Backoff, Client, ClientExt, Config, ConnectionStatus,
    Disconnect, DisconnectReason, Event, GetStatus, Join, JoinError, Leave, LeaveError, Payload,
    Push, PushError, Reconnect, Ref, Reply, SlipstreamActor, Socket, Status, Stop, Subscription,
    Topic, TopicCloseReason, TopicStatus,
};
use futures_util::StreamExt as _;
use proptest::prelude::*;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// Topics a sequence uses: `room:0` .. `room:2`.
pub const TOPICS: usize = 3;
/// The join, push and leave timeouts of the client under test.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// The same timeouts in a sequence with short timeouts, where they run out under
/// ordinary delays (join retries, push and leave timeouts get exercised).
pub const SHORT_REQUEST_TIMEOUT: Duration = Duration::from_millis(150);
/// How long one sequence may take in all before it counts as hung.
pub const CASE_LIMIT: Duration = Duration::from_secs(60);
/// The longest any single wait of the harness may take.
const WAIT: Duration = Duration::from_secs(10);
/// The padding of a big push: its frame passes the 64 KiB from which the actor writes
/// a burst itself.
const BIG_PUSH: usize = 70 * 1024;
/// Bound of the callback channel (a sequence records far fewer events).
const EVENTS_CAP: usize = 100_000;

// ----- the operations -----

/// How a push is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The `Push` message: the outcome is its response.
    Message,
    /// `socket.push` inside the actor: the outcome comes to `handle_reply`.
    Socket,
}

/// How the server refuses the next connects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refuse {
    Http403,
    TcpClose,
    TcpReset,
    Hang,
}

/// One step of a sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `Join` of `room:{topic}` with params `{"v": params}`.
    Join { topic: u8, params: u8 },
    /// `Leave` of `room:{topic}`.
    Leave { topic: u8 },
    /// A push of `echo` (or of `sleep` 30 ms when `slow`) with a unique id; every
    /// third push of a sequence carries [`BIG_PUSH`] bytes more.
    Push { topic: u8, via: Via, slow: bool },
    /// The `Disconnect` message.
    Disconnect,
    /// The `Reconnect` message.
    Reconnect,
    /// `Stop` to a supervised client: a supervisor restart (nothing when not supervised).
    Restart,
    /// Let time pass.
    Wait(u16),
    /// `ClientExt::subscribe` to `room:{topic}` (the subscription is held to the end).
    Subscribe { topic: u8 },
    /// The server broadcasts an event on `room:{topic}`.
    Broadcast { topic: u8 },
    /// The server drops the client's TCP connection.
    DropConnection,
    /// The server closes the client's socket with this code.
    Close(u16),
    /// The server crashes a channel (`phx_error`).
    Crash { topic: u8 },
    /// The server stops a channel (`phx_close`).
    StopChannel { topic: u8 },
    /// The server refuses the next `n` connects.
    Refuse { n: u8, how: Refuse },
    /// The server goes silent on the client's socket.
    Silence(bool),
    /// The server answers again on silenced sockets.
    Unsilence,
    /// Every reply from now on is delayed this many ms (0: off).
    ReplyDelay(u16),
    /// The server stops (gracefully: close 1012; else killed).
    ServerDown { graceful: bool },
    /// The server listens again on the same port.
    ServerUp,
}

impl Op {
    fn is_user(&self) -> bool {
        matches!(
            self,
            Op::Join { .. }
                | Op::Leave { .. }
                | Op::Push { .. }
                | Op::Wait(_)
                | Op::Subscribe { .. }
                | Op::Broadcast { .. }
        )
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Join { topic, params } => write!(f, "join room:{topic} {{\"v\":{params}}}"),
            Op::Leave { topic } => write!(f, "leave room:{topic}"),
            Op::Push { topic, via, slow } => write!(
                f,
                "push {} room:{topic} via {}",
                if *slow { "sleep" } else { "echo" },
                match via {
                    Via::Message => "Push message",
                    Via::Socket => "socket.push",
                }
            ),
            Op::Disconnect => write!(f, "Disconnect"),
            Op::Reconnect => write!(f, "Reconnect"),
            Op::Restart => write!(f, "supervisor restart (Stop)"),
            Op::Wait(ms) => write!(f, "wait {ms} ms"),
            Op::Subscribe { topic } => write!(f, "subscribe to room:{topic}"),
            Op::Broadcast { topic } => write!(f, "server: broadcast on room:{topic}"),
            Op::DropConnection => write!(f, "server: drop the TCP connection"),
            Op::Close(code) => write!(f, "server: close with {code}"),
            Op::Crash { topic } => write!(f, "server: crash room:{topic} (phx_error)"),
            Op::StopChannel { topic } => write!(f, "server: stop room:{topic} (phx_close)"),
            Op::Refuse { n, how } => write!(f, "server: refuse the next {n} connects ({how:?})"),
            Op::Silence(stall) => write!(
                f,
                "server: silence the socket ({})",
                if *stall { "Stall" } else { "Ignore" }
            ),
            Op::Unsilence => write!(f, "server: unsilence"),
            Op::ReplyDelay(ms) => write!(f, "server: reply delay {ms} ms"),
            Op::ServerDown { graceful: true } => write!(f, "server: stop (1012)"),
            Op::ServerDown { graceful: false } => write!(f, "server: kill"),
            Op::ServerUp => write!(f, "server: restart on the same port"),
        }
    }
}

/// How a sequence ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Heal every fault, wait until settled, check, then drop the handle.
    Quiesce,
    /// `Stop` (a supervised client is dropped instead, as `Stop` restarts it).
    Stop,
    /// Drop every handle.
    DropHandles,
}

/// How a sequence starts its client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// `Client::new(..).start()`, on the sequence's own actix System.
    Plain,
    /// Under `actix::Supervisor`, on the sequence's own actix System.
    Supervised,
    /// `Client::spawn`: on a thread of its own with its own System, which must end
    /// once the client stops.
    Spawned,
}

/// One generated sequence.
#[derive(Clone, PartialEq, Eq)]
pub struct Case {
    /// How the client is started.
    pub start: Start,
    /// Whether the join, push and leave timeouts are short ([`SHORT_REQUEST_TIMEOUT`]).
    pub short_timeouts: bool,
    /// The steps.
    pub ops: Vec<Op>,
    /// The end.
    pub ending: Ending,
}

impl Case {
    /// Whether the client runs under `actix::Supervisor`.
    pub fn supervised(&self) -> bool {
        self.start == Start::Supervised
    }

    /// The join, push and leave timeout of the client.
    pub fn request_timeout(&self) -> Duration {
        if self.short_timeouts {
            SHORT_REQUEST_TIMEOUT
        } else {
            REQUEST_TIMEOUT
        }
    }
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Case ({} client{}, {} steps, ending {:?}):",
            match self.start {
                Start::Plain => "plain",
                Start::Supervised => "supervised",
                Start::Spawned => "spawned",
            },
            if self.short_timeouts {
                ", short timeouts"
            } else {
                ""
            },
            self.ops.len(),
            self.ending
        )?;
        for (i, op) in self.ops.iter().enumerate() {
            writeln!(f, "  {i:>2}. {op}")?;
        }
        Ok(())
    }
}

fn topic_index() -> impl Strategy<Value = u8> {
    0..TOPICS as u8
}

/// The generator of one operation: user commands weigh more than faults.
pub fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (topic_index(), 0..2u8).prop_map(|(topic, params)| Op::Join { topic, params }),
        6 => topic_index().prop_map(|topic| Op::Leave { topic }),
        8 => (topic_index(), prop_oneof![Just(Via::Message), Just(Via::Socket)], prop::bool::weighted(0.25))
            .prop_map(|(topic, via, slow)| Op::Push { topic, via, slow }),
        1 => Just(Op::Disconnect),
        2 => Just(Op::Reconnect),
        1 => Just(Op::Restart),
        6 => (0..40u16).prop_map(Op::Wait),
        1 => topic_index().prop_map(|topic| Op::Subscribe { topic }),
        1 => topic_index().prop_map(|topic| Op::Broadcast { topic }),
        2 => Just(Op::DropConnection),
        2 => prop_oneof![Just(1000u16), Just(1001), Just(1011), Just(1012)].prop_map(Op::Close),
        2 => topic_index().prop_map(|topic| Op::Crash { topic }),
        2 => topic_index().prop_map(|topic| Op::StopChannel { topic }),
        1 => (1..3u8, prop_oneof![Just(Refuse::Http403), Just(Refuse::TcpClose), Just(Refuse::TcpReset), Just(Refuse::Hang)])
            .prop_map(|(n, how)| Op::Refuse { n, how }),
        1 => any::<bool>().prop_map(Op::Silence),
        1 => Just(Op::Unsilence),
        2 => prop_oneof![Just(0u16), 20..600u16].prop_map(Op::ReplyDelay),
        1 => any::<bool>().prop_map(|graceful| Op::ServerDown { graceful }),
        1 => Just(Op::ServerUp),
    ]
}

/// The generator of a sequence of 1 to `max_steps` steps.
///
/// The start is 30% supervised, 21% spawned (30% of the rest), 49% plain. Whether an
/// unsupervised client is spawned is drawn last, so a saved seed still gives the same
/// steps and ending as before spawned clients were drawn.
pub fn case_strategy(max_steps: usize) -> impl Strategy<Value = Case> {
    (
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.2),
        prop::collection::vec(op_strategy(), 1..=max_steps.max(1)),
        prop_oneof![
            6 => Just(Ending::Quiesce),
            1 => Just(Ending::Stop),
            1 => Just(Ending::DropHandles),
        ],
        prop::bool::weighted(0.3),
    )
        .prop_map(|(supervised, short_timeouts, ops, ending, spawned)| Case {
            start: match (supervised, spawned) {
                (true, _) => Start::Supervised,
                (false, true) => Start::Spawned,
                (false, false) => Start::Plain,
            },
            short_timeouts,
            ops,
            ending,
        })
}

// ----- the client under test -----

/// One callback of the client.
#[derive(Debug, Clone, PartialEq)]
pub enum Ev {
    Connected,
    Disconnected(DisconnectReason),
    Joined(String, Payload),
    TopicClosed(String, TopicCloseReason),
    Left(String),
    Reply(String, String, Result<Reply, PushError>),
    Terminated,
}

/// A client that reports every callback and otherwise does what the defaults do.
pub struct ModelClient {
    tx: mpsc::Sender<Ev>,
}

impl ModelClient {
    fn record(&self, ev: Ev) {
        // A full channel cannot happen (a sequence records far fewer events); a closed
        // one only after the harness is done.
        let _ = self.tx.try_send(ev);
    }
}

impl SlipstreamActor for ModelClient {
    fn handle_connect(&mut self, _: &mut Socket<'_, Self>) {
        self.record(Ev::Connected);
    }

    fn handle_disconnect(
        &mut self,
        reason: &DisconnectReason,
        default: AfterDisconnect,
        _: &mut Socket<'_, Self>,
    ) -> AfterDisconnect {
        self.record(Ev::Disconnected(reason.clone()));
        default
    }

    fn handle_join(&mut self, topic: &Topic, response: &Payload, _: &mut Socket<'_, Self>) {
        self.record(Ev::Joined(topic.to_string(), response.clone()));
    }

    fn handle_reply(
        &mut self,
        topic: &Topic,
        reference: &Ref,
        result: Result<Reply, PushError>,
        _: &mut Socket<'_, Self>,
    ) {
        self.record(Ev::Reply(topic.to_string(), reference.to_string(), result));
    }

    fn handle_leave(&mut self, topic: &Topic, _: &mut Socket<'_, Self>) {
        self.record(Ev::Left(topic.to_string()));
    }

    fn handle_topic_close(
        &mut self,
        topic: &Topic,
        reason: &TopicCloseReason,
        default: AfterTopicClose,
        _: &mut Socket<'_, Self>,
    ) -> AfterTopicClose {
        self.record(Ev::TopicClosed(topic.to_string(), reason.clone()));
        default
    }

    fn terminate(&mut self) {
        self.record(Ev::Terminated);
    }
}

/// `socket.push` from inside the actor.
#[derive(Message)]
#[rtype(result = "Result<Ref, PushError>")]
pub struct SocketPush {
    topic: String,
    event: &'static str,
    payload: Value,
}

impl Handler<SocketPush> for Client<ModelClient> {
    type Result = Result<Ref, PushError>;
    fn handle(&mut self, msg: SocketPush, ctx: &mut Context<Self>) -> Self::Result {
        self.with_socket(ctx, |_, socket| {
            socket.push(&msg.topic, msg.event, msg.payload)
        })
    }
}

/// What the harness reads from inside the client.
#[derive(Debug)]
pub struct Probe {
    status: Status,
    registry: Vec<(Topic, Value)>,
    timers: usize,
    open_requests: usize,
    waiters: usize,
}

#[derive(Message)]
#[rtype(result = "Probe")]
pub struct GetProbe;

/// The client's registry is exactly the wanted topics with their params.
fn registry_is_wanted(probe: &Probe, wanted: &BTreeMap<String, Value>) -> Result<(), String> {
    let registry: BTreeMap<String, Value> = probe
        .registry
        .iter()
        .map(|(t, v)| (t.to_string(), v.clone()))
        .collect();
    if &registry != wanted {
        return Err(format!(
            "the registry {registry:?} is not the wanted topics {wanted:?}"
        ));
    }
    Ok(())
}

impl Handler<GetProbe> for Client<ModelClient> {
    type Result = MessageResult<GetProbe>;
    fn handle(&mut self, _: GetProbe, ctx: &mut Context<Self>) -> Self::Result {
        let waiters = self.open_waiters();
        MessageResult(self.with_socket(ctx, |_, socket| {
            let mut registry = socket.registry().topics();
            registry.sort_by(|a, b| a.0.cmp(&b.0));
            Probe {
                status: socket.status(),
                registry,
                timers: socket.timer_count(),
                open_requests: socket.open_requests(),
                waiters,
            }
        }))
    }
}

// ----- the harness and the reference model -----

/// The figures of one sequence.
#[derive(Debug, Default, Clone)]
pub struct CaseStats {
    /// Answers by kind and outcome (`join ok`, `push err ConnectionLost`...).
    pub outcomes: BTreeMap<String, u64>,
    pub steps: usize,
    pub requests: usize,
    pub answered: usize,
    pub server_frames: usize,
}

/// Runs one sequence on a thread of its own (with its own actix System); `Err` says
/// what the model found wrong.
pub fn run_case(case: &Case) -> Result<CaseStats, String> {
    let case = case.clone();
    let handle = std::thread::Builder::new()
        .name("model-case".into())
        .spawn(move || {
            let system = actix_rt::System::new();
            system.block_on(async move {
                match tokio::time::timeout(CASE_LIMIT, run(case)).await {
                    Ok(r) => r,
                    Err(_) => Err(format!("the sequence did not end within {CASE_LIMIT:?}")),
                }
            })
        })
        .map_err(|e| format!("cannot start the case thread: {e}"))?;
    handle.join().map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "?".into());
        format!("the harness panicked: {msg}")
    })?
}

fn topic_name(t: u8) -> String {
    format!("room:{t}")
}

fn params_json(p: u8) -> Value {
    json!({ "v": p })
}

/// The client's settings: short backoffs, a heartbeat that notices silence quickly.
pub fn client_config(server: &TestServer, timeout: Duration) -> Config {
    Config::new(server.url())
        .param("token", "model")
        .reconnect_backoff(Backoff::from_millis(&[5, 10, 20]))
        .rejoin_backoff(Backoff::from_millis(&[5, 10, 20]))
        .heartbeat(Duration::from_millis(250), Duration::from_millis(250))
        .connect_timeout(Duration::from_millis(500))
        .push_timeout(timeout)
        .join_timeout(timeout)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Join { topic: u8, params: u8 },
    Leave { topic: u8 },
    Push { topic: u8, id: u64, via: Via },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The model says the answer is decided at once: a params conflict.
    Conflict,
    /// The model says the topic is not wanted: the push is refused at once.
    NotJoined,
    /// Anything the later events justify.
    Open,
}

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Join(Result<Payload, JoinError>),
    Leave(Result<(), LeaveError>),
    Push(Result<Reply, PushError>),
}

#[derive(Debug)]
struct Request {
    kind: Kind,
    step: usize,
    seq_sent: u64,
    /// How many callbacks had been taken in when it was sent.
    seen_at_send: usize,
    sent_at: Instant,
    expect: Expect,
    /// For a join: the server event sequence number when the topic became wanted. For
    /// a leave: when it stopped being wanted (the leaves of one such episode share the
    /// leave in flight).
    wanted_since: u64,
    answer: Option<(usize, Outcome, Instant)>,
}

#[derive(Debug, Default, Clone)]
struct TopicModel {
    /// The params the topic is wanted with, if it is.
    wanted: Option<u8>,
    /// Server event sequence number when it became wanted.
    wanted_since: u64,
    /// Whether it became wanted while a leave of it may have been in flight.
    after_leave: bool,
    /// Server event sequence number when it stopped being wanted.
    unwanted_since: u64,
    /// Bounds on the `handle_leave` calls of this topic.
    leave_min: usize,
    leave_max: usize,
    /// Steps of the user's leaves and of the server's closes that removed it.
    removals: Vec<usize>,
    /// `handle_leave` calls seen.
    left_seen: usize,
}

struct Answer {
    id: usize,
    outcome: Outcome,
    at: Instant,
}

struct Harness {
    case: Case,
    server: TestServer,
    addr: Option<Addr<Client<ModelClient>>>,
    events: mpsc::Receiver<Ev>,
    events_closed: bool,
    seen: Vec<(usize, Ev)>,
    answers_tx: mpsc::Sender<Answer>,
    answers: mpsc::Receiver<Answer>,
    requests: Vec<Request>,
    /// socket.push refs waiting for `handle_reply`, to their request.
    socket_refs: HashMap<String, usize>,
    model: Vec<TopicModel>,
    step: usize,
    next_push_id: u64,
    /// Steps after which a timeout is a fair answer (faults that slow things down).
    slow_steps: Vec<usize>,
    /// Steps of supervisor restarts.
    restarts: Vec<usize>,
    /// Whether the sequence ended with a stop or a drop.
    terminal: Option<usize>,
    user_disconnected: bool,
    server_up: bool,
    silenced: BTreeSet<SocketId>,
    terminated: usize,
    stopped_disconnects: usize,
    /// Subscriptions taken, held until the client is gone (then each must end).
    subscriptions: Vec<Subscription>,
    /// The thread of a spawned client (where threads can be listed).
    spawned: Option<ClientThread>,
}

/// The name `Client::spawn` gives its thread.
const CLIENT_THREAD: &str = "actix-slipstream";
/// How long a spawned client's thread may take to end once the client has stopped.
const THREAD_END: Duration = Duration::from_secs(5);

/// The thread of a spawned client, and how many threads had its name before.
#[derive(Debug, Clone, Copy)]
struct ClientThread {
    tid: u64,
    before: usize,
}

/// The ids of this process's threads named like a spawned client's, from
/// `/proc/self/task` (`None` off Linux, where the thread check is skipped).
///
/// Sequences run one after another (proptest runs cases in turn, and `run_case` joins
/// each sequence's thread), and the model's test binary holds a single test, so the
/// only such threads are those of this sequence's client and of earlier ones that
/// have not ended.
fn client_threads() -> Result<Option<BTreeSet<u64>>, String> {
    if !cfg!(target_os = "linux") {
        return Ok(None);
    }
    // Linux keeps the first 15 bytes of a thread's name.
    let name = &CLIENT_THREAD[..CLIENT_THREAD.len().min(15)];
    let dir = std::fs::read_dir("/proc/self/task")
        .map_err(|e| format!("cannot list the threads in /proc/self/task: {e}"))?;
    let mut tids = BTreeSet::new();
    for entry in dir.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        // A thread may end between the listing and the read: then it is not counted.
        if let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) {
            if comm.trim_end_matches('\n') == name {
                tids.insert(tid);
            }
        }
    }
    Ok(Some(tids))
}

async fn run(case: Case) -> Result<CaseStats, String> {
    let server = TestServer::phoenix_demo()
        .close_grace(Duration::from_millis(200))
        .start()
        .await
        .map_err(|e| format!("test server: {e}"))?;
    let (tx, events) = mpsc::channel(EVENTS_CAP);
    let config = client_config(&server, case.request_timeout());
    let (addr, spawned) = match case.start {
        Start::Plain => (Client::new(ModelClient { tx }, config).start(), None),
        Start::Supervised => (
            Supervisor::start(move |_| Client::new(ModelClient { tx }, config)),
            None,
        ),
        Start::Spawned => {
            let before = client_threads()?;
            let addr = Client::spawn(ModelClient { tx }, config)
                .map_err(|e| format!("Client::spawn: {e}"))?;
            let thread = match (before, client_threads()?) {
                (Some(before), Some(after)) => {
                    let new: Vec<u64> = after.difference(&before).copied().collect();
                    if new.len() != 1 {
                        return Err(format!(
                            "Client::spawn started {} threads named {CLIENT_THREAD:?} (tids {new:?}), not one",
                            new.len()
                        ));
                    }
                    Some(ClientThread {
                        tid: new[0],
                        before: before.len(),
                    })
                }
                _ => None,
            };
            (addr, thread)
        }
    };
    let (answers_tx, answers) = mpsc::channel(10_000);
    let mut h = Harness {
        case: case.clone(),
        server,
        addr: Some(addr),
        events,
        events_closed: false,
        seen: Vec::new(),
        answers_tx,
        answers,
        requests: Vec::new(),
        socket_refs: HashMap::new(),
        model: vec![TopicModel::default(); TOPICS],
        step: 0,
        next_push_id: 1,
        slow_steps: Vec::new(),
        restarts: Vec::new(),
        terminal: None,
        user_disconnected: false,
        server_up: true,
        silenced: BTreeSet::new(),
        terminated: 0,
        stopped_disconnects: 0,
        subscriptions: Vec::new(),
        spawned,
    };
    let result = h.run().await;
    result.map_err(|e| {
        let mut msg = format!("{e}\n  callbacks seen (step, event):\n");
        for (step, ev) in h.seen.iter().rev().take(40).rev() {
            msg.push_str(&format!("    {step:>2}: {ev:?}\n"));
        }
        msg
    })
}

impl Harness {
    fn addr(&self) -> &Addr<Client<ModelClient>> {
        self.addr
            .as_ref()
            .expect("the handle is kept until the end")
    }

    async fn run(&mut self) -> Result<CaseStats, String> {
        let ops = self.case.ops.clone();
        for (i, op) in ops.iter().enumerate() {
            self.step = i;
            self.drain_now()?;
            self.apply(op)
                .await
                .map_err(|e| format!("step {i} ({op}): {e}"))?;
            self.drain_now()
                .map_err(|e| format!("after step {i} ({op}): {e}"))?;
            self.check_step()
                .await
                .map_err(|e| format!("after step {i} ({op}): {e}"))?;
        }
        self.step = ops.len();
        match self.case.ending {
            Ending::Quiesce => {
                self.heal().await?;
                self.settle().await?;
                self.finish(false).await?;
            }
            Ending::Stop => self.finish(!self.case.supervised()).await?,
            Ending::DropHandles => self.finish(false).await?,
        }
        let events = self.server.events();
        self.check_history(&events)?;
        self.check_answers(&events)?;
        self.check_leaves()?;
        let mut outcomes = BTreeMap::new();
        for r in &self.requests {
            if let Some((_, o, _)) = &r.answer {
                *outcomes.entry(outcome_label(o)).or_default() += 1;
            }
        }
        Ok(CaseStats {
            outcomes,
            steps: ops.len(),
            requests: self.requests.len(),
            answered: self.requests.iter().filter(|r| r.answer.is_some()).count(),
            server_frames: events
                .iter()
                .filter(|r| matches!(r.event, ServerEvent::Frame(..)))
                .count(),
        })
    }

    // ----- requests and answers -----

    fn new_request(&mut self, kind: Kind, expect: Expect, wanted_since: u64) -> usize {
        self.requests.push(Request {
            kind,
            step: self.step,
            seq_sent: self.server.last_seq(),
            seen_at_send: self.seen.len(),
            sent_at: Instant::now(),
            expect,
            wanted_since,
            answer: None,
        });
        self.requests.len() - 1
    }

    fn spawn_answer<F>(&self, id: usize, fut: F)
    where
        F: std::future::Future<Output = Outcome> + 'static,
    {
        let tx = self.answers_tx.clone();
        actix_rt::spawn(async move {
            let outcome = fut.await;
            let _ = tx
                .send(Answer {
                    id,
                    outcome,
                    at: Instant::now(),
                })
                .await;
        });
    }

    fn record_answer(&mut self, id: usize, outcome: Outcome, at: Instant) -> Result<(), String> {
        let step = self.step;
        let req = &mut self.requests[id];
        if let Some((_, first, _)) = &req.answer {
            return Err(format!(
                "request {id} ({:?}) answered twice: {first:?}, then {outcome:?}",
                req.kind
            ));
        }
        // Answers decided at once are checked at once.
        match (&req.expect, &outcome) {
            (Expect::Conflict, Outcome::Join(Err(JoinError::ParamsConflict))) => {}
            (Expect::Conflict, o) => {
                return Err(format!(
                    "request {id} ({:?}, sent at step {}): the topic was wanted with other params, so a ParamsConflict was due; got {o:?}",
                    req.kind, req.step
                ))
            }
            (Expect::NotJoined, Outcome::Push(Err(PushError::NotJoined))) => {}
            (Expect::NotJoined, o) => {
                return Err(format!(
                    "request {id} ({:?}, sent at step {}): the topic was not wanted, so NotJoined was due; got {o:?}",
                    req.kind, req.step
                ))
            }
            (Expect::Open, _) => {}
        }
        req.answer = Some((step, outcome, at));
        Ok(())
    }

    fn on_event(&mut self, ev: Ev) -> Result<(), String> {
        self.seen.push((self.step, ev.clone()));
        let asked = self.restarts.len() + usize::from(self.terminal.is_some());
        match ev {
            Ev::Terminated => {
                self.terminated += 1;
                if self.terminated > asked {
                    return Err(format!(
                        "terminate ran {} times, but only {asked} stop(s) were asked for",
                        self.terminated
                    ));
                }
            }
            Ev::Disconnected(DisconnectReason::Stopped) => {
                self.stopped_disconnects += 1;
                if self.stopped_disconnects > asked {
                    return Err("handle_disconnect(Stopped) without a stop".into());
                }
            }
            Ev::Reply(topic, reference, result) => match self.socket_refs.remove(&reference) {
                Some(id) => {
                    let Kind::Push { topic: t, .. } = self.requests[id].kind else {
                        unreachable!()
                    };
                    if topic != topic_name(t) {
                        return Err(format!(
                            "handle_reply for ref {reference} names {topic}, the push was on {}",
                            topic_name(t)
                        ));
                    }
                    self.record_answer(id, Outcome::Push(result), Instant::now())?;
                }
                None => {
                    return Err(format!(
                    "handle_reply on {topic} for ref {reference}, which has no socket.push waiting (a second outcome?): {result:?}"
                ))
                }
            },
            Ev::Left(topic) => {
                if let Some(t) = (0..TOPICS).find(|t| topic_name(*t as u8) == topic) {
                    self.model[t].left_seen += 1;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Takes in every callback and answer that is already there.
    fn drain_now(&mut self) -> Result<(), String> {
        loop {
            match self.events.try_recv() {
                Ok(ev) => self.on_event(ev)?,
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    self.events_closed = true;
                    if self.terminal.is_none() {
                        return Err("the client stopped by itself".into());
                    }
                    break;
                }
            }
        }
        while let Ok(a) = self.answers.try_recv() {
            self.record_answer(a.id, a.outcome, a.at)?;
        }
        Ok(())
    }

    /// Waits (at most `d`) for one callback or answer, and takes it in.
    async fn pump(&mut self, d: Duration) -> Result<(), String> {
        tokio::select! {
            ev = self.events.recv(), if !self.events_closed => match ev {
                Some(ev) => self.on_event(ev)?,
                None => {
                    self.events_closed = true;
                    if self.terminal.is_none() {
                        return Err("the client stopped by itself".into());
                    }
                }
            },
            a = self.answers.recv() => if let Some(a) = a {
                self.record_answer(a.id, a.outcome, a.at)?;
            },
            _ = tokio::time::sleep(d) => {}
        }
        Ok(())
    }

    fn unanswered(&self) -> Vec<usize> {
        (0..self.requests.len())
            .filter(|i| self.requests[*i].answer.is_none())
            .collect()
    }

    async fn wait_all_answered(&mut self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            self.drain_now()?;
            let open = self.unanswered();
            if open.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let list: Vec<String> = open
                    .iter()
                    .map(|i| {
                        format!(
                            "#{i} {:?} sent at step {}",
                            self.requests[*i].kind, self.requests[*i].step
                        )
                    })
                    .collect();
                return Err(format!(
                    "requests never answered within {within:?}: {}",
                    list.join(", ")
                ));
            }
            self.pump(Duration::from_millis(50)).await?;
        }
    }

    // ----- applying a step -----

    fn current_socket(&self) -> Option<SocketId> {
        self.server.sockets().last().map(|s| s.id)
    }

    fn leave_in_flight(&self, topic: u8) -> bool {
        self.requests
            .iter()
            .any(|r| r.kind == Kind::Leave { topic } && r.answer.is_none())
    }

    async fn apply(&mut self, op: &Op) -> Result<(), String> {
        if !op.is_user()
            && !matches!(
                op,
                Op::Crash { .. } | Op::StopChannel { .. } | Op::Unsilence | Op::ServerUp
            )
        {
            self.slow_steps.push(self.step);
        }
        match *op {
            Op::Join { topic, params } => {
                let in_flight = self.leave_in_flight(topic);
                let seq = self.server.last_seq();
                let m = &mut self.model[topic as usize];
                let expect = match m.wanted {
                    Some(q) if q != params => Expect::Conflict,
                    Some(_) => Expect::Open,
                    None => {
                        m.wanted = Some(params);
                        m.wanted_since = seq;
                        m.after_leave = in_flight;
                        Expect::Open
                    }
                };
                let since = m.wanted_since;
                let id = self.new_request(Kind::Join { topic, params }, expect, since);
                let req = self
                    .addr()
                    .send(Join::new(topic_name(topic), params_json(params)));
                self.spawn_answer(id, async move {
                    Outcome::Join(req.await.unwrap_or(Err(JoinError::Stopped)))
                });
            }
            Op::Leave { topic } => {
                let step = self.step;
                let seq = self.server.last_seq();
                let m = &mut self.model[topic as usize];
                if m.wanted.take().is_some() {
                    m.unwanted_since = seq;
                    m.leave_max += 1;
                    if !m.after_leave {
                        m.leave_min += 1;
                    }
                    m.removals.push(step);
                }
                let since = m.unwanted_since;
                let id = self.new_request(Kind::Leave { topic }, Expect::Open, since);
                let req = self.addr().send(Leave::new(topic_name(topic)));
                self.spawn_answer(id, async move {
                    Outcome::Leave(req.await.unwrap_or(Err(LeaveError::Stopped)))
                });
            }
            Op::Push { topic, via, slow } => {
                let push_id = self.next_push_id;
                self.next_push_id += 1;
                let expect = if self.model[topic as usize].wanted.is_some() {
                    Expect::Open
                } else {
                    Expect::NotJoined
                };
                // Every third push is a frame over 64 KiB, which the actor writes to
                // the socket itself when the writer task is idle.
                let (event, payload) = if slow {
                    ("sleep", json!({ "id": push_id, "ms": 30 }))
                } else if push_id % 3 == 1 {
                    (
                        "echo",
                        json!({ "id": push_id, "pad": "x".repeat(BIG_PUSH) }),
                    )
                } else {
                    ("echo", json!({ "id": push_id }))
                };
                let id = self.new_request(
                    Kind::Push {
                        topic,
                        id: push_id,
                        via,
                    },
                    expect,
                    0,
                );
                match via {
                    Via::Message => {
                        let req = self
                            .addr()
                            .send(Push::new(topic_name(topic), event, payload));
                        self.spawn_answer(id, async move {
                            Outcome::Push(req.await.unwrap_or(Err(PushError::Stopped)))
                        });
                    }
                    Via::Socket => {
                        let req = self.addr().send(SocketPush {
                            topic: topic_name(topic),
                            event,
                            payload,
                        });
                        match tokio::time::timeout(WAIT, req).await {
                            Ok(Ok(Ok(r))) => {
                                if let Some(other) = self.socket_refs.insert(r.to_string(), id) {
                                    return Err(format!(
                                        "socket.push gave ref {r}, which push #{other} still waits on"
                                    ));
                                }
                            }
                            Ok(Ok(Err(e))) => {
                                self.record_answer(id, Outcome::Push(Err(e)), Instant::now())?
                            }
                            Ok(Err(e)) => return Err(format!("the client is gone: {e}")),
                            Err(_) => return Err("socket.push did not return".into()),
                        }
                    }
                }
            }
            Op::Disconnect => {
                self.send_control(Disconnect).await?;
                self.user_disconnected = true;
            }
            Op::Reconnect => {
                self.send_control(Reconnect).await?;
                self.user_disconnected = false;
            }
            Op::Restart => {
                if self.case.supervised() {
                    self.restarts.push(self.step);
                    self.send_control(Stop).await?;
                    self.user_disconnected = false;
                }
            }
            Op::Wait(ms) => tokio::time::sleep(Duration::from_millis(ms.into())).await,
            Op::Subscribe { topic } => {
                match tokio::time::timeout(WAIT, self.addr().subscribe(topic_name(topic), 8)).await
                {
                    Ok(Ok(sub)) => self.subscriptions.push(sub),
                    Ok(Err(e)) => return Err(format!("subscribe: {e}")),
                    Err(_) => return Err("subscribe did not answer".into()),
                }
            }
            Op::Broadcast { topic } => {
                self.server
                    .broadcast(topic_name(topic), "news", json!({ "step": self.step }))
                    .await;
            }
            Op::DropConnection => {
                if let Some(s) = self.current_socket() {
                    self.server.drop_connection(s);
                }
            }
            Op::Close(code) => {
                if let Some(s) = self.current_socket() {
                    if self.silenced.contains(&s) {
                        // A silenced socket does no close handshake: drop it instead.
                        self.server.drop_connection(s);
                    } else {
                        let _ = self.server.disconnect(s, code).await;
                    }
                }
            }
            Op::Crash { topic } => {
                if let Some(s) = self.current_socket().filter(|s| !self.silenced.contains(s)) {
                    let _ = self.server.crash_channel(s, topic_name(topic)).await;
                }
            }
            Op::StopChannel { topic } => self.stop_channel(topic).await?,
            Op::Refuse { n, how } => {
                let how = match how {
                    Refuse::Http403 => Refusal::Http(403),
                    Refuse::TcpClose => Refusal::TcpClose,
                    Refuse::TcpReset => Refusal::TcpReset,
                    Refuse::Hang => Refusal::Hang,
                };
                self.server.refuse_next(n.into(), how);
            }
            Op::Silence(stall) => {
                if let Some(s) = self.current_socket().filter(|s| !self.silenced.contains(s)) {
                    let mode = if stall {
                        Silence::Stall
                    } else {
                        Silence::Ignore
                    };
                    if self.server.silence(s, Some(mode)).await.is_ok() {
                        self.silenced.insert(s);
                    }
                }
            }
            Op::Unsilence => {
                for s in std::mem::take(&mut self.silenced) {
                    let _ = self.server.silence(s, None).await;
                }
            }
            Op::ReplyDelay(ms) => self
                .server
                .set_reply_delay(Duration::from_millis(ms.into())),
            Op::ServerDown { graceful } => {
                if self.server_up {
                    let r = if graceful {
                        self.server.stop().await
                    } else {
                        self.server.kill().await
                    };
                    r.map_err(|e| format!("server stop: {e}"))?;
                    self.server_up = false;
                    self.silenced.clear();
                }
            }
            Op::ServerUp => {
                if !self.server_up {
                    self.server
                        .restart()
                        .await
                        .map_err(|e| format!("server restart: {e}"))?;
                    self.server_up = true;
                }
            }
        }
        Ok(())
    }

    async fn send_control<M>(&self, msg: M) -> Result<(), String>
    where
        M: Message<Result = ()> + Send + 'static,
        Client<ModelClient>: Handler<M>,
    {
        match tokio::time::timeout(WAIT, self.addr().send(msg)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("the client is gone: {e}")),
            Err(_) => Err("the client did not take the message in time".into()),
        }
    }

    async fn status(&self) -> Result<Status, String> {
        match tokio::time::timeout(WAIT, self.addr().send(GetStatus)).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(format!("the client is gone: {e}")),
            Err(_) => Err("no status in time".into()),
        }
    }

    /// The server stops a channel (`phx_close`). Whether the client acts on it depends
    /// on what it did meanwhile (a frame of an older join is stale), so the harness
    /// waits until the client has moved off that join, then reads whether the topic
    /// was removed: the model follows what the client saw, and checks that a removal
    /// came with its `handle_leave`.
    async fn stop_channel(&mut self, topic: u8) -> Result<(), String> {
        let t = topic_name(topic);
        let Some(s) = self.current_socket().filter(|s| !self.silenced.contains(s)) else {
            return Ok(());
        };
        let Some(server_ref) = self
            .server
            .socket(s)
            .and_then(|i| i.channels.get(t.as_str()).cloned())
        else {
            return Ok(());
        };
        let left_before = self.model[topic as usize].left_seen;
        if self.server.stop_channel(s, t.as_str()).await.is_err() {
            return Ok(());
        }
        let deadline = Instant::now() + WAIT;
        let status = loop {
            self.drain_now()?;
            let gone = self
                .server
                .state(|st| st.socket(s).is_none_or(|i| i.disconnect.is_some()));
            let status = self.status().await?;
            let moved = status.topic(&t).map(|x| x.join_ref.clone()) != Some(server_ref.clone());
            if moved || gone {
                break status;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the client did not act on phx_close of {t} (join_ref {server_ref:?}) within {WAIT:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        self.drain_now()?;
        let m = &mut self.model[topic as usize];
        if m.wanted.is_some() && status.topic(&t).is_none() {
            if m.left_seen == left_before {
                return Err(format!(
                    "{t} was removed by the server's phx_close without handle_leave"
                ));
            }
            m.wanted = None;
            m.unwanted_since = self.server.last_seq();
            m.leave_min += 1;
            m.leave_max += 1;
            m.removals.push(self.step);
        }
        Ok(())
    }

    /// After every step: the client's registry is exactly the wanted topics with their
    /// params, and a topic it knows but is not wanted is one being left.
    async fn check_step(&mut self) -> Result<(), String> {
        let probe = self.probe().await?;
        let wanted = self.wanted();
        registry_is_wanted(&probe, &wanted)?;
        for t in &probe.status.topics {
            if !wanted.contains_key(t.topic.as_str()) && t.status != TopicStatus::Leaving {
                return Err(format!(
                    "{} is not wanted but the client has it {}",
                    t.topic, t.status
                ));
            }
        }
        for t in wanted.keys() {
            if probe.status.topic(t).is_none() {
                return Err(format!("{t} is wanted but the client does not know it"));
            }
        }
        Ok(())
    }

    // ----- the end -----

    /// Undoes every fault: connects accepted, no silence, no reply delay, the server up,
    /// silenced sockets dropped, and a reconnect if the user had disconnected.
    async fn heal(&mut self) -> Result<(), String> {
        self.server.accept_connections();
        self.server.set_reply_delay(Duration::ZERO);
        self.server.silence_new_connections(None);
        if !self.server_up {
            self.server
                .restart()
                .await
                .map_err(|e| format!("server restart: {e}"))?;
            self.server_up = true;
        }
        for s in std::mem::take(&mut self.silenced) {
            self.server.drop_connection(s);
        }
        if self.user_disconnected {
            self.send_control(Reconnect).await?;
            self.user_disconnected = false;
        }
        Ok(())
    }

    fn wanted(&self) -> BTreeMap<String, Value> {
        self.model
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.wanted.map(|p| (topic_name(i as u8), params_json(p))))
            .collect()
    }

    async fn probe(&self) -> Result<Probe, String> {
        match tokio::time::timeout(WAIT, self.addr().send(GetProbe)).await {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(e)) => Err(format!("the client is gone: {e}")),
            Err(_) => Err("no probe in time".into()),
        }
    }

    /// Whether the client, the server and the model agree, and nothing is left open.
    fn settled(&self, probe: &Probe) -> Result<(), String> {
        let wanted = self.wanted();
        let st = &probe.status;
        if st.connection != ConnectionStatus::Connected {
            return Err(format!("client {}", st.connection));
        }
        registry_is_wanted(probe, &wanted)?;
        let topics: Vec<(String, TopicStatus)> = st
            .topics
            .iter()
            .map(|t| (t.topic.to_string(), t.status))
            .collect();
        let expected: Vec<(String, TopicStatus)> = wanted
            .keys()
            .map(|t| (t.clone(), TopicStatus::Joined))
            .collect();
        if topics != expected {
            return Err(format!(
                "the client's topics {topics:?} are not {expected:?}"
            ));
        }
        let sockets = self.server.sockets();
        let [sock] = sockets.as_slice() else {
            return Err(format!("{} sockets on the server", sockets.len()));
        };
        let server_topics: BTreeMap<String, Option<Ref>> = sock
            .channels
            .iter()
            .map(|(t, r)| (t.to_string(), r.clone()))
            .collect();
        let client_topics: BTreeMap<String, Option<Ref>> = st
            .topics
            .iter()
            .map(|t| (t.topic.to_string(), t.join_ref.clone()))
            .collect();
        if server_topics != client_topics {
            return Err(format!(
                "the server's joins {server_topics:?} are not the client's {client_topics:?}"
            ));
        }
        if st.pending_replies != 0 || st.buffered_pushes != 0 {
            return Err(format!(
                "{} pushes in flight, {} buffered",
                st.pending_replies, st.buffered_pushes
            ));
        }
        if !self.socket_refs.is_empty() || !self.unanswered().is_empty() {
            return Err("requests still open".into());
        }
        Ok(())
    }

    async fn settle(&mut self) -> Result<(), String> {
        self.wait_all_answered(WAIT).await?;
        let deadline = Instant::now() + WAIT;
        let probe = loop {
            self.drain_now()?;
            let probe = self.probe().await?;
            match self.settled(&probe) {
                Ok(()) => break probe,
                Err(why) if Instant::now() > deadline => {
                    return Err(format!(
                        "not settled within {WAIT:?} after healing: {why}\n  wanted: {:?}\n  client: {:?}\n  server: {:?}",
                        self.wanted(),
                        probe.status.topics,
                        self.server.sockets().iter().map(|s| (s.id, s.channels.clone())).collect::<Vec<_>>()
                    ));
                }
                Err(_) => {
                    let seq = self.server.last_seq();
                    let _ = self
                        .server
                        .wait_for_after(seq, Duration::from_millis(20), |_| true)
                        .await;
                }
            }
        };
        if std::env::var_os("MODEL_VERBOSE").is_some() {
            println!(
                "settled: wanted {:?}; client {:?}; server {:?}; probe timers {} open {} waiters {}",
                self.wanted(),
                probe.status.topics,
                self.server.sockets().iter().map(|s| (s.id, s.channels.clone())).collect::<Vec<_>>(),
                probe.timers, probe.open_requests, probe.waiters
            );
        }
        // No leak: nothing open in the engine or the waiter slots; only the heartbeat's
        // timers armed.
        if probe.open_requests != 0 || probe.waiters != 0 || probe.timers > 2 {
            return Err(format!(
                "leak at quiescence: {} open requests in the engine, {} waiter slots, {} timers",
                probe.open_requests, probe.waiters, probe.timers
            ));
        }
        // The server joined each topic with the wanted params.
        let sock = self.server.sockets()[0].clone();
        let frames = self.server.frames(sock.id);
        for (t, params) in self.wanted() {
            let jr = sock.channels.get(t.as_str()).cloned().flatten();
            let join = frames
                .iter()
                .find(|m| m.event == Event::Join && m.topic == t.as_str() && m.join_ref == jr);
            match join {
                Some(m) if m.payload == Payload::Json(params.clone()) => {}
                other => {
                    return Err(format!(
                        "{t} is joined on the server by {other:?}, not with {params}"
                    ))
                }
            }
        }
        Ok(())
    }

    /// Ends the client (`Stop` first if `stop`, then the handle is dropped) and checks
    /// that it closes, runs `terminate` last, answers everything and leaves the server.
    async fn finish(&mut self, stop: bool) -> Result<(), String> {
        self.terminal = Some(self.step);
        if stop {
            let _ = tokio::time::timeout(WAIT, self.addr().send(Stop)).await;
        }
        self.addr = None;
        let deadline = Instant::now() + WAIT;
        while !self.events_closed {
            if Instant::now() > deadline {
                return Err("the client did not stop after its last handle was dropped".into());
            }
            self.pump(Duration::from_millis(50)).await?;
        }
        match self.seen.last() {
            Some((_, Ev::Terminated)) => {}
            other => return Err(format!("terminate was not the last callback: {other:?}")),
        }
        let want = self.restarts.len() + 1;
        if self.terminated != want {
            return Err(format!(
                "terminate ran {} times for {want} stops",
                self.terminated
            ));
        }
        // No subscriber outlives the client: each subscription ends (after the messages
        // it still holds, at most its capacity plus a lag notice).
        for (i, mut sub) in std::mem::take(&mut self.subscriptions)
            .into_iter()
            .enumerate()
        {
            let mut held = 0;
            loop {
                match tokio::time::timeout(WAIT, sub.next()).await {
                    Ok(None) => break,
                    Ok(Some(_)) if held < 64 => held += 1,
                    Ok(Some(_)) => {
                        return Err(format!(
                            "subscription {i} keeps yielding after the client stopped"
                        ))
                    }
                    Err(_) => {
                        return Err(format!(
                            "subscription {i} did not end after the client stopped"
                        ))
                    }
                }
            }
        }
        self.wait_all_answered(WAIT).await?;
        if !self.socket_refs.is_empty() {
            return Err(format!(
                "socket.push refs without handle_reply: {:?}",
                self.socket_refs
            ));
        }
        // A stalled socket does not read, so the server would never see the close:
        // let it read again.
        for s in std::mem::take(&mut self.silenced) {
            let _ = self.server.silence(s, None).await;
        }
        self.server
            .wait_until(WAIT, |s| s.socket_count() == 0)
            .await
            .map_err(|_| "the client's connection stayed open after it stopped".to_string())?;
        if let Some(thread) = self.spawned {
            self.wait_thread_end(thread).await?;
        }
        Ok(())
    }

    /// Waits (at most [`THREAD_END`]) until a spawned client's thread has ended and the
    /// threads named like it are as many as before its start.
    async fn wait_thread_end(&self, thread: ClientThread) -> Result<(), String> {
        let deadline = Instant::now() + THREAD_END;
        loop {
            let Some(now) = client_threads()? else {
                return Ok(());
            };
            if !now.contains(&thread.tid) && now.len() <= thread.before {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the spawned client's thread did not end within {THREAD_END:?} after it stopped: thread {} {}, {} threads named {CLIENT_THREAD:?} (there were {} before its start)",
                    thread.tid,
                    if now.contains(&thread.tid) { "still runs" } else { "ended" },
                    now.len(),
                    thread.before
                ));
            }
            // A thread's end cannot be awaited from outside: poll the thread list.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    // ----- the checks over the whole history -----

    /// Wire-level rules over every frame the server received.
    fn check_history(&self, events: &[EventRecord]) -> Result<(), String> {
        if events.len() >= EVENT_HISTORY {
            return Err(
                "the server's event history overflowed: the checks would be partial".into(),
            );
        }
        // Per socket and topic: after a phx_join, no other phx_join before a phx_leave,
        // a crash, a stop or a refused join. Per socket: no ref written twice.
        let mut joined: HashMap<(SocketId, String), bool> = HashMap::new();
        let mut refs: BTreeSet<(SocketId, String)> = BTreeSet::new();
        let mut push_ids: BTreeMap<u64, usize> = BTreeMap::new();
        for r in events {
            match &r.event {
                ServerEvent::Frame(s, m) => {
                    if let Some(reference) = &m.reference {
                        if !refs.insert((*s, reference.to_string())) {
                            return Err(format!(
                                "ref {reference} written twice on socket {s}: {m:?}"
                            ));
                        }
                    }
                    let key = (*s, m.topic.to_string());
                    if m.event == Event::Join {
                        if joined.get(&key).copied().unwrap_or(false) {
                            return Err(format!(
                                "a second phx_join of {} on socket {s} while the first was in flight or joined (event {})",
                                m.topic, r.seq
                            ));
                        }
                        joined.insert(key, true);
                    } else if m.event == Event::Leave {
                        joined.insert(key, false);
                    } else if let Payload::Json(v) = &m.payload {
                        if let Some(id) = v.get("id").and_then(Value::as_u64) {
                            *push_ids.entry(id).or_default() += 1;
                        }
                    }
                }
                ServerEvent::Left(s, t, LeaveReason::Crashed | LeaveReason::Stopped)
                | ServerEvent::JoinRefused(s, t) => {
                    joined.insert((*s, t.to_string()), false);
                }
                _ => {}
            }
        }
        if let Some((id, n)) = push_ids.iter().find(|(_, n)| **n > 1) {
            return Err(format!("push {id} was written {n} times"));
        }
        Ok(())
    }

    /// Whether a step in `from..=to` is one of `steps`.
    fn any_in(steps: &[usize], from: usize, to: usize) -> bool {
        steps.iter().any(|s| *s >= from && *s <= to)
    }

    /// Every answer agrees with what happened.
    fn check_answers(&self, events: &[EventRecord]) -> Result<(), String> {
        let end = self.step;
        let stopped_after =
            |step: usize| self.restarts.iter().any(|s| *s >= step) || self.terminal.is_some();
        for (i, req) in self.requests.iter().enumerate() {
            let Some((answer_step, outcome, at)) = &req.answer else {
                return Err(format!("request #{i} {:?} never answered", req.kind));
            };
            let elapsed = at.saturating_duration_since(req.sent_at);
            // A join with the params the topic is wanted with gets the outcome of the
            // join in flight (the documented rule), whose timeout may have started with
            // an earlier join of the same episode: time it from the first of them. A
            // leave of a topic already leaving likewise ends with the leave in flight.
            let started = match req.kind {
                Kind::Join { topic, .. } => self
                    .requests
                    .iter()
                    .filter(|r| {
                        matches!(r.kind, Kind::Join { topic: t, .. } if t == topic)
                            && r.expect == Expect::Open
                            && r.wanted_since == req.wanted_since
                            && r.step <= req.step
                    })
                    .map(|r| r.sent_at)
                    .min()
                    .unwrap_or(req.sent_at),
                Kind::Leave { topic } => self
                    .requests
                    .iter()
                    .filter(|r| {
                        matches!(r.kind, Kind::Leave { topic: t } if t == topic)
                            && r.wanted_since == req.wanted_since
                            && r.step <= req.step
                    })
                    .map(|r| r.sent_at)
                    .min()
                    .unwrap_or(req.sent_at),
                _ => req.sent_at,
            };
            // A timeout needs the whole timeout to have passed, and a reason: short
            // timeouts, or a fault that slows things down.
            let timeout_fair = (self.case.short_timeouts
                || Self::any_in(&self.slow_steps, 0, *answer_step))
                && at.saturating_duration_since(started)
                    >= self.case.request_timeout().mul_f32(0.9);
            let removed_after =
                |topic: u8| Self::any_in(&self.model[topic as usize].removals, req.step + 1, end);
            let after = |pred: &dyn Fn(&ServerEvent) -> bool| {
                events
                    .iter()
                    .any(|r| r.seq > req.seq_sent && pred(&r.event))
            };
            // A callback taken in after the request was sent (it may have happened a
            // little before: lenient).
            let seen_after = |pred: &dyn Fn(&Ev) -> bool| {
                self.seen[req.seen_at_send.min(self.seen.len())..]
                    .iter()
                    .any(|(_, e)| pred(e))
            };
            let bad = |why: &str| {
                Err(format!(
                    "request #{i} {:?} (sent at step {}, answered by step {answer_step} after {elapsed:?}): {outcome:?}: {why}",
                    req.kind, req.step
                ))
            };
            match (req.kind, outcome) {
                (_, _) if req.expect != Expect::Open => {} // checked when answered
                (Kind::Join { topic, params }, Outcome::Join(r)) => match r {
                    Ok(p) => {
                        if *p != Payload::Json(params_json(params)) {
                            return bad("the join response is not the echo of its params");
                        }
                        let t = topic_name(topic);
                        let joined = events.iter().any(|r| {
                            r.seq > req.wanted_since
                                && matches!(&r.event, ServerEvent::Joined(_, x, _) if *x == t.as_str())
                        });
                        if !joined {
                            return bad("answered Ok but the server never joined it");
                        }
                    }
                    Err(JoinError::Left) if removed_after(topic) => {}
                    Err(JoinError::Timeout) if timeout_fair => {}
                    Err(JoinError::Stopped) if stopped_after(req.step) => {}
                    Err(_) => return bad("nothing that happened explains it"),
                },
                (Kind::Leave { .. }, Outcome::Leave(r)) => match r {
                    Ok(()) => {}
                    Err(LeaveError::Timeout) if timeout_fair => {}
                    Err(LeaveError::Stopped) if stopped_after(req.step) => {}
                    Err(_) => return bad("nothing that happened explains it"),
                },
                (Kind::Push { topic, id, .. }, Outcome::Push(r)) => {
                    let t = topic_name(topic);
                    match r {
                        Ok(reply) => {
                            let sent = events.iter().any(|r| {
                                matches!(&r.event, ServerEvent::Frame(_, m)
                                    if m.topic == t.as_str()
                                    && matches!(&m.payload, Payload::Json(v) if v.get("id").and_then(Value::as_u64) == Some(id)))
                            });
                            if !sent {
                                return bad("answered but the server never received it");
                            }
                            let echoed = matches!(&reply.response, Payload::Json(v)
                                if v.get("id").and_then(Value::as_u64) == Some(id));
                            if !reply.is_ok() || !echoed {
                                return bad("the reply is not the server's echo of this push");
                            }
                        }
                        Err(PushError::Timeout) if timeout_fair => {}
                        Err(PushError::Stopped) if stopped_after(req.step) => {}
                        Err(PushError::Left) if removed_after(topic) => {}
                        // The connection ended after the push was sent, or the client
                        // noticed the end after it (a push written to a connection the
                        // server already dropped).
                        Err(PushError::ConnectionLost)
                            if after(&|e| matches!(e, ServerEvent::Disconnected(..)))
                                || seen_after(&|e| matches!(e, Ev::Disconnected(_))) => {}
                        Err(PushError::ChannelClosed)
                            if after(
                                &|e| matches!(e, ServerEvent::Left(_, x, LeaveReason::Crashed | LeaveReason::Stopped) if *x == t.as_str()),
                            ) || seen_after(
                                &|e| matches!(e, Ev::TopicClosed(x, _) if *x == t),
                            ) => {}
                        Err(_) => return bad("nothing that happened explains it"),
                    }
                }
                (kind, o) => {
                    return Err(format!(
                        "request #{i} {kind:?} got an answer of another kind: {o:?}"
                    ))
                }
            }
        }
        Ok(())
    }

    /// `handle_leave` ran once per topic removal, whatever the path (two leaves in
    /// flight end in one; a join during a leave makes the count a range).
    fn check_leaves(&self) -> Result<(), String> {
        for (i, m) in self.model.iter().enumerate() {
            if m.left_seen < m.leave_min || m.left_seen > m.leave_max {
                return Err(format!(
                    "handle_leave ran {} times for {}, the model allows {}..={}",
                    m.left_seen,
                    topic_name(i as u8),
                    m.leave_min,
                    m.leave_max
                ));
            }
        }
        Ok(())
    }
}

// ----- the knobs and the summary -----

/// The environment knobs of the model test.
#[derive(Debug, Clone, Copy)]
pub struct Knobs {
    /// `MODEL_CASES`: sequences to run.
    pub cases: u32,
    /// `MODEL_SEED`: the seed of the generator.
    pub seed: u64,
    /// `MODEL_STEPS`: most steps per sequence.
    pub steps: usize,
    /// `MODEL_SHRINK_ITERS`: most shrinking steps after a failure.
    pub shrink_iters: u32,
    /// `MODEL_SHRINK_SECS`: most time spent shrinking after a failure.
    pub shrink_secs: u32,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value")),
        Err(_) => default,
    }
}

impl Knobs {
    /// Reads the knobs from the environment, with the defaults of a quick run.
    pub fn from_env() -> Self {
        Knobs {
            cases: env_or("MODEL_CASES", 160),
            seed: env_or("MODEL_SEED", 20_261_201),
            steps: env_or("MODEL_STEPS", 30),
            shrink_iters: env_or("MODEL_SHRINK_ITERS", 400),
            shrink_secs: env_or("MODEL_SHRINK_SECS", 300),
        }
    }
}

fn outcome_label(o: &Outcome) -> String {
    fn err<E: fmt::Debug>(kind: &str, e: &E) -> String {
        let e = format!("{e:?}");
        let name = e.split('(').next().unwrap_or("?");
        format!("{kind} {name}")
    }
    match o {
        Outcome::Join(Ok(_)) => "join ok".into(),
        Outcome::Join(Err(e)) => err("join", e),
        Outcome::Leave(Ok(())) => "leave ok".into(),
        Outcome::Leave(Err(e)) => err("leave", e),
        Outcome::Push(Ok(_)) => "push ok".into(),
        Outcome::Push(Err(e)) => err("push", e),
    }
}

/// The sum of the figures of every sequence run.
#[derive(Debug, Default, Clone)]
pub struct Totals {
    pub outcomes: BTreeMap<String, u64>,
    pub sequences: u64,
    pub failed: u64,
    pub steps: u64,
    pub requests: u64,
    pub answered: u64,
    pub server_frames: u64,
}

impl Totals {
    pub fn add(&mut self, s: &CaseStats) {
        self.sequences += 1;
        self.steps += s.steps as u64;
        self.requests += s.requests as u64;
        self.answered += s.answered as u64;
        self.server_frames += s.server_frames as u64;
        for (k, v) in &s.outcomes {
            *self.outcomes.entry(k.clone()).or_default() += v;
        }
    }
}
