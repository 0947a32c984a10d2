//! Backoff policies for reconnects and rejoins.
//!
//! Two shapes are offered: Phoenix's explicit list of delays whose last value repeats
//! (what phoenix.js and Slipstream use), and exponential growth with jitter and a cap
//! (built on [`backon`]). A [`BackoffState`] counts attempts and is reset on success.

use std::fmt;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// A backoff policy: how long to wait before attempt number `n` (counted from 0).
#[derive(Clone, PartialEq)]
pub enum Backoff {
    /// Explicit delays; once exhausted the last one repeats.
    ///
    /// `jitter` in `0.0..=1.0` shortens each delay by a random fraction of at most
    /// `jitter` (so a delay never exceeds the listed value), which spreads out
    /// clients that were cut off together. `0.0` gives exactly the listed delays.
    List {
        /// The delays, in order. An empty list means no delay.
        delays: Vec<Duration>,
        /// The largest fraction removed at random from each delay.
        jitter: f64,
    },
    /// Exponential growth from `min` by `factor` up to `max`, each delay plus a
    /// random jitter of up to its own length when `jitter` is true.
    Exponential {
        /// The first delay.
        min: Duration,
        /// The largest delay.
        max: Duration,
        /// The growth factor (at least 1.0).
        factor: f32,
        /// Whether to add random jitter.
        jitter: bool,
    },
}

impl fmt::Debug for Backoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backoff::List { delays, jitter } => {
                let ms: Vec<u128> = delays.iter().map(Duration::as_millis).collect();
                write!(f, "List({ms:?} ms, jitter {jitter})")
            }
            Backoff::Exponential {
                min,
                max,
                factor,
                jitter,
            } => write!(
                f,
                "Exponential({min:?}..{max:?} x{factor}{})",
                if *jitter { ", jitter" } else { "" }
            ),
        }
    }
}

impl Backoff {
    /// Phoenix's reconnect delays (phoenix.js and Slipstream):
    /// 10, 50, 100, 150, 200, 250, 500, 1000, 2000 ms, then 5000 ms, with 20% jitter.
    pub fn phoenix_reconnect() -> Self {
        Backoff::from_millis(&[10, 50, 100, 150, 200, 250, 500, 1000, 2000, 5000]).with_jitter(0.2)
    }

    /// The reconnect delays while the server's port refuses connections (a node
    /// restarting, or a deploy): 10, 50, 100, 150 ms, then every 200 ms for about ten
    /// seconds, then 500, 1000, 2000 ms, then 5000 ms, with 50% jitter.
    ///
    /// A refused TCP connect costs the server nothing (its kernel answers with a
    /// reset), so polling a closed port every ~200 ms brings a fleet of clients back
    /// within a few hundred milliseconds of the listener's return, spread by the
    /// jitter, where [`Backoff::phoenix_reconnect`] would already be waiting one or two
    /// seconds. Failures that do load the server (HTTP errors, timeouts) keep the
    /// normal schedule.
    pub fn refused_reconnect() -> Self {
        let mut ms = vec![10, 50, 100, 150];
        ms.extend(std::iter::repeat_n(200, 49));
        ms.extend([500, 1000, 2000, 5000]);
        Backoff::from_millis(&ms).with_jitter(0.5)
    }

    /// Slipstream's rejoin delays: 100, 500, 1000, 2000, 5000 ms, then 10000 ms, with 20% jitter.
    pub fn phoenix_rejoin() -> Self {
        Backoff::from_millis(&[100, 500, 1000, 2000, 5000, 10_000]).with_jitter(0.2)
    }

    /// A list of delays in milliseconds, without jitter.
    pub fn from_millis(ms: &[u64]) -> Self {
        Backoff::List {
            delays: ms.iter().copied().map(Duration::from_millis).collect(),
            jitter: 0.0,
        }
    }

    /// Exponential backoff from `min` doubling up to `max`, with jitter.
    pub fn exponential(min: Duration, max: Duration) -> Self {
        Backoff::Exponential {
            min,
            max,
            factor: 2.0,
            jitter: true,
        }
    }

    /// Sets the jitter of a list policy (clamped to `0.0..=1.0`); turns jitter on or
    /// off for an exponential one.
    pub fn with_jitter(self, jitter: f64) -> Self {
        match self {
            Backoff::List { delays, .. } => Backoff::List {
                delays,
                jitter: if jitter.is_finite() {
                    jitter.clamp(0.0, 1.0)
                } else {
                    0.0
                },
            },
            Backoff::Exponential {
                min, max, factor, ..
            } => Backoff::Exponential {
                min,
                max,
                factor,
                jitter: jitter > 0.0,
            },
        }
    }

    /// Starts counting attempts under this policy.
    pub(crate) fn start(&self) -> BackoffState {
        BackoffState::default()
    }
}

/// The refused-port reconnect policy of `config`: its own, or the shared default.
pub(crate) fn refused_policy(config: &crate::Config) -> &Backoff {
    static DEFAULT: std::sync::LazyLock<Backoff> =
        std::sync::LazyLock::new(Backoff::refused_reconnect);
    config
        .reconnect_refused_backoff
        .as_ref()
        .unwrap_or(&DEFAULT)
}

