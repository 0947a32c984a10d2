//! Phoenix Presence on the client: who is on a topic, kept in sync from the server's
//! `presence_state` and `presence_diff` events, with the semantics of phoenix.js's
//! `Presence`.
//!
//! A Phoenix channel that tracks presences sends, after each join, the whole state
//! (`presence_state`: `{key: {"metas": [{..., "phx_ref": ...}, ...]}, ...}`), then a
//! diff (`presence_diff`: `{"joins": {...}, "leaves": {...}}`) whenever someone joins
//! or leaves. This module turns those events into the current list of presences and
//! reports what changed. It does no I/O and knows nothing of actix: feed it events.
//!
//! - [`Presence`] tracks one topic, like a phoenix.js `new Presence(channel, opts)`:
//!   metas are matched by `phx_ref` ([`sync_state`] and [`sync_diff`] are ports of
//!   `Presence.syncState` and `Presence.syncDiff`); diffs that arrive before the
//!   state of the current join are held and applied right after it (phoenix.js's
//!   `pendingDiffs` / `inPendingSyncState`); every event returns a
//!   [`PresenceUpdate`], the list of [`PresenceChange`]s (phoenix.js's `onJoin` /
//!   `onLeave` calls) and whether the list is in sync (`onSync`). Optional callbacks
//!   ([`Presence::on_join`], [`Presence::on_leave`], [`Presence::on_sync`]) get the
//!   same calls as in phoenix.js.
//! - [`Presences`] holds one [`Presence`] per [`Topic`], so one actor tracks every
//!   topic it joins.
//! - [`PresenceEvents`] renames the two events (phoenix.js `opts.events`).
//!
//! # Using it from a `SlipstreamActor`
//!
//! A field and the [`presences`](crate::SlipstreamActor::presences) hook: the client
//! feeds every `presence_state` / `presence_diff` of every topic to the tracker,
//! keyed by the topic's current join (so it knows when the topic was rejoined after a
//! reconnect or a channel crash, holds the diffs that arrive before the new join's
//! `presence_state`, and diffs the new state against the presences it had, exactly
//! as phoenix.js does with `channel.joinRef()`), then calls
//! [`handle_presence`](crate::SlipstreamActor::handle_presence) with what changed.
//! Presence events do not reach `handle_message` then.
//!
//! ```no_run
//! use actix::Actor;
//! use actix_slipstream::presence::{PresenceUpdate, Presences};
//! use actix_slipstream::{Client, ClientExt, Config, SlipstreamActor, Socket, Topic};
//! use serde_json::json;
//!
//! #[derive(Default)]
//! struct Lobby {
//!     presences: Presences,
//! }
//!
//! impl SlipstreamActor for Lobby {
//!     fn presences(&mut self) -> Option<&mut Presences> {
//!         Some(&mut self.presences)
//!     }
//!
//!     fn handle_presence(&mut self, topic: &Topic, update: &PresenceUpdate, _: &mut Socket<'_, Self>) {
//!         if update.synced {
//!             let online = self.presences.list_by(topic, |key, _| key.to_owned());
//!             println!("{topic}: online {online:?}, changes {:?}", update.changes);
//!         }
//!     }
//! }
//!
//! #[actix::main]
//! async fn main() {
//!     let lobby = Client::new(Lobby::default(), Config::new("ws://localhost:4000/socket")).start();
//!     let _ = lobby.join("room:lobby", json!({})).await;
//! }
//! ```
//!
//! A [`Presence`] (one topic) can also be fed by hand, as below.
//!
//! # On its own
//!
//! ```
//! use actix_slipstream::presence::{Presence, PresenceChange};
//! use actix_slipstream::{Event, Payload};
//! use serde_json::json;
//!
//! let mut presence = Presence::new();
//! // A diff before the state of the join is held...
//! let held = presence
//!     .handle(&Event::from("presence_diff"), &Payload::Json(json!({
//!         "joins": {"bob": {"metas": [{"phx_ref": "b1"}]}},
//!         "leaves": {}
//!     })))
//!     .unwrap();
//! assert!(!held.synced && held.changes.is_empty());
//! // ... and applied after it.
//! let update = presence
//!     .handle(&Event::from("presence_state"), &Payload::Json(json!({
//!         "ada": {"metas": [{"phx_ref": "a1", "device": "phone"}]}
//!     })))
//!     .unwrap();
//! assert!(update.synced);
//! assert!(matches!(&update.changes[1], PresenceChange::Join { key, current: None, .. } if key == "bob"));
//! assert_eq!(presence.list_by(|key, _| key.to_owned()), ["ada", "bob"]);
//! // Events that are not presence events are not consumed.
//! assert!(presence.handle(&Event::from("new_msg"), &Payload::empty()).is_none());
//! ```
//!
//! # Fidelity to phoenix.js
//!
//! [`sync_state`], [`sync_diff`] and [`list_by`] follow `Presence.syncState`,
//! `Presence.syncDiff` and `Presence.list` step by step: the same joins and leaves,
//! reported in the same order, with the same `current` presence (for a join, the
//! presence before it, or none; for a leave, the presence after it), and the same
//! resulting metas in the same order. A `phx_ref_prev` (sent by Phoenix when a
//! presence is updated: a leave of the old meta and a join of the new one) is kept as
//! any other meta field; phoenix.js gives it no special meaning either. Differences:
//!
//! - presences are listed in the order their keys were first seen, where phoenix.js
//!   lists integer-like keys (`"1"`, `"42"`) first, in numeric order, as JavaScript
//!   objects do; the keys of one payload are seen in `serde_json`'s map order (sorted,
//!   unless its `preserve_order` feature is on);
//! - diffs held for a join that was replaced before its state arrived are dropped
//!   (phoenix.js applies them after the next join's state);
//! - at most [`MAX_PENDING_DIFFS`] diffs are held; beyond, the oldest is dropped;
//! - a malformed payload (not a JSON object, a presence without a `metas` list, a
//!   diff without `joins` or `leaves` objects, a binary payload) is ignored with a
//!   warning, where phoenix.js would throw.

