//! Replays the client frames of every recorded Phoenix 1.7.24 transcript
//! (`tests/fixtures/*.json`) against `TestServer::phoenix_demo()` and checks that the
//! server answers with the recorded frames: text frames compared as JSON values (and
//! reported when the text differs too), binary frames byte for byte.
//!
//! Steps that were external actions in the recording are emulated with the handle:
//! `POST /broadcast` -> `broadcast`, `POST /disconnect` -> `disconnect(socket, 1011)`,
//! SIGTERM -> `stop` (then a restart on the same port is checked), SIGKILL -> `kill`,
//! the 60 s idle timeout -> a server built with a 300 ms idle timeout. Refused
//! connects are checked by their HTTP status. When a transcript ends with the
//! client's normal close (1000), the test first sends a heartbeat as a barrier: any
//! frame the server sent that the recording does not have would arrive before its
//! reply (the ticker's ticks aside), so "nothing comes back" is checked without sleeping.
#![cfg(feature = "testing")]

use std::path::Path;
use std::time::Duration;

use actix_slipstream::testing::TestServer;
use awc::ws;
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;

const STEP: Duration = Duration::from_secs(5);

type Conn = actix_codec::Framed<awc::BoxedSocket, ws::Codec>;

fn hex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err(format!("odd hex length in {s}"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| e.to_string()))
        .collect()
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn connect(url: &str) -> Result<Conn, awc::error::WsClientError> {
    let (_resp, conn) = awc::Client::new()
        .ws(url)
        .max_frame_size(16 * 1024 * 1024)
        .connect()
        .await?;
    Ok(conn)
}

/// The next data or close frame (pings answered), or None when the stream ended.
async fn next_frame(conn: &mut Conn) -> Result<Option<ws::Frame>, String> {
    loop {
        match tokio::time::timeout(STEP, conn.next()).await {
            Err(_) => return Err("no frame within 5 s".into()),
            Ok(None) => return Ok(None),
            Ok(Some(Err(e))) => return Err(format!("protocol error: {e}")),
            Ok(Some(Ok(ws::Frame::Ping(p)))) => {
                let _ = conn.send(ws::Message::Pong(p)).await;
            }
            Ok(Some(Ok(ws::Frame::Pong(_)))) => {}
            Ok(Some(Ok(frame))) => return Ok(Some(frame)),
        }
    }
}

fn describe(frame: &Option<ws::Frame>) -> String {
    match frame {
        None => "end of stream".into(),
        Some(ws::Frame::Text(t)) => format!("text {}", String::from_utf8_lossy(t)),
        Some(ws::Frame::Binary(b)) => format!("binary {}", to_hex(b)),
        Some(ws::Frame::Close(r)) => format!("close {:?}", r.as_ref().map(|r| r.code)),
        Some(other) => format!("{other:?}"),
    }
}

struct Run {
    name: String,
    server: TestServer,
    conn: Conn,
    v1: bool,
    notes: Vec<String>,
}

impl Run {
    async fn expect_recv(&mut self, frame: &Value) -> Result<(), String> {
        let got = next_frame(&mut self.conn).await?;
        if let Some(text) = frame.get("text").and_then(Value::as_str) {
            let want: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
            match &got {
                Some(ws::Frame::Text(t)) => {
                    let have: Value = serde_json::from_slice(t)
                        .map_err(|e| format!("server sent invalid JSON: {e}"))?;
                    if have != want {
                        return Err(format!(
                            "expected {text}, got {}",
                            String::from_utf8_lossy(t)
                        ));
                    }
                    if t.as_ref() != text.as_bytes() {
                        self.notes.push(format!(
                            "same JSON, different text: {} vs recorded {text}",
                            String::from_utf8_lossy(t)
                        ));
                    }
                    Ok(())
                }
                other => Err(format!("expected {text}, got {}", describe(other))),
            }
        } else if let Some(h) = frame.get("binary_hex").and_then(Value::as_str) {
            let want = hex(h)?;
            match &got {
                Some(ws::Frame::Binary(b)) if b.as_ref() == want.as_slice() => Ok(()),
                other => Err(format!("expected binary {h}, got {}", describe(other))),
            }
        } else {
            Err("recv frame with neither text nor binary".into())
        }
    }

