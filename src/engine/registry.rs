//! The topic registry: the topics the user wants joined, with their join params.
//!
//! Every `join` records its topic here; a user `leave`, a final `phx_close` from the
//! server or a topic given up removes it. When the socket (re)connects, the engine
//! rejoins every topic in the registry before
//! [`handle_connect`](crate::SlipstreamActor::handle_connect) runs (unless
//! [`Config::rejoin_on_connect`](crate::Config::rejoin_on_connect) turns it off), so
//! topics joined dynamically survive reconnects with no user code. The registry lives
//! in the client actor, so it also survives supervisor restarts. Users read it
//! ([`Socket::registry`](crate::Socket::registry)); only the engine changes it.

use std::collections::HashMap;

use serde_json::Value;

use crate::message::Topic;

/// The wanted topics and their join params, in the order they were first joined.
/// Its `Debug` output lists the topics only: join params may carry secrets.
#[derive(Default, Clone)]
pub struct TopicRegistry {
    entries: HashMap<Topic, Entry>,
    next_seq: u64,
}

impl std::fmt::Debug for TopicRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let topics: Vec<&str> = self.entries.keys().map(Topic::as_str).collect();
        f.debug_struct("TopicRegistry")
            .field("topics", &topics)
            .finish()
    }
}

#[derive(Clone)]
struct Entry {
    params: Value,
    seq: u64,
}

impl TopicRegistry {
    /// An empty registry.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Records a wanted topic, or updates its params (keeping its place).
    pub(crate) fn insert(&mut self, topic: Topic, params: Value) {
        match self.entries.get_mut(&topic) {
            Some(e) => e.params = params,
            None => {
                let seq = self.next_seq;
                self.next_seq += 1;
                self.entries.insert(topic, Entry { params, seq });
            }
        }
    }

    /// Forgets a topic; returns its params if it was registered.
    pub(crate) fn remove(&mut self, topic: &str) -> Option<Value> {
        self.entries.remove(topic).map(|e| e.params)
    }

    /// Whether the topic is registered.
    pub fn contains(&self, topic: &str) -> bool {
        self.entries.contains_key(topic)
    }

    /// The join params of a registered topic.
    pub fn params(&self, topic: &str) -> Option<&Value> {
        self.entries.get(topic).map(|e| &e.params)
    }

    /// The number of registered topics.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no topic is registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The registered topics and params, in the order they were first joined.
    pub fn topics(&self) -> Vec<(Topic, Value)> {
        let mut v: Vec<(&Topic, &Entry)> = self.entries.iter().collect();
        v.sort_by_key(|(_, e)| e.seq);
        v.into_iter()
            .map(|(t, e)| (t.clone(), e.params.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn topics_come_back_in_first_join_order_with_latest_params() {
        let mut r = TopicRegistry::new();
        r.insert("b".into(), json!({"n": 1}));
        r.insert("a".into(), json!({}));
        r.insert("b".into(), json!({"n": 2}));
        let got = r.topics();
        assert_eq!(
            got,
            vec![
                (Topic::from("b"), json!({"n": 2})),
                (Topic::from("a"), json!({}))
            ]
        );
        assert_eq!(r.remove("b"), Some(json!({"n": 2})));
        assert!(!r.contains("b") && r.contains("a") && r.len() == 1);
    }
}
