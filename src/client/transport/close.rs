//! The websocket closing handshake: the close frame the client sends, and the end of
//! a connection whose actor has stopped.

use std::time::Duration;

use awc::ws;
use futures_util::StreamExt;

use super::{Frames, WriterHandle};

/// The longest wait for the server's close frame after the client closed.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A close frame's reason with this code.
pub(crate) fn close_reason(code: u16) -> ws::CloseReason {
    ws::CloseReason {
        code: ws::CloseCode::from(code),
        description: None,
    }
}

/// Finishes the closing handshake of a connection whose close frame is queued,
/// without the actor (it stopped): reads until the server's close frame, the end of
/// the connection or `wait`, then lets the writer shut the connection down (so the
/// server, as RFC 6455 asks, ends the TCP connection first, and reads the close
/// frame before the end of the stream). Done once the writer is.
pub(crate) fn finish_close(
    frames: Option<Frames>,
    mut writer: WriterHandle,
    wait: Duration,
) -> tokio::task::JoinHandle<()> {
    actix_rt::spawn(async move {
        if let Some(mut frames) = frames {
            let answered = async {
                while let Some(frame) = frames.next().await {
                    if matches!(frame, Ok(ws::Frame::Close(_)) | Err(_)) {
                        break;
                    }
                }
            };
            let _ = actix_rt::time::timeout(wait, answered).await;
        }
        let done = writer.take_done();
        drop(writer);
        if let Some(done) = done {
            let _ = actix_rt::time::timeout(wait, done).await;
        }
    })
}
