//! A Phoenix-compatible websocket server for tests (feature `testing`).
//!
//! [`TestServer`] speaks the Phoenix Channels protocol over a real websocket
//! (actix-web + actix-ws) on `127.0.0.1`, with channel behaviour the test defines,
//! and lets the test observe everything the client sent and inject faults: close a
//! socket with a code, drop the TCP connection, go silent (half-open link), refuse
//! connects (HTTP status or TCP level), hang the upgrade, delay replies, stop and
//! restart on the same port. It plays the role of Elixir Slipstream's `SocketTest`,
//! but the client under test connects for real.
//!
//! [`TestServer::phoenix_demo`] behaves like the Phoenix 1.7.24 server the transcripts
//! in `tests/fixtures` were recorded from (see its doc).
//!
//! # Runtime
//!
//! [`TestServerBuilder::start`] must be called inside an actix System (the
//! `#[actix_rt::test]` or `#[actix_web::main]` runtimes): the server runs on that
//! thread as local tasks, next to the client under test.
//! [`TestServerBuilder::spawn_in_thread`] runs it on a thread of its own, with its own
//! System, for code outside actix (command-line tools, benchmarks). The handle's
//! async methods need a tokio runtime with timers (any, not only the server's).
//!
//! # Waiting, not sleeping
//!
//! Tests wait for what they expect with [`TestServer::wait_until`] /
//! [`TestServer::wait_for_state`] (a predicate over the current [`ServerState`],
//! re-checked on every change, so nothing that already happened is missed) or
//! [`TestServer::wait_for`] (a predicate over the bounded [`ServerEvent`] history and
//! the events to come). Every wait takes a timeout.
//!
//! ```
//! use std::time::Duration;
//! use actix_slipstream::testing::{ServerEvent, TestServer};
//!
//! # #[actix_rt::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = TestServer::phoenix_demo().start().await?;
//! assert!(server.url().starts_with("ws://127.0.0.1:"));
//! // ... start the client under test on server.url(), then:
//! let joined = server
//!     .wait_for(Duration::from_millis(50), |e| matches!(e, ServerEvent::Joined(..)))
//!     .await;
//! assert!(joined.is_err()); // nobody joined in this example
//! server.stop().await?;
//! # Ok(()) }
//! ```
//!
//! # How connections are served (and what the fault injection does on the wire)
//!
//! The server does not use `actix_web::HttpServer`, which owns its accept loop and
//! worker threads. It binds a tokio `TcpListener` (with `SO_REUSEADDR`, so a restart
//! can take the same port at once), accepts connections itself on the System's
//! thread, and hands each one to an actix-http `HttpService` serving an actix-web
//! `App` whose `/socket/websocket` route upgrades with actix-ws. Owning the accept
//! loop gives the TCP-level faults:
//!
//! - [`Refusal::TcpClose`] / [`Refusal::TcpReset`]: the connection is accepted and
//!   closed (FIN) or reset (RST) before a byte of HTTP is read;
//! - [`Refusal::Hang`]: the connection is accepted and held without reading, so the
//!   client's upgrade never gets an answer (connect-timeout tests);
//! - a real "connection refused" (nothing listening): [`TestServer::stop`] or
//!   [`TestServer::kill`], then [`TestServer::restart`];
//! - [`TestServer::drop_connection`] and [`TestServer::kill`] abort the connection's
//!   task, which closes the TCP socket without a websocket close frame (the client
//!   sees 1006).
//!
//! HTTP refusals ([`Refusal::Http`], a `vsn` with no serializer, the connect
//! predicate) answer the upgrade request with the status and an empty body, as
//! Phoenix does (403).
//!
//! The server speaks [`V1Json`] and [`V2`] by default (chosen by the client's `vsn`,
//! as in Phoenix); [`TestServerBuilder::serializer`] adds a custom format.
//!
//! # Fidelity and deliberate differences
//!
//! Frames match the recorded server byte for byte in every recorded scenario (see
//! `tests/conformance.rs`). Differences: a channel's [`Action::Sleep`] delays only the
//! frames of that batch (the socket keeps handling other messages meanwhile, where a
//! Phoenix channel process would also hold back later messages of the same channel);
//! frames delayed by a sleep or the reply delay can be overtaken by undelayed frames
//! of later messages (pushes, broadcasts, heartbeat replies without delay).
//!
//! A socket may join at most [`DEFAULT_MAX_CHANNELS`] (100) channels, as in Phoenix
//! releases with `max_channels_per_transport` (default 100): the join beyond it is
//! answered `{"status":"error","response":{"reason":"too many channels joined"}}`.
//! A test that joins more topics on one socket sets
//! [`TestServerBuilder::max_channels`].

