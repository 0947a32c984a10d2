//! Reassembly of fragmented websocket messages (a first frame, continuations, a
//! last frame), bounded by the max frame size.

use actix_http::ws::Item;
use bytes::{Bytes, BytesMut};

/// A fragmented message being reassembled: (is text, bytes so far). Boxed: servers
/// rarely fragment, and every connection of the client holds a reassembler.
#[derive(Debug, Default)]
pub(crate) struct Reassembler {
    partial: Option<Box<(bool, BytesMut)>>,
}

impl Reassembler {
    /// Adds a fragment. Returns the whole message (is text, bytes) after its last
    /// fragment, `None` before; an error when the fragments are out of order or the
    /// message grows over `max` bytes.
    pub(crate) fn push(
        &mut self,
        item: Item,
        max: usize,
    ) -> Result<Option<(bool, Bytes)>, &'static str> {
        let (first, chunk, last) = match item {
            Item::FirstText(b) => (Some(true), b, false),
            Item::FirstBinary(b) => (Some(false), b, false),
            Item::Continue(b) => (None, b, false),
            Item::Last(b) => (None, b, true),
        };
        match (first, self.partial.as_mut()) {
            (Some(_), Some(_)) => return Err("new fragmented message before the last one ended"),
            (None, None) => return Err("continuation frame without a first frame"),
            (Some(text), None) => self.partial = Some(Box::new((text, BytesMut::new()))),
            (None, Some(_)) => {}
        }
        let Some((text, buf)) = self.partial.as_deref_mut() else {
            return Err("no fragmented message");
        };
        if buf.len() + chunk.len() > max {
            return Err("fragmented message exceeds the max frame size");
        }
        buf.extend_from_slice(&chunk);
        if !last {
            return Ok(None);
        }
        let text = *text;
        let bytes = self
            .partial
            .take()
            .map(|p| p.1.freeze())
            .unwrap_or_default();
        Ok(Some((text, bytes)))
    }

    /// Drops a message being reassembled (the connection is closing).
    pub(crate) fn clear(&mut self) {
        self.partial = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_are_joined_in_order_and_bounded() {
        let mut r = Reassembler::default();
        assert_eq!(
            r.push(Item::FirstText(Bytes::from_static(b"ab")), 10),
            Ok(None)
        );
        assert_eq!(
            r.push(Item::Continue(Bytes::from_static(b"cd")), 10),
            Ok(None)
        );
        assert_eq!(
            r.push(Item::Last(Bytes::from_static(b"e")), 10),
            Ok(Some((true, Bytes::from_static(b"abcde"))))
        );
        assert!(r
            .push(Item::Continue(Bytes::from_static(b"x")), 10)
            .is_err());
        assert_eq!(
            r.push(Item::FirstBinary(Bytes::from_static(b"123456")), 10),
            Ok(None)
        );
        assert!(r
            .push(Item::Last(Bytes::from_static(b"789012")), 10)
            .is_err());
    }
}