use std::collections::HashMap;
use std::fmt;

use indexmap::IndexMap;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::message::{Event, Payload, Ref, Topic};

/// The most diffs a [`Presence`] holds while it waits for the state of a join; when
/// more arrive, the oldest is dropped (with a warning).
pub const MAX_PENDING_DIFFS: usize = 1024;

/// Why a presence payload was ignored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed presence payload: {0}")]
pub struct PresenceError(String);

impl PresenceError {
    fn new(what: impl Into<String>) -> Self {
        PresenceError(what.into())
    }
}

/// The `phx_ref` of a meta, which identifies it (`None` if it has none).
pub fn phx_ref(meta: &Value) -> Option<&Value> {
    meta.get("phx_ref")
}

// ----- data -----

/// The presence of one key (a user, a device...): its metas, one per tracked
/// process (tab, device), each with its `phx_ref`, and any other fields the server
/// added next to `metas` (Phoenix's `fetch/2`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PresenceState {
    /// The metas, in phoenix.js order.
    pub metas: Vec<Value>,
    /// The other fields of the presence object, if any.
    pub fields: Map<String, Value>,
}

impl PresenceState {
    /// A presence with these metas and no other field.
    pub fn new(metas: Vec<Value>) -> Self {
        PresenceState {
            metas,
            fields: Map::new(),
        }
    }

    /// Reads a presence object: `{"metas": [...], ...}`.
    ///
    /// # Errors
    /// [`PresenceError`] if it is not an object or has no `metas` list.
    pub fn from_value(value: &Value) -> Result<Self, PresenceError> {
        let obj = value
            .as_object()
            .ok_or_else(|| PresenceError::new(format!("presence is not an object: {value}")))?;
        let metas = obj
            .get("metas")
            .and_then(Value::as_array)
            .ok_or_else(|| PresenceError::new(format!("presence has no \"metas\" list: {value}")))?
            .clone();
        let mut fields = obj.clone();
        fields.remove("metas");
        Ok(PresenceState { metas, fields })
    }

    /// The presence as JSON: `{"metas": [...], ...fields}`.
    pub fn to_value(&self) -> Value {
        let mut obj = self.fields.clone();
        obj.insert("metas".to_owned(), Value::Array(self.metas.clone()));
        Value::Object(obj)
    }

    /// The `phx_ref` of each meta, in order.
    pub fn refs(&self) -> Vec<Option<&Value>> {
        self.metas.iter().map(phx_ref).collect()
    }
}

