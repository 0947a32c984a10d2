//! The presence tracker, without a server: every scenario of phoenix.js's
//! `assets/test/presence_test.js` (each test names its JS scenario), then what the
//! Rust port adds (per-topic container, join refs, malformed payloads, bounds).

use std::sync::{Arc, Mutex};

use actix_slipstream::presence::{
    list_by, sync_diff, sync_state, Presence, PresenceChange, PresenceDiff, PresenceEvents,
    PresenceMap, PresenceState, MAX_PENDING_DIFFS,
};
use actix_slipstream::{Event, Payload, Ref};
use serde_json::{json, Value};

// ----- helpers -----

fn map(v: Value) -> PresenceMap {
    PresenceMap::from_value(&v).expect("a valid presence state")
}

fn diff(joins: Value, leaves: Value) -> PresenceDiff {
    PresenceDiff::from_value(&json!({"joins": joins, "leaves": leaves})).expect("a valid diff")
}

/// phoenix.js `fixtures.joins()`.
fn fixture_joins() -> Value {
    json!({"u1": {"metas": [{"id": 1, "phx_ref": "1.2"}]}})
}

/// phoenix.js `fixtures.leaves()`.
fn fixture_leaves() -> Value {
    json!({"u2": {"metas": [{"id": 2, "phx_ref": "2"}]}})
}

/// phoenix.js `fixtures.state()`.
fn fixture_state() -> Value {
    json!({
        "u1": {"metas": [{"id": 1, "phx_ref": "1"}]},
        "u2": {"metas": [{"id": 2, "phx_ref": "2"}]},
        "u3": {"metas": [{"id": 3, "phx_ref": "3"}]}
    })
}

/// The joins of a change list as phoenix.js's tests record `onJoin` calls:
/// `[key, {current, newPres}]` (`current` null for JS `undefined`).
fn joined(changes: &[PresenceChange]) -> Vec<(String, Value)> {
    changes
        .iter()
        .filter_map(|c| match c {
            PresenceChange::Join {
                key,
                current,
                new_presence,
            } => Some((
                key.clone(),
                json!({
                    "current": current.as_ref().map(PresenceState::to_value),
                    "newPres": new_presence.to_value()
                }),
            )),
            PresenceChange::Leave { .. } => None,
        })
        .collect()
}

/// The leaves of a change list as phoenix.js's tests record `onLeave` calls.
fn left(changes: &[PresenceChange]) -> Vec<(String, Value)> {
    changes
        .iter()
        .filter_map(|c| match c {
            PresenceChange::Leave { key, current, left } => Some((
                key.clone(),
                json!({"current": current.to_value(), "leftPres": left.to_value()}),
            )),
            PresenceChange::Join { .. } => None,
        })
        .collect()
}

fn ev(name: &str) -> Event {
    Event::from(name)
}

fn json_payload(v: Value) -> Payload {
    Payload::Json(v)
}

/// phoenix.js `listByFirst`: the first meta of each presence.
fn list_by_first(p: &Presence) -> Vec<Value> {
    p.list_by(|_, pres| pres.metas[0].clone())
}

type Calls = Arc<Mutex<Vec<Value>>>;

/// Records `onJoin` / `onLeave` calls as phoenix.js's instance tests do:
/// `{id, current, newPres}` and `{id, current, leftPres}`.
fn record_callbacks(presence: &mut Presence) -> (Calls, Calls) {
    let joins: Calls = Arc::default();
    let leaves: Calls = Arc::default();
    let j = joins.clone();
    presence.on_join(move |id, current, new_pres| {
        j.lock().unwrap().push(json!({
            "id": id,
            "current": current.map(PresenceState::to_value),
            "newPres": new_pres.to_value()
        }));
    });
    let l = leaves.clone();
    presence.on_leave(move |id, current, left_pres| {
        l.lock().unwrap().push(json!({
            "id": id,
            "current": current.to_value(),
            "leftPres": left_pres.to_value()
        }));
    });
    (joins, leaves)
}

fn calls(c: &Calls) -> Vec<Value> {
    c.lock().unwrap().clone()
}

// ----- describe("syncState") -----

