//! Per-topic channel state.

use std::collections::VecDeque;
use std::fmt;
use std::time::Instant;

use serde_json::Value;
use tokio::sync::oneshot;

use crate::backoff::BackoffState;
use crate::error::{JoinError, LeaveError, PushError};
use crate::message::{Event, Payload, Ref, Reply};

/// Where the outcome of a push goes.
pub(crate) enum ReplyTo {
    /// To [`SlipstreamActor::handle_reply`](crate::SlipstreamActor::handle_reply).
    Callback,
    /// To the future returned for a [`Push`](crate::Push) message.
    Sender(oneshot::Sender<Result<Reply, PushError>>),
}

impl fmt::Debug for ReplyTo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyTo::Callback => f.write_str("Callback"),
            ReplyTo::Sender(_) => f.write_str("Sender"),
        }
    }
}

/// Where the outcome of a [`Join`](crate::Join) message goes.
pub(crate) type JoinWaiter = oneshot::Sender<Result<Payload, JoinError>>;

/// Where the outcome of a [`Leave`](crate::Leave) message goes.
pub(crate) type LeaveWaiter = oneshot::Sender<Result<(), LeaveError>>;

/// A timer's identity: its deadline and a unique sequence number.
pub(crate) type TimerKey = (Instant, u64);

/// A push made while its topic was not joined, waiting to be sent.
#[derive(Debug)]
pub(crate) struct BufferedPush {
    pub(crate) reference: u64,
    pub(crate) event: Event,
    pub(crate) payload: Payload,
    pub(crate) reply_to: ReplyTo,
    pub(crate) deadline: TimerKey,
}

/// The lifecycle state of one topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChannelState {
    /// Not joined and no join in flight: the socket is down, or the join is waiting
    /// for a decision. `explicit` marks a join asked for while disconnected, sent at
    /// the next connect even if `handle_connect` does not rejoin the registry.
    Waiting { explicit: bool },
    /// A rejoin is scheduled after a backoff delay.
    RejoinScheduled { timer: TimerKey },
    /// `phx_join` sent, reply awaited.
    Joining { join_ref: u64, timer: TimerKey },
    /// Joined.
    Joined { join_ref: u64 },
    /// `phx_leave` sent, reply or `phx_close` awaited.
    Leaving {
        join_ref: u64,
        leave_ref: u64,
        timer: TimerKey,
    },
}

/// The public, data-free view of a topic's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicStatus {
    /// A join is in flight.
    Joining,
    /// Joined.
    Joined,
    /// A leave is in flight.
    Leaving,
    /// Not joined: waiting for the socket to connect or for a rejoin delay.
    Errored,
}

impl fmt::Display for TopicStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TopicStatus::Joining => "joining",
            TopicStatus::Joined => "joined",
            TopicStatus::Leaving => "leaving",
            TopicStatus::Errored => "errored",
        })
    }
}

impl ChannelState {
    /// The join_ref of the current incarnation, if a join was sent.
    pub(crate) fn join_ref(&self) -> Option<u64> {
        match *self {
            ChannelState::Joining { join_ref, .. }
            | ChannelState::Joined { join_ref }
            | ChannelState::Leaving { join_ref, .. } => Some(join_ref),
            ChannelState::Waiting { .. } | ChannelState::RejoinScheduled { .. } => None,
        }
    }

    pub(crate) fn status(&self) -> TopicStatus {
        match self {
            ChannelState::Waiting { .. } | ChannelState::RejoinScheduled { .. } => {
                TopicStatus::Errored
            }
            ChannelState::Joining { .. } => TopicStatus::Joining,
            ChannelState::Joined { .. } => TopicStatus::Joined,
            ChannelState::Leaving { .. } => TopicStatus::Leaving,
        }
    }
}

/// Why a topic closed without the user leaving it.
#[derive(Debug, Clone, PartialEq)]
pub enum TopicCloseReason {
    /// The channel process crashed on the server (`phx_error`), with its payload.
    Crashed(Payload),
    /// The join failed.
    JoinFailed(JoinError),
}

impl fmt::Display for TopicCloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicCloseReason::Crashed(_) => f.write_str("channel crashed (phx_error)"),
            TopicCloseReason::JoinFailed(e) => write!(f, "join failed: {e}"),
        }
    }
}

/// One topic: its state, join params, buffered pushes and rejoin backoff.
pub(crate) struct Channel {
    pub(crate) state: ChannelState,
    pub(crate) params: Value,
    pub(crate) buffer: VecDeque<BufferedPush>,
    pub(crate) join_waiters: Vec<JoinWaiter>,
    /// Waiters of the user leave in flight (state `Leaving`).
    pub(crate) leave_waiters: Vec<LeaveWaiter>,
    pub(crate) rejoin: BackoffState,
    pub(crate) rejected: u32,
    pub(crate) last_response: Option<Payload>,
    /// A join asked for while the leave was in flight, with its waiters: a fresh
    /// join, sent once the leave completes.
    pub(crate) join_after_leave: Option<Vec<JoinWaiter>>,
}

impl fmt::Debug for Channel {
    /// Join params and payloads are left out: they may carry secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("state", &self.state)
            .field("buffered", &self.buffer.len())
            .field("join_waiters", &self.join_waiters.len())
            .field("leave_waiters", &self.leave_waiters.len())
            .field(
                "join_after_leave",
                &self.join_after_leave.as_ref().map(Vec::len),
            )
            .field("rejoin", &self.rejoin)
            .finish()
    }
}

impl Channel {
    pub(crate) fn new(params: Value, rejoin: BackoffState) -> Self {
        Channel {
            state: ChannelState::Waiting { explicit: false },
            params,
            buffer: VecDeque::new(),
            join_waiters: Vec::new(),
            leave_waiters: Vec::new(),
            rejoin,
            rejected: 0,
            last_response: None,
            join_after_leave: None,
        }
    }

    /// Resolves every join waiter.
    pub(crate) fn resolve_waiters(&mut self, result: &Result<Payload, JoinError>) {
        for w in self.join_waiters.drain(..) {
            let _ = w.send(result.clone());
        }
    }

    /// Resolves every leave waiter.
    pub(crate) fn resolve_leave_waiters(&mut self, result: Result<(), LeaveError>) {
        for w in self.leave_waiters.drain(..) {
            let _ = w.send(result);
        }
    }

    /// Answers the waiters of a join asked for during the leave (the join itself
    /// stays asked for).
    pub(crate) fn resolve_join_after_leave(&mut self, error: &JoinError) {
        if let Some(waiters) = self.join_after_leave.as_mut() {
            for w in waiters.drain(..) {
                let _ = w.send(Err(error.clone()));
            }
        }
    }

    pub(crate) fn current_join_ref(&self) -> Option<Ref> {
        self.state.join_ref().map(Ref::from)
    }
}