impl Serialize for PresenceState {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

/// Presences by key, in the order the keys were first seen (a phoenix.js presence
/// state object).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PresenceMap(IndexMap<String, PresenceState>);

impl PresenceMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads a state object: `{key: {"metas": [...]}, ...}`.
    ///
    /// # Errors
    /// [`PresenceError`] if it is not an object or a presence is malformed.
    pub fn from_value(value: &Value) -> Result<Self, PresenceError> {
        let obj = value
            .as_object()
            .ok_or_else(|| PresenceError::new(format!("state is not an object: {value}")))?;
        obj.iter()
            .map(|(k, v)| {
                PresenceState::from_value(v)
                    .map(|p| (k.clone(), p))
                    .map_err(|e| PresenceError::new(format!("key {k:?}: {}", e.0)))
            })
            .collect()
    }

    /// The map as a JSON object.
    pub fn to_value(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(k, p)| (k.clone(), p.to_value()))
                .collect(),
        )
    }

    /// The presence of a key.
    pub fn get(&self, key: &str) -> Option<&PresenceState> {
        self.0.get(key)
    }

    /// Whether a key is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// Sets the presence of a key (a new key goes last; a known key keeps its place).
    /// Returns the previous presence.
    pub fn insert(
        &mut self,
        key: impl Into<String>,
        presence: PresenceState,
    ) -> Option<PresenceState> {
        self.0.insert(key.into(), presence)
    }

    /// Removes a key, keeping the order of the others.
    pub fn remove(&mut self, key: &str) -> Option<PresenceState> {
        self.0.shift_remove(key)
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no key is present.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The keys and presences, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &PresenceState)> {
        self.0.iter().map(|(k, p)| (k.as_str(), p))
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The presences, in order (phoenix.js `Presence.list(presences)`).
    pub fn list(&self) -> Vec<&PresenceState> {
        self.0.values().collect()
    }
}

impl FromIterator<(String, PresenceState)> for PresenceMap {
    fn from_iter<I: IntoIterator<Item = (String, PresenceState)>>(iter: I) -> Self {
        PresenceMap(iter.into_iter().collect())
    }
}

impl IntoIterator for PresenceMap {
    type Item = (String, PresenceState);
    type IntoIter = indexmap::map::IntoIter<String, PresenceState>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl Serialize for PresenceMap {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

/// A `presence_diff`: the presences (metas) that joined and those that left.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PresenceDiff {
    /// Joined metas, by key.
    pub joins: PresenceMap,
    /// Left metas, by key.
    pub leaves: PresenceMap,
}

impl PresenceDiff {
    /// Reads a diff object: `{"joins": {...}, "leaves": {...}}`.
    ///
    /// # Errors
    /// [`PresenceError`] if it is not an object, lacks `joins` or `leaves`, or holds a
    /// malformed presence.
    pub fn from_value(value: &Value) -> Result<Self, PresenceError> {
        let obj = value
            .as_object()
            .ok_or_else(|| PresenceError::new(format!("diff is not an object: {value}")))?;
        let part = |name: &str| {
            let v = obj
                .get(name)
                .ok_or_else(|| PresenceError::new(format!("diff has no \"{name}\": {value}")))?;
            PresenceMap::from_value(v)
                .map_err(|e| PresenceError::new(format!("diff \"{name}\": {}", e.0)))
        };
        Ok(PresenceDiff {
            joins: part("joins")?,
            leaves: part("leaves")?,
        })
    }

    /// The diff as JSON.
    pub fn to_value(&self) -> Value {
        serde_json::json!({"joins": self.joins.to_value(), "leaves": self.leaves.to_value()})
    }
}

/// One change of the presence list: a call of phoenix.js's `onJoin` or `onLeave`.
#[derive(Debug, Clone, PartialEq)]
pub enum PresenceChange {
    /// Metas joined for a key (`onJoin(key, current, newPres)`).
    Join {
        /// The key.
        key: String,
        /// The key's presence before the join; `None` if it was not present.
        current: Option<PresenceState>,
        /// The presence that joined: the new metas only.
        new_presence: PresenceState,
    },
    /// Metas left a key (`onLeave(key, current, leftPres)`).
    Leave {
        /// The key.
        key: String,
        /// The key's presence after the leave (no metas: the key is gone).
        current: PresenceState,
        /// The presence that left: the left metas.
        left: PresenceState,
    },
}

impl PresenceChange {
    /// The key that changed.
    pub fn key(&self) -> &str {
        match self {
            PresenceChange::Join { key, .. } | PresenceChange::Leave { key, .. } => key,
        }
    }

    /// Whether the key was not present before this join (a new arrival).
    pub fn is_first_join(&self) -> bool {
        matches!(self, PresenceChange::Join { current: None, .. })
    }