mod behaviour;
mod command;
mod server;
mod socket;
mod state;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::message::{Message, Payload, Topic};
use crate::serializer::{Serializer, V1Json, V2};

pub use behaviour::{
    Action, Channel, ConnectRequest, EventRequest, JoinOutcome, JoinRequest, TopicPattern,
    MAX_FLOOD_COUNT, MAX_FLOOD_SIZE, MAX_SLEEP,
};
pub use state::{
    Counters, DisconnectReason, EventRecord, JoinedChannel, LeaveReason, Refusal, ServerEvent,
    ServerState, SocketId, SocketInfo, Timeout, EVENT_HISTORY, FRAME_HISTORY, PAST_SOCKETS,
};

use command::SocketCmd;
pub use command::{RawFrame, Silence};
use server::{Config, Ctl, Shared};

/// How long a connection refused with [`Refusal::Hang`] is held at most.
pub const HUNG_CONNECTION_MAX: Duration = Duration::from_secs(120);
/// The per-socket channel cap when [`TestServerBuilder::max_channels`] is not set:
/// Phoenix's default `max_channels_per_transport`.
pub const DEFAULT_MAX_CHANNELS: usize = 100;
/// How long the handle's control calls (stop, restart, disconnect...) wait for the server.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors of the test server's handle.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listener could not be bound (the port is taken?). Pick another port or 0.
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind {
        /// The port asked for.
        port: u16,
        /// The cause.
        source: io::Error,
    },
    /// [`TestServerBuilder::start`] was called outside an actix System. Use
    /// `#[actix_rt::test]`, or [`TestServerBuilder::spawn_in_thread`].
    #[error("the test server needs an actix System (use #[actix_rt::test] or spawn_in_thread)")]
    NoSystem,
    /// The server's task is gone (its System stopped). Start a new server.
    #[error("the test server is not running any more")]
    Gone,
    /// No connected socket has this id. List them with [`TestServer::sockets`].
    #[error("no connected socket {0}")]
    UnknownSocket(SocketId),
    /// The socket has not joined the topic.
    #[error("{0} has not joined {1}")]
    NotJoined(SocketId, Topic),
    /// The server did not do what was asked in time.
    #[error(transparent)]
    Timeout(#[from] Timeout),
    /// The server's thread could not be started or failed while starting.
    #[error("the test server thread failed: {0}")]
    Thread(String),
    /// The certificate or key given to [`TestServerBuilder::tls`] is not usable.
    #[cfg(feature = "testing-tls")]
    #[error("invalid TLS certificate or key: {0}")]
    Tls(String),
}

/// Builds a [`TestServer`]. See [`TestServer::builder`] and [`TestServer::phoenix_demo`].
pub struct TestServerBuilder {
    routes: Vec<behaviour::Route>,
    connect: Option<behaviour::ConnectFn>,
    max_channels: Option<usize>,
    idle_timeout: Option<Duration>,
    send_timeout: Duration,
    max_frame_size: usize,
    max_connections: usize,
    close_grace: Duration,
    port: u16,
    record_frames: bool,
    serializers: Vec<(String, Arc<dyn Serializer>)>,
    answer_subprotocol: bool,
    #[cfg(feature = "testing-tls")]
    tls: Option<(Vec<Vec<u8>>, Vec<u8>)>,
}

