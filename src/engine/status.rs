//! Snapshots of the client: [`Status`], one [`TopicSnapshot`] per topic, [`Traffic`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::connection::DisconnectKind;
use super::Engine;
use crate::message::{Ref, Topic};

/// The connection's state, without data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectionStatus {
    /// Not connected and no connect planned.
    Disconnected,
    /// A reconnect is scheduled after a backoff delay.
    WaitingToReconnect,
    /// Opening the websocket.
    Connecting,
    /// Connected.
    Connected,
}

impl fmt::Display for ConnectionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnectionStatus::Disconnected => "disconnected",
            ConnectionStatus::WaitingToReconnect => "waiting to reconnect",
            ConnectionStatus::Connecting => "connecting",
            ConnectionStatus::Connected => "connected",
        })
    }
}

/// A topic's state, without data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
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

/// One topic in a [`Status`] snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicSnapshot {
    /// The topic.
    pub topic: Topic,
    /// Its state.
    pub status: TopicStatus,
    /// The join_ref of its current join, if one was sent.
    pub join_ref: Option<Ref>,
    /// Pushes buffered until it is joined.
    pub buffered_pushes: usize,
}

/// A snapshot of the client: connection, topics and counters.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Status {
    /// The connection state.
    pub connection: ConnectionStatus,
    /// Every known topic, sorted by name.
    pub topics: Vec<TopicSnapshot>,
    /// Pushes sent and awaiting a reply.
    pub pending_replies: usize,
    /// Pushes buffered until their topic is joined, over all topics.
    pub buffered_pushes: usize,
    /// Successful connects since the client started.
    pub connects: u64,
    /// Disconnects (and failed connects) since the client started.
    pub disconnects: u64,
    /// The disconnects counted by kind ([`DisconnectReason::kind`](super::DisconnectReason::kind)).
    pub disconnects_by_reason: BTreeMap<DisconnectKind, u64>,
    /// Websocket frames and bytes in and out.
    pub traffic: Traffic,
    /// Joins sent again after a reconnect or a channel crash.
    pub rejoins: u64,
    /// The last heartbeat round trip.
    pub last_heartbeat_rtt: Option<Duration>,
    /// The average heartbeat round trip.
    pub average_heartbeat_rtt: Option<Duration>,
}

impl Status {
    /// The snapshot of one topic.
    pub fn topic(&self, topic: &str) -> Option<&TopicSnapshot> {
        self.topics.iter().find(|t| t.topic == topic)
    }
}

/// Websocket data frames and their bytes, counted since the client started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Traffic {
    /// Text and binary frames received.
    pub frames_in: u64,
    /// Bytes of the frames received (payloads, without websocket headers).
    pub bytes_in: u64,
    /// Text and binary frames sent.
    pub frames_out: u64,
    /// Bytes of the frames sent (payloads, without websocket headers).
    pub bytes_out: u64,
}

impl Engine {
    /// A snapshot of the connection, every topic and the counters.
    pub fn status(&self) -> Status {
        let mut topics: Vec<TopicSnapshot> = self
            .channels
            .iter()
            .map(|(t, c)| TopicSnapshot {
                topic: t.clone(),
                status: c.state.status(),
                join_ref: c.current_join_ref(),
                buffered_pushes: c.buffer.len(),
            })
            .collect();
        topics.sort_by(|a, b| a.topic.cmp(&b.topic));
        Status {
            connection: self.connection_status(),
            topics,
            pending_replies: self.pending.len(),
            buffered_pushes: self.channels.values().map(|c| c.buffer.len()).sum(),
            connects: self.connects,
            disconnects: self.disconnects,
            disconnects_by_reason: self.disconnects_by_reason.clone(),
            traffic: self.traffic,
            rejoins: self.rejoins,
            last_heartbeat_rtt: self.heartbeat.last_rtt,
            average_heartbeat_rtt: self.heartbeat.average_rtt(),
        }
    }

    /// Counts a data frame received (`bytes` of payload). The engine decodes nothing
    /// itself: the caller counts what it read, then feeds the decoded message.
    pub fn record_inbound(&mut self, bytes: usize) {
        self.traffic.frames_in += 1;
        self.traffic.bytes_in += bytes as u64;
    }

    /// Counts a data frame written (`bytes` of payload).
    pub fn record_outbound(&mut self, bytes: usize) {
        self.traffic.frames_out += 1;
        self.traffic.bytes_out += bytes as u64;
    }

    /// The connection's state.
    pub fn connection_status(&self) -> ConnectionStatus {
        self.conn.status()
    }

    /// The join_ref of a topic's current join, if one was sent.
    pub fn join_ref(&self, topic: &str) -> Option<Ref> {
        self.channels.get(topic).and_then(|c| c.current_join_ref())
    }

    /// The state of one topic, if known.
    pub fn topic_status(&self, topic: &str) -> Option<TopicStatus> {
        self.channels.get(topic).map(|c| c.state.status())
    }

    /// The number of armed timers (for leak checks: zero once everything is settled).
    pub fn timer_count(&self) -> usize {
        self.timers.len()
    }

    /// The number of requests waiting for an outcome (joins, leaves and pushes made
    /// with a [`RequestId`](super::RequestId)), for leak checks.
    pub fn open_requests(&self) -> usize {
        let waiting: usize = self
            .channels
            .values()
            .map(|c| {
                c.join_waiters.len()
                    + c.leave_waiters.len()
                    + c.join_after_leave.as_ref().map_or(0, Vec::len)
                    + c.buffer
                        .iter()
                        .filter(|b| b.reply_to.request().is_some())
                        .count()
            })
            .sum();
        waiting
            + self
                .pending
                .iter()
                .map(|(_, p)| p)
                .filter(|p| p.reply_to.request().is_some())
                .count()
    }
}
