//! A fast, non-cryptographic hasher for the state machine's maps.
//!
//! The keys are the client's own refs (sequential numbers) and topics the user chose;
//! frames from the server only look keys up, never insert them, so a hash-flooding
//! server cannot degrade the maps. SipHash's resistance to that is not needed, and it
//! costs a noticeable share of every push and every inbound message.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The Fx hash (as used inside rustc): one multiply-rotate per word.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes([
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
            ]));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` with the Fx hasher.
pub(crate) type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_refs_and_topics_hash_apart() {
        let hash = |f: &dyn Fn(&mut FxHasher)| {
            let mut h = FxHasher::default();
            f(&mut h);
            h.finish()
        };
        let refs: std::collections::HashSet<u64> =
            (0..10_000u64).map(|n| hash(&|h| h.write_u64(n))).collect();
        assert_eq!(refs.len(), 10_000);
        assert_ne!(hash(&|h| h.write(b"room:1")), hash(&|h| h.write(b"room:2")));
        assert_ne!(
            hash(&|h| h.write(b"room:12345678")),
            hash(&|h| h.write(b"room:12345679"))
        );
    }
}
