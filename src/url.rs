//! Socket URL building.
//!
//! Phoenix mounts a socket at a path such as `/socket` and serves its websocket
//! transport at `/socket/websocket`. Users may give either form; exactly one
//! `/websocket` is added. The connect params follow any query the URL already has,
//! and `vsn` comes last. URLs shown in logs and errors are redacted ([`redact_url`]).

use url::Url;

use crate::error::ConfigError;

/// Builds the websocket URL for a socket endpoint.
///
/// # Errors
/// [`ConfigError::InvalidUrl`] when the URL does not parse, its scheme is not `ws`
/// or `wss`, it has no host, it has a fragment, or it already sets `vsn`.
pub(crate) fn socket_url(
    base: &str,
    params: &[(String, String)],
    vsn: &str,
) -> Result<Url, ConfigError> {
    // The URL is redacted: its query or user info may hold a token, and config errors
    // are logged and shown in `DisconnectReason`s.
    let invalid = |reason: &str| ConfigError::InvalidUrl {
        url: redact_url(base),
        reason: reason.to_owned(),
    };
    let mut url = Url::parse(base).map_err(|e| invalid(&e.to_string()))?;
    match url.scheme() {
        "ws" | "wss" => {}
        other => return Err(invalid(&format!("scheme must be ws or wss, not {other}"))),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    if url.fragment().is_some() {
        return Err(invalid("a socket URL has no fragment"));
    }
    if url.query_pairs().any(|(k, _)| k == "vsn") {
        return Err(invalid(
            "vsn is set from the configured protocol version; remove it",
        ));
    }
    let path = url.path().trim_end_matches('/').to_owned();
    if path.ends_with("/websocket") {
        url.set_path(&path);
    } else {
        url.set_path(&format!("{path}/websocket"));
    }
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in params {
            query.append_pair(k, v);
        }
        query.append_pair("vsn", vsn);
    }
    Ok(url)
}

/// The URL without what may hold secrets: its query string, fragment and user info
/// (`ws://user:pass@host/socket?token=t` gives `ws://<redacted>@host/socket?<redacted>`).
pub(crate) fn redact_url(url: &str) -> String {
    let (mut base, rest) = match url.find(['?', '#']) {
        Some(i) => (url[..i].to_owned(), Some(&url[i..=i])),
        None => (url.to_owned(), None),
    };
    if let Some(scheme_end) = base.find("://") {
        let start = scheme_end + 3;
        let end = base[start..].find('/').map_or(base.len(), |i| start + i);
        if let Some(at) = base[start..end].rfind('@') {
            base.replace_range(start..start + at, "<redacted>");
        }
    }
    match rest {
        Some(sep) => format!("{base}{sep}<redacted>"),
        None => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_escaped_and_vsn_comes_last() {
        let url = socket_url(
            "ws://127.0.0.1:4000/socket",
            &[("token".to_string(), "a b&c".to_string())],
            "2.0.0",
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "ws://127.0.0.1:4000/socket/websocket?token=a+b%26c&vsn=2.0.0"
        );
    }

    #[test]
    fn redacted_urls_keep_no_query_fragment_or_user_info() {
        for (url, redacted) in [
            ("ws://h:4000/socket", "ws://h:4000/socket"),
            ("ws://h/socket?token=s3cret", "ws://h/socket?<redacted>"),
            ("ws://h/socket#s3cret", "ws://h/socket#<redacted>"),
            (
                "wss://me:s3cret@h/socket?a=1#x",
                "wss://<redacted>@h/socket?<redacted>",
            ),
            ("ws://s3cret@h", "ws://<redacted>@h"),
            ("not a url?s3cret", "not a url?<redacted>"),
        ] {
            assert_eq!(redact_url(url), redacted);
        }
    }

    #[test]
    fn an_invalid_url_error_does_not_repeat_its_query() {
        let err = build("ws://me:pw1@h/socket?token=s3cret&vsn=2.0.0").unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("pw1"),
            "{shown}"
        );
    }

    fn build(base: &str) -> Result<String, ConfigError> {
        socket_url(base, &[], "2.0.0").map(String::from)
    }

    #[test]
    fn socket_path_gets_exactly_one_websocket_suffix() {
        for base in [
            "ws://h/socket",
            "ws://h/socket/",
            "ws://h/socket/websocket",
            "ws://h/socket/websocket/",
        ] {
            assert_eq!(
                build(base).unwrap(),
                "ws://h/socket/websocket?vsn=2.0.0",
                "{base}"
            );
        }
    }

    #[test]
    fn existing_query_is_kept_before_params_and_vsn() {
        let url = socket_url(
            "wss://h:4001/live?x=1",
            &[("token".into(), "t".into())],
            "1.0.0",
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "wss://h:4001/live/websocket?x=1&token=t&vsn=1.0.0"
        );
    }

    #[test]
    fn wrong_scheme_fragment_or_vsn_is_a_clear_error() {
        for base in [
            "http://h/socket",
            "h/socket",
            "ws://h/socket#x",
            "ws://h/socket?vsn=2.0.0",
            "",
        ] {
            let err = build(base).unwrap_err();
            assert!(
                matches!(err, ConfigError::InvalidUrl { .. }),
                "{base}: {err}"
            );
        }
    }
}
