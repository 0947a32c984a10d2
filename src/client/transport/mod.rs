//! The websocket connection's byte-level I/O, once awc has done the upgrade.
//!
//! awc hands over a `Framed` transport with two 8 KiB buffers per connection. Most
//! Phoenix sockets are idle most of the time, so the client takes the raw connection
//! back and drives it itself:
//!
//! - [`frames`] reads into a buffer that starts at 1 KiB, grows while reads fill it
//!   (up to 64 KiB per read) and is given back when it is empty again;
//! - the [`Outbox`] is a byte buffer the actor encodes websocket frames into; a writer
//!   task writes whatever has accumulated in one `write` call, so every frame produced
//!   in one turn of the actor (a burst of joins, the pushes released by a rejoin)
//!   leaves in one syscall, with no per-frame channel message. User pushes (and pongs)
//!   are queued only within its byte budget; the client's own protocol frames (joins,
//!   leaves, heartbeats, close), whose number the topic registry bounds, always are.
//!
//! Beside them: [`guard`] (the frame-size limit enforced at the frame header),
//! [`fragments`] (reassembly of fragmented messages), [`close`] (the closing
//! handshake) and `tls` (rustls for `wss://`).

pub(crate) mod close;
pub(crate) mod fragments;
mod guard;
pub(crate) mod tcp;
#[cfg(feature = "rustls")]
pub(crate) mod tls;

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_codec::{Decoder, Encoder};
use awc::error::WsProtocolError;
use awc::ws;
use awc::BoxedSocket;
use bytes::{Buf, BytesMut};
use futures_util::stream::Stream;
use futures_util::FutureExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::Notify;

use guard::FrameGuard;

/// Smallest read; also the read buffer's size while the connection is quiet.
const MIN_READ: usize = 1024;
/// Largest read.
const MAX_READ: usize = 64 * 1024;
/// An empty output buffer larger than this is given back after a write.
const KEEP_OUT: usize = 4 * 1024;

/// The frames of a connection, read and decoded in place (a stream of its own rather
/// than an `unfold`, which moves its state in and out of a future for every frame).
struct Reader {
    io: ReadHalf<BoxedSocket>,
    codec: FrameGuard,
    buf: BytesMut,
    read_size: usize,
    /// After the first error or the end of the stream.
    done: bool,
}

/// The frames of a connection, ending after the first error or at the end of the stream.
pub(crate) fn frames(
    io: ReadHalf<BoxedSocket>,
    codec: FrameGuard,
    leftover: &[u8],
) -> impl Stream<Item = Result<ws::Frame, WsProtocolError>> {
    Reader {
        io,
        codec,
        buf: BytesMut::from(leftover),
        read_size: MIN_READ,
        done: false,
    }
}

impl Stream for Reader {
    type Item = Result<ws::Frame, WsProtocolError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let r = self.get_mut();
        if r.done {
            return Poll::Ready(None);
        }
        loop {
            match r.codec.decode(&mut r.buf) {
                Ok(Some(frame)) => {
                    if r.buf.is_empty() && r.buf.capacity() > MIN_READ * 4 {
                        r.buf = BytesMut::new(); // idle again: give the memory back
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
                Ok(None) => {}
                Err(e) => {
                    r.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
            }
            if r.buf.capacity() - r.buf.len() < r.read_size {
                r.buf.reserve(r.read_size);
            }
            let spare = r.buf.capacity() - r.buf.len();
            // `read_buf` is cancel-safe: a read that is not ready reads nothing.
            match std::pin::pin!(r.io.read_buf(&mut r.buf)).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => {
                    r.done = true;
                    return Poll::Ready(None);
                }
                Poll::Ready(Ok(n)) => {
                    r.read_size = if n == spare {
                        (r.read_size * 2).min(MAX_READ)
                    } else if n < r.read_size / 4 {
                        (r.read_size / 2).max(MIN_READ)
                    } else {
                        r.read_size
                    };
                }
                Poll::Ready(Err(e)) => {
                    r.done = true;
                    return Poll::Ready(Some(Err(WsProtocolError::Io(e))));
                }
            }
        }
    }
}

/// A connection's frame stream.
pub(crate) type Frames = Pin<Box<dyn Stream<Item = Result<ws::Frame, WsProtocolError>>>>;

/// A connection's frame stream, polled by the actor until it takes the stream back
/// (to finish a closing handshake after the actor stopped): the stream then ends
/// for the actor.
pub(crate) struct SharedFrames(Rc<RefCell<Option<Frames>>>);

impl SharedFrames {
    pub(crate) fn new(frames: Frames) -> Self {
        SharedFrames(Rc::new(RefCell::new(Some(frames))))
    }

    /// Another handle on the same stream, to take it back with [`SharedFrames::take_back`].
    pub(crate) fn handle(&self) -> SharedFrames {
        SharedFrames(self.0.clone())
    }

    /// Takes the stream out; every handle ends from now on.
    pub(crate) fn take_back(&self) -> Option<Frames> {
        self.0.borrow_mut().take()
    }
}

impl Stream for SharedFrames {
    type Item = Result<ws::Frame, WsProtocolError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.0.borrow_mut().as_mut() {
            Some(frames) => frames.as_mut().poll_next(cx),
            None => Poll::Ready(None),
        }
    }
}

/// Frames encoded by the actor, waiting for the writer task.
pub(crate) struct Outbox {
    buf: BytesMut,
    codec: ws::Codec,
    limit: usize,
    /// No more frames: write what is queued, then wait for `shutdown`.
    closing: bool,
    /// Shut the connection down once the queue is written.
    shutdown: bool,
    /// The writer task has ended (after an error).
    failed: bool,
}