impl std::fmt::Debug for TestServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServerBuilder")
            .field(
                "routes",
                &self
                    .routes
                    .iter()
                    .map(|r| r.pattern.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("port", &self.port)
            .field(
                "serializers",
                &self
                    .serializers
                    .iter()
                    .map(|(vsn, _)| vsn.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Default for TestServerBuilder {
    fn default() -> Self {
        TestServerBuilder {
            routes: Vec::new(),
            connect: None,
            max_channels: None,
            idle_timeout: None,
            send_timeout: Duration::from_secs(10),
            max_frame_size: 16 * 1024 * 1024,
            max_connections: 10_000,
            close_grace: Duration::from_secs(2),
            port: 0,
            record_frames: true,
            serializers: vec![
                ("1.0.0".to_owned(), Arc::new(V1Json) as Arc<dyn Serializer>),
                ("2.0.0".to_owned(), Arc::new(V2)),
            ],
            answer_subprotocol: true,
            #[cfg(feature = "testing-tls")]
            tls: None,
        }
    }
}

impl TestServerBuilder {
    /// Routes topics matching `pattern` (`"room:*"` or an exact topic) to a channel.
    /// Routes are tried in the order they were added; a join of a topic no route
    /// matches gets `{"reason":"unmatched topic"}`.
    pub fn channel(mut self, pattern: impl Into<TopicPattern>, channel: Channel) -> Self {
        self.routes.push(behaviour::Route {
            pattern: pattern.into(),
            channel,
        });
        self
    }

    /// Decides which connects are accepted from their params and headers (default: all).
    /// A refused connect gets HTTP 403, like a Phoenix `connect/3` returning `:error`.
    pub fn accept_connect<F>(mut self, f: F) -> Self
    where
        F: Fn(&ConnectRequest) -> bool + Send + Sync + 'static,
    {
        self.connect = Some(Arc::new(f));
        self
    }

    /// Accepts every connect (the default; undoes [`accept_connect`](Self::accept_connect)).
    pub fn accept_all_connects(mut self) -> Self {
        self.connect = None;
        self
    }

    /// Caps the channels one socket may join, like Phoenix's
    /// `max_channels_per_transport`: a join beyond it gets
    /// `{"reason":"too many channels joined"}`. Default: [`DEFAULT_MAX_CHANNELS`]
    /// (100, Phoenix's default).
    pub fn max_channels(mut self, max: usize) -> Self {
        self.max_channels = Some(max);
        self
    }

    /// Closes a socket with code 1002 after this long without any frame from the
    /// client (Phoenix/Bandit: 60 s). Default: off. Silenced sockets never time out.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = Some(idle);
        self
    }

    /// How long sending one frame may take before the connection is dropped
    /// (a client that stopped reading). Default 10 s.
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = timeout;
        self
    }

    /// The largest frame (and aggregated message) accepted from a client; a larger
    /// one closes the socket. Default 16 MiB.
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = bytes;
        self
    }

    /// The most TCP connections open at once; more are closed at once. Default 10 000.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// How long a graceful stop waits for sockets to close before dropping them. Default 2 s.
    pub fn close_grace(mut self, grace: Duration) -> Self {
        self.close_grace = grace;
        self
    }

    /// Listens on this port of 127.0.0.1 (default 0: any free port).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Whether received frames are kept in the per-socket logs and the event history
    /// (default true; turn off for benchmarks).
    pub fn record_frames(mut self, record: bool) -> Self {
        self.record_frames = record;
        self
    }

    /// Speaks `serializer` with the clients that connect with this `vsn` param,
    /// adding it or replacing the serializer of that `vsn`, as Phoenix's
    /// `serializer: [{Module, "~> 3.0.0"}, ...]` socket option does.
    ///
    /// [`V1Json`] (`1.0.0`, also chosen when the client sends no `vsn`) and [`V2`]
    /// (`2.0.0`) are there from the start. A connect whose `vsn` has no serializer is
    /// refused with HTTP 403 and an empty body, as Phoenix refuses a version none of
    /// its serializers accepts. The `vsn` is matched exactly (Phoenix matches a
    /// version requirement). The serializer's server direction
    /// ([`Serializer::encode_server`], [`Serializer::decode_client_text`],
    /// [`Serializer::decode_client_binary`]) is what the server uses.
    ///
    /// ```
    /// use actix_slipstream::codec::V2;
    /// use actix_slipstream::testing::TestServer;
    ///
    /// // V2 also under a custom version string (a custom serializer in a real test).
    /// let builder = TestServer::phoenix_demo().serializer("2.1.0", V2);
    /// assert!(format!("{builder:?}").contains("2.1.0"));
    /// ```
    pub fn serializer(mut self, vsn: impl Into<String>, serializer: impl Serializer) -> Self {
        let vsn = vsn.into();
        let serializer: Arc<dyn Serializer> = Arc::new(serializer);
        match self.serializers.iter_mut().find(|(v, _)| *v == vsn) {
            Some(entry) => entry.1 = serializer,
            None => self.serializers.push((vsn, serializer)),
        }
        self
    }

    /// Whether the upgrade answers the `phoenix` subprotocol when the client asks for
    /// it (default true, like a Phoenix 1.8 socket declared with `auth_token: true`).
    /// Turn it off to play a server that ignores the auth token: the client then
    /// fails the connect with
    /// [`ConnectError::Subprotocol`](crate::ConnectError::Subprotocol). The token is
    /// read either way.
    pub fn answer_subprotocol(mut self, answer: bool) -> Self {
        self.answer_subprotocol = answer;
        self
    }

    /// Serves `wss://` (TLS through rustls with the ring provider) with this
    /// certificate chain (DER, leaf first) and PKCS#8 private key (DER), instead of
    /// plain `ws://`. [`TestServer::url`] then gives a `wss://` URL. Feature `testing-tls`.
    ///
    /// A client trusts such a server only when given its root
    /// ([`Config::tls_root_certificates`](crate::Config::tls_root_certificates)).
    #[cfg(feature = "testing-tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "testing-tls")))]
    pub fn tls(mut self, cert_chain: Vec<Vec<u8>>, key_pkcs8: Vec<u8>) -> Self {
        self.tls = Some((cert_chain, key_pkcs8));
        self
    }

    fn into_shared(self) -> Result<Shared, Error> {
        #[cfg(feature = "testing-tls")]
        let tls = match self.tls {
            Some((chain, key)) => {
                Some(server::tls_config(chain, key).map_err(|e| Error::Tls(e.to_string()))?)
            }
            None => None,
        };
        Ok(Shared::new(
            Config {
                routes: self.routes,
                connect: self.connect,
                max_channels: self.max_channels.unwrap_or(DEFAULT_MAX_CHANNELS),
                idle_timeout: self.idle_timeout,
                send_timeout: self.send_timeout,
                max_frame_size: self.max_frame_size,
                max_connections: self.max_connections,
                close_grace: self.close_grace,
                port: self.port,
                serializers: self.serializers,
                answer_subprotocol: self.answer_subprotocol,
                #[cfg(feature = "testing-tls")]
                tls,
            },
            self.record_frames,
        ))
    }

    /// Starts the server on the current actix System (see the [module doc](self)).
    ///
    /// # Errors
    /// [`Error::NoSystem`] outside an actix System, [`Error::Bind`] when the port is
    /// taken.
    pub async fn start(self) -> Result<TestServer, Error> {
        let (server, _done) = self.start_local().await?;
        Ok(server)
    }

    async fn start_local(self) -> Result<(TestServer, tokio::task::JoinHandle<()>), Error> {
        if actix_rt::System::try_current().is_none() {
            return Err(Error::NoSystem);
        }
        let port = self.port;
        let listener = server::bind(port).map_err(|source| Error::Bind { port, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| Error::Bind { port, source })?;
        let shared = Arc::new(self.into_shared()?);
        let (ctl_tx, ctl_rx) = mpsc::channel(16);
        let (ready_tx, ready_rx) = oneshot::channel();
        let task = actix_rt::spawn(server::control(shared.clone(), ctl_rx, listener, ready_tx));
        match tokio::time::timeout(CONTROL_TIMEOUT, ready_rx).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => return Err(Error::Thread(e)),
            Ok(Err(_)) => return Err(Error::Gone),
            Err(_) => return Err(Error::Timeout(Timeout(CONTROL_TIMEOUT))),
        }
        Ok((
            TestServer {
                shared,
                ctl: ctl_tx,
                port: addr.port(),
            },
            task,
        ))
    }

    /// Starts the server on a new thread with its own actix System; the thread ends
    /// when every handle is dropped. For code outside actix (CLI, benchmarks).
    ///
    /// # Errors
    /// [`Error::Bind`] when the port is taken, [`Error::Thread`] when the thread
    /// cannot be started.
    pub fn spawn_in_thread(self) -> Result<TestServer, Error> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("slipstream-test-server".into())
            .spawn(move || {
                let system = actix_rt::System::new();
                system.block_on(async move {
                    match self.start_local().await {
                        Ok((server, done)) => {
                            let _ = tx.send(Ok(server));
                            let _ = done.await;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                });
            })
            .map_err(|e| Error::Thread(e.to_string()))?;
        rx.recv_timeout(CONTROL_TIMEOUT)
            .map_err(|e| Error::Thread(e.to_string()))?
    }
}

/// A handle to a running test server. Cheap to clone, `Send + Sync`; the server
/// stops (abruptly, like [`kill`](Self::kill)) when the last handle is dropped.
///
/// ```
/// use std::time::Duration;
/// use actix_slipstream::testing::{Action, Channel, JoinOutcome, TestServer};
/// use serde_json::json;
///
/// # #[actix_rt::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = TestServer::builder()
///     .channel(
///         "game:*",
///         Channel::new()
///             .on_join(|_| JoinOutcome::ok(json!({"welcome": true})))
///             .on_event(|ev| vec![Action::reply_ok(ev.payload.clone()), Action::Stop]),
///     )
///     .max_channels(5)
///     .start()
///     .await?;
/// assert_eq!(server.counters().accepted, 0);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TestServer {
    shared: Arc<Shared>,
    ctl: mpsc::Sender<Ctl>,
    port: u16,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl TestServer {
    /// A server with no channel routes (add them with [`TestServerBuilder::channel`]).
    pub fn builder() -> TestServerBuilder {
        TestServerBuilder::default()
    }

    /// A server that behaves like the Phoenix 1.7.24 server of the recorded transcripts:
    ///
    /// - connect refused (HTTP 403) without a `token` param;
    /// - `room:*`: join ok echoing the params. Events: `echo` (reply ok with the payload,
    ///   binary too), `error_reply` (reply error), `broadcast` (broadcast to all joined,
    ///   sender included, then reply ok `{}`), `broadcast_from` (sender excluded),
    ///   `noreply`, `crash` (`phx_error`), `stop` (`phx_close`), `stop_reply` (reply ok,
    ///   then `phx_close`), `push_me` (push `pushed` with the payload), `push_binary`
    ///   (binary push `binary_pushed` of `00 01 02 03 fe ff`), `sleep {"ms": N}` (reply ok
    ///   with the payload after N ms), `flood {"count": N, "size": B}` (push N messages
    ///   `flooded {"n": i, "data": "xxx..."}` with B bytes of data, then reply ok
    ///   `{"count": N}`), any other event: reply error `{"event": E, "reason": "unknown event"}`;
    /// - `private:*`: join ok (response `{}`) only with `{"token": "secret"}`, else error
    ///   `{"reason": "unauthorized"}`; events as `room:*`;
    /// - `ticker:*`: join ok echoing the params, then push `tick {"n": n}` every
    ///   `interval_ms` (default 1000) until the channel ends; events as `room:*`.
    pub fn phoenix_demo() -> TestServerBuilder {
        let mut builder = TestServerBuilder::default()
            .accept_connect(|c: &ConnectRequest| c.param("token").is_some());
        builder.routes = behaviour::demo_routes();
        builder
    }

    /// The socket URL to give a client: `ws://127.0.0.1:PORT/socket` (`wss://` when
    /// serving TLS; the websocket itself is served at `/socket/websocket`).
    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}/socket", self.scheme(), self.port)
    }

    /// The websocket URL with a query: `ws://127.0.0.1:PORT/socket/websocket?QUERY`
    /// (`wss://` when serving TLS).
    pub fn websocket_url(&self, query: &str) -> String {
        let scheme = self.scheme();
        if query.is_empty() {
            format!("{scheme}://127.0.0.1:{}/socket/websocket", self.port)
        } else {
            format!(
                "{scheme}://127.0.0.1:{}/socket/websocket?{query}",
                self.port
            )
        }
    }

    /// `wss` when serving TLS, else `ws`.
    fn scheme(&self) -> &'static str {
        #[cfg(feature = "testing-tls")]
        if self.shared.cfg.tls.is_some() {
            return "wss";
        }
        "ws"
    }

    /// The listening address (the port stays the same across restarts).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    // ----- observation -----

    /// Reads the current state.
    pub fn state<R>(&self, f: impl FnOnce(&ServerState) -> R) -> R {
        self.shared.with_state_quiet(|s| f(s))
    }

    /// The connected sockets, in connection order.
    pub fn sockets(&self) -> Vec<SocketInfo> {
        self.state(|s| s.sockets().cloned().collect())
    }

    /// A socket, connected or recently disconnected.
    pub fn socket(&self, id: SocketId) -> Option<SocketInfo> {
        self.state(|s| s.socket(id).cloned())
    }

    /// The frames a socket received (the last [`FRAME_HISTORY`]), oldest first.
    pub fn frames(&self, id: SocketId) -> Vec<Message> {
        self.state(|s| {
            s.frames(id)
                .map(|f| f.iter().cloned().collect())
                .unwrap_or_default()
        })
    }

    /// The connection counters.
    pub fn counters(&self) -> Counters {
        self.state(|s| s.counters())
    }

    /// The recent events (the last [`EVENT_HISTORY`]), oldest first.
    pub fn events(&self) -> Vec<EventRecord> {
        self.state(|s| s.events().cloned().collect())
    }

    /// The sequence number of the latest event: pass it to
    /// [`wait_for_after`](Self::wait_for_after) to wait only for later events.
    pub fn last_seq(&self) -> u64 {
        self.state(|s| s.last_seq())
    }

    /// Whether the server is listening.
    pub fn is_running(&self) -> bool {
        self.state(|s| s.listening().is_some())
    }

    // ----- waiting -----

    /// Waits until `f` returns `Some` for the current state; `f` is re-run on every change.
    ///
    /// # Errors
    /// [`Timeout`] when `f` still returns `None` after `timeout`.
    pub async fn wait_for_state<T>(
        &self,
        timeout: Duration,
        mut f: impl FnMut(&ServerState) -> Option<T>,
    ) -> Result<T, Timeout> {
        let mut rx = self.shared.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            rx.borrow_and_update();
            if let Some(t) = self.state(&mut f) {
                return Ok(t);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return Err(Timeout(timeout)),
            }
        }
    }

    /// Waits until `pred` holds for the current state; re-checked on every change.
    ///
    /// # Errors
    /// [`Timeout`] when it does not hold after `timeout`.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&ServerState) -> bool,
    ) -> Result<(), Timeout> {
        self.wait_for_state(timeout, |s| pred(s).then_some(()))
            .await
    }

    /// Waits for an event matching `pred`, looking first at the retained history
    /// (so an event that happened before the call is found), then at new events.
    ///
    /// # Errors
    /// [`Timeout`] when no matching event happened within `timeout`.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        pred: impl FnMut(&ServerEvent) -> bool,
    ) -> Result<EventRecord, Timeout> {
        self.wait_for_after(0, timeout, pred).await
    }

    /// Waits for an event matching `pred` with a sequence number above `seq`
    /// (see [`last_seq`](Self::last_seq)).
    ///
    /// # Errors
    /// [`Timeout`] when no matching event happened within `timeout`.
    pub async fn wait_for_after(
        &self,
        seq: u64,
        timeout: Duration,
        mut pred: impl FnMut(&ServerEvent) -> bool,
    ) -> Result<EventRecord, Timeout> {
        let mut seen = seq;
        self.wait_for_state(timeout, |s| {
            let found = s
                .events()
                .filter(|r| r.seq > seen)
                .find(|r| pred(&r.event))
                .cloned();
            seen = seen.max(s.last_seq());
            found
        })
        .await
    }

    /// Waits until at least `n` sockets are connected; returns the ids of all of them.
    ///
    /// # Errors
    /// [`Timeout`].
    pub async fn wait_for_sockets(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<SocketId>, Timeout> {
        self.wait_for_state(timeout, |s| {
            (s.socket_count() >= n).then(|| s.sockets().map(|i| i.id).collect())
        })
        .await
    }

    /// Waits until some socket has joined `topic`; returns the first such socket.
    ///
    /// # Errors
    /// [`Timeout`].
    pub async fn wait_for_join(&self, topic: &str, timeout: Duration) -> Result<SocketId, Timeout> {
        self.wait_for_state(timeout, |s| s.joined_to(topic).first().copied())
            .await
    }

    // ----- pushing from outside -----

    /// Broadcasts `[null, null, topic, event, payload]` to every socket joined to the
    /// topic, like `Endpoint.broadcast/3`; returns how many sockets it was sent to.
    pub async fn broadcast(
        &self,
        topic: impl Into<Topic>,
        event: &str,
        payload: impl Into<Payload>,
    ) -> usize {
        self.shared
            .broadcast_local(None, &topic.into(), event, &payload.into())
    }

    /// Pushes `[join_ref, null, topic, event, payload]` to one socket on a channel it joined.
    ///
    /// # Errors
    /// [`Error::UnknownSocket`], [`Error::NotJoined`], [`Error::Timeout`] when its
    /// command queue stays full.
    pub async fn push(
        &self,
        socket: SocketId,
        topic: impl Into<Topic>,
        event: &str,
        payload: impl Into<Payload>,
    ) -> Result<(), Error> {
        let topic = topic.into();
        let tx = self.joined_socket_cmd(socket, &topic)?;
        let cmd = SocketCmd::Push {
            topic,
            event: event.to_owned(),
            payload: payload.into(),
        };
        send_cmd(&tx, cmd, socket).await
    }

    // ----- faults: sockets -----

    /// Closes a socket with a close code (1011 like Phoenix's `disconnect` broadcast
    /// through Bandit, 1000, 4000...) and waits until it is gone. A socket that does
    /// not close within [`CONTROL_TIMEOUT`] is dropped.
    ///
    /// # Errors
    /// [`Error::UnknownSocket`].
    pub async fn disconnect(&self, socket: SocketId, code: u16) -> Result<(), Error> {
        let tx = self
            .state(|s| s.sockets.get(&socket).and_then(|e| e.cmd.clone()))
            .ok_or(Error::UnknownSocket(socket))?;
        if send_cmd(&tx, SocketCmd::Close(code), socket).await.is_err() {
            self.shared.drop_socket(socket);
            return Ok(());
        }
        let gone = self
            .wait_until(CONTROL_TIMEOUT, |s| !s.sockets.contains_key(&socket))
            .await;
        if gone.is_err() {
            self.shared.drop_socket(socket);
        }
        Ok(())
    }

    /// Closes every connected socket with a close code; returns how many there were.
    pub async fn disconnect_all(&self, code: u16) -> usize {
        let ids: Vec<SocketId> = self.state(|s| s.sockets.keys().copied().collect());
        for id in &ids {
            let _ = self.disconnect(*id, code).await;
        }
        ids.len()
    }

    /// Drops a socket's TCP connection without a close frame (the client sees the
    /// connection end: 1006). Returns whether the socket was connected.
    pub fn drop_connection(&self, socket: SocketId) -> bool {
        self.shared.drop_socket(socket)
    }

    /// Drops every websocket connection without a close frame; returns how many.
    pub fn drop_all_connections(&self) -> usize {
        let ids: Vec<SocketId> = self.state(|s| s.sockets.keys().copied().collect());
        ids.into_iter()
            .filter(|id| self.shared.drop_socket(*id))
            .count()
    }

    /// Sends a websocket frame as is on a socket, outside the Phoenix protocol and
    /// whatever its silence mode: garbage text or binary, pings, pongs, a message in
    /// fragments, a frame larger than the client accepts... (see [`RawFrame`]). To send
    /// a well-formed Phoenix frame the client does not expect (a reply to a ref it never
    /// used, a message on a topic it never joined), encode it with
    /// [`Serializer::encode_server`] and send it as
    /// [`RawFrame::Text`] or [`RawFrame::Binary`].
    ///
    /// # Errors
    /// [`Error::UnknownSocket`], [`Error::Timeout`] when its command queue stays full.
    pub async fn send_raw(&self, socket: SocketId, frame: RawFrame) -> Result<(), Error> {
        let tx = self
            .state(|s| s.sockets.get(&socket).and_then(|e| e.cmd.clone()))
            .ok_or(Error::UnknownSocket(socket))?;
        send_cmd(&tx, SocketCmd::Raw(frame), socket).await
    }

    /// Crashes a channel a socket joined, as if its process raised: the channel ends
    /// and the client gets `phx_error` (it rejoins by default). Returns once the socket
    /// has been told; wait for [`ServerEvent::Left`] with [`LeaveReason::Crashed`] to
    /// see it done.
    ///
    /// # Errors
    /// [`Error::UnknownSocket`], [`Error::NotJoined`], [`Error::Timeout`].
    pub async fn crash_channel(
        &self,
        socket: SocketId,
        topic: impl Into<Topic>,
    ) -> Result<(), Error> {
        let topic = topic.into();
        let tx = self.joined_socket_cmd(socket, &topic)?;
        send_cmd(&tx, SocketCmd::Crash(topic), socket).await
    }

    /// Stops a channel a socket joined, as if its process stopped normally
    /// (`{:stop, :normal, socket}`): the channel ends and the client gets `phx_close`
    /// (the topic is left for good; the client does not rejoin it). Returns once the
    /// socket has been told; wait for [`ServerEvent::Left`] with
    /// [`LeaveReason::Stopped`] to see it done.
    ///
    /// # Errors
    /// [`Error::UnknownSocket`], [`Error::NotJoined`], [`Error::Timeout`].
    pub async fn stop_channel(
        &self,
        socket: SocketId,
        topic: impl Into<Topic>,
    ) -> Result<(), Error> {
        let topic = topic.into();
        let tx = self.joined_socket_cmd(socket, &topic)?;
        send_cmd(&tx, SocketCmd::Stop(topic), socket).await
    }

    /// Silences a socket (`Some(mode)`: a half-open link, see [`Silence`]) or makes it
    /// answer again (`None`).
    ///
    /// # Errors
    /// [`Error::UnknownSocket`], [`Error::Timeout`].
    pub async fn silence(&self, socket: SocketId, mode: Option<Silence>) -> Result<(), Error> {
        let tx = self
            .state(|s| s.sockets.get(&socket).and_then(|e| e.cmd.clone()))
            .ok_or(Error::UnknownSocket(socket))?;
        send_cmd(&tx, SocketCmd::Silence(mode), socket).await?;
        self.wait_until(CONTROL_TIMEOUT, |s| {
            s.socket(socket)
                .is_none_or(|i| i.silence == mode || i.disconnect.is_some())
        })
        .await?;
        Ok(())
    }

    /// Silences (or un-silences) every connected socket, and sockets that connect
    /// later until called again.
    pub async fn silence_all(&self, mode: Option<Silence>) {
        self.silence_new_connections(mode);
        let ids: Vec<SocketId> = self.state(|s| s.sockets.keys().copied().collect());
        for id in ids {
            let _ = self.silence(id, mode).await;
        }
    }

    /// Sockets that connect from now on start silenced with this mode (`None`: normal).
    pub fn silence_new_connections(&self, mode: Option<Silence>) {
        self.shared.with_state(|s| s.faults.silence_new = mode);
    }

    /// Delays every `phx_reply` (heartbeat replies included) by this long; zero turns
    /// it off. Frames that follow a delayed reply in answer to the same message are
    /// delayed with it (a `stop_reply`'s `phx_close` still follows its reply).
    pub fn set_reply_delay(&self, delay: Duration) {
        self.shared.with_state(|s| s.faults.reply_delay = delay);
    }

    // ----- faults: connects -----

    /// Refuses the next `n` connection attempts this way (replacing any pending
    /// refusal), then accepts again. HTTP refusals count upgrade requests; TCP-level
    /// ones count TCP connections.
    pub fn refuse_next(&self, n: u64, how: Refusal) {
        self.shared.with_state(|s| {
            s.faults.refusal = (n > 0).then_some((n, how));
        });
    }

    /// Refuses every connection attempt this way until [`accept_connections`](Self::accept_connections).
    pub fn refuse_all(&self, how: Refusal) {
        self.refuse_next(u64::MAX, how);
    }

    /// Accepts connections again, and releases connections held by [`Refusal::Hang`]
    /// (they are closed).
    pub fn accept_connections(&self) {
        self.shared.with_state(|s| s.faults.refusal = None);
        self.shared.release_hung.notify_waiters();
    }

    // ----- faults: the server -----

    /// Stops gracefully, like Phoenix on SIGTERM: stops listening, closes every
    /// socket with 1012 (what Bandit sends) and waits for them (at most the close
    /// grace), then drops what is left. [`restart`](Self::restart) listens again.
    ///
    /// # Errors
    /// [`Error::Gone`], [`Error::Timeout`].
    pub async fn stop(&self) -> Result<(), Error> {
        self.stop_with(true).await
    }

    /// Stops abruptly, like a killed server: stops listening and drops every
    /// connection without a close frame.
    ///
    /// # Errors
    /// [`Error::Gone`], [`Error::Timeout`].
    pub async fn kill(&self) -> Result<(), Error> {
        self.stop_with(false).await
    }

    async fn stop_with(&self, graceful: bool) -> Result<(), Error> {
        let (done, rx) = oneshot::channel();
        self.control(Ctl::Stop { graceful, done }, rx).await
    }

    /// Listens again on the same port after a stop or kill (a no-op when running).
    ///
    /// # Errors
    /// [`Error::Bind`] when the port was taken meanwhile, [`Error::Gone`], [`Error::Timeout`].
    pub async fn restart(&self) -> Result<(), Error> {
        let (done, rx) = oneshot::channel();
        self.control(Ctl::Start { done }, rx)
            .await?
            .map(|_| ())
            .map_err(|source| Error::Bind {
                port: self.port,
                source,
            })
    }

    /// The command queue of a connected socket that has joined `topic`.
    fn joined_socket_cmd(
        &self,
        socket: SocketId,
        topic: &Topic,
    ) -> Result<mpsc::Sender<SocketCmd>, Error> {
        self.state(|s| {
            let info = s.socket(socket).filter(|i| i.disconnect.is_none());
            match info {
                None => Err(Error::UnknownSocket(socket)),
                Some(i) if !i.is_joined(topic.as_str()) => {
                    Err(Error::NotJoined(socket, topic.clone()))
                }
                Some(_) => s
                    .sockets
                    .get(&socket)
                    .and_then(|e| e.cmd.clone())
                    .ok_or(Error::UnknownSocket(socket)),
            }
        })
    }

    async fn control<T>(&self, cmd: Ctl, rx: oneshot::Receiver<T>) -> Result<T, Error> {
        tokio::time::timeout(CONTROL_TIMEOUT, self.ctl.send(cmd))
            .await
            .map_err(|_| Timeout(CONTROL_TIMEOUT))?
            .map_err(|_| Error::Gone)?;
        tokio::time::timeout(CONTROL_TIMEOUT, rx)
            .await
            .map_err(|_| Timeout(CONTROL_TIMEOUT))?
            .map_err(|_| Error::Gone)
    }
}

async fn send_cmd(tx: &mpsc::Sender<SocketCmd>, cmd: SocketCmd, id: SocketId) -> Result<(), Error> {
    match tokio::time::timeout(CONTROL_TIMEOUT, tx.send(cmd)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(Error::UnknownSocket(id)),
        Err(_) => Err(Error::Timeout(Timeout(CONTROL_TIMEOUT))),
    }
}
