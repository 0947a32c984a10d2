//! A guard in front of awc's websocket codec: a frame whose header announces more than
//! `max_frame_size` bytes is refused as soon as the header has arrived.
//!
//! actix-http's parser checks the size limit only once the whole frame is buffered (it
//! reserves at most the limit up front, but keeps reading the announced payload into its
//! buffer), so a server announcing a huge frame and then streaming it makes the client
//! buffer all of it, and one announcing a huge frame and sending nothing more leaves the
//! connection waiting for the heartbeat. This guard reads the announced length from the
//! header (RFC 6455 §5.2) and fails with [`ProtocolError::Overflow`] at once.

use actix_codec::{Decoder, Encoder};
use actix_http::ws::{Codec, Frame, Message, ProtocolError};
use bytes::BytesMut;

/// awc's websocket codec with the size limit enforced at the frame header.
pub(crate) struct FrameGuard {
    inner: Codec,
    max: usize,
}

impl FrameGuard {
    pub(crate) fn new(inner: Codec, max: usize) -> Self {
        FrameGuard { inner, max }
    }
}

/// The payload length announced by the frame header at the start of `src`, once the
/// header's length fields have arrived.
fn announced_len(src: &[u8]) -> Option<u64> {
    let len = *src.get(1)? & 0x7f;
    match len {
        126 => {
            let b = src.get(2..4)?;
            Some(u64::from(u16::from_be_bytes([b[0], b[1]])))
        }
        127 => {
            let b: [u8; 8] = src.get(2..10)?.try_into().ok()?;
            Some(u64::from_be_bytes(b))
        }
        n => Some(u64::from(n)),
    }
}

impl Decoder for FrameGuard {
    type Item = Frame;
    type Error = ProtocolError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        // The inner codec consumes whole frames only, so `src` starts at a frame header.
        if announced_len(src).is_some_and(|n| n > self.max as u64) {
            return Err(ProtocolError::Overflow);
        }
        self.inner.decode(src)
    }
}

impl Encoder<Message> for FrameGuard {
    type Error = ProtocolError;

    fn encode(&mut self, item: Message, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        self.inner.encode(item, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_announcing_more_than_the_limit_is_refused_before_its_payload() {
        let mut guard = FrameGuard::new(Codec::new().client_mode().max_size(1024), 1024);
        // Text frame announcing 2^40 bytes, no payload yet.
        let mut src = BytesMut::from(&[0x81, 0x7f, 0, 0, 1, 0, 0, 0, 0, 0][..]);
        assert!(matches!(
            guard.decode(&mut src),
            Err(ProtocolError::Overflow)
        ));
        // 16-bit length over the limit.
        let mut src = BytesMut::from(&[0x82, 0x7e, 0x10, 0x00][..]);
        assert!(matches!(
            guard.decode(&mut src),
            Err(ProtocolError::Overflow)
        ));
    }

    #[test]
    fn frames_within_the_limit_and_partial_headers_pass_through() {
        let mut guard = FrameGuard::new(Codec::new().client_mode().max_size(1024), 1024);
        let mut src = BytesMut::from(&[0x81][..]);
        assert!(matches!(guard.decode(&mut src), Ok(None)));
        let mut src = BytesMut::from(&[0x81, 0x7f, 0, 0][..]);
        assert!(matches!(guard.decode(&mut src), Ok(None)));
        let mut src = BytesMut::from(&[0x81, 0x02, b'h', b'i'][..]);
        match guard.decode(&mut src) {
            Ok(Some(Frame::Text(b))) => assert_eq!(&b[..], b"hi"),
            other => panic!("{other:?}"),
        }
    }
}