    /// Whether the key has no meta left after this leave (gone for good).
    pub fn is_last_leave(&self) -> bool {
        matches!(self, PresenceChange::Leave { current, .. } if current.metas.is_empty())
    }
}

/// What a presence event did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PresenceUpdate {
    /// The joins and leaves, in phoenix.js order (every join of a sync, then every
    /// leave; for a state, those of the held diffs follow).
    pub changes: Vec<PresenceChange>,
    /// Whether the list was synced (phoenix.js calls `onSync`): true for a state and
    /// for a diff applied; false for a diff held until the state of the join, and
    /// for an ignored (malformed) payload.
    pub synced: bool,
}

/// The names of the two presence events (phoenix.js `opts.events`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceEvents {
    /// The full state event; default `presence_state`.
    pub state: String,
    /// The diff event; default `presence_diff`.
    pub diff: String,
}

impl PresenceEvents {
    /// Custom event names.
    pub fn new(state: impl Into<String>, diff: impl Into<String>) -> Self {
        PresenceEvents {
            state: state.into(),
            diff: diff.into(),
        }
    }

    fn kind(&self, event: &Event) -> Option<Kind> {
        let Event::Custom(name) = event else {
            return None;
        };
        if *name == self.state {
            Some(Kind::State)
        } else if *name == self.diff {
            Some(Kind::Diff)
        } else {
            None
        }
    }
}

impl Default for PresenceEvents {
    fn default() -> Self {
        PresenceEvents::new("presence_state", "presence_diff")
    }
}

#[derive(Clone, Copy)]
enum Kind {
    State,
    Diff,
}

// ----- the phoenix.js static API -----

/// Syncs a full state from the server into `state` (phoenix.js `Presence.syncState`):
/// keys absent from `new_state` leave; for a key in both, the metas whose `phx_ref`
/// is new join and those whose `phx_ref` is gone leave; new keys join. Returns the
/// changes, every join then every leave.
pub fn sync_state(state: &mut PresenceMap, new_state: PresenceMap) -> Vec<PresenceChange> {
    let mut joins = PresenceMap::new();
    let mut leaves = PresenceMap::new();
    for (key, presence) in state.iter() {
        if !new_state.contains_key(key) {
            leaves.insert(key, presence.clone());
        }
    }
    for (key, mut new_presence) in new_state {
        let Some(current) = state.get(&key) else {
            joins.insert(key, new_presence);
            continue;
        };
        let (joined_metas, left_metas) = {
            let new_refs = new_presence.refs();
            let cur_refs = current.refs();
            let joined: Vec<Value> = new_presence
                .metas
                .iter()
                .filter(|m| !cur_refs.contains(&phx_ref(m)))
                .cloned()
                .collect();
            let left: Vec<Value> = current
                .metas
                .iter()
                .filter(|m| !new_refs.contains(&phx_ref(m)))
                .cloned()
                .collect();
            (joined, left)
        };
        if !left_metas.is_empty() {
            let mut left = current.clone();
            left.metas = left_metas;
            leaves.insert(key.clone(), left);
        }
        if !joined_metas.is_empty() {
            new_presence.metas = joined_metas;
            joins.insert(key, new_presence);
        }
    }
    sync_diff(state, PresenceDiff { joins, leaves })
}

/// Applies a diff to `state` (phoenix.js `Presence.syncDiff`): each join replaces
/// the key's presence with the joined one, its metas after the current metas whose
/// `phx_ref` is not among them; each leave removes the metas with the left
/// `phx_ref`s, and the key when none is left. Returns the changes, every join then
/// every leave (a leave of an absent key is skipped).
pub fn sync_diff(state: &mut PresenceMap, diff: PresenceDiff) -> Vec<PresenceChange> {
    let mut changes = Vec::with_capacity(diff.joins.len() + diff.leaves.len());
    for (key, new_presence) in diff.joins {
        let mut merged = new_presence.clone();
        if let Some(current) = state.get(&key) {
            let mut metas: Vec<Value> = {
                let joined_refs = merged.refs();
                current
                    .metas
                    .iter()
                    .filter(|m| !joined_refs.contains(&phx_ref(m)))
                    .cloned()
                    .collect()
            };
            metas.append(&mut merged.metas);
            merged.metas = metas;
        }
        let current = state.insert(key.clone(), merged);
        changes.push(PresenceChange::Join {
            key,
            current,
            new_presence,
        });
    }
    for (key, left) in diff.leaves {
        let Some(current) = state.0.get_mut(&key) else {
            continue;
        };
        {
            let refs_to_remove = left.refs();
            current
                .metas
                .retain(|m| !refs_to_remove.contains(&phx_ref(m)));
        }
        let current = if current.metas.is_empty() {
            state.remove(&key).unwrap_or_default()
        } else {
            current.clone()
        };
        changes.push(PresenceChange::Leave { key, current, left });
    }
    changes
}

