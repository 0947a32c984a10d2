//! The [`SlipstreamActor`] trait: the callbacks a user implements.

use super::Socket;
use crate::engine::{AfterDisconnect, AfterTopicClose, DisconnectReason, TopicCloseReason};
use crate::error::PushError;
use crate::message::{Event, Payload, Ref, Reply, Topic};
use crate::presence::{PresenceUpdate, Presences};

/// A Phoenix Channels client's behaviour: implement it on your own struct, then start
/// it with [`Client`](crate::Client).
///
/// Every callback has a default, so an empty `impl` is a working client that
/// connects, reconnects with backoff, and rejoins every topic it was asked to join.
/// Overriding a callback never loses what the client does by itself: the rejoin of
/// the registry happens before `handle_connect`, the callbacks that decide something
/// get the default decision as an argument, and the presence tracker is fed before
/// `handle_presence`.
///
/// # Lifecycle
///
/// 1. [`init`](Self::init) runs when the actor starts (and again after a supervisor
///    restart). By default it connects.
/// 2. When the websocket opens, the client rejoins every topic in the
///    [`TopicRegistry`](crate::TopicRegistry) (every topic joined so far, through
///    [`Join`](crate::Join) messages or `socket.join`, with its params, that has not
///    been left; [`Config::rejoin_on_connect`](crate::Config::rejoin_on_connect)
///    turns it off), then [`handle_connect`](Self::handle_connect) runs.
/// 3. [`handle_join`](Self::handle_join) runs when a join succeeds;
///    [`handle_message`](Self::handle_message) for each push or broadcast on a joined
///    topic; [`handle_reply`](Self::handle_reply) for replies to `socket.push`.
/// 4. [`handle_topic_close`](Self::handle_topic_close) runs when a topic closes
///    without being left: the channel crashed (`phx_error`) or a join failed
///    (rejected, unmatched topic, timeout). It gets what the
///    [`RetryPolicy`](crate::RetryPolicy) says and returns whether to rejoin.
/// 5. [`handle_leave`](Self::handle_leave) runs when a topic is left: by the user, or
///    by the server (`phx_close`, e.g. the channel stopped). Left topics leave the
///    registry. It runs exactly once per left topic, whatever ends the leave (the
///    reply, `phx_close`, `phx_error`, the leave timeout, the connection closing):
///    a user leave always ends in `handle_leave`.
/// 6. [`handle_disconnect`](Self::handle_disconnect) runs when the websocket closes
///    for any reason, or a connect fails (a panicking
///    [`params_fn`](crate::Config::params_fn) included). It gets the default
///    decision and returns whether to reconnect. Pushes in flight fail with [`PushError::ConnectionLost`]; buffered
///    pushes wait for the rejoin.
/// 7. [`terminate`](Self::terminate) runs when the actor stops: on
///    [`Stop`](crate::Stop), after [`AfterDisconnect::Stop`], or once the last
///    `Addr` of the client is dropped (see [`Client`](crate::Client#stopping)).
///    Before it, every open request gets its outcome: pushes fail with
///    [`PushError::Stopped`] (`handle_reply` runs for those of `socket.push`), join
///    and leave waiters get their `Stopped` error, topics being left are left
///    (`handle_leave`), and `handle_disconnect` runs with
///    [`DisconnectReason::Stopped`] (a `socket.connect()` there is ignored).
///
/// Callbacks get a [`Socket`] to act on the connection: join, leave, push,
/// disconnect, status.
///
/// ```no_run
/// use actix::Actor;
/// use actix_slipstream::{Client, Config, Event, Join, Payload, SlipstreamActor, Socket, Topic};
/// use serde_json::json;
///
/// struct Chat;
///
/// impl SlipstreamActor for Chat {
///     fn handle_message(&mut self, topic: &Topic, event: &Event, payload: Payload, _: &mut Socket<'_, Self>) {
///         println!("{topic} {event}: {payload:?}");
///     }
/// }
///
/// #[actix::main]
/// async fn main() {
///     let addr = Client::new(Chat, Config::new("ws://localhost:4000/socket")).start();
///     // Joined now, and again after every reconnect, with no more code.
///     addr.do_send(Join::new("room:lobby", json!({})));
/// }
/// ```
pub trait SlipstreamActor: Sized + Unpin + 'static {
    /// Runs when the actor starts, and again after a supervisor restart.
    ///
    /// Default: connects.
    fn init(&mut self, socket: &mut Socket<'_, Self>) {
        socket.connect();
    }

    /// Runs when the websocket opens, after the client rejoined the registry (unless
    /// [`Config::rejoin_on_connect`](crate::Config::rejoin_on_connect) is off) and sent
    /// the joins asked for while disconnected: a notification, nothing to keep.
    ///
    /// Default: does nothing.
    fn handle_connect(&mut self, _socket: &mut Socket<'_, Self>) {}

    /// Runs when the websocket closes or a connect fails; returns what to do next.
    /// `default` is the client's own choice: [`AfterDisconnect::Reconnect`] with the
    /// reconnect backoff, unless the user asked for the disconnect or the
    /// configuration is invalid ([`AfterDisconnect::StayDisconnected`]). While the
    /// client stops ([`DisconnectReason::Stopped`]) the decision is ignored, and so
    /// is a `socket.connect()`: a restarted client connects from `init`.
    ///
    /// Default: returns `default`.
    fn handle_disconnect(
        &mut self,
        _reason: &DisconnectReason,
        default: AfterDisconnect,
        _socket: &mut Socket<'_, Self>,
    ) -> AfterDisconnect {
        default
    }

    /// Runs when a join succeeds, with the channel's join response.
    ///
    /// Default: does nothing.
    fn handle_join(&mut self, _topic: &Topic, _response: &Payload, _socket: &mut Socket<'_, Self>) {
    }

    /// Runs for each push or broadcast received on a joined topic.
    ///
    /// Default: logs it at debug level.
    fn handle_message(
        &mut self,
        topic: &Topic,
        event: &Event,
        _payload: Payload,
        _socket: &mut Socket<'_, Self>,
    ) {
        log::debug!(target: crate::logging::CHANNEL, "unhandled message {event} on {topic}");
    }

    /// Runs with the outcome of each push made with [`Socket::push`]: the reply, or
    /// why there was none. (Pushes made with the [`Push`](crate::Push) message get
    /// their outcome through the message's response instead.)
    ///
    /// Default: logs errors at debug level.
    fn handle_reply(
        &mut self,
        topic: &Topic,
        reference: &Ref,
        result: Result<Reply, PushError>,
        _socket: &mut Socket<'_, Self>,
    ) {
        if let Err(e) = result {
            log::debug!(target: crate::logging::PUSH, "push {reference} on {topic} failed: {e}");
        }
    }

    /// Runs when a topic is left, by the user or by the server (`phx_close`).
    ///
    /// Default: does nothing.
    fn handle_leave(&mut self, _topic: &Topic, _socket: &mut Socket<'_, Self>) {}

    /// Runs when a topic closes without being left: the channel crashed, or a join
    /// failed. Returns whether to rejoin; `default` is what the configured
    /// [`RetryPolicy`](crate::RetryPolicy) says (crashes and join timeouts are
    /// rejoined with the rejoin backoff; a rejected join or an unmatched topic is
    /// given up).
    ///
    /// Default: returns `default`.
    fn handle_topic_close(
        &mut self,
        _topic: &Topic,
        _reason: &TopicCloseReason,
        default: AfterTopicClose,
        _socket: &mut Socket<'_, Self>,
    ) -> AfterTopicClose {
        default
    }

    /// The presence tracker fed automatically by the client, if any: return
    /// `Some(&mut self.presences)` to have every `presence_state` / `presence_diff`
    /// of every topic applied to it (keyed by the topic's current join, so a rejoin
    /// resyncs), and reported to [`handle_presence`](Self::handle_presence) instead of
    /// [`handle_message`](Self::handle_message).
    ///
    /// Default: `None` (presence events reach `handle_message` like any other).
    fn presences(&mut self) -> Option<&mut Presences> {
        None
    }

    /// Runs after a presence event was applied to the tracker returned by
    /// [`presences`](Self::presences), with the joins and leaves it caused; read the
    /// current list with `presences.list(topic)`.
    ///
    /// Default: does nothing.
    fn handle_presence(
        &mut self,
        _topic: &Topic,
        _update: &PresenceUpdate,
        _socket: &mut Socket<'_, Self>,
    ) {
    }

    /// Runs when the actor stops (also before a supervisor restart), after every
    /// open request got its outcome and the connection was closed.
    ///
    /// Default: does nothing.
    fn terminate(&mut self) {}
}
