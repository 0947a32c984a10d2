//! The listener, the HTTP upgrade and the server's control task.
//!
//! The server does not use `actix_web::HttpServer` (which owns its accept loop and
//! worker threads): it accepts TCP connections itself on the current thread and
//! hands each one to an actix-http `HttpService` serving an actix-web `App`. Owning
//! the accept loop is what allows TCP-level fault injection (closing or resetting a
//! connection before any HTTP byte, holding it unanswered) and dropping one
//! connection abruptly (its task is aborted, which closes the socket without a
//! websocket close frame).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_http::HttpService;
use actix_service::{map_config, Service, ServiceFactory};
use actix_web::dev::AppConfig;
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, Notify};

use crate::message::{Payload, Topic};
use crate::serializer::Serializer;

use super::behaviour::{ConnectFn, ConnectRequest, Route};
use super::command::SocketCmd;
use super::socket::SocketTask;
use super::state::{
    ConnEntry, DisconnectReason, Refusal, ServerEvent, ServerState, SocketEntry, SocketId,
    SocketInfo,
};
use super::HUNG_CONNECTION_MAX;

/// Capacity of each socket's command queue (broadcasts, pushes from the test).
pub(crate) const CMD_QUEUE: usize = 4096;

/// Settings fixed when the server is built.
pub(crate) struct Config {
    pub(crate) routes: Vec<Route>,
    pub(crate) connect: Option<ConnectFn>,
    pub(crate) max_channels: usize,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) send_timeout: Duration,
    pub(crate) max_frame_size: usize,
    pub(crate) max_connections: usize,
    pub(crate) close_grace: Duration,
    pub(crate) port: u16,
    /// The serializers by `vsn`.
    pub(crate) serializers: Vec<(String, Arc<dyn Serializer>)>,
    /// Answer the `phoenix` subprotocol when asked for it.
    pub(crate) answer_subprotocol: bool,
    /// Serve TLS with this configuration.
    #[cfg(feature = "testing-tls")]
    pub(crate) tls: Option<rustls::ServerConfig>,
}

/// The rustls server configuration (ring provider) for a certificate chain and a
/// PKCS#8 key, all DER.
#[cfg(feature = "testing-tls")]
pub(crate) fn tls_config(
    chain: Vec<Vec<u8>>,
    key: Vec<u8>,
) -> Result<rustls::ServerConfig, rustls::Error> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let chain: Vec<CertificateDer<'static>> = chain.into_iter().map(CertificateDer::from).collect();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key));
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
}

/// State shared by the handle, the control task and the socket tasks.
pub(crate) struct Shared {
    pub(crate) cfg: Config,
    state: Mutex<ServerState>,
    pub(crate) changed: watch::Sender<u64>,
    next_socket: AtomicU64,
    next_conn: AtomicU64,
    pub(crate) release_hung: Notify,
}

impl Shared {
    pub(crate) fn new(cfg: Config, record_frames: bool) -> Self {
        Shared {
            cfg,
            state: Mutex::new(ServerState::new(record_frames)),
            changed: watch::Sender::new(0),
            next_socket: AtomicU64::new(1),
            next_conn: AtomicU64::new(1),
            release_hung: Notify::new(),
        }
    }

    /// Changes the state and wakes the waiters.
    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&mut ServerState) -> R) -> R {
        let r = self.with_state_quiet(f);
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
        r
    }

    /// Reads or changes the state without waking the waiters (counters, settings).
    pub(crate) fn with_state_quiet<R>(&self, f: impl FnOnce(&mut ServerState) -> R) -> R {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    /// Sends a broadcast to every socket joined to the topic except `except`;
    /// returns how many sockets it was queued for.
    pub(crate) fn broadcast_local(
        &self,
        except: Option<SocketId>,
        topic: &Topic,
        event: &str,
        payload: &Payload,
    ) -> usize {
        let targets: Vec<_> = self.with_state_quiet(|s| {
            s.sockets
                .values()
                .filter(|e| Some(e.info.id) != except && e.info.channels.contains_key(topic))
                .filter_map(|e| e.cmd.clone())
                .collect()
        });
        let mut sent = 0;
        let mut dropped = 0;
        for tx in targets {
            let cmd = SocketCmd::Broadcast {
                topic: topic.clone(),
                event: event.to_owned(),
                payload: payload.clone(),
            };
            match tx.try_send(cmd) {
                Ok(()) => sent += 1,
                Err(_) => dropped += 1,
            }
        }
        if dropped > 0 {
            log::warn!("test server: broadcast on {topic} dropped for {dropped} socket(s) with a full queue");
            self.with_state_quiet(|s| s.counters.broadcasts_dropped += dropped);
        }
        sent
    }

    /// Aborts a socket's task and its TCP connection: no close frame.
    pub(crate) fn drop_socket(&self, id: SocketId) -> bool {
        self.with_state(|s| {
            let Some(entry) = s.sockets.get(&id) else {
                return false;
            };
            if let Some(task) = &entry.task {
                task.abort();
            }
            if let Some(conn) = entry.conn.and_then(|c| s.conns.remove(&c)) {
                conn.abort.abort();
            }
            s.remove_socket(id, DisconnectReason::Dropped)
        })
    }

    fn new_socket_id(&self) -> SocketId {
        SocketId(self.next_socket.fetch_add(1, Ordering::Relaxed))
    }
}