/// JS: syncState "syncs empty state".
#[test]
fn sync_state_fills_an_empty_state_and_leaves_the_state_it_was_given_alone() {
    let new_state = map(json!({"u1": {"metas": [{"id": 1, "phx_ref": "1"}]}}));
    let state = PresenceMap::new();
    // JS: `Presence.syncState(state, newState)` without using the result changes nothing.
    let mut copy = state.clone();
    sync_state(&mut copy, new_state.clone());
    assert_eq!(state, PresenceMap::new());

    let mut state = state;
    sync_state(&mut state, new_state.clone());
    assert_eq!(state, new_state);
}

/// JS: syncState "onJoins new presences and onLeave's left presences".
#[test]
fn sync_state_reports_new_keys_as_joins_and_keys_gone_as_leaves() {
    let new_state = map(fixture_state());
    let mut state = map(json!({"u4": {"metas": [{"id": 4, "phx_ref": "4"}]}}));
    let changes = sync_state(&mut state, new_state.clone());
    assert_eq!(state, new_state);
    assert_eq!(
        joined(&changes),
        vec![
            (
                "u1".into(),
                json!({"current": null, "newPres": {"metas": [{"id": 1, "phx_ref": "1"}]}})
            ),
            (
                "u2".into(),
                json!({"current": null, "newPres": {"metas": [{"id": 2, "phx_ref": "2"}]}})
            ),
            (
                "u3".into(),
                json!({"current": null, "newPres": {"metas": [{"id": 3, "phx_ref": "3"}]}})
            ),
        ]
    );
    assert_eq!(
        left(&changes),
        vec![(
            "u4".into(),
            json!({"current": {"metas": []}, "leftPres": {"metas": [{"id": 4, "phx_ref": "4"}]}})
        )]
    );
}

/// JS: syncState "onJoins only newly added metas".
#[test]
fn sync_state_reports_only_the_newly_added_metas_of_a_known_key_as_joined() {
    let new_state = map(json!({"u3": {"metas": [
        {"id": 3, "phx_ref": "3"},
        {"id": 3, "phx_ref": "3.new"}
    ]}}));
    let mut state = map(json!({"u3": {"metas": [{"id": 3, "phx_ref": "3"}]}}));
    let changes = sync_state(&mut state, new_state.clone());
    assert_eq!(state, new_state);
    assert_eq!(
        joined(&changes),
        vec![(
            "u3".into(),
            json!({
                "current": {"metas": [{"id": 3, "phx_ref": "3"}]},
                "newPres": {"metas": [{"id": 3, "phx_ref": "3.new"}]}
            })
        )]
    );
    assert_eq!(left(&changes), vec![]);
}

// ----- describe("syncDiff") -----

/// JS: syncDiff "syncs empty state".
#[test]
fn sync_diff_adds_the_joins_to_an_empty_state() {
    let joins = json!({"u1": {"metas": [{"id": 1, "phx_ref": "1"}]}});
    let mut state = PresenceMap::new();
    sync_diff(&mut state, diff(joins.clone(), json!({})));
    assert_eq!(state.to_value(), joins);
}

/// JS: syncDiff "removes presence when meta is empty and adds additional meta".
#[test]
fn sync_diff_removes_a_key_without_metas_and_appends_a_joined_meta_to_a_known_key() {
    let mut state = map(fixture_state());
    sync_diff(&mut state, diff(fixture_joins(), fixture_leaves()));
    assert_eq!(
        state.to_value(),
        json!({
            "u1": {"metas": [{"id": 1, "phx_ref": "1"}, {"id": 1, "phx_ref": "1.2"}]},
            "u3": {"metas": [{"id": 3, "phx_ref": "3"}]}
        })
    );
}

/// JS: syncDiff "removes meta while leaving key if other metas exist".
#[test]
fn sync_diff_removes_a_left_meta_and_keeps_the_key_while_other_metas_remain() {
    let mut state = map(json!({"u1": {"metas": [
        {"id": 1, "phx_ref": "1"},
        {"id": 1, "phx_ref": "1.2"}
    ]}}));
    sync_diff(
        &mut state,
        diff(
            json!({}),
            json!({"u1": {"metas": [{"id": 1, "phx_ref": "1"}]}}),
        ),
    );
    assert_eq!(
        state.to_value(),
        json!({"u1": {"metas": [{"id": 1, "phx_ref": "1.2"}]}})
    );
}

// ----- describe("list") -----

