//! The presence tracker in a client, against the test server sending real presence
//! frames: the state pushed after each join, diffs pushed and broadcast, a diff that
//! overtakes the state, and a reconnect that resyncs from the new state.
#![cfg(feature = "testing")]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::Actor;
use actix_slipstream::presence::{PresenceUpdate, Presences};
use actix_slipstream::testing::{Action, Channel, JoinOutcome, TestServer};
use actix_slipstream::{Client, ClientExt, Event, Payload, SlipstreamActor, Socket, Topic};
use common::{config, WAIT};
use serde_json::{json, Value};
use tokio::sync::mpsc;

const TOPIC: &str = "presence:lobby";

/// A synced presence list: `key:phx_ref,phx_ref...` per key, in list order.
type Listing = Vec<String>;

struct Tracker {
    presence: Presences,
    tx: mpsc::Sender<Listing>,
}

impl SlipstreamActor for Tracker {
    /// Overridden: the client feeds the tracker all the same, and presence events
    /// never reach it.
    fn handle_message(&mut self, _: &Topic, event: &Event, _: Payload, _: &mut Socket<'_, Self>) {
        panic!("event {event} reached handle_message");
    }

    fn presences(&mut self) -> Option<&mut Presences> {
        Some(&mut self.presence)
    }

    fn handle_presence(
        &mut self,
        topic: &Topic,
        update: &PresenceUpdate,
        _: &mut Socket<'_, Self>,
    ) {
        self.report(topic, update);
    }
}

impl Tracker {
    fn report(&self, topic: &Topic, update: &PresenceUpdate) {
        if update.synced {
            let listing = self.presence.list_by(topic, |key, p| {
                let refs: Vec<&str> = p
                    .metas
                    .iter()
                    .map(|m| m["phx_ref"].as_str().unwrap_or("?"))
                    .collect();
                format!("{key}:{}", refs.join(","))
            });
            self.tx.try_send(listing).expect("listing channel overflow");
        }
    }
}

fn metas(refs: &[&str]) -> Value {
    json!({"metas": refs.iter().map(|r| json!({"phx_ref": r})).collect::<Vec<_>>()})
}

/// A channel that, like a Phoenix channel with `Presence`, pushes the state after
/// each join; here a diff is pushed first, so it reaches the client before the state.
fn presence_channel() -> Channel {
    let joins = Arc::new(AtomicUsize::new(0));
    Channel::new().on_join(move |_| {
        let (early_diff, state) = match joins.fetch_add(1, Ordering::SeqCst) {
            0 => (
                json!({"joins": {"u3": metas(&["3"])}, "leaves": {}}),
                json!({"u1": metas(&["1"]), "u2": metas(&["2"])}),
            ),
            _ => (
                json!({"joins": {"u5": metas(&["5"])}, "leaves": {"u3": metas(&["3"])}}),
                json!({"u2": metas(&["2.2"]), "u3": metas(&["3"]), "u6": metas(&["6"])}),
            ),
        };
        JoinOutcome::ok(json!({})).then([
            Action::push("presence_diff", early_diff),
            Action::push("presence_state", state),
        ])
    })
}

async fn next_listing(rx: &mut mpsc::Receiver<Listing>, what: &str) -> Listing {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .expect("client stopped")
}

#[actix_rt::test]
async fn presence_fed_by_the_client_holds_early_diffs_and_resyncs_after_a_reconnect() {
    let _ = env_logger::builder().is_test(true).try_init();
    let server = TestServer::builder()
        .channel("presence:*", presence_channel())
        .start()
        .await
        .expect("test server starts");
    let (tx, mut rx) = mpsc::channel(1000);
    let tracker = Tracker {
        presence: Presences::new(),
        tx,
    };
    let addr = Client::new(tracker, config(&server)).start();
    addr.join(TOPIC, json!({})).await.unwrap();

    // The diff pushed before the state is held, then applied after it: the first
    // sync already lists u3, after u1 and u2.
    assert_eq!(
        next_listing(&mut rx, "the first state").await,
        ["u1:1", "u2:2", "u3:3"]
    );

    // A diff pushed to this socket, then broadcast diffs (join_ref null).
    let socket = server.wait_for_join(TOPIC, WAIT).await.unwrap();
    server
        .push(
            socket,
            TOPIC,
            "presence_diff",
            json!({"joins": {}, "leaves": {"u1": metas(&["1"])}}),
        )
        .await
        .unwrap();
    assert_eq!(next_listing(&mut rx, "u1 leaving").await, ["u2:2", "u3:3"]);
    let sent = server
        .broadcast(
            TOPIC,
            "presence_diff",
            json!({"joins": {"u4": metas(&["4"])}, "leaves": {}}),
        )
        .await;
    assert_eq!(sent, 1);
    assert_eq!(
        next_listing(&mut rx, "u4 joining").await,
        ["u2:2", "u3:3", "u4:4"]
    );
    // A meta update: Phoenix sends the leave of the old meta and the join of the
    // new one, which names the old in phx_ref_prev.
    server
        .broadcast(
            TOPIC,
            "presence_diff",
            json!({
                "joins": {"u2": {"metas": [{"phx_ref": "2.2", "phx_ref_prev": "2"}]}},
                "leaves": {"u2": metas(&["2"])}
            }),
        )
        .await;
    assert_eq!(
        next_listing(&mut rx, "u2 updating").await,
        ["u2:2.2", "u3:3", "u4:4"]
    );

    // Reconnect: the topic is rejoined, the tracker holds the diff that overtakes the
    // new state (join u5, leave u3), syncs the state against what it listed (u4
    // leaves, u6 joins), then applies the diff. Applied before the state, the diff
    // would have been undone by it (u5 missing, u3 present).
    assert_eq!(server.drop_all_connections(), 1);
    assert_eq!(
        next_listing(&mut rx, "the state after the reconnect").await,
        ["u2:2.2", "u6:6", "u5:5"]
    );
    assert!(rx.try_recv().is_err(), "no other sync");
}
