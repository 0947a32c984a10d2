//! The [`SlipstreamActor`] trait: the callbacks a user implements.

use crate::channel::TopicCloseReason;
use crate::error::PushError;
use crate::message::{Event, Payload, Ref, Reply, Topic};
use crate::presence::{PresenceUpdate, Presences};
use crate::socket::Socket;
use crate::state::{AfterDisconnect, AfterTopicClose, DisconnectReason};

/// A Phoenix Channels client's behaviour: implement it on your own struct, then start
/// it with [`Client`](crate::Client).
///
/// Every callback has a default, so an empty `impl` is a working client that
/// connects, reconnects with backoff, and rejoins every topic it was asked to join.
///
/// # Lifecycle
///
/// 1. [`init`](Self::init) runs when the actor starts (and again after a supervisor
///    restart). By default it connects.
/// 2. [`handle_connect`](Self::handle_connect) runs when the websocket opens. By
///    default it rejoins every topic in the [`TopicRegistry`](crate::TopicRegistry):
///    every topic joined so far (through [`Join`](crate::Join) messages or
///    `socket.join`), with its params, that has not been left.
/// 3. [`handle_join`](Self::handle_join) runs when a join succeeds;
///    [`handle_message`](Self::handle_message) for each push or broadcast on a joined
///    topic; [`handle_reply`](Self::handle_reply) for replies to `socket.push`.
/// 4. [`handle_topic_close`](Self::handle_topic_close) runs when a topic closes
///    without being left: the channel crashed (`phx_error`) or a join failed
///    (rejected, unmatched topic, timeout). It returns whether to rejoin.
/// 5. [`handle_leave`](Self::handle_leave) runs when a topic is left: by the user, or
///    by the server (`phx_close`, e.g. the channel stopped). Left topics leave the
///    registry. It runs exactly once per left topic, whatever ends the leave (the
///    reply, `phx_close`, `phx_error`, the leave timeout, the connection closing):
///    a user leave always ends in `handle_leave`.
/// 6. [`handle_disconnect`](Self::handle_disconnect) runs when the websocket closes
///    for any reason, or a connect fails (a panicking
///    [`params_fn`](crate::Config::params_fn) included). It returns whether to
///    reconnect. Pushes in flight fail with [`PushError::ConnectionLost`]; buffered
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

    /// Runs when the websocket opens.
    ///
    /// Default: rejoins every topic in the registry. An override keeps that
    /// behaviour with one call to [`Socket::rejoin_registered`], or leaves it out to
    /// manage rejoins itself.
    fn handle_connect(&mut self, socket: &mut Socket<'_, Self>) {
        socket.rejoin_registered();
    }

    /// Runs when the websocket closes or a connect fails.
    ///
    /// Default: reconnect with the reconnect backoff, unless the user asked for the
    /// disconnect or the configuration is invalid. While the client stops
    /// ([`DisconnectReason::Stopped`]) the decision is ignored, and so is a
    /// `socket.connect()`: a restarted client connects from `init`.
    fn handle_disconnect(
        &mut self,
        reason: &DisconnectReason,
        _socket: &mut Socket<'_, Self>,
    ) -> AfterDisconnect {
        default_after_disconnect(reason)
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
    /// failed. Returns whether to rejoin.
    ///
    /// Default: as the configured [`RetryPolicy`](crate::RetryPolicy) says (crashes
    /// and join timeouts are rejoined with the rejoin backoff; a rejected join or an
    /// unmatched topic is given up).
    fn handle_topic_close(
        &mut self,
        topic: &Topic,
        reason: &TopicCloseReason,
        socket: &mut Socket<'_, Self>,
    ) -> AfterTopicClose {
        socket.default_after_topic_close(topic.as_str(), reason)
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

/// The default decision after a disconnect (what the default
/// [`SlipstreamActor::handle_disconnect`] returns), for overrides that add to it:
/// reconnect, except after a disconnect the user asked for or when the
/// configuration is invalid (a reconnect would fail the same way).
pub fn default_after_disconnect(reason: &DisconnectReason) -> AfterDisconnect {
    match reason {
        DisconnectReason::Requested | DisconnectReason::Stopped => {
            AfterDisconnect::StayDisconnected
        }
        DisconnectReason::ConnectFailed(crate::state::ConnectError::Config(e)) => {
            log::error!(target: crate::logging::CONNECTION, "not reconnecting: invalid configuration: {e}");
            AfterDisconnect::StayDisconnected
        }
        _ => AfterDisconnect::Reconnect,
    }
}