/// The actor's end of a connection's writer: encodes frames into the outbox and wakes
/// the writer. Dropping it shuts the connection down once the queue is written.
pub(crate) struct WriterHandle {
    outbox: Rc<RefCell<Outbox>>,
    notify: Rc<Notify>,
    /// The writer task, done once the queue is written and the connection shut down.
    done: Option<tokio::task::JoinHandle<()>>,
}

/// Why a frame was not queued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum QueueError {
    /// The queue holds `send_buffer` bytes already.
    Full,
    /// The connection is closing, or its writer failed.
    Closed,
}

impl WriterHandle {
    /// Encodes a frame into the queue. Returns the bytes queued. A `budgeted` frame
    /// (a user push) is refused when the queue already holds the budget; the others
    /// (the client's protocol frames) are always queued.
    pub(crate) fn queue(&self, msg: ws::Message, budgeted: bool) -> Result<usize, QueueError> {
        let mut out = self.outbox.borrow_mut();
        if out.closing || out.failed {
            return Err(QueueError::Closed);
        }
        if budgeted && out.buf.len() >= out.limit {
            return Err(QueueError::Full);
        }
        let Outbox { buf, codec, .. } = &mut *out;
        let before = buf.len();
        if codec.encode(msg, buf).is_err() {
            buf.truncate(before);
            return Err(QueueError::Closed);
        }
        let n = buf.len() - before;
        drop(out);
        self.notify.notify_one();
        Ok(n)
    }

    /// Queues a close frame; nothing is queued after it.
    pub(crate) fn close(&self, reason: ws::CloseReason) {
        let _ = self.queue(ws::Message::Close(Some(reason)), false);
        self.outbox.borrow_mut().closing = true;
        self.notify.notify_one();
    }

    /// The writer task's handle, to await the end of its last writes.
    pub(crate) fn take_done(&mut self) -> Option<tokio::task::JoinHandle<()>> {
        self.done.take()
    }
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        let mut out = self.outbox.borrow_mut();
        out.closing = true;
        out.shutdown = true;
        drop(out);
        self.notify.notify_one();
    }
}

/// Starts the writer of a connection. `on_error` runs if a write fails or makes no
/// progress within `write_timeout`.
pub(crate) fn writer(
    io: WriteHalf<BoxedSocket>,
    limit: usize,
    write_timeout: Duration,
    on_error: impl FnOnce(String) + 'static,
) -> WriterHandle {
    let outbox = Rc::new(RefCell::new(Outbox {
        buf: BytesMut::new(),
        codec: ws::Codec::new().client_mode(),
        limit,
        closing: false,
        shutdown: false,
        failed: false,
    }));
    let notify = Rc::new(Notify::new());
    let (task_outbox, task_notify) = (outbox.clone(), notify.clone());
    let done = actix_rt::spawn(async move {
        if let Err(error) = run_writer(io, &task_outbox, &task_notify, write_timeout).await {
            task_outbox.borrow_mut().failed = true;
            on_error(error);
        }
    });
    WriterHandle {
        outbox,
        notify,
        done: Some(done),
    }
}

async fn run_writer(
    mut io: WriteHalf<BoxedSocket>,
    outbox: &RefCell<Outbox>,
    notify: &Notify,
    write_timeout: Duration,
) -> Result<(), String> {
    let timed_out = |_| {
        format!(
            "no progress within the write timeout ({} ms)",
            write_timeout.as_millis()
        )
    };
    loop {
        let (mut chunk, shutdown) = {
            let mut out = outbox.borrow_mut();
            (std::mem::take(&mut out.buf), out.shutdown)
        };
        if chunk.is_empty() {
            if shutdown {
                break;
            }
            notify.notified().await;
            continue;
        }
        // A write or flush that completes at once (the common case) arms no timer;
        // one that has to wait does so under the write timeout. Both are cancel-safe.
        while chunk.has_remaining() {
            let n = match io.write_buf(&mut chunk).now_or_never() {
                Some(written) => written,
                None => actix_rt::time::timeout(write_timeout, io.write_buf(&mut chunk))
                    .await
                    .map_err(timed_out)?,
            }
            .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed while writing".into());
            }
        }
        match io.flush().now_or_never() {
            Some(flushed) => flushed,
            None => actix_rt::time::timeout(write_timeout, io.flush())
                .await
                .map_err(timed_out)?,
        }
        .map_err(|e| e.to_string())?;
        chunk.clear();
        let mut out = outbox.borrow_mut();
        if out.buf.is_empty() && chunk.capacity() <= KEEP_OUT {
            out.buf = chunk; // reuse the allocation
        }
    }
    let _ = actix_rt::time::timeout(write_timeout, io.shutdown()).await;
    Ok(())
}

/// Splits an upgraded connection into its frame stream and its writer.
pub(crate) fn split(
    io: BoxedSocket,
    leftover: &[u8],
    max_frame_size: usize,
    send_buffer: usize,
    write_timeout: Duration,
    on_write_error: impl FnOnce(String) + 'static,
) -> (SharedFrames, WriterHandle) {
    let (read_half, write_half) = tokio::io::split(io);
    let codec = FrameGuard::new(
        ws::Codec::new().client_mode().max_size(max_frame_size),
        max_frame_size,
    );
    let stream = SharedFrames::new(Box::pin(frames(read_half, codec, leftover)));
    let writer = writer(write_half, send_buffer, write_timeout, on_write_error);
    (stream, writer)
}
