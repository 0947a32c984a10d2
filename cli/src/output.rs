//! Event lines on stdout, and payloads as JSON.

use std::io::Write;
use std::time::{Duration, Instant};

use actix_slipstream::{ConnectionStatus, Payload, Status, TopicStatus};
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};

/// Writes one JSON object per line on stdout, flushed, each starting with
/// `"ts_ms"` (milliseconds since start) and `"event"`.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    start: Instant,
}

impl Out {
    pub fn new() -> Self {
        Out {
            start: Instant::now(),
        }
    }

    /// Prints `{"ts_ms":..,"event":event, fields...}` in this order.
    pub fn emit(&self, event: &str, fields: &[(&str, Value)]) {
        let mut line = format!(
            "{{\"ts_ms\":{},\"event\":{}",
            self.start.elapsed().as_millis(),
            Value::from(event)
        );
        for (key, value) in fields {
            line.push(',');
            line.push_str(&Value::from(*key).to_string());
            line.push(':');
            line.push_str(&value.to_string());
        }
        line.push_str("}\n");
        let mut stdout = std::io::stdout().lock();
        // A closed stdout is not a reason to stop talking to the server.
        let _ = stdout
            .write_all(line.as_bytes())
            .and_then(|()| stdout.flush());
    }

    /// An `error` event.
    pub fn error(&self, message: impl Into<String>) {
        self.emit("error", &[("message", Value::from(message.into()))]);
    }
}

/// A payload as JSON: itself, or `{"binary_base64": "..."}` for a binary one.
pub fn payload_json(payload: &Payload) -> Value {
    match payload {
        Payload::Json(v) => v.clone(),
        Payload::Binary(b) => {
            json!({"binary_base64": base64::engine::general_purpose::STANDARD.encode(b)})
        }
    }
}

/// A payload from JSON: `{"binary_base64": "..."}` (and no other key) is binary.
pub fn payload_from_json(value: Value) -> Result<Payload, String> {
    if let Value::Object(map) = &value {
        if map.len() == 1 {
            if let Some(b64) = map.get("binary_base64") {
                let text = b64
                    .as_str()
                    .ok_or("binary_base64 must be a base64 string")?;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|e| format!("invalid binary_base64: {e}"))?;
                return Ok(Payload::Binary(Bytes::from(bytes)));
            }
        }
    }
    Ok(Payload::Json(value))
}

/// The fields of a `status` line: the client's [`Status`] snapshot, flat (see
/// docs/cli.md). Names are snake_case and stable; durations are milliseconds.
pub fn status_fields(status: &Status) -> Vec<(&'static str, Value)> {
    let topics: Vec<Value> = status
        .topics
        .iter()
        .map(|t| {
            json!({
                "topic": t.topic.as_str(),
                "state": topic_state_name(t.status),
                "join_ref": t.join_ref.as_ref().map(|r| r.to_string()),
                "buffered_pushes": t.buffered_pushes,
            })
        })
        .collect();
    let by_reason: serde_json::Map<String, Value> = status
        .disconnects_by_reason
        .iter()
        .map(|(kind, n)| (kind.to_string(), Value::from(*n)))
        .collect();
    let traffic = &status.traffic;
    vec![
        (
            "connection",
            Value::from(connection_name(status.connection)),
        ),
        ("topics", Value::Array(topics)),
        ("connects", Value::from(status.connects)),
        ("disconnects", Value::from(status.disconnects)),
        ("disconnects_by_reason", Value::Object(by_reason)),
        ("rejoins", Value::from(status.rejoins)),
        ("pending_replies", Value::from(status.pending_replies)),
        ("buffered_pushes", Value::from(status.buffered_pushes)),
        ("frames_in", Value::from(traffic.frames_in)),
        ("bytes_in", Value::from(traffic.bytes_in)),
        ("frames_out", Value::from(traffic.frames_out)),
        ("bytes_out", Value::from(traffic.bytes_out)),
        ("last_heartbeat_rtt_ms", rtt_ms(status.last_heartbeat_rtt)),
        (
            "average_heartbeat_rtt_ms",
            rtt_ms(status.average_heartbeat_rtt),
        ),
    ]
}

fn connection_name(c: ConnectionStatus) -> &'static str {
    match c {
        ConnectionStatus::Disconnected => "disconnected",
        ConnectionStatus::WaitingToReconnect => "waiting_to_reconnect",
        ConnectionStatus::Connecting => "connecting",
        ConnectionStatus::Connected => "connected",
        // A state added by a later version of the library.
        _ => "unknown",
    }
}

fn topic_state_name(t: TopicStatus) -> &'static str {
    match t {
        TopicStatus::Joining => "joining",
        TopicStatus::Joined => "joined",
        TopicStatus::Leaving => "leaving",
        TopicStatus::Errored => "errored",
        // A state added by a later version of the library.
        _ => "unknown",
    }
}

/// Milliseconds with microsecond precision, or null.
fn rtt_ms(rtt: Option<Duration>) -> Value {
    match rtt {
        Some(d) => Value::from(d.as_micros() as f64 / 1000.0),
        None => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_payloads_round_trip_through_base64_json() {
        let payload = Payload::Binary(Bytes::from_static(&[0, 1, 2, 3, 0xfe, 0xff]));
        let json = payload_json(&payload);
        assert_eq!(json, json!({"binary_base64": "AAECA/7/"}));
        assert_eq!(payload_from_json(json).unwrap(), payload);
    }

    #[test]
    fn json_payloads_stay_json_and_bad_base64_is_an_error() {
        let v = json!({"binary_base64": "AA==", "other": 1});
        assert_eq!(payload_from_json(v.clone()).unwrap(), Payload::Json(v));
        assert!(payload_from_json(json!({"binary_base64": "***"})).is_err());
        assert!(payload_from_json(json!({"binary_base64": 5})).is_err());
    }
}
