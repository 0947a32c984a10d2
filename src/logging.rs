//! Log targets. Every log line of the client uses one of these targets, so logs can
//! be filtered by concern (`RUST_LOG=actix_slipstream::channel=debug`); the wording
//! of each line is documented in `docs/observability.md`.

/// Connects, disconnects, reconnect scheduling.
pub const CONNECTION: &str = "actix_slipstream::connection";
/// Joins, leaves, rejoins, channel crashes and closes.
pub const CHANNEL: &str = "actix_slipstream::channel";
/// Buffered, timed-out and failed pushes.
pub const PUSH: &str = "actix_slipstream::push";
/// Heartbeat timeouts.
pub const HEARTBEAT: &str = "actix_slipstream::heartbeat";
/// Dropped (stale, stray) and undecodable frames.
pub const WIRE: &str = "actix_slipstream::wire";
