//! Client configuration.
//!
//! [`Config`] has a [`Default`] and by-value setters; it is validated when the client
//! connects, and a bad value gives a [`ConfigError`], never a panic.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use url::Url;

use crate::auth::AuthToken;
use crate::backoff::Backoff;
use crate::error::ConfigError;
use crate::serializer::{Serializer, V2};

/// Connect parameters: sent as the socket URL's query string at every connect.
///
/// Built by [`Config::param`] and [`Config::params_fn`], in any order: static params
/// and a closure combine (the closure's value wins on a duplicate key).
#[derive(Clone)]
#[non_exhaustive]
pub enum ConnectParams {
    /// The same params at every connect.
    Static(Vec<(String, String)>),
    /// Params computed at every connect, e.g. to fetch a fresh token.
    Dynamic(Arc<dyn Fn() -> Vec<(String, String)> + Send + Sync>),
    /// Static params plus params computed at every connect: the static ones (less
    /// those whose key the closure returns) then the closure's, so the closure's value
    /// wins on a duplicate key.
    Combined(
        Vec<(String, String)>,
        Arc<dyn Fn() -> Vec<(String, String)> + Send + Sync>,
    ),
}

impl ConnectParams {
    /// The params for one connect.
    ///
    /// # Panics
    /// If the closure of [`ConnectParams::Dynamic`] or [`ConnectParams::Combined`]
    /// panics (the client itself never lets that panic through: it reports a failed
    /// connect and retries).
    pub fn resolve(&self) -> Vec<(String, String)> {
        match self {
            ConnectParams::Static(p) => p.clone(),
            ConnectParams::Dynamic(f) => f(),
            ConnectParams::Combined(fixed, f) => combine(fixed, f()),
        }
    }

    /// The params for one connect, or the message of the closure's panic.
    pub(crate) fn try_resolve(&self) -> Result<Vec<(String, String)>, String> {
        match self {
            ConnectParams::Static(p) => Ok(p.clone()),
            ConnectParams::Dynamic(f) => catch_panic(|| f()),
            ConnectParams::Combined(fixed, f) => catch_panic(|| f()).map(|d| combine(fixed, d)),
        }
    }

    /// The static params, and the closure if any.
    fn into_parts(self) -> (Vec<(String, String)>, Option<ParamsFn>) {
        match self {
            ConnectParams::Static(p) => (p, None),
            ConnectParams::Dynamic(f) => (Vec::new(), Some(f)),
            ConnectParams::Combined(p, f) => (p, Some(f)),
        }
    }

    fn from_parts(fixed: Vec<(String, String)>, f: Option<ParamsFn>) -> Self {
        match f {
            None => ConnectParams::Static(fixed),
            Some(f) if fixed.is_empty() => ConnectParams::Dynamic(f),
            Some(f) => ConnectParams::Combined(fixed, f),
        }
    }
}

/// A params closure.
type ParamsFn = Arc<dyn Fn() -> Vec<(String, String)> + Send + Sync>;

/// Static params less the keys the closure returned, then the closure's params.
fn combine(fixed: &[(String, String)], dynamic: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = fixed
        .iter()
        .filter(|(k, _)| !dynamic.iter().any(|(d, _)| d == k))
        .cloned()
        .collect();
    params.extend(dynamic);
    params
}

/// Runs a user closure, turning its panic into the panic's message.
pub(crate) fn catch_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|panic| {
        panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(a panic without a message)".to_owned())
    })
}

/// Where the auth token of each connect comes from (see [`Config::auth_token`]).
#[derive(Clone)]
#[non_exhaustive]
pub enum AuthTokenSource {
    /// The same token at every connect.
    Static(AuthToken),
    /// A token computed at every connect, e.g. a refreshed one.
    Dynamic(Arc<dyn Fn() -> AuthToken + Send + Sync>),
}

impl AuthTokenSource {
    /// The token of one connect, or the message of the closure's panic.
    pub(crate) fn try_resolve(&self) -> Result<AuthToken, String> {
        match self {
            AuthTokenSource::Static(t) => Ok(t.clone()),
            AuthTokenSource::Dynamic(f) => catch_panic(|| f()),
        }
    }
}