/// Commands from the handle to the control task.
pub(crate) enum Ctl {
    Stop {
        graceful: bool,
        done: oneshot::Sender<()>,
    },
    Start {
        done: oneshot::Sender<io::Result<SocketAddr>>,
    },
}

pub(crate) fn bind(port: u16) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
    socket.listen(1024)
}

/// The control task: accepts connections while running, obeys the handle, and
/// kills everything when every handle is gone.
pub(crate) async fn control(
    shared: Arc<Shared>,
    ctl: mpsc::Receiver<Ctl>,
    listener: TcpListener,
    ready: oneshot::Sender<Result<(), String>>,
) {
    let app = || {
        App::new()
            .app_data(web::Data::from(shared.clone()))
            .route("/socket/websocket", web::get().to(upgrade))
            .default_service(web::to(HttpResponse::NotFound))
    };
    let request_timeout = Duration::from_secs(5);
    #[cfg(feature = "testing-tls")]
    if let Some(tls) = shared.cfg.tls.clone() {
        let factory = HttpService::build()
            .client_request_timeout(request_timeout)
            .finish(map_config(app(), |_| AppConfig::default()))
            .rustls_0_23(tls);
        return serve(shared, ctl, listener, ready, factory).await;
    }
    let factory = HttpService::build()
        .client_request_timeout(request_timeout)
        .finish(map_config(app(), |_| AppConfig::default()))
        .tcp();
    serve(shared, ctl, listener, ready, factory).await
}