    async fn send(&mut self, frame: &Value) -> Result<(), String> {
        let msg = if let Some(text) = frame.get("text").and_then(Value::as_str) {
            ws::Message::Text(text.into())
        } else if let Some(h) = frame.get("binary_hex").and_then(Value::as_str) {
            ws::Message::Binary(Bytes::from(hex(h)?))
        } else {
            return Err("send frame with neither text nor binary".into());
        };
        tokio::time::timeout(STEP, self.conn.send(msg))
            .await
            .map_err(|_| "send timed out".to_string())?
            .map_err(|e| format!("send failed: {e}"))
    }

    async fn http(&mut self, frame: &Value) -> Result<(), String> {
        let request = frame.get("request").and_then(Value::as_str).unwrap_or("");
        let url = url::Url::parse(&format!(
            "http://x{}",
            request.split_whitespace().nth(1).unwrap_or("")
        ))
        .map_err(|e| e.to_string())?;
        let query = |k: &str| {
            url.query_pairs()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.into_owned())
        };
        match url.path() {
            "/broadcast" => {
                let topic = query("topic").ok_or("no topic")?;
                let event = query("event").ok_or("no event")?;
                let body = frame.get("body").cloned().unwrap_or(Value::Null);
                let n = self.server.broadcast(topic.as_str(), &event, body).await;
                if n != 1 {
                    return Err(format!("broadcast reached {n} sockets, expected 1"));
                }
                Ok(())
            }
            "/disconnect" => {
                let sockets = self.server.sockets();
                let [socket] = sockets.as_slice() else {
                    return Err(format!("{} sockets connected, expected 1", sockets.len()));
                };
                // Bandit closes a socket disconnected by Phoenix with 1011.
                self.server
                    .disconnect(socket.id, 1011)
                    .await
                    .map_err(|e| e.to_string())
            }
            other => Err(format!("unknown HTTP action {other}")),
        }
    }

    async fn shell(&mut self, frame: &Value) -> Result<(), String> {
        let cmd = frame.get("cmd").and_then(Value::as_str).unwrap_or("");
        let server = self.server.clone();
        // Stop concurrently: the test keeps reading what the client sees.
        if cmd.contains("gracefully") {
            actix_rt::spawn(async move { server.stop().await });
        } else if cmd.contains("killed") {
            actix_rt::spawn(async move { server.kill().await });
        } else {
            return Err(format!("unknown shell action {cmd}"));
        }
        Ok(())
    }

    async fn expect_close(&mut self, code: u16) -> Result<(), String> {
        if code == 1000 {
            // The recording client closed normally: check nothing else came first.
            let barrier = if self.v1 {
                r#"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"barrier"}"#
            } else {
                r#"[null,"barrier","phoenix","heartbeat",{}]"#
            };
            self.conn
                .send(ws::Message::Text(barrier.into()))
                .await
                .map_err(|e| e.to_string())?;
            loop {
                let got = next_frame(&mut self.conn).await?;
                let Some(ws::Frame::Text(t)) = &got else {
                    return Err(format!(
                        "expected the barrier reply, got {}",
                        describe(&got)
                    ));
                };
                let v: Value = serde_json::from_slice(t).map_err(|e| e.to_string())?;
                let is_barrier = v.get(1) == Some(&Value::from("barrier"))
                    || v.get("ref") == Some(&Value::from("barrier"));
                if is_barrier {
                    break;
                }
                let is_tick = v.get(3) == Some(&Value::from("tick"));
                if !(self.name == "v2_ticker" && is_tick) {
                    return Err(format!("unexpected frame {}", String::from_utf8_lossy(t)));
                }
            }
            self.conn
                .send(ws::Message::Close(Some(ws::CloseCode::Normal.into())))
                .await
                .map_err(|e| e.to_string())?;
            loop {
                match next_frame(&mut self.conn).await? {
                    Some(ws::Frame::Close(r)) => {
                        let got = r.map(|r| u16::from(r.code));
                        return if got == Some(1000) {
                            Ok(())
                        } else {
                            Err(format!("close echoed with {got:?}"))
                        };
                    }
                    // Ticks may still arrive before the close echo.
                    Some(ws::Frame::Text(_)) if self.name == "v2_ticker" => {}
                    other => return Err(format!("expected close echo, got {}", describe(&other))),
                }
            }
        }
        let got = next_frame(&mut self.conn).await;
        match (code, got) {
            (1006, Ok(None)) | (1006, Err(_)) => Ok(()),
            (code, Ok(Some(ws::Frame::Close(Some(r))))) if u16::from(r.code) == code => Ok(()),
            (_, Ok(other)) => Err(format!("expected close {code}, got {}", describe(&other))),
            (_, Err(e)) => Err(format!("expected close {code}: {e}")),
        }
    }
}

