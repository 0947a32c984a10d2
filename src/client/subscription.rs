//! Per-topic message streams: what [`Subscribe`](crate::Subscribe) and
//! [`ClientExt::subscribe`](crate::ClientExt::subscribe) give.

use std::fmt;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use futures_util::stream::{self, Stream};
use tokio::sync::broadcast;

use crate::message::{Event, Payload, Topic};

/// A message received on a topic (a server push or a broadcast), as given to
/// subscribers.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicMessage {
    /// The topic.
    pub topic: Topic,
    /// The event.
    pub event: Event,
    /// The payload.
    pub payload: Payload,
}

/// A subscriber fell behind: this many messages were skipped. The stream goes on
/// with the oldest message still buffered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("subscriber lagged behind: {0} message(s) skipped")]
pub struct Lagged(pub u64);

/// A stream of one topic's messages, from [`Subscribe`](crate::Subscribe) or [`ClientExt::subscribe`](crate::ClientExt::subscribe).
///
/// It survives reconnects and rejoins (it observes the topic, it does not join
/// it). It is bounded: a consumer that falls more than the subscription's
/// capacity behind gets `Err(Lagged(n))` and then the newest messages, never
/// unbounded memory. It ends when the client stops.
pub struct Subscription {
    inner: Pin<Box<dyn Stream<Item = Result<TopicMessage, Lagged>> + Send>>,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Subscription")
    }
}

impl Subscription {
    pub(crate) fn new(rx: broadcast::Receiver<TopicMessage>) -> Self {
        let inner = stream::unfold(rx, |mut rx| async move {
            match rx.recv().await {
                Ok(msg) => Some((Ok(msg), rx)),
                Err(broadcast::error::RecvError::Lagged(n)) => Some((Err(Lagged(n)), rx)),
                Err(broadcast::error::RecvError::Closed) => None,
            }
        });
        Subscription {
            inner: Box::pin(inner),
        }
    }
}

impl Stream for Subscription {
    type Item = Result<TopicMessage, Lagged>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}