/// The accept loop of [`control`], over a plain or TLS HTTP service.
async fn serve<F>(
    shared: Arc<Shared>,
    mut ctl: mpsc::Receiver<Ctl>,
    listener: TcpListener,
    ready: oneshot::Sender<Result<(), String>>,
    factory: F,
) where
    F: ServiceFactory<TcpStream, Config = (), InitError = ()>,
    F::Service: 'static,
    <F::Service as Service<TcpStream>>::Future: 'static,
{
    let service = match factory.new_service(()).await {
        Ok(s) => std::rc::Rc::new(s),
        Err(()) => {
            let _ = ready.send(Err("the HTTP service failed to start".into()));
            return;
        }
    };
    // Restarts listen on the port first bound, not on the configured one (which may be 0).
    let mut port = shared.cfg.port;
    let mut listener = Some(listener);
    if let Some(addr) = listener.as_ref().and_then(|l| l.local_addr().ok()) {
        port = addr.port();
        shared.with_state(|s| {
            s.running = Some(addr);
            s.push_event(ServerEvent::Started(addr));
        });
    }
    let _ = ready.send(Ok(()));
    loop {
        tokio::select! {
            cmd = ctl.recv() => match cmd {
                None => {
                    drop(listener.take());
                    shutdown(&shared, false).await;
                    return;
                }
                Some(Ctl::Stop { graceful, done }) => {
                    if listener.take().is_some() {
                        shutdown(&shared, graceful).await;
                    }
                    let _ = done.send(());
                }
                Some(Ctl::Start { done }) => {
                    let result = match &listener {
                        Some(l) => l.local_addr(),
                        None => bind(port).and_then(|l| {
                            let addr = l.local_addr()?;
                            listener = Some(l);
                            shared.with_state(|s| {
                                s.running = Some(addr);
                                s.push_event(ServerEvent::Started(addr));
                            });
                            Ok(addr)
                        }),
                    };
                    let _ = done.send(result);
                }
            },
            accepted = accept(listener.as_ref()) => match accepted {
                Ok((stream, peer)) => on_accept(&shared, &service, stream, peer),
                Err(e) => {
                    log::warn!("test server: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
        }
    }
}

async fn accept(listener: Option<&TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

fn on_accept<S>(shared: &Arc<Shared>, service: &std::rc::Rc<S>, stream: TcpStream, peer: SocketAddr)
where
    S: Service<TcpStream> + 'static,
    S::Future: 'static,
{
    // Like Phoenix's HTTP servers (Cowboy, Bandit): no Nagle delay on small frames,
    // which would otherwise hold a burst of replies until the client's delayed ACK.
    let _ = stream.set_nodelay(true);
    let conn_id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let refusal = shared.with_state(|s| {
        s.counters.tcp_accepted += 1;
        if s.conns.len() >= shared.cfg.max_connections {
            log::warn!(
                "test server: {} connections open; closing a new one",
                s.conns.len()
            );
            return Some(Refusal::TcpClose);
        }
        let refusal = s.take_refusal(true);
        if let Some(r) = refusal {
            s.counters.refused += 1;
            s.push_event(ServerEvent::Refused(r));
        }
        refusal
    });
    match refusal {
        Some(Refusal::TcpClose) | Some(Refusal::Http(_)) => drop(stream),
        Some(Refusal::TcpReset) => {
            #[allow(deprecated)] // a zero linger does not block on drop
            let _ = stream.set_linger(Some(Duration::ZERO));
            drop(stream);
        }
        Some(Refusal::Hang) => {
            let shared2 = shared.clone();
            let task = actix_rt::spawn(async move {
                let _held = stream;
                tokio::select! {
                    _ = shared2.release_hung.notified() => {}
                    _ = tokio::time::sleep(HUNG_CONNECTION_MAX) => {}
                }
                shared2.with_state(|s| s.conns.remove(&conn_id));
            });
            shared.with_state(|s| {
                s.conns.insert(
                    conn_id,
                    ConnEntry {
                        peer,
                        abort: task.abort_handle(),
                        hung: true,
                    },
                )
            });
        }
        None => {
            let fut = service.call(stream);
            let shared2 = shared.clone();
            let task = actix_rt::spawn(async move {
                let _ = fut.await;
                shared2.with_state(|s| s.conns.remove(&conn_id));
            });
            shared.with_state(|s| {
                s.conns.insert(
                    conn_id,
                    ConnEntry {
                        peer,
                        abort: task.abort_handle(),
                        hung: false,
                    },
                )
            });
        }
    }
}

/// Stops serving: graceful closes every socket with 1012 and waits for the
/// connections to end (at most `close_grace`); then everything left is aborted.
pub(crate) async fn shutdown(shared: &Arc<Shared>, graceful: bool) {
    let (closers, hung) = shared.with_state(|s| {
        s.running = None;
        s.push_event(ServerEvent::Stopped { graceful });
        let hung: Vec<u64> = s
            .conns
            .iter()
            .filter(|(_, c)| c.hung)
            .map(|(id, _)| *id)
            .collect();
        let closers: Vec<_> = s.sockets.values().filter_map(|e| e.cmd.clone()).collect();
        (closers, hung)
    });
    shared.with_state(|s| {
        for id in hung {
            if let Some(c) = s.conns.remove(&id) {
                c.abort.abort();
            }
        }
    });
    if graceful {
        for tx in closers {
            let _ = tx.try_send(SocketCmd::Close(1012));
        }
        let mut rx = shared.changed.subscribe();
        let deadline = tokio::time::Instant::now() + shared.cfg.close_grace;
        loop {
            rx.borrow_and_update();
            if shared.with_state_quiet(|s| s.sockets.is_empty() && s.conns.is_empty()) {
                break;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                break;
            }
        }
    }
    let sockets: Vec<SocketId> = shared.with_state_quiet(|s| s.sockets.keys().copied().collect());
    for id in sockets {
        shared.drop_socket(id);
    }
    shared.with_state(|s| {
        for (_, c) in s.conns.drain() {
            c.abort.abort();
        }
    });
}

fn refuse(shared: &Shared, status: u16) -> HttpResponse {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
    shared.with_state(|s| {
        s.counters.refused += 1;
        s.push_event(ServerEvent::Refused(Refusal::Http(code.as_u16())));
    });
    HttpResponse::build(code).finish()
}

/// The auth token of the upgrade request, as Phoenix reads it
/// (`Phoenix.Transports.WebSocket`): the subprotocol starting with
/// `base64url.bearer.phx.`, the rest decoded as standard base64 without padding.
/// `Err` when it is not base64 (Phoenix's `Base.decode64!` raises: HTTP 400 here).
/// Non-UTF-8 token bytes are read lossily.
fn auth_token(req: &HttpRequest) -> Result<Option<String>, ()> {
    let encoded = req
        .headers()
        .get_all(actix_web::http::header::SEC_WEBSOCKET_PROTOCOL)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find_map(|p| p.strip_prefix(crate::auth::AUTH_TOKEN_PREFIX));
    match encoded {
        None => Ok(None),
        Some(encoded) => crate::auth::decode_unpadded(encoded)
            .map(|bytes| Some(String::from_utf8_lossy(&bytes).into_owned()))
            .ok_or(()),
    }
}

/// The websocket endpoint, `/socket/websocket`.
async fn upgrade(req: HttpRequest, body: web::Payload, shared: web::Data<Shared>) -> HttpResponse {
    let shared = shared.into_inner();
    if let Some(Refusal::Http(status)) = shared.with_state_quiet(|s| s.take_refusal(false)) {
        return refuse(&shared, status);
    }
    let params: Vec<(String, String)> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    // Phoenix takes a missing vsn for 1.0.0, and answers a vsn none of its serializers
    // accepts with 403 and an empty body (its connect fails).
    let vsn = params
        .iter()
        .find(|(k, _)| k == "vsn")
        .map_or("1.0.0", |(_, v)| v.as_str())
        .to_owned();
    let Some(serializer) = shared
        .cfg
        .serializers
        .iter()
        .find(|(v, _)| *v == vsn)
        .map(|(_, s)| s.clone())
    else {
        log::debug!("test server: refusing vsn {vsn:?}: no serializer for it");
        return refuse(&shared, 403);
    };
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let auth_token = match auth_token(&req) {
        Ok(token) => token,
        Err(()) => {
            log::debug!("test server: refusing an auth token that is not base64");
            return refuse(&shared, 400);
        }
    };
    let request = ConnectRequest {
        vsn,
        params,
        headers,
        auth_token,
    };
    if let Some(accept) = &shared.cfg.connect {
        let ok = catch_unwind(AssertUnwindSafe(|| accept(&request))).unwrap_or(false);
        if !ok {
            return refuse(&shared, 403);
        }
    }
    let protocols: &[&str] = if shared.cfg.answer_subprotocol {
        &[crate::auth::PHOENIX_SUBPROTOCOL]
    } else {
        &[]
    };
    let (response, session, stream) = match actix_ws::handle_with_protocols(&req, body, protocols) {
        Ok(parts) => parts,
        Err(e) => return HttpResponse::from_error(e),
    };
    let stream = stream
        .max_frame_size(shared.cfg.max_frame_size)
        .aggregate_continuations()
        .max_continuation_size(shared.cfg.max_frame_size);
    let id = shared.new_socket_id();
    let peer = req.peer_addr();
    let (tx, rx) = mpsc::channel(CMD_QUEUE);
    let ConnectRequest {
        vsn,
        params,
        headers,
        auth_token,
    } = request;
    let silence = shared.with_state(|s| {
        let silence = s.faults.silence_new;
        let conn = s
            .conns
            .iter()
            .find(|(_, c)| Some(c.peer) == peer)
            .map(|(id, _)| *id);
        s.counters.accepted += 1;
        s.sockets.insert(
            id,
            SocketEntry {
                info: SocketInfo {
                    id,
                    vsn: vsn.clone(),
                    params: params.clone(),
                    headers,
                    auth_token,
                    peer,
                    channels: Default::default(),
                    silence,
                    frames_received: 0,
                    frames_sent: 0,
                    connected_at: std::time::Instant::now(),
                    disconnect: None,
                },
                frames: Default::default(),
                cmd: Some(tx),
                task: None,
                conn,
            },
        );
        s.push_event(ServerEvent::Connected(id));
        silence
    });
    log::debug!("test server: {id} connected ({vsn})");
    let task = SocketTask::new(
        id,
        serializer,
        shared.clone(),
        session,
        stream,
        rx,
        params,
        silence,
    );
    let handle = actix_rt::spawn(task.run());
    shared.with_state_quiet(|s| {
        if let Some(e) = s.sockets.get_mut(&id) {
            e.task = Some(handle.abort_handle());
        }
    });
    response
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Shared>();
    is::<HashMap<u64, ConnEntry>>();
}
