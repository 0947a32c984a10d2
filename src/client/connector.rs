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

use crate::auth::AuthToken;
use crate::config::Config;
use crate::engine::ConnectError;
use crate::error::ConfigError;

/// Most websocket handshakes in flight at once on one thread.
const MAX_HANDSHAKES: usize = 64;

/// What an awc client is shared by: wss, the connect timeout, read coalescing.
type ClientKey = (bool, Duration, bool);

thread_local! {
    /// awc clients shared by the clients of this thread, by (wss, connect timeout,
    /// read coalescing).
    static HTTP_CLIENTS: RefCell<Vec<(ClientKey, awc::Client)>> = const { RefCell::new(Vec::new()) };
    static HANDSHAKES: Rc<tokio::sync::Semaphore> = Rc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
}

/// An upgraded websocket connection.
pub(crate) type Upgraded = Framed<BoxedSocket, ws::Codec>;

/// The awc client for this configuration: one shared by every client of this thread
/// with the same settings (its connector and TLS setup), or one of its own for
/// custom roots.
pub(crate) fn http_client(config: &Config) -> Result<awc::Client, ConfigError> {
    let wss = config.url.starts_with("wss:");
    let key = (wss, config.connect_timeout, config.coalesce_reads);
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
        .connector(super::transport::tcp::TcpConnector::new(
            config.coalesce_reads,
        ))
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

/// What one connect sends: the URL (params resolved) and the auth token, if any.
pub(crate) struct Target {
    pub(crate) url: url::Url,
    pub(crate) auth_token: Option<AuthToken>,
}

/// The URL and auth token of one connect: the settings checked, the params and token
/// resolved (a panic in the user's params or token closure is a failed connect,
/// retried with the backoff, never the end of the actor).
pub(crate) fn connect_target(config: &Config) -> Result<Target, ConnectError> {
    config.validate().map_err(ConnectError::Config)?;
    let params = config.params.try_resolve().map_err(ConnectError::Params)?;
    let url = crate::url::socket_url(&config.url, &params, config.serializer.vsn())
        .map_err(ConnectError::Config)?;
    let auth_token = match &config.auth_token {
        None => None,
        Some(source) => Some(source.try_resolve().map_err(ConnectError::AuthToken)?),
    }
    .filter(|t| !t.is_empty());
    Ok(Target { url, auth_token })
}

/// The websocket handshake to `url`, bounded by the connect timeout and by the
/// handshakes in flight on this thread.
pub(crate) fn handshake(
    http: &awc::Client,
    target: &Target,
    config: &Config,
) -> impl Future<Output = Result<Upgraded, ConnectError>> + 'static {
    let mut request = http
        .ws(target.url.as_str())
        .max_frame_size(config.max_frame_size);
    for (name, value) in &config.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let with_token = target.auth_token.is_some();
    if let Some(token) = &target.auth_token {
        // Base64 characters only: always a valid header value.
        request = request.set_header(
            awc::http::header::SEC_WEBSOCKET_PROTOCOL,
            token.subprotocols(),
        );
    }
    let tls = target.url.scheme() == "wss";
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
            Ok(Ok((response, framed))) => {
                if with_token {
                    check_subprotocol(response.headers())?;
                }
                Ok(framed)
            }
            Ok(Err(e)) => Err(map_error(e, tls)),
        }
    }
}

/// With a token sent, the server must have answered the subprotocol `phoenix` (what
/// Phoenix does when it took the token; browsers fail the connection otherwise).
fn check_subprotocol(headers: &awc::http::header::HeaderMap) -> Result<(), ConnectError> {
    let answered = headers
        .get(awc::http::header::SEC_WEBSOCKET_PROTOCOL)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned());
    match answered.as_deref() {
        Some(p) if p == crate::auth::PHOENIX_SUBPROTOCOL => Ok(()),
        _ => Err(ConnectError::Subprotocol { answered }),
    }
}