impl fmt::Debug for AuthTokenSource {
    /// Never the token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthTokenSource::Static(t) => f.debug_tuple("Static").field(t).finish(),
            AuthTokenSource::Dynamic(_) => f.write_str("Dynamic(<closure>)"),
        }
    }
}

impl Default for ConnectParams {
    fn default() -> Self {
        ConnectParams::Static(Vec::new())
    }
}

impl fmt::Debug for ConnectParams {
    /// Keys only: values are often secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectParams::Static(p) => {
                let keys: Vec<String> = p.iter().map(|(k, _)| format!("{k}=<redacted>")).collect();
                f.debug_tuple("Static").field(&keys).finish()
            }
            ConnectParams::Dynamic(_) => f.write_str("Dynamic(<closure>)"),
            ConnectParams::Combined(p, _) => {
                let keys: Vec<String> = p.iter().map(|(k, _)| format!("{k}=<redacted>")).collect();
                f.debug_tuple("Combined")
                    .field(&keys)
                    .field(&format_args!("<closure>"))
                    .finish()
            }
        }
    }
}

/// When to retry a join that failed. Build it from the default with its setters:
///
/// ```
/// use actix_slipstream::RetryPolicy;
///
/// let retry = RetryPolicy::default().rejected_join_retries(2).rejoin_crashed(false);
/// assert_eq!(retry.rejected_join_retries, 2);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// How many times a join rejected by the channel (`{:error, reason}` from
    /// `join/3`) is retried with the rejoin backoff before the topic is dropped.
    /// Default 0: a rejected join is reported once (an authorization failure does not
    /// become a retry loop).
    pub rejected_join_retries: u32,
    /// Whether a join answered "unmatched topic" (no channel route) is retried.
    /// Default `false`.
    pub retry_unmatched_topic: bool,
    /// Whether a join that timed out is retried with the rejoin backoff. Default `true`.
    pub retry_join_timeout: bool,
    /// Whether a channel that crashed (`phx_error`) is rejoined with the rejoin
    /// backoff. Default `true`.
    pub rejoin_crashed: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            rejected_join_retries: 0,
            retry_unmatched_topic: false,
            retry_join_timeout: true,
            rejoin_crashed: true,
        }
    }
}

impl RetryPolicy {
    /// Sets [`rejected_join_retries`](#structfield.rejected_join_retries).
    pub fn rejected_join_retries(mut self, n: u32) -> Self {
        self.rejected_join_retries = n;
        self
    }

    /// Sets [`retry_unmatched_topic`](#structfield.retry_unmatched_topic).
    pub fn retry_unmatched_topic(mut self, retry: bool) -> Self {
        self.retry_unmatched_topic = retry;
        self
    }

    /// Sets [`retry_join_timeout`](#structfield.retry_join_timeout).
    pub fn retry_join_timeout(mut self, retry: bool) -> Self {
        self.retry_join_timeout = retry;
        self
    }

    /// Sets [`rejoin_crashed`](#structfield.rejoin_crashed).
    pub fn rejoin_crashed(mut self, rejoin: bool) -> Self {
        self.rejoin_crashed = rejoin;
        self
    }
}

/// TLS settings for `wss://` URLs.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct TlsConfig {
    /// Extra trusted root certificates (DER). When empty, the Mozilla roots from
    /// `webpki-roots` are trusted. When set, only these roots are trusted.
    pub root_certificates: Vec<Vec<u8>>,
}

impl TlsConfig {
    /// The default: the Mozilla roots.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts only these root certificates (DER) instead of the Mozilla roots.
    pub fn root_certificates(mut self, roots: Vec<Vec<u8>>) -> Self {
        self.root_certificates = roots;
        self
    }
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("root_certificates", &self.root_certificates.len())
            .finish()
    }
}