async fn replay(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let name = doc["scenario"].as_str().unwrap_or("?").to_owned();
    let frames = doc["frames"].as_array().cloned().unwrap_or_default();
    let mut builder = TestServer::phoenix_demo();
    if name == "v2_idle_timeout" {
        builder = builder.idle_timeout(Duration::from_millis(300));
    }
    let server = builder.start().await.map_err(|e| e.to_string())?;
    let recorded = doc["url"].as_str().unwrap_or("");
    let url = recorded.replace(
        "ws://127.0.0.1:4000",
        &format!("ws://127.0.0.1:{}", server.port()),
    );

    if let Some(resp) = frames.iter().find(|f| f["dir"] == "http_response") {
        let want = resp["status"].as_u64().unwrap_or(0);
        return match connect(&url).await {
            Err(awc::error::WsClientError::InvalidResponseStatus(s))
                if u64::from(s.as_u16()) == want =>
            {
                let refused = server.counters().refused;
                if refused == 1 {
                    Ok(vec![])
                } else {
                    Err(format!("refused counter is {refused}"))
                }
            }
            Err(e) => Err(format!("expected HTTP {want}, got error {e}")),
            Ok(_) => Err(format!("expected HTTP {want}, the upgrade succeeded")),
        };
    }

    let conn = connect(&url).await.map_err(|e| format!("connect: {e}"))?;
    let mut run = Run {
        name: name.clone(),
        server: server.clone(),
        conn,
        v1: !url.contains("vsn=2.0.0"),
        notes: vec![],
    };
    let mut stopped = false;
    for (i, frame) in frames.iter().enumerate() {
        let step = match frame["dir"].as_str().unwrap_or("") {
            "open" | "shell_done" | "error" => Ok(()),
            "send" => run.send(frame).await,
            "recv" => run.expect_recv(frame).await,
            "http" => run.http(frame).await,
            "shell" => {
                stopped = true;
                run.shell(frame).await
            }
            "close" => {
                let code = frame["code"].as_u64().unwrap_or(0) as u16;
                run.expect_close(code).await
            }
            other => Err(format!("unknown frame dir {other}")),
        };
        step.map_err(|e| format!("frame {i}: {e}"))?;
    }
    if stopped {
        // "... then the server is started again": same port, accepting again.
        server
            .wait_until(STEP, |s| s.listening().is_none())
            .await
            .map_err(|e| format!("server did not stop: {e}"))?;
        server
            .restart()
            .await
            .map_err(|e| format!("restart: {e}"))?;
        connect(&url)
            .await
            .map_err(|e| format!("connect after restart: {e}"))?;
    }
    Ok(run.notes)
}

#[actix_rt::test]
async fn every_recorded_transcript_is_reproduced_by_the_phoenix_demo_server() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 40, "expected the recorded transcripts");
    let mut failures = Vec::new();
    for path in &paths {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let result = tokio::time::timeout(Duration::from_secs(30), replay(path))
            .await
            .unwrap_or_else(|_| Err("timed out after 30 s".into()));
        match result {
            Ok(notes) if notes.is_empty() => println!("transcript {name}: matches"),
            Ok(notes) => println!("transcript {name}: matches ({})", notes.join("; ")),
            Err(why) => {
                println!("transcript {name}: differs: {why}");
                failures.push(format!("{name}: {why}"));
            }
        }
    }
    assert!(failures.is_empty(), "differences:\n{}", failures.join("\n"));
}