/// awc's handshake errors as [`ConnectError`]s. `tls`: the URL is `wss://`.
fn map_error(error: WsClientError, tls: bool) -> ConnectError {
    match error {
        WsClientError::InvalidResponseStatus(status) => ConnectError::Refused(status.as_u16()),
        WsClientError::SendRequest(
            awc::error::SendRequestError::Timeout
            | awc::error::SendRequestError::Connect(awc::error::ConnectError::Timeout),
        ) => ConnectError::Timeout,
        WsClientError::SendRequest(awc::error::SendRequestError::Connect(
            awc::error::ConnectError::Io(e),
        )) if e.kind() == std::io::ErrorKind::ConnectionRefused => ConnectError::ConnectionRefused,
        e => {
            let detail = e.to_string();
            match scheme_mismatch(&e, &detail, tls) {
                Some(error) => error,
                None => ConnectError::Io(detail),
            }
        }
    }
}

/// A heuristic: whether the error looks like a `wss://` URL to a plain-HTTP port (the
/// TLS handshake fails: the server answers HTTP to the ClientHello, or resets or
/// closes the connection) or a `ws://` URL to a TLS port (the HTTP parser reads a TLS
/// record).
fn scheme_mismatch(error: &WsClientError, detail: &str, tls: bool) -> Option<ConnectError> {
    use awc::error::{ConnectError as Conn, SendRequestError as Send};
    let text = detail.to_ascii_lowercase();
    let mismatch = if tls {
        match error {
            // rustls on an HTTP answer ("received corrupt message of type
            // InvalidContentType"), or a server that resets/closes on the ClientHello.
            WsClientError::SendRequest(Send::Connect(Conn::Io(e))) => {
                matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::UnexpectedEof
                        | std::io::ErrorKind::ConnectionAborted
                ) || text.contains("corrupt message")
                    || text.contains("invalidcontenttype")
            }
            _ => text.contains("corrupt message") || text.contains("invalidcontenttype"),
        }
    } else {
        // awc's parser on the TLS alert a TLS server answers a plain request with.
        text.contains("invalid http version")
    };
    mismatch.then(|| ConnectError::SchemeMismatch {
        tls: !tls,
        suggested: if tls { "ws" } else { "wss" },
        detail: detail.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use awc::error::{ConnectError as Conn, SendRequestError as Send};

    fn io(kind: std::io::ErrorKind, text: &str) -> WsClientError {
        WsClientError::SendRequest(Send::Connect(Conn::Io(std::io::Error::new(kind, text))))
    }

    #[test]
    fn a_reset_or_an_http_answer_to_the_tls_handshake_suggests_ws() {
        for e in [
            io(
                std::io::ErrorKind::ConnectionReset,
                "Connection reset by peer",
            ),
            io(
                std::io::ErrorKind::InvalidData,
                "received corrupt message of type InvalidContentType",
            ),
        ] {
            match map_error(e, true) {
                ConnectError::SchemeMismatch {
                    tls: false,
                    suggested: "ws",
                    ..
                } => {}
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_tls_record_read_as_http_suggests_wss() {
        let e = WsClientError::SendRequest(Send::Response(actix_http::error::ParseError::Header));
        // Another parse error: unchanged.
        assert!(matches!(map_error(e, false), ConnectError::Io(_)));
        let e = WsClientError::SendRequest(Send::Response(actix_http::error::ParseError::Version));
        let mapped = map_error(e, false);
        assert!(
            matches!(
                mapped,
                ConnectError::SchemeMismatch {
                    tls: true,
                    suggested: "wss",
                    ..
                }
            ),
            "{mapped:?}"
        );
        assert!(mapped.to_string().contains("try a wss:// URL"), "{mapped}");
    }

    #[test]
    fn other_failures_are_not_called_a_scheme_mismatch() {
        let refused = io(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        assert!(matches!(
            map_error(refused, true),
            ConnectError::ConnectionRefused
        ));
        let certificate = io(
            std::io::ErrorKind::InvalidData,
            "invalid peer certificate: UnknownIssuer",
        );
        assert!(matches!(map_error(certificate, true), ConnectError::Io(_)));
        let reset = io(
            std::io::ErrorKind::ConnectionReset,
            "Connection reset by peer",
        );
        assert!(matches!(map_error(reset, false), ConnectError::Io(_)));
    }
}