/// How the client connects, keeps the connection alive, and retries.
///
/// ```
/// use std::time::Duration;
/// use actix_slipstream::{Backoff, Config};
///
/// let config = Config::new("ws://127.0.0.1:4000/socket")
///     .param("token", "secret")
///     .heartbeat(Duration::from_secs(30), Duration::from_secs(10))
///     .reconnect_backoff(Backoff::from_millis(&[100, 1000, 5000]));
/// assert!(config.validate().is_ok());
/// // Debug output never shows param values or header values.
/// assert!(!format!("{config:?}").contains("secret"));
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// The socket URL, `ws[s]://host[:port]/socket` or `.../socket/websocket`.
    /// Default `ws://localhost:4000/socket`.
    pub url: String,
    /// Connect params (query string). Default none.
    pub params: ConnectParams,
    /// Extra HTTP headers on the upgrade request. Default none.
    pub headers: Vec<(String, String)>,
    /// The auth token sent in the `Sec-WebSocket-Protocol` header (see
    /// [`Config::auth_token`]). Default none.
    pub auth_token: Option<AuthTokenSource>,
    /// The wire format, whose `vsn` is sent as a connect param. Default
    /// [`V2`](crate::codec::V2) (needed for binary payloads); see
    /// [`Config::serializer`].
    pub serializer: Arc<dyn Serializer>,
    /// Time between heartbeats. Default 30 s (phoenix.js). Phoenix closes a socket
    /// after 60 s without client frames, so keep it well under that. Zero disables
    /// heartbeats (and dead-link detection).
    pub heartbeat_interval: Duration,
    /// How long a heartbeat may go unanswered before the connection is considered
    /// dead, closed and reconnected. Default 10 s. Zero disables the check.
    pub heartbeat_timeout: Duration,
    /// Delays between reconnect attempts. Default: Phoenix's list with 20% jitter.
    pub reconnect_backoff: Backoff,
    /// Delays between reconnect attempts while the server's port refuses TCP
    /// connections ([`ConnectError::ConnectionRefused`](crate::ConnectError::ConnectionRefused)):
    /// a node restarting. Default: [`Backoff::refused_reconnect`] (every ~200 ms for
    /// about ten seconds, then slower). Its attempts are counted apart from
    /// `reconnect_backoff`'s, and both start over once a connection is healthy.
    ///
    /// `None` (the default) stands for [`Backoff::refused_reconnect`], one list shared
    /// by every client rather than a copy of its ~60 delays in each configuration.
    pub reconnect_refused_backoff: Option<Backoff>,
    /// Delays between rejoin attempts of a topic. Default: Slipstream's list with 20% jitter.
    pub rejoin_backoff: Backoff,
    /// Which failed joins are retried. See [`RetryPolicy`].
    pub retry: RetryPolicy,
    /// Longest wait for the TCP connect, TLS and websocket upgrade. Default 10 s.
    pub connect_timeout: Duration,
    /// Default reply timeout of a push, counted from when the push is made
    /// (buffered time included). Default 10 s (phoenix.js).
    pub push_timeout: Duration,
    /// Reply timeout of a join. After it, a `phx_leave` is sent and the join is
    /// retried per [`RetryPolicy::retry_join_timeout`]. Default 10 s.
    pub join_timeout: Duration,
    /// Longest time one write (or a batch of writes) may block before the
    /// connection is considered dead. Default 10 s.
    pub write_timeout: Duration,
    /// Largest inbound websocket message accepted, in bytes (fragments included).
    /// A larger one closes the connection (it reconnects). Default 8 MiB.
    pub max_frame_size: usize,
    /// Most pushes buffered per topic while it is not joined. A push beyond it fails
    /// at once with [`PushError::BufferFull`](crate::PushError::BufferFull). Default 1024.
    pub max_buffered_pushes: usize,
    /// The byte budget of user pushes in the socket writer's queue (frames produced
    /// while a write is in progress wait there and leave together in the next
    /// write). A push that finds `send_buffer` bytes or more queued fails at once
    /// with [`PushError::BufferFull`](crate::PushError::BufferFull). Default 4 MiB.
    ///
    /// Frames the client sends by itself (`phx_join`, `phx_leave`, heartbeats, the
    /// close frame) are always queued, whatever the budget: a rejoin of any size goes
    /// out. Their volume is bounded by the topic registry (at most one join or leave
    /// in flight per topic) and by one heartbeat per interval. Pongs answering the
    /// server's pings are queued only within the budget (a ping flood cannot grow the
    /// queue; an unanswered ping is allowed by RFC 6455 when a later one is answered).
    pub send_buffer: usize,
    /// TLS settings for `wss://`.
    pub tls: TlsConfig,
    /// Whether the client rejoins every topic of the registry each time the socket
    /// connects, before [`handle_connect`](crate::SlipstreamActor::handle_connect)
    /// runs. Default `true`. Turn it off to manage rejoins yourself (in
    /// `handle_connect`, with [`Socket::rejoin`](crate::Socket::rejoin) or
    /// [`Socket::rejoin_registered`](crate::Socket::rejoin_registered)); joins asked
    /// for while disconnected are sent at the connect either way.
    pub rejoin_on_connect: bool,
    /// Whether reads are coalesced while the server floods the socket (Linux; elsewhere
    /// it has no effect). Default `true`. Once more than 16 KiB arrive within a
    /// millisecond, the kernel is asked (`SO_RCVLOWAT`) to wake the client only when
    /// 32 KiB are queued: the client and the server it shares a machine with wake up
    /// a few times per millisecond instead of every few frames. The mark is lowered
    /// again when a millisecond passes without a read, and at once when the client
    /// writes (a push, a heartbeat), so the reply to a request is never held back.
    /// Below that rate nothing changes; a server push that arrives right after a
    /// flood can wait about 1–3 ms more (one millisecond window, rounded up by the
    /// runtime's timer). Turn it off when those milliseconds count more than CPU.
    pub coalesce_reads: bool,
}

