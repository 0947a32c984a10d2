//! The auth token sent outside the URL, in the `Sec-WebSocket-Protocol` header, as
//! phoenix.js 1.8 does with its `authToken` option.
//!
//! phoenix.js (`assets/js/phoenix/socket.js`, `transportConnect`) opens the websocket
//! with the subprotocols `["phoenix", "base64url.bearer.phx." + btoa(authToken).replace(/=/g, "")]`,
//! and Phoenix (`lib/phoenix/transports/websocket.ex`, `maybe_auth_token_from_header`,
//! for a socket declared with `auth_token: true`) takes the protocol starting with
//! `base64url.bearer.phx.`, decodes the rest with `Base.decode64!(encoded_token,
//! padding: false)`, hands the token to the socket's `connect/3` as
//! `connect_info[:auth_token]`, and answers with the subprotocol `phoenix`. Despite the
//! `base64url` in the prefix, the encoding on both sides is the standard base64
//! alphabet (`+` and `/`), without the `=` padding. (`lib/phoenix/endpoint.ex`
//! documents the socket's `:auth_token` option: "the token is available in the
//! `connect_info` as `:auth_token`"; `lib/phoenix/socket/transport.ex` fills that key
//! from what the websocket transport decoded.) phoenix.js's test suite has the vector
//! `"1234"` → `base64url.bearer.phx.MTIzNA`.

use std::fmt;

/// The prefix of the subprotocol carrying the token.
pub(crate) const AUTH_TOKEN_PREFIX: &str = "base64url.bearer.phx.";

/// The subprotocol the server answers with when it took a token.
pub(crate) const PHOENIX_SUBPROTOCOL: &str = "phoenix";

/// A bearer token sent in the `Sec-WebSocket-Protocol` header of the upgrade request
/// (Phoenix 1.8's `authToken`), so it stays out of the URL (and of access logs).
///
/// Its [`Debug`] output never shows the token:
///
/// ```
/// use actix_slipstream::AuthToken;
///
/// let token = AuthToken::from("s3cret");
/// assert_eq!(format!("{token:?}"), "<redacted>");
/// assert_eq!(token.as_bytes(), b"s3cret");
/// ```
#[derive(Clone, PartialEq, Eq, Default)]
pub struct AuthToken(Vec<u8>);

impl AuthToken {
    /// A token of these bytes (phoenix.js tokens are strings; their UTF-8 bytes are sent).
    pub fn new(token: impl Into<Vec<u8>>) -> Self {
        AuthToken(token.into())
    }

    /// The token's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Whether the token is empty (an empty token is not sent, as in phoenix.js).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value of the `Sec-WebSocket-Protocol` header carrying this token:
    /// `phoenix, base64url.bearer.phx.<token in base64, unpadded>`.
    pub(crate) fn subprotocols(&self) -> String {
        format!(
            "{PHOENIX_SUBPROTOCOL}, {AUTH_TOKEN_PREFIX}{}",
            encode_unpadded(&self.0)
        )
    }
}

impl fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for AuthToken {
    fn from(s: String) -> Self {
        AuthToken(s.into_bytes())
    }
}

impl From<&str> for AuthToken {
    fn from(s: &str) -> Self {
        AuthToken(s.as_bytes().to_vec())
    }
}

impl From<Vec<u8>> for AuthToken {
    fn from(b: Vec<u8>) -> Self {
        AuthToken(b)
    }
}

impl From<&[u8]> for AuthToken {
    fn from(b: &[u8]) -> Self {
        AuthToken(b.to_vec())
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 (`+`, `/`) without `=` padding: what phoenix.js sends
/// (`btoa(token).replace(/=/g, "")`).
pub(crate) fn encode_unpadded(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let index = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[index as usize]));
        }
    }
    out
}

/// Decodes standard base64, padded or not (Phoenix's `Base.decode64!(_, padding:
/// false)`); `None` for any other character, a bad length or non-zero trailing bits.
#[cfg(any(test, feature = "testing"))]
pub(crate) fn decode_unpadded(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.as_bytes().chunks(4) {
        let mut n: u32 = 0;
        for (i, c) in chunk.iter().enumerate() {
            let v = ALPHABET.iter().position(|a| a == c)? as u32;
            n |= v << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        let len = chunk.len() - 1;
        // The bits beyond the last whole byte must be zero (canonical encoding).
        let mask: u32 = match len {
            1 => 0xffff,
            2 => 0xff,
            _ => 0,
        };
        if n & mask != 0 {
            return None;
        }
        out.extend_from_slice(&bytes[..len]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_encoded_like_phoenix_js_btoa_without_padding() {
        assert_eq!(encode_unpadded(b"1234"), "MTIzNA");
        assert_eq!(encode_unpadded(b"?>>"), "Pz4+");
        assert_eq!(encode_unpadded(b"???"), "Pz8/");
        assert_eq!(encode_unpadded(&[0xfb, 0xff]), "+/8");
        assert_eq!(encode_unpadded(b""), "");
        assert_eq!(encode_unpadded(b"f"), "Zg");
        assert_eq!(encode_unpadded(b"fo"), "Zm8");
        assert_eq!(encode_unpadded(b"foo"), "Zm9v");
    }

    #[test]
    fn decoding_inverts_encoding_and_refuses_garbage() {
        for input in [
            &b""[..],
            b"f",
            b"fo",
            b"foo",
            b"foob",
            &[0xfb, 0xff],
            &[0, 1, 2, 255],
        ] {
            assert_eq!(
                decode_unpadded(&encode_unpadded(input)).as_deref(),
                Some(input)
            );
        }
        assert_eq!(decode_unpadded("MTIzNA==").as_deref(), Some(&b"1234"[..]));
        assert_eq!(decode_unpadded("MTIzN"), None);
        assert_eq!(decode_unpadded("MT-z"), None);
        assert_eq!(decode_unpadded("Zh"), None); // non-zero trailing bits
    }

    #[test]
    fn the_header_names_phoenix_then_the_token() {
        assert_eq!(
            AuthToken::from("1234").subprotocols(),
            "phoenix, base64url.bearer.phx.MTIzNA"
        );
    }
}