/// The presences, each through `chooser(key, presence)`, in order (phoenix.js
/// `Presence.list(presences, chooser)`; without a chooser, [`PresenceMap::list`]).
pub fn list_by<T>(
    presences: &PresenceMap,
    mut chooser: impl FnMut(&str, &PresenceState) -> T,
) -> Vec<T> {
    presences.iter().map(|(k, p)| chooser(k, p)).collect()
}

// ----- one topic -----

/// A join of the topic, as far as the tracker knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum JoinId {
    /// Counted by [`Presence::reset`].
    Local(u64),
    /// Given by the client's join_ref.
    Ref(Ref),
}

type JoinCallback = Box<dyn FnMut(&str, Option<&PresenceState>, &PresenceState) + Send>;
type LeaveCallback = Box<dyn FnMut(&str, &PresenceState, &PresenceState) + Send>;
type SyncCallback = Box<dyn FnMut() + Send>;

#[derive(Default)]
struct Callbacks {
    on_join: Option<JoinCallback>,
    on_leave: Option<LeaveCallback>,
    on_sync: Option<SyncCallback>,
}

/// The presences of one topic (a phoenix.js `Presence` instance).
///
/// Feed it the topic's messages with [`handle`](Self::handle) (or
/// [`handle_at`](Self::handle_at), with the topic's join_ref), and tell it about
/// each (re)join with [`reset`](Self::reset) if you do not pass the join_ref. See the
/// [module documentation](self).
pub struct Presence {
    events: PresenceEvents,
    state: PresenceMap,
    pending_diffs: Vec<PresenceDiff>,
    /// The join whose state was last synced (phoenix.js `this.joinRef`).
    synced_join: Option<JoinId>,
    /// The current join (phoenix.js `channel.joinRef()`).
    current_join: JoinId,
    resets: u64,
    callbacks: Callbacks,
}

impl Default for Presence {
    fn default() -> Self {
        Presence::new()
    }
}

impl fmt::Debug for Presence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Presence")
            .field("events", &self.events)
            .field("state", &self.state)
            .field("pending_diffs", &self.pending_diffs)
            .field("in_pending_sync_state", &self.in_pending_sync_state())
            .finish_non_exhaustive()
    }
}

impl Presence {
    /// A tracker of `presence_state` / `presence_diff`, waiting for its first state.
    pub fn new() -> Self {
        Presence::with_events(PresenceEvents::default())
    }

    /// A tracker of custom event names.
    pub fn with_events(events: PresenceEvents) -> Self {
        Presence {
            events,
            state: PresenceMap::new(),
            pending_diffs: Vec::new(),
            synced_join: None,
            current_join: JoinId::Local(0),
            resets: 0,
            callbacks: Callbacks::default(),
        }
    }

    /// Calls `f(key, current, new_presence)` for each join, as phoenix.js `onJoin`
    /// (the same calls as the [`PresenceChange::Join`]s returned).
    pub fn on_join(
        &mut self,
        f: impl FnMut(&str, Option<&PresenceState>, &PresenceState) + Send + 'static,
    ) -> &mut Self {
        self.callbacks.on_join = Some(Box::new(f));
        self
    }

    /// Calls `f(key, current, left)` for each leave, as phoenix.js `onLeave` (the same
    /// calls as the [`PresenceChange::Leave`]s returned).
    pub fn on_leave(
        &mut self,
        f: impl FnMut(&str, &PresenceState, &PresenceState) + Send + 'static,
    ) -> &mut Self {
        self.callbacks.on_leave = Some(Box::new(f));
        self
    }

    /// Calls `f()` after each sync, as phoenix.js `onSync` (when
    /// [`PresenceUpdate::synced`] is true).
    pub fn on_sync(&mut self, f: impl FnMut() + Send + 'static) -> &mut Self {
        self.callbacks.on_sync = Some(Box::new(f));
        self
    }

    /// The event names tracked.
    pub fn events(&self) -> &PresenceEvents {
        &self.events
    }

