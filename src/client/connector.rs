//! Opening websockets: the awc clients shared by the clients of a thread, the bound on
//! handshakes in flight, and the mapping of awc's errors to [`ConnectError`].

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use actix_codec::Framed;
use awc::error::WsClientError;
use awc::ws;
use awc::BoxedSocket;

use crate::config::Config;
use crate::engine::ConnectError;
use crate::error::ConfigError;

/// Most websocket handshakes in flight at once on one thread.
const MAX_HANDSHAKES: usize = 64;

thread_local! {
    /// awc clients shared by the clients of this thread, by (wss, connect timeout).
    static HTTP_CLIENTS: RefCell<Vec<((bool, Duration), awc::Client)>> = const { RefCell::new(Vec::new()) };
    static HANDSHAKES: Rc<tokio::sync::Semaphore> = Rc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
}

/// An upgraded websocket connection.
pub(crate) type Upgraded = Framed<BoxedSocket, ws::Codec>;

/// The awc client for this configuration: one shared by every client of this thread
/// with the same settings (its connector and TLS setup), or one of its own for
/// custom roots.
pub(crate) fn http_client(config: &Config) -> Result<awc::Client, ConfigError> {
    let wss = config.url.starts_with("wss:");
    let key = (wss, config.connect_timeout);
    let shareable = config.tls.root_certificates.is_empty();
    if shareable {
        if let Some(c) = HTTP_CLIENTS.with(|m| {
            m.borrow()
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, c)| c.clone())
        }) {
            return Ok(c);
        }
    }
    #[allow(unused_mut)]
    let mut connector = awc::Connector::new()
        .timeout(config.connect_timeout)
        .limit(0); // no cap on simultaneous sockets per shared client
                   // TLS (and its root store) only for wss:// sockets; a ws:// URL never does TLS.
    #[cfg(feature = "rustls")]
    if wss {
        connector = connector.rustls_0_23(super::transport::tls::client_config(&config.tls)?);
    }
    // No `max_http_version` here: awc's builder rebuilds the connector's TLS config
    // for it, which drops ours (no TLS at all, or other roots). Websockets are HTTP/1.1
    // anyway, and our rustls config offers only `http/1.1` through ALPN.
    let client = awc::Client::builder()
        .connector(connector)
        .timeout(config.connect_timeout)
        .finish();
    if shareable {
        HTTP_CLIENTS.with(|m| m.borrow_mut().push((key, client.clone())));
    }
    Ok(client)
}

/// The URL of one connect: the settings checked, the params resolved (a panic in the
/// user's params closure is a failed connect, retried with the backoff, never the end
/// of the actor).
pub(crate) fn connect_url(config: &Config) -> Result<url::Url, ConnectError> {
    config.validate().map_err(ConnectError::Config)?;
    let params = config.params.try_resolve().map_err(ConnectError::Params)?;
    crate::url::socket_url(&config.url, &params, config.serializer).map_err(ConnectError::Config)
}

/// The websocket handshake to `url`, bounded by the connect timeout and by the
/// handshakes in flight on this thread.
pub(crate) fn handshake(
    http: &awc::Client,
    url: &url::Url,
    config: &Config,
) -> impl Future<Output = Result<Upgraded, ConnectError>> + 'static {
    let mut request = http.ws(url.as_str()).max_frame_size(config.max_frame_size);
    for (name, value) in &config.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let timeout = config.connect_timeout;
    async move {
        let result = actix_rt::time::timeout(timeout, async move {
            // awc holds two 8 KiB buffers per handshake; bounding the handshakes in
            // flight on this thread bounds that memory when many clients connect at
            // once (after a server restart, say).
            let handshakes = HANDSHAKES.with(Rc::clone);
            let _permit = handshakes.acquire().await;
            request.connect().await
        })
        .await;
        match result {
            Err(_) => Err(ConnectError::Timeout),
            Ok(Ok((_response, framed))) => Ok(framed),
            Ok(Err(e)) => Err(map_error(e)),
        }
    }
}

/// awc's handshake errors as [`ConnectError`]s.
fn map_error(error: WsClientError) -> ConnectError {
    match error {
        WsClientError::InvalidResponseStatus(status) => ConnectError::Refused(status.as_u16()),
        WsClientError::SendRequest(
            awc::error::SendRequestError::Timeout
            | awc::error::SendRequestError::Connect(awc::error::ConnectError::Timeout),
        ) => ConnectError::Timeout,
        WsClientError::SendRequest(awc::error::SendRequestError::Connect(
            awc::error::ConnectError::Io(e),
        )) if e.kind() == std::io::ErrorKind::ConnectionRefused => ConnectError::ConnectionRefused,
        e => ConnectError::Io(e.to_string()),
    }
}