/// JS: list "lists full presence by default".
#[test]
fn list_gives_every_full_presence_by_default() {
    let state = map(fixture_state());
    let listed: Vec<Value> = state.list().into_iter().map(|p| p.to_value()).collect();
    assert_eq!(
        listed,
        vec![
            json!({"metas": [{"id": 1, "phx_ref": "1"}]}),
            json!({"metas": [{"id": 2, "phx_ref": "2"}]}),
            json!({"metas": [{"id": 3, "phx_ref": "3"}]}),
        ]
    );
}

/// JS: list "lists with custom function".
#[test]
fn list_gives_what_a_custom_chooser_picks() {
    let state = map(json!({"u1": {"metas": [
        {"id": 1, "phx_ref": "1.first"},
        {"id": 1, "phx_ref": "1.second"}
    ]}}));
    let listed = list_by(&state, |_key, p| p.metas[0].clone());
    assert_eq!(listed, vec![json!({"id": 1, "phx_ref": "1.first"})]);
}

// ----- describe("instance") -----

/// JS: instance "syncs state and diffs".
#[test]
fn an_instance_syncs_the_state_then_the_diffs() {
    let mut presence = Presence::new();
    let user1 = json!({"metas": [{"id": 1, "phx_ref": "1"}]});
    let user2 = json!({"metas": [{"id": 2, "phx_ref": "2"}]});
    let update = presence
        .handle(
            &ev("presence_state"),
            &json_payload(json!({"u1": user1, "u2": user2})),
        )
        .unwrap();
    assert!(update.synced);
    assert_eq!(
        list_by_first(&presence),
        vec![
            json!({"id": 1, "phx_ref": "1"}),
            json!({"id": 2, "phx_ref": "2"})
        ]
    );

    let update = presence
        .handle(
            &ev("presence_diff"),
            &json_payload(json!({"joins": {}, "leaves": {"u1": user1}})),
        )
        .unwrap();
    assert!(update.synced);
    assert_eq!(
        list_by_first(&presence),
        vec![json!({"id": 2, "phx_ref": "2"})]
    );
}

/// JS: instance "applies pending diff if state is not yet synced", with the join
/// refs of its channel stub (`simulateDisconnectAndReconnect` bumps the join_ref).
#[test]
fn an_instance_holds_diffs_until_the_state_of_the_join_then_applies_them() {
    let mut presence = Presence::new();
    let (on_joins, on_leaves) = record_callbacks(&mut presence);
    let join_ref = |n: u64| Some(Ref::from(n));

    let user1 = json!({"metas": [{"id": 1, "phx_ref": "1"}]});
    let user2 = json!({"metas": [{"id": 2, "phx_ref": "2"}]});
    let user3 = json!({"metas": [{"id": 3, "phx_ref": "3"}]});
    let leaves = json!({"u2": user2});

    let held = presence
        .handle_at(
            join_ref(1),
            &ev("presence_diff"),
            &json_payload(json!({"joins": {}, "leaves": leaves})),
        )
        .unwrap();
    assert!(!held.synced && held.changes.is_empty());
    assert_eq!(list_by_first(&presence), Vec::<Value>::new());
    assert_eq!(presence.pending_diffs(), &[diff(json!({}), leaves.clone())]);

    let update = presence
        .handle_at(
            join_ref(1),
            &ev("presence_state"),
            &json_payload(json!({"u1": user1, "u2": user2})),
        )
        .unwrap();
    assert!(update.synced);
    assert_eq!(
        calls(&on_leaves),
        vec![json!({
            "id": "u2",
            "current": {"metas": []},
            "leftPres": {"metas": [{"id": 2, "phx_ref": "2"}]}
        })]
    );
    assert_eq!(
        list_by_first(&presence),
        vec![json!({"id": 1, "phx_ref": "1"})]
    );
    assert!(presence.pending_diffs().is_empty());
    assert_eq!(
        calls(&on_joins),
        vec![
            json!({"id": "u1", "current": null, "newPres": {"metas": [{"id": 1, "phx_ref": "1"}]}}),
            json!({"id": "u2", "current": null, "newPres": {"metas": [{"id": 2, "phx_ref": "2"}]}}),
        ]
    );

    // disconnect and reconnect
    assert!(!presence.in_pending_sync_state());
    presence.set_join_ref(Ref::from(2));
    assert!(presence.in_pending_sync_state());

    presence.handle_at(
        join_ref(2),
        &ev("presence_diff"),
        &json_payload(json!({"joins": {}, "leaves": {"u1": user1}})),
    );
    assert_eq!(
        list_by_first(&presence),
        vec![json!({"id": 1, "phx_ref": "1"})]
    );

    presence.handle_at(
        join_ref(2),
        &ev("presence_state"),
        &json_payload(json!({"u1": user1, "u3": user3})),
    );
    assert_eq!(
        list_by_first(&presence),
        vec![json!({"id": 3, "phx_ref": "3"})]
    );
}