/// Attempt counter for a [`Backoff`] policy, which is passed in at each delay (so a
/// counter per topic costs a few bytes, not a copy of the policy).
#[derive(Default)]
pub(crate) struct BackoffState {
    attempt: u32,
    exponential: Option<Box<ExponentialBackoff>>,
}

impl fmt::Debug for BackoffState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackoffState")
            .field("attempt", &self.attempt)
            .finish()
    }
}

impl BackoffState {
    /// The number of delays handed out since the last reset.
    pub(crate) fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The delay before the next attempt under `policy`; counts the attempt.
    pub(crate) fn next_delay(&mut self, policy: &Backoff) -> Duration {
        let n = self.attempt as usize;
        self.attempt = self.attempt.saturating_add(1);
        match policy {
            Backoff::List { delays, jitter } => {
                let Some(base) = delays.get(n).or(delays.last()).copied() else {
                    return Duration::ZERO;
                };
                if *jitter > 0.0 {
                    base.mul_f64(1.0 - jitter * fastrand::f64())
                } else {
                    base
                }
            }
            Backoff::Exponential {
                min,
                max,
                factor,
                jitter,
            } => {
                let (min, max, factor, jitter) = (*min, *max, *factor, *jitter);
                let it = self.exponential.get_or_insert_with(|| {
                    let mut b = ExponentialBuilder::new()
                        .with_min_delay(min)
                        .with_max_delay(max.max(min))
                        .with_factor(if factor.is_finite() {
                            factor.max(1.0)
                        } else {
                            2.0
                        })
                        .without_max_times();
                    if jitter {
                        b = b.with_jitter();
                    }
                    Box::new(b.build())
                });
                it.next().unwrap_or(max)
            }
        }
    }

    /// Forgets the attempts: the next delay is the first one again.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
        self.exponential = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_delays_repeat_the_last_value_and_reset_on_success() {
        let policy = Backoff::from_millis(&[10, 50, 100]);
        let mut s = policy.start();
        let got: Vec<u128> = (0..5).map(|_| s.next_delay(&policy).as_millis()).collect();
        assert_eq!(got, [10, 50, 100, 100, 100]);
        s.reset();
        assert_eq!(s.next_delay(&policy), Duration::from_millis(10));
    }

    #[test]
    fn list_jitter_never_exceeds_the_listed_delay_and_spreads_clients() {
        let policy = Backoff::from_millis(&[1000]).with_jitter(0.5);
        let delays: Vec<Duration> = (0..200)
            .map(|_| policy.start().next_delay(&policy))
            .collect();
        assert!(delays
            .iter()
            .all(|d| *d <= Duration::from_millis(1000) && *d >= Duration::from_millis(500)));
        let distinct: std::collections::HashSet<_> = delays.iter().collect();
        assert!(
            distinct.len() > 100,
            "only {} distinct delays",
            distinct.len()
        );
    }

    #[test]
    fn exponential_grows_to_its_cap() {
        let policy = Backoff::Exponential {
            min: Duration::from_millis(10),
            max: Duration::from_millis(80),
            factor: 2.0,
            jitter: false,
        };
        let mut s = policy.start();
        let got: Vec<u128> = (0..6).map(|_| s.next_delay(&policy).as_micros()).collect();
        for (g, want) in got
            .iter()
            .zip([10_000, 20_000, 40_000, 80_000, 80_000, 80_000])
        {
            assert!(g.abs_diff(want) < 1_000, "{got:?}");
        }
    }

    #[test]
    fn refused_reconnect_polls_every_200_ms_for_ten_seconds_then_slows_down() {
        let policy = Backoff::refused_reconnect();
        let Backoff::List { delays, jitter } = &policy else {
            panic!("a list")
        };
        assert_eq!(*jitter, 0.5);
        let ms: Vec<u128> = delays.iter().map(Duration::as_millis).collect();
        assert_eq!(ms[..5], [10, 50, 100, 150, 200]);
        let total: u128 = ms.iter().take_while(|d| **d <= 200).sum();
        assert!(
            (9_000..=11_000).contains(&total),
            "{total} ms of fast polling"
        );
        assert_eq!(ms[ms.len() - 4..], [500, 1000, 2000, 5000]);
        let mut s = policy.start();
        let spread: Vec<Duration> = (0..60).map(|_| s.next_delay(&policy)).collect();
        assert!(spread[10..50]
            .iter()
            .all(|d| *d >= Duration::from_millis(100) && *d <= Duration::from_millis(200)));
        assert!(
            spread[59] <= Duration::from_millis(5000) && spread[59] >= Duration::from_millis(2500)
        );
    }

    #[test]
    fn empty_list_means_no_delay() {
        let policy = Backoff::from_millis(&[]);
        assert_eq!(policy.start().next_delay(&policy), Duration::ZERO);
    }
}