    /// Whether the event is this tracker's state or diff event.
    pub fn is_presence_event(&self, event: &Event) -> bool {
        self.events.kind(event).is_some()
    }

    /// Handles a message of the topic: `None` if the event is not a presence event
    /// (the message is not consumed), else what it did. A malformed payload is
    /// ignored with a warning (`Some` with no change, not synced).
    pub fn handle(&mut self, event: &Event, payload: &Payload) -> Option<PresenceUpdate> {
        self.handle_inner(None, event, payload)
    }

    /// [`handle`](Self::handle), knowing the topic's current join_ref (phoenix.js
    /// `channel.joinRef()`): a join_ref other than the last one seen starts a new join,
    /// as [`reset`](Self::reset) does. `None` changes nothing.
    pub fn handle_at(
        &mut self,
        join_ref: Option<Ref>,
        event: &Event,
        payload: &Payload,
    ) -> Option<PresenceUpdate> {
        self.events.kind(event)?;
        if let Some(r) = join_ref {
            self.set_join_ref(r);
        }
        self.handle_inner(None, event, payload)
    }

    /// Starts a new join of the topic: call it when the topic is (re)joined (in
    /// `handle_join`). Diffs are held until the state of this join arrives; that state
    /// is then synced against the presences listed now (which stay listed until
    /// then), so only the differences are reported, as phoenix.js does after a
    /// reconnect. Diffs held for the previous join are dropped.
    pub fn reset(&mut self) {
        self.resets += 1;
        self.begin_join(JoinId::Local(self.resets));
    }

    /// Records the topic's current join_ref: a new one starts a new join, as
    /// [`reset`](Self::reset) does.
    pub fn set_join_ref(&mut self, join_ref: Ref) {
        if self.current_join != JoinId::Ref(join_ref.clone()) {
            self.begin_join(JoinId::Ref(join_ref));
        }
    }

    fn begin_join(&mut self, join: JoinId) {
        if !self.pending_diffs.is_empty() {
            log::debug!(
                "dropped {} presence diffs held for a replaced join",
                self.pending_diffs.len()
            );
            self.pending_diffs.clear();
        }
        self.current_join = join;
    }

    /// Whether the state of the current join has not arrived yet (diffs are held):
    /// phoenix.js `inPendingSyncState()`.
    pub fn in_pending_sync_state(&self) -> bool {
        self.synced_join.as_ref() != Some(&self.current_join)
    }

    /// Syncs a full state (the state event), then the diffs held for this join.
    pub fn handle_state(&mut self, new_state: PresenceMap) -> PresenceUpdate {
        self.synced_join = Some(self.current_join.clone());
        let mut changes = sync_state(&mut self.state, new_state);
        for diff in std::mem::take(&mut self.pending_diffs) {
            changes.extend(sync_diff(&mut self.state, diff));
        }
        self.notify(&changes);
        PresenceUpdate {
            changes,
            synced: true,
        }
    }

    /// Applies a diff (the diff event), or holds it until the state of the current
    /// join.
    pub fn handle_diff(&mut self, diff: PresenceDiff) -> PresenceUpdate {
        if self.in_pending_sync_state() {
            if self.pending_diffs.len() >= MAX_PENDING_DIFFS {
                log::warn!(
                    "more than {MAX_PENDING_DIFFS} presence diffs before the state; dropped the oldest"
                );
                self.pending_diffs.remove(0);
            }
            self.pending_diffs.push(diff);
            return PresenceUpdate::default();
        }
        let changes = sync_diff(&mut self.state, diff);
        self.notify(&changes);
        PresenceUpdate {
            changes,
            synced: true,
        }
    }

    fn handle_inner(
        &mut self,
        topic: Option<&Topic>,
        event: &Event,
        payload: &Payload,
    ) -> Option<PresenceUpdate> {
        let kind = self.events.kind(event)?;
        let parsed = match payload {
            Payload::Json(v) => match kind {
                Kind::State => PresenceMap::from_value(v).map(Ok),
                Kind::Diff => PresenceDiff::from_value(v).map(Err),
            },
            Payload::Binary(_) => Err(PresenceError::new("binary payload")),
        };
        Some(match parsed {
            Ok(Ok(state)) => self.handle_state(state),
            Ok(Err(diff)) => self.handle_diff(diff),
            Err(e) => {
                match topic {
                    Some(t) => log::warn!("ignored {event} on {t}: {e}"),
                    None => log::warn!("ignored {event}: {e}"),
                }
                PresenceUpdate::default()
            }
        })
    }