/// The default wire format: one [`V2`] shared by every configuration that keeps it,
/// rather than an allocation per client.
fn default_serializer() -> Arc<dyn Serializer> {
    static DEFAULT: std::sync::LazyLock<Arc<dyn Serializer>> =
        std::sync::LazyLock::new(|| Arc::new(V2));
    Arc::clone(&DEFAULT)
}

impl Default for Config {
    fn default() -> Self {
        Config {
            url: "ws://localhost:4000/socket".to_owned(),
            params: ConnectParams::default(),
            headers: Vec::new(),
            auth_token: None,
            serializer: default_serializer(),
            heartbeat_interval: Duration::from_secs(30),
            heartbeat_timeout: Duration::from_secs(10),
            reconnect_backoff: Backoff::phoenix_reconnect(),
            reconnect_refused_backoff: None,
            rejoin_backoff: Backoff::phoenix_rejoin(),
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(10),
            push_timeout: Duration::from_secs(10),
            join_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            max_frame_size: 8 * 1024 * 1024,
            max_buffered_pushes: 1024,
            send_buffer: 4 * 1024 * 1024,
            tls: TlsConfig::default(),
            rejoin_on_connect: true,
            coalesce_reads: true,
        }
    }
}

impl fmt::Debug for Config {
    /// Param and header values are redacted: they often carry tokens.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(k, _)| format!("{k}: <redacted>"))
            .collect();
        f.debug_struct("Config")
            .field("url", &crate::url::redact_url(&self.url))
            .field("params", &self.params)
            .field("headers", &headers)
            .field("auth_token", &self.auth_token)
            .field("serializer", &self.serializer)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("heartbeat_timeout", &self.heartbeat_timeout)
            .field("reconnect_backoff", &self.reconnect_backoff)
            .field("reconnect_refused_backoff", &self.reconnect_refused_backoff)
            .field("rejoin_backoff", &self.rejoin_backoff)
            .field("retry", &self.retry)
            .field("connect_timeout", &self.connect_timeout)
            .field("push_timeout", &self.push_timeout)
            .field("join_timeout", &self.join_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("max_frame_size", &self.max_frame_size)
            .field("max_buffered_pushes", &self.max_buffered_pushes)
            .field("send_buffer", &self.send_buffer)
            .field("rejoin_on_connect", &self.rejoin_on_connect)
            .field("coalesce_reads", &self.coalesce_reads)
            .field("tls", &self.tls)
            .finish()
    }
}