/// JS: instance "applies pending diff if state is not yet synced", the reconnect
/// told with `reset()` (as from `handle_join`) instead of a join_ref.
#[test]
fn an_instance_reset_on_rejoin_holds_diffs_until_the_new_state() {
    let mut presence = Presence::new();
    let user1 = json!({"metas": [{"id": 1, "phx_ref": "1"}]});
    let user2 = json!({"metas": [{"id": 2, "phx_ref": "2"}]});
    let user3 = json!({"metas": [{"id": 3, "phx_ref": "3"}]});
    assert!(presence.in_pending_sync_state());
    presence.handle(
        &ev("presence_diff"),
        &json_payload(json!({"joins": {}, "leaves": {"u2": user2}})),
    );
    assert!(presence.list().is_empty());
    presence.handle(
        &ev("presence_state"),
        &json_payload(json!({"u1": user1, "u2": user2})),
    );
    assert_eq!(
        list_by_first(&presence),
        vec![json!({"id": 1, "phx_ref": "1"})]
    );

    assert!(!presence.in_pending_sync_state());
    presence.reset();
    assert!(presence.in_pending_sync_state());
    presence.handle(
        &ev("presence_diff"),
        &json_payload(json!({"joins": {}, "leaves": {"u1": user1}})),
    );
    assert_eq!(
        list_by_first(&presence),
        vec![json!({"id": 1, "phx_ref": "1"})]
    );
    let update = presence
        .handle(
            &ev("presence_state"),
            &json_payload(json!({"u1": user1, "u3": user3})),
        )
        .unwrap();
    assert_eq!(
        list_by_first(&presence),
        vec![json!({"id": 3, "phx_ref": "3"})]
    );
    // The state is synced against the presences listed before the rejoin: u3
    // joins; u1 stays (no change), then leaves through the held diff.
    assert_eq!(
        update
            .changes
            .iter()
            .map(|c| (c.key(), c.is_first_join(), c.is_last_leave()))
            .collect::<Vec<_>>(),
        vec![("u3", true, false), ("u1", false, true)]
    );
}

/// JS: instance "allows custom channel events".
#[test]
fn an_instance_tracks_custom_channel_events() {
    let mut presence = Presence::with_events(PresenceEvents::new("the_state", "the_diff"));
    let user1 = json!({"metas": [{"id": 1, "phx_ref": "1"}]});
    presence.handle(&ev("the_state"), &json_payload(json!({"user1": user1})));
    assert_eq!(
        list_by_first(&presence),
        vec![json!({"id": 1, "phx_ref": "1"})]
    );
    presence.handle(
        &ev("the_diff"),
        &json_payload(json!({"joins": {}, "leaves": {"user1": user1}})),
    );
    assert_eq!(list_by_first(&presence), Vec::<Value>::new());
    // The default names are not tracked any more.
    assert!(presence
        .handle(&ev("presence_state"), &json_payload(json!({})))
        .is_none());
}

/// JS: instance "updates existing meta for a presence update (leave + join)".
#[test]
fn an_instance_replaces_a_meta_updated_with_a_leave_and_a_join_carrying_phx_ref_prev() {
    let mut presence = Presence::new();
    let user1 = json!({"metas": [{"id": 1, "phx_ref": "1"}]});
    let user2 = json!({"metas": [{"id": 2, "name": "chris", "phx_ref": "2"}]});
    presence.handle(
        &ev("presence_state"),
        &json_payload(json!({"u1": user1, "u2": user2})),
    );
    let (on_joins, on_leaves) = record_callbacks(&mut presence);
    let metas = |p: &Presence| p.list_by(|_, pres| Value::Array(pres.metas.clone()));
    assert_eq!(
        metas(&presence),
        vec![
            json!([{"id": 1, "phx_ref": "1"}]),
            json!([{"id": 2, "name": "chris", "phx_ref": "2"}])
        ]
    );

    let leaves = json!({"u2": user2});
    let joins = json!({"u2": {"metas": [
        {"id": 2, "name": "chris.2", "phx_ref": "2.2", "phx_ref_prev": "2"}
    ]}});
    presence.handle(
        &ev("presence_diff"),
        &json_payload(json!({"joins": joins, "leaves": leaves})),
    );
    assert_eq!(
        metas(&presence),
        vec![
            json!([{"id": 1, "phx_ref": "1"}]),
            json!([{"id": 2, "name": "chris.2", "phx_ref": "2.2", "phx_ref_prev": "2"}])
        ]
    );
    assert_eq!(
        calls(&on_joins),
        vec![json!({
            "current": {"metas": [{"id": 2, "name": "chris", "phx_ref": "2"}]},
            "id": "u2",
            "newPres": {"metas": [{"id": 2, "name": "chris.2", "phx_ref": "2.2", "phx_ref_prev": "2"}]}
        })]
    );
    // Not asserted by the JS test; what phoenix.js's onLeave gets here.
    assert_eq!(
        calls(&on_leaves),
        vec![json!({
            "id": "u2",
            "current": {"metas": [{"id": 2, "name": "chris.2", "phx_ref": "2.2", "phx_ref_prev": "2"}]},
            "leftPres": {"metas": [{"id": 2, "name": "chris", "phx_ref": "2"}]}
        })]
    );
}