    fn notify(&mut self, changes: &[PresenceChange]) {
        let cb = &mut self.callbacks;
        for change in changes {
            match change {
                PresenceChange::Join {
                    key,
                    current,
                    new_presence,
                } => {
                    if let Some(f) = &mut cb.on_join {
                        f(key, current.as_ref(), new_presence);
                    }
                }
                PresenceChange::Leave { key, current, left } => {
                    if let Some(f) = &mut cb.on_leave {
                        f(key, current, left);
                    }
                }
            }
        }
        if let Some(f) = &mut cb.on_sync {
            f();
        }
    }

    /// The presences, in order (phoenix.js `presence.list()`).
    pub fn list(&self) -> Vec<&PresenceState> {
        self.state.list()
    }

    /// The presences through a chooser (phoenix.js `presence.list(chooser)`).
    pub fn list_by<T>(&self, chooser: impl FnMut(&str, &PresenceState) -> T) -> Vec<T> {
        list_by(&self.state, chooser)
    }

    /// The presences by key.
    pub fn state(&self) -> &PresenceMap {
        &self.state
    }

    /// The diffs held until the state of the current join (phoenix.js `pendingDiffs`).
    pub fn pending_diffs(&self) -> &[PresenceDiff] {
        &self.pending_diffs
    }
}

// ----- several topics -----

/// A [`Presence`] per topic, created at the topic's first presence event: the
/// presence tracker of a client that joins several topics. Return it from
/// [`SlipstreamActor::presences`](crate::SlipstreamActor::presences) and the client
/// feeds it; read it anywhere. See the [module documentation](self).
#[derive(Debug, Default)]
pub struct Presences {
    events: PresenceEvents,
    topics: HashMap<Topic, Presence>,
}

impl Presences {
    /// Trackers of `presence_state` / `presence_diff`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trackers of custom event names.
    pub fn with_events(events: PresenceEvents) -> Self {
        Presences {
            events,
            topics: HashMap::new(),
        }
    }

    /// Handles a message, knowing the topic's current join_ref: `None` if the event
    /// is not a presence event, else what it did to the topic's presences. A new
    /// join_ref starts a new join. The client calls it for every message when the
    /// tracker is returned by [`SlipstreamActor::presences`](crate::SlipstreamActor::presences).
    pub(crate) fn handle_at(
        &mut self,
        topic: &Topic,
        join_ref: Option<Ref>,
        event: &Event,
        payload: &Payload,
    ) -> Option<PresenceUpdate> {
        self.events.kind(event)?;
        let presence = self.entry(topic);
        if let Some(r) = join_ref {
            presence.set_join_ref(r);
        }
        presence.handle_inner(Some(topic), event, payload)
    }

    fn entry(&mut self, topic: &Topic) -> &mut Presence {
        let events = &self.events;
        self.topics
            .entry(topic.clone())
            .or_insert_with(|| Presence::with_events(events.clone()))
    }

    /// The tracker of a topic, if it had a presence event or a reset.
    pub fn get(&self, topic: impl AsRef<str>) -> Option<&Presence> {
        self.topics.get(topic.as_ref())
    }

    /// The tracker of a topic, mutable.
    pub fn get_mut(&mut self, topic: impl AsRef<str>) -> Option<&mut Presence> {
        self.topics.get_mut(topic.as_ref())
    }

    /// Installs a tracker for a topic (e.g. one with callbacks); returns the previous.
    pub fn insert(&mut self, topic: impl Into<Topic>, presence: Presence) -> Option<Presence> {
        self.topics.insert(topic.into(), presence)
    }

    /// Forgets a topic (e.g. in `handle_leave`); returns its tracker.
    pub fn remove(&mut self, topic: impl AsRef<str>) -> Option<Presence> {
        self.topics.remove(topic.as_ref())
    }

    /// The topics tracked, in no particular order.
    pub fn topics(&self) -> impl Iterator<Item = &Topic> {
        self.topics.keys()
    }

    /// The presences of a topic, in order (empty for an unknown topic).
    pub fn list(&self, topic: &str) -> Vec<&PresenceState> {
        self.topics
            .get(topic)
            .map(Presence::list)
            .unwrap_or_default()
    }