impl Config {
    /// The default configuration for the socket at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Config {
            url: url.into(),
            ..Config::default()
        }
    }

    /// Adds a static connect param.
    ///
    /// Static params and a [`params_fn`](Config::params_fn) closure combine, whatever
    /// the order of the calls: each connect sends the static params, then the
    /// closure's; on a key both give, the closure's value wins (the static one is not
    /// sent).
    pub fn param(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let (mut fixed, f) = std::mem::take(&mut self.params).into_parts();
        // Exactly the params given: a configuration lives as long as its client, and
        // a list grown by doubling would keep room for four.
        fixed.reserve_exact(1);
        fixed.push((key.into(), value.into()));
        self.params = ConnectParams::from_parts(fixed, f);
        self
    }

    /// Sets a closure that computes connect params at every connect (so a reconnect
    /// can carry a refreshed token). It replaces an earlier closure; static params
    /// set with [`param`](Config::param), before or after, are kept and sent too
    /// (the closure's value wins on a key both give).
    ///
    /// It runs on the client's thread, at every connect. While it runs, this client
    /// (and every actor on the same arbiter) is blocked: no frame is read, no
    /// heartbeat is sent or checked, no timer fires. Keep it fast: return a token kept
    /// fresh elsewhere (e.g. read from an `Arc<RwLock<String>>` that a task of yours
    /// refreshes) rather than fetching one over the network here.
    ///
    /// If it panics, the panic is caught: the connect fails with
    /// [`ConnectError::Params`](crate::ConnectError::Params) (logged at error level,
    /// without param values), and the default
    /// [`handle_disconnect`](crate::SlipstreamActor::handle_disconnect) retries with the
    /// reconnect backoff.
    pub fn params_fn(
        mut self,
        f: impl Fn() -> Vec<(String, String)> + Send + Sync + 'static,
    ) -> Self {
        let (fixed, _) = std::mem::take(&mut self.params).into_parts();
        self.params = ConnectParams::from_parts(fixed, Some(Arc::new(f)));
        self
    }

    /// Sends this token at every connect in the `Sec-WebSocket-Protocol` header, as
    /// phoenix.js 1.8 does with its `authToken` option: `phoenix,
    /// base64url.bearer.phx.<token in base64>`. Phoenix hands it to the socket's
    /// `connect/3` as `connect_info[:auth_token]` when the socket is declared with
    /// `auth_token: true`, and answers with the subprotocol `phoenix`. Unlike a connect
    /// param, the token is not in the URL, so it stays out of access logs.
    ///
    /// An empty token is not sent. The token never appears in `Debug` output or logs.
    /// If the server answers without the `phoenix` subprotocol, the connect fails with
    /// [`ConnectError::Subprotocol`](crate::ConnectError::Subprotocol) (retried like
    /// other connect failures).
    ///
    /// ```
    /// use actix_slipstream::Config;
    ///
    /// let config = Config::new("ws://127.0.0.1:4000/socket").auth_token("s3cret");
    /// assert!(!format!("{config:?}").contains("s3cret"));
    /// ```
    pub fn auth_token(mut self, token: impl Into<AuthToken>) -> Self {
        self.auth_token = Some(AuthTokenSource::Static(token.into()));
        self
    }

    /// Sets a closure that computes the auth token (see [`auth_token`](Config::auth_token))
    /// at every connect, so a reconnect carries a refreshed one. Like
    /// [`params_fn`](Config::params_fn), it runs on the client's thread: keep it fast.
    ///
    /// If it panics, the panic is caught: the connect fails with
    /// [`ConnectError::AuthToken`](crate::ConnectError::AuthToken) (logged at error
    /// level, without the token), and the default
    /// [`handle_disconnect`](crate::SlipstreamActor::handle_disconnect) retries with the
    /// reconnect backoff.
    pub fn auth_token_fn<T: Into<AuthToken>>(
        mut self,
        f: impl Fn() -> T + Send + Sync + 'static,
    ) -> Self {
        self.auth_token = Some(AuthTokenSource::Dynamic(Arc::new(move || f().into())));
        self
    }

    /// Adds an HTTP header to the upgrade request.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.reserve_exact(1); // as for params: no spare room kept per client
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Chooses the wire format: [`V2`](crate::codec::V2) (the default),
    /// [`V1Json`](crate::codec::V1Json) for servers that speak only V1, or a
    /// [`Serializer`] of your own for a server configured with a custom one. Its
    /// [`vsn`](Serializer::vsn) is sent as the `vsn` connect param.
    ///
    /// ```
    /// use actix_slipstream::codec::V1Json;
    /// use actix_slipstream::Config;
    ///
    /// let config = Config::new("ws://127.0.0.1:4000/socket").serializer(V1Json);
    /// assert_eq!(config.connect_url().unwrap().query(), Some("vsn=1.0.0"));
    /// ```
    pub fn serializer(mut self, serializer: impl Serializer) -> Self {
        self.serializer = Arc::new(serializer);
        self
    }

    /// Sets the heartbeat interval and timeout (zero disables either).
    pub fn heartbeat(mut self, interval: Duration, timeout: Duration) -> Self {
        self.heartbeat_interval = interval;
        self.heartbeat_timeout = timeout;
        self
    }

    /// Sets the reconnect backoff.
    pub fn reconnect_backoff(mut self, backoff: Backoff) -> Self {
        self.reconnect_backoff = backoff;
        self
    }

    /// Sets the reconnect backoff used while the server's port refuses connections
    /// (see [`Config::reconnect_refused_backoff`](Config#structfield.reconnect_refused_backoff)).
    /// Set it to the same policy as [`Config::reconnect_backoff`] to treat a refused
    /// port like any other failure.
    pub fn reconnect_refused_backoff(mut self, backoff: Backoff) -> Self {
        self.reconnect_refused_backoff = Some(backoff);
        self
    }

    /// Sets the rejoin backoff.
    pub fn rejoin_backoff(mut self, backoff: Backoff) -> Self {
        self.rejoin_backoff = backoff;
        self
    }

    /// Sets the join retry policy.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the default push timeout.
    pub fn push_timeout(mut self, timeout: Duration) -> Self {
        self.push_timeout = timeout;
        self
    }

    /// Sets the join timeout.
    pub fn join_timeout(mut self, timeout: Duration) -> Self {
        self.join_timeout = timeout;
        self
    }

    /// Sets the write timeout.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// Sets the largest inbound message size.
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = bytes;
        self
    }

    /// Sets the per-topic bound of buffered pushes.
    pub fn max_buffered_pushes(mut self, n: usize) -> Self {
        self.max_buffered_pushes = n;
        self
    }

    /// Sets the byte budget of user pushes in the writer queue (see [`Config::send_buffer`](#structfield.send_buffer)).
    pub fn send_buffer(mut self, bytes: usize) -> Self {
        self.send_buffer = bytes;
        self
    }

    /// Trusts these root certificates (DER) instead of the Mozilla roots.
    pub fn tls_root_certificates(mut self, roots: Vec<Vec<u8>>) -> Self {
        self.tls.root_certificates = roots;
        self
    }

    /// Sets the TLS settings.
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = tls;
        self
    }

    /// Sets whether the registry is rejoined at each connect (see
    /// [`Config::rejoin_on_connect`](#structfield.rejoin_on_connect)).
    pub fn rejoin_on_connect(mut self, rejoin: bool) -> Self {
        self.rejoin_on_connect = rejoin;
        self
    }

    /// Sets whether reads are coalesced during floods (see
    /// [`Config::coalesce_reads`](#structfield.coalesce_reads)).
    pub fn coalesce_reads(mut self, coalesce: bool) -> Self {
        self.coalesce_reads = coalesce;
        self
    }

    /// Checks the settings and builds the URL of one connect (params resolved now).
    ///
    /// # Errors
    /// [`ConfigError`] naming the first bad setting.
    pub fn connect_url(&self) -> Result<Url, ConfigError> {
        self.validate()?;
        crate::url::socket_url(&self.url, &self.params.resolve(), self.serializer.vsn())
    }

    /// Checks the settings without connecting.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first bad setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |name: &'static str, reason: &str| {
            Err(ConfigError::InvalidSetting {
                name,
                reason: reason.to_owned(),
            })
        };
        crate::url::socket_url(&self.url, &[], self.serializer.vsn())?;
        if self.url.starts_with("wss:") && !cfg!(feature = "rustls") {
            return invalid("url", "wss:// needs the `rustls` feature");
        }
        if self.connect_timeout.is_zero() {
            return invalid("connect_timeout", "must be more than zero");
        }
        if self.push_timeout.is_zero() {
            return invalid("push_timeout", "must be more than zero");
        }
        if self.join_timeout.is_zero() {
            return invalid("join_timeout", "must be more than zero");
        }
        if self.write_timeout.is_zero() {
            return invalid("write_timeout", "must be more than zero");
        }
        if self.max_frame_size < 64 {
            return invalid("max_frame_size", "must be at least 64 bytes");
        }
        if self.send_buffer == 0 {
            return invalid("send_buffer", "must be at least 1");
        }
        for (name, _) in &self.headers {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                return invalid("headers", "a header name must be a non-empty token");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_param_and_header_values() {
        let c = Config::new("ws://h/socket?token=abc")
            .param("token", "s3cret")
            .header("authorization", "Bearer xyz");
        let s = format!("{c:?}");
        assert!(
            !s.contains("s3cret") && !s.contains("xyz") && !s.contains("abc"),
            "{s}"
        );
        assert!(s.contains("token=<redacted>"));
    }

    #[test]
    fn debug_redacts_user_info_and_dynamic_params() {
        let c = Config::new("ws://me:s3cret@h/socket")
            .params_fn(|| vec![("token".into(), "s3cret".into())])
            .header("x-api-key", "s3cret");
        let s = format!("{c:?}");
        assert!(!s.contains("s3cret"), "{s}");
        assert!(s.contains("Dynamic(<closure>)") && s.contains("x-api-key: <redacted>"));
    }

    #[test]
    fn static_params_and_a_closure_combine_in_either_order() {
        let closure = || vec![("token".to_owned(), "fresh".to_owned())];
        let before = Config::new("ws://h/socket")
            .param("room", "1")
            .param("token", "stale")
            .params_fn(closure);
        let after = Config::new("ws://h/socket")
            .params_fn(closure)
            .param("room", "1")
            .param("token", "stale");
        for c in [before, after] {
            assert_eq!(
                c.connect_url().unwrap().query(),
                Some("room=1&token=fresh&vsn=2.0.0")
            );
            let s = format!("{c:?}");
            assert!(!s.contains("stale") && !s.contains("fresh"), "{s}");
            assert!(
                s.contains("Combined([\"room=<redacted>\", \"token=<redacted>\"], <closure>)"),
                "{s}"
            );
        }
    }

    #[test]
    fn a_second_params_closure_replaces_the_first_and_keeps_static_params() {
        let c = Config::new("ws://h/socket")
            .params_fn(|| vec![("a".into(), "1".into())])
            .param("s", "x")
            .params_fn(|| vec![("b".into(), "2".into())]);
        assert_eq!(c.connect_url().unwrap().query(), Some("s=x&b=2&vsn=2.0.0"));
    }

    #[test]
    fn debug_redacts_auth_tokens() {
        let c = Config::new("ws://h/socket").auth_token("s3cret");
        let s = format!("{c:?}");
        assert!(
            !s.contains("s3cret") && s.contains("auth_token: Some(Static(<redacted>))"),
            "{s}"
        );
        let c = Config::new("ws://h/socket").auth_token_fn(|| "s3cret");
        let s = format!("{c:?}");
        assert!(
            !s.contains("s3cret") && s.contains("Dynamic(<closure>)"),
            "{s}"
        );
    }

    #[test]
    fn zero_timeouts_and_bad_urls_are_config_errors() {
        assert!(Config::new("ws://h/socket")
            .push_timeout(Duration::ZERO)
            .validate()
            .is_err());
        assert!(Config::new("http://h/socket").validate().is_err());
        assert!(Config::new("ws://h/socket")
            .header("bad name", "v")
            .validate()
            .is_err());
        assert!(Config::new("ws://h/socket").validate().is_ok());
    }

    #[test]
    fn params_closure_runs_at_every_connect() {
        let n = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let n2 = n.clone();
        let c = Config::new("ws://h/socket").params_fn(move || {
            let i = n2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            vec![("token".into(), format!("t{i}"))]
        });
        assert_eq!(c.connect_url().unwrap().query(), Some("token=t0&vsn=2.0.0"));
        assert_eq!(c.connect_url().unwrap().query(), Some("token=t1&vsn=2.0.0"));
    }
}