// ----- beyond the JS suite -----

#[test]
fn callbacks_get_the_same_calls_as_the_returned_changes_and_on_sync_once_per_sync() {
    let mut presence = Presence::new();
    let (on_joins, on_leaves) = record_callbacks(&mut presence);
    let syncs = Arc::new(Mutex::new(0));
    let s = syncs.clone();
    presence.on_sync(move || *s.lock().unwrap() += 1);

    let held = presence
        .handle(
            &ev("presence_diff"),
            &json_payload(json!({"joins": {"b": {"metas": [{"phx_ref": "b"}]}}, "leaves": {}})),
        )
        .unwrap();
    assert_eq!(*syncs.lock().unwrap(), 0, "a held diff is no sync");
    assert!(held.changes.is_empty() && calls(&on_joins).is_empty());

    let update = presence
        .handle(
            &ev("presence_state"),
            &json_payload(json!({"a": {"metas": [{"phx_ref": "a"}]}})),
        )
        .unwrap();
    assert_eq!(*syncs.lock().unwrap(), 1);
    let returned: Vec<Value> = joined(&update.changes)
        .into_iter()
        .map(|(k, v)| json!({"id": k, "current": v["current"], "newPres": v["newPres"]}))
        .collect();
    assert_eq!(returned, calls(&on_joins));
    assert!(calls(&on_leaves).is_empty());
    assert_eq!(presence.list_by(|k, _| k.to_owned()), ["a", "b"]);
}

#[test]
fn events_that_are_not_presence_events_are_not_consumed() {
    let mut presence = Presence::new();
    assert!(presence.handle(&ev("new_msg"), &Payload::empty()).is_none());
    assert!(presence
        .handle(&Event::Reply("ok".into()), &Payload::empty())
        .is_none());
}

#[test]
fn malformed_presence_payloads_are_ignored_and_leave_the_list_unchanged() {
    let mut presence = Presence::new();
    let state = json!({"u1": {"metas": [{"id": 1, "phx_ref": "1"}]}});
    presence.handle(&ev("presence_state"), &json_payload(state.clone()));
    let bad_states = [
        json!([1, 2]),
        json!("x"),
        json!(null),
        json!({"u1": 3}),
        json!({"u1": {"metas": "nope"}}),
        json!({"u1": {}}),
    ];
    for bad in bad_states {
        let update = presence
            .handle(&ev("presence_state"), &json_payload(bad.clone()))
            .expect("a presence event is consumed even when malformed");
        assert!(!update.synced && update.changes.is_empty(), "{bad}");
        assert_eq!(presence.state().to_value(), state, "{bad}");
    }
    let bad_diffs = [
        json!({}),
        json!({"joins": {}}),
        json!({"leaves": {}}),
        json!({"joins": [], "leaves": {}}),
        json!({"joins": {"u2": {"metas": {}}}, "leaves": {}}),
        json!({"joins": {"u2": {"metas": []}}, "leaves": {"u1": null}}),
        json!(42),
    ];
    for bad in bad_diffs {
        let update = presence
            .handle(&ev("presence_diff"), &json_payload(bad.clone()))
            .unwrap();
        assert!(!update.synced && update.changes.is_empty(), "{bad}");
        assert_eq!(presence.state().to_value(), state, "{bad}");
    }
    let update = presence
        .handle(&ev("presence_diff"), &Payload::Binary(vec![1, 2].into()))
        .unwrap();
    assert!(!update.synced);
    assert_eq!(presence.state().to_value(), state);
}