    /// The presences of a topic through a chooser (empty for an unknown topic).
    pub fn list_by<T>(
        &self,
        topic: impl AsRef<str>,
        chooser: impl FnMut(&str, &PresenceState) -> T,
    ) -> Vec<T> {
        match self.topics.get(topic.as_ref()) {
            Some(p) => p.list_by(chooser),
            None => Vec::new(),
        }
    }

    /// Forgets every topic.
    pub fn clear(&mut self) {
        self.topics.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(name: &str) -> Event {
        Event::from(name)
    }

    fn payload(v: Value) -> Payload {
        Payload::Json(v)
    }

    #[test]
    fn events_that_are_not_presence_events_are_not_consumed_and_make_no_tracker() {
        let mut presences = Presences::new();
        let topic = Topic::from("room:1");
        assert!(presences
            .handle_at(
                &topic,
                Some(Ref::from(1)),
                &ev("new_msg"),
                &Payload::empty()
            )
            .is_none());
        assert!(
            presences.get("room:1").is_none(),
            "no tracker for a topic without presence events"
        );
    }

    #[test]
    fn presences_tracks_each_topic_on_its_own() {
        let mut presences = Presences::new();
        let lobby = Topic::from("room:lobby");
        let other = Topic::from("room:other");
        let one = Some(Ref::from(1));
        presences.handle_at(
            &lobby,
            one.clone(),
            &ev("presence_state"),
            &payload(json!({"ada": {"metas": [{"phx_ref": "a"}]}})),
        );
        presences.handle_at(
            &other,
            one.clone(),
            &ev("presence_state"),
            &payload(json!({"bob": {"metas": [{"phx_ref": "b"}]}})),
        );
        let update = presences
            .handle_at(
                &lobby,
                one,
                &ev("presence_diff"),
                &payload(json!({"joins": {"cy": {"metas": [{"phx_ref": "c"}]}}, "leaves": {}})),
            )
            .unwrap();
        assert!(update.synced);
        assert_eq!(
            presences.list_by("room:lobby", |k, _| k.to_owned()),
            ["ada", "cy"]
        );
        assert_eq!(
            presences.list_by("room:other", |k, _| k.to_owned()),
            ["bob"]
        );
        assert!(presences.list("room:none").is_empty());

        // A rejoin of one topic (a new join_ref) holds that topic's diffs only.
        let held = presences
            .handle_at(
                &lobby,
                Some(Ref::from(2)),
                &ev("presence_diff"),
                &payload(json!({"joins": {}, "leaves": {"ada": {"metas": [{"phx_ref": "a"}]}}})),
            )
            .unwrap();
        assert!(!held.synced);
        assert!(presences.get("room:lobby").unwrap().in_pending_sync_state());
        assert!(!presences.get("room:other").unwrap().in_pending_sync_state());
        assert_eq!(
            presences.list_by("room:lobby", |k, _| k.to_owned()),
            ["ada", "cy"]
        );

        assert!(presences.remove("room:other").is_some());
        assert_eq!(presences.topics().collect::<Vec<_>>(), [&lobby]);
    }

    #[test]
    fn presences_with_join_refs_resync_after_a_rejoin_and_use_installed_trackers() {
        let mut presences = Presences::with_events(PresenceEvents::new("s", "d"));
        let t = Topic::from("t");
        let state = payload(json!({"a": {"metas": [{"phx_ref": "a"}]}}));
        let leave_a = payload(json!({"joins": {}, "leaves": {"a": {"metas": [{"phx_ref": "a"}]}}}));
        presences.handle_at(&t, Some(Ref::from(1)), &ev("s"), &state);
        // Rejoined (join_ref 7): the diff waits for the new state.
        let held = presences
            .handle_at(&t, Some(Ref::from(7)), &ev("d"), &leave_a)
            .unwrap();
        assert!(!held.synced);
        assert_eq!(presences.list_by("t", |k, _| k.to_owned()), ["a"]);
        let update = presences
            .handle_at(&t, Some(Ref::from(7)), &ev("s"), &state)
            .unwrap();
        assert!(update.synced);
        assert!(presences.list("t").is_empty());
        // A tracker installed with callbacks is used for its topic.
        let joins = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let j = joins.clone();
        let mut custom = Presence::with_events(PresenceEvents::new("s", "d"));
        custom.on_join(move |_, _, _| {
            j.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        presences.insert("u", custom);
        presences.handle_at(&Topic::from("u"), Some(Ref::from(1)), &ev("s"), &state);
        assert_eq!(joins.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
