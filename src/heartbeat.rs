//! Heartbeat bookkeeping: which heartbeat is outstanding and the round-trip times.

use std::time::{Duration, Instant};

/// The outstanding heartbeat of the current connection, if any, and RTT statistics.
#[derive(Debug, Default)]
pub(crate) struct Heartbeat {
    /// Ref and send time of the heartbeat awaiting its reply.
    pub(crate) pending: Option<(u64, Instant)>,
    /// The last round trip.
    pub(crate) last_rtt: Option<Duration>,
    rtt_total: Duration,
    rtt_count: u64,
}

impl Heartbeat {
    /// Records a sent heartbeat.
    pub(crate) fn sent(&mut self, reference: u64, now: Instant) {
        self.pending = Some((reference, now));
    }

    /// Matches a reply by ref; returns whether it answered the outstanding heartbeat.
    pub(crate) fn replied(&mut self, reference: u64, now: Instant) -> bool {
        match self.pending {
            Some((r, sent)) if r == reference => {
                let rtt = now.saturating_duration_since(sent);
                self.pending = None;
                self.last_rtt = Some(rtt);
                self.rtt_total += rtt;
                self.rtt_count += 1;
                true
            }
            _ => false,
        }
    }

    /// Forgets the outstanding heartbeat (the connection is gone).
    pub(crate) fn reset(&mut self) {
        self.pending = None;
    }

    /// The average round trip over the client's life.
    pub(crate) fn average_rtt(&self) -> Option<Duration> {
        (self.rtt_count > 0).then(|| self.rtt_total / self.rtt_count as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_with_another_ref_does_not_answer_the_heartbeat() {
        let t0 = Instant::now();
        let mut h = Heartbeat::default();
        h.sent(7, t0);
        assert!(!h.replied(6, t0 + Duration::from_millis(5)));
        assert!(h.pending.is_some());
        assert!(h.replied(7, t0 + Duration::from_millis(5)));
        assert_eq!(h.last_rtt, Some(Duration::from_millis(5)));
        assert!(h.pending.is_none());
    }
}