#[test]
fn metas_without_phx_ref_and_extra_presence_fields_are_carried_through() {
    let mut state = PresenceMap::new();
    sync_diff(
        &mut state,
        diff(
            json!({"u1": {"metas": [{"id": 1}, 7], "user": {"name": "ada"}}}),
            json!({}),
        ),
    );
    assert_eq!(
        state.to_value(),
        json!({"u1": {"metas": [{"id": 1}, 7], "user": {"name": "ada"}}})
    );
    assert_eq!(
        state.get("u1").unwrap().fields["user"],
        json!({"name": "ada"})
    );
}

#[test]
fn a_leave_of_an_unknown_key_is_skipped_without_a_change() {
    let mut state = map(fixture_state());
    let changes = sync_diff(
        &mut state,
        diff(json!({}), json!({"nobody": {"metas": [{"phx_ref": "x"}]}})),
    );
    assert!(changes.is_empty());
    assert_eq!(state, map(fixture_state()));
}

#[test]
fn a_state_lists_keys_already_known_in_their_place_and_new_keys_last() {
    let mut state = map(json!({"b": {"metas": [{"phx_ref": "b"}]}}));
    sync_diff(
        &mut state,
        diff(json!({"a": {"metas": [{"phx_ref": "a"}]}}), json!({})),
    );
    assert_eq!(state.keys().collect::<Vec<_>>(), ["b", "a"]);
    sync_state(
        &mut state,
        map(json!({
            "a": {"metas": [{"phx_ref": "a"}]},
            "b": {"metas": [{"phx_ref": "b2"}]},
            "c": {"metas": [{"phx_ref": "c"}]}
        })),
    );
    assert_eq!(state.keys().collect::<Vec<_>>(), ["b", "a", "c"]);
    assert_eq!(
        state.get("b").unwrap().metas,
        vec![json!({"phx_ref": "b2"})]
    );
}

#[test]
fn diffs_held_for_a_join_replaced_before_its_state_are_dropped() {
    let mut presence = Presence::new();
    presence.handle_at(
        Some(Ref::from(1)),
        &ev("presence_diff"),
        &json_payload(json!({"joins": {"ghost": {"metas": [{"phx_ref": "g"}]}}, "leaves": {}})),
    );
    assert_eq!(presence.pending_diffs().len(), 1);
    presence.handle_at(
        Some(Ref::from(2)),
        &ev("presence_state"),
        &json_payload(json!({"u1": {"metas": [{"phx_ref": "1"}]}})),
    );
    assert_eq!(presence.list_by(|k, _| k.to_owned()), ["u1"]);
    // A join_ref seen again is the same join: nothing is reset.
    presence.handle_at(
        Some(Ref::from(2)),
        &ev("presence_diff"),
        &json_payload(json!({"joins": {"u2": {"metas": [{"phx_ref": "2"}]}}, "leaves": {}})),
    );
    assert_eq!(presence.list_by(|k, _| k.to_owned()), ["u1", "u2"]);
}

#[test]
fn at_most_max_pending_diffs_are_held_dropping_the_oldest() {
    let mut presence = Presence::new();
    for i in 0..MAX_PENDING_DIFFS + 5 {
        presence.handle(
            &ev("presence_diff"),
            &json_payload(
                json!({"joins": {format!("u{i}"): {"metas": [{"phx_ref": i.to_string()}]}}, "leaves": {}}),
            ),
        );
    }
    assert_eq!(presence.pending_diffs().len(), MAX_PENDING_DIFFS);
    presence.handle(&ev("presence_state"), &json_payload(json!({})));
    let keys = presence.list_by(|k, _| k.to_owned());
    assert_eq!(keys.len(), MAX_PENDING_DIFFS);
    assert_eq!(keys[0], "u5");
}

#[test]
fn presence_types_serialize_as_the_phoenix_json() {
    let state = map(fixture_state());
    assert_eq!(serde_json::to_value(&state).unwrap(), fixture_state());
    let d = diff(fixture_joins(), fixture_leaves());
    assert_eq!(
        d.to_value(),
        json!({"joins": fixture_joins(), "leaves": fixture_leaves()})
    );
}
