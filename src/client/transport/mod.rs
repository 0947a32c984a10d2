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
//!   leaves in one syscall, with no per-frame channel message. A burst that reaches
//!   64 KiB while the writer is idle is written by the actor at once, as far as the
//!   socket takes it without waiting, so a long burst is not held in memory until the
//!   actor's turn ends. User pushes (and pongs) are queued only within its byte
//!   budget; the client's own protocol frames (joins, leaves, heartbeats, close),
//!   whose number the topic registry bounds, always are.
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
use std::rc::{Rc, Weak};
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use actix_codec::{Decoder, Encoder};
use awc::error::WsProtocolError;
use awc::ws;
use awc::BoxedSocket;
use bytes::{Buf, BytesMut};
use futures_util::stream::Stream;
use futures_util::FutureExt;
use tokio::io::{AsyncReadExt, AsyncWrite, ReadHalf, WriteHalf};
use tokio::sync::Notify;

use guard::FrameGuard;

/// Smallest read; also the read buffer's size while the connection is quiet.
const MIN_READ: usize = 1024;
/// Largest read.
const MAX_READ: usize = 64 * 1024;
/// An empty output buffer larger than this is given back after a write.
const KEEP_OUT: usize = 4 * 1024;
/// Queued bytes from which the actor writes at once when the writer task is idle.
const WRITE_NOW: usize = 64 * 1024;

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
    /// The writer task holds bytes it has not finished writing: frames queued now wait
    /// for it, so that they leave in order.
    writing: bool,
    /// The actor wrote bytes that no flush has followed yet.
    unflushed: bool,
}

/// The write half of a connection, shared by the writer task (which owns it) and the
/// actor's handle (which writes through it only when the task is idle).
type SharedWrite = RefCell<WriteHalf<BoxedSocket>>;

/// The actor's end of a connection's writer: encodes frames into the outbox and wakes
/// the writer. Dropping it shuts the connection down once the queue is written.
pub(crate) struct WriterHandle {
    outbox: Rc<RefCell<Outbox>>,
    /// The write half while the writer task lives (the task holds the only strong
    /// reference, so the connection's lifetime is the task's).
    io: Weak<SharedWrite>,
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
        if buf.len() >= WRITE_NOW && !out.writing {
            if let Some(io) = self.io.upgrade() {
                let Outbox { buf, unflushed, .. } = &mut *out;
                write_now(&io, buf, unflushed);
            }
        }
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

/// Writes as much of `buf` as the socket takes without waiting. What is left (the
/// socket would block, or failed) stays queued for the writer task, woken next, which
/// waits under the write timeout and reports a failure.
fn write_now(io: &SharedWrite, buf: &mut BytesMut, unflushed: &mut bool) {
    let Ok(mut io) = io.try_borrow_mut() else {
        return;
    };
    let mut cx = Context::from_waker(Waker::noop());
    while !buf.is_empty() {
        match Pin::new(&mut *io).poll_write(&mut cx, buf) {
            Poll::Ready(Ok(n)) if n > 0 => {
                buf.advance(n);
                *unflushed = true;
            }
            _ => break,
        }
    }
}

/// Writes from `chunk` once the socket takes some of it.
fn poll_write_chunk(
    io: &SharedWrite,
    chunk: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<usize>> {
    let n = ready!(Pin::new(&mut *io.borrow_mut()).poll_write(cx, chunk))?;
    chunk.advance(n);
    Poll::Ready(Ok(n))
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
        writing: false,
        unflushed: false,
    }));
    let io = Rc::new(RefCell::new(io));
    let handle_io = Rc::downgrade(&io);
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
        io: handle_io,
        notify,
        done: Some(done),
    }
}

async fn run_writer(
    io: Rc<SharedWrite>,
    outbox: &RefCell<Outbox>,
    notify: &Notify,
    write_timeout: Duration,
) -> Result<(), String> {
    // Every poll borrows the write half for that poll only: the actor may write
    // through it between two polls, while nothing is being written here.
    let flush = || std::future::poll_fn(|cx| Pin::new(&mut *io.borrow_mut()).poll_flush(cx));
    loop {
        let (mut chunk, shutdown, unflushed) = {
            let mut out = outbox.borrow_mut();
            let chunk = std::mem::take(&mut out.buf);
            out.writing = !chunk.is_empty();
            let unflushed = std::mem::take(&mut out.unflushed);
            (chunk, out.shutdown, unflushed)
        };
        if chunk.is_empty() {
            if unflushed {
                // The actor's own writes (a no-op for plain TCP; TLS may hold bytes).
                at_once_or_within(write_timeout, flush()).await?;
                continue;
            }
            if shutdown {
                break;
            }
            notify.notified().await;
            continue;
        }
        while chunk.has_remaining() {
            let write = std::future::poll_fn(|cx| poll_write_chunk(&io, &mut chunk, cx));
            if at_once_or_within(write_timeout, write).await? == 0 {
                return Err("connection closed while writing".into());
            }
        }
        at_once_or_within(write_timeout, flush()).await?;
        chunk.clear();
        let mut out = outbox.borrow_mut();
        out.writing = false;
        if out.buf.is_empty() && chunk.capacity() <= KEEP_OUT {
            out.buf = chunk; // reuse the allocation
        }
    }
    let shut = std::future::poll_fn(|cx| Pin::new(&mut *io.borrow_mut()).poll_shutdown(cx));
    let _ = actix_rt::time::timeout(write_timeout, shut).await;
    Ok(())
}

/// Runs a write or a flush: one that completes at once (the common case) arms no
/// timer; one that has to wait does so under the write timeout. Both are cancel-safe.
async fn at_once_or_within<T>(
    write_timeout: Duration,
    op: impl Future<Output = std::io::Result<T>>,
) -> Result<T, String> {
    let mut op = std::pin::pin!(op);
    match (&mut op).now_or_never() {
        Some(done) => done,
        None => actix_rt::time::timeout(write_timeout, op)
            .await
            .map_err(|_| {
                format!(
                    "no progress within the write timeout ({} ms)",
                    write_timeout.as_millis()
                )
            })?,
    }
    .map_err(|e| e.to_string())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    const WAIT: Duration = Duration::from_secs(5);

    /// A connected loopback pair: the far end (blocking, reads bounded by [`WAIT`]) and
    /// our end, boxed as awc hands it over.
    fn pair() -> (std::net::TcpStream, BoxedSocket) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let ours =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (theirs, _) = listener.accept().expect("accept");
        theirs.set_read_timeout(Some(WAIT)).expect("read timeout");
        ours.set_nonblocking(true).expect("nonblocking");
        let ours = actix_rt::net::TcpStream::from_std(ours).expect("register");
        (theirs, Box::new(ours))
    }

    /// The far end's bytes, decoded as the client's frames.
    fn decode(bytes: &[u8]) -> Vec<String> {
        let mut codec = ws::Codec::new().max_size(1 << 20);
        let mut buf = BytesMut::from(bytes);
        let mut texts = Vec::new();
        while let Some(frame) = codec.decode(&mut buf).expect("a valid frame") {
            match frame {
                ws::Frame::Text(t) => texts.push(String::from_utf8(t.to_vec()).expect("utf-8")),
                other => panic!("unexpected frame {other:?}"),
            }
        }
        assert!(buf.is_empty(), "{} bytes of a partial frame", buf.len());
        texts
    }

    /// `n` text frames of 1000 bytes (1008 on the wire), numbered from `from`.
    fn texts(from: usize, n: usize) -> Vec<String> {
        (from..from + n)
            .map(|i| format!("{i:04}{}", "x".repeat(996)))
            .collect()
    }

    /// Queues each text as a frame; returns the bytes queued.
    fn queue_all(handle: &WriterHandle, texts: &[String]) -> usize {
        texts
            .iter()
            .map(|t| {
                handle
                    .queue(ws::Message::Text(t.clone().into()), true)
                    .expect("queued")
            })
            .sum()
    }

    /// Drops the handle and waits until the writer task has written everything and
    /// shut the connection down.
    async fn finish(mut handle: WriterHandle) {
        let done = handle.take_done().expect("the writer task");
        drop(handle);
        tokio::time::timeout(WAIT, done)
            .await
            .expect("the writer ends")
            .expect("the writer task");
    }

    /// Queues a frame and lets the writer task write it to the far end, which reads it.
    async fn written_by_the_task(handle: &WriterHandle, theirs: &mut std::net::TcpStream) {
        let frame = ws::Message::Text("first".into());
        let len = handle.queue(frame, true).expect("queued");
        theirs.set_nonblocking(true).expect("nonblocking");
        let mut got = Vec::new();
        tokio::time::timeout(WAIT, async {
            while got.len() < len {
                tokio::task::yield_now().await;
                let mut buf = [0; 64];
                match theirs.read(&mut buf) {
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("read: {e}"),
                }
            }
        })
        .await
        .expect("the writer task writes the first frame");
        theirs.set_nonblocking(false).expect("blocking");
        assert_eq!(decode(&got), ["first"]);
    }

    /// A loopback pair with a writer on our end, which has written one frame already
    /// (so the runtime has seen the socket writable, as after a handshake).
    async fn writing_pair() -> (std::net::TcpStream, WriterHandle) {
        let (mut theirs, ours) = pair();
        let (_read, write) = tokio::io::split(ours);
        let handle = writer(write, usize::MAX, WAIT, |e| panic!("writer failed: {e}"));
        written_by_the_task(&handle, &mut theirs).await;
        (theirs, handle)
    }

    /// Frames queued in one turn of the actor (the writer task cannot run in between)
    /// reach the socket within that turn once they pass `WRITE_NOW`, and every frame
    /// arrives once and in order, whichever of the two wrote it.
    #[actix_rt::test]
    async fn a_long_burst_is_written_within_the_turn_that_queues_it_and_in_order() {
        let (mut theirs, handle) = writing_pair().await;
        let texts = texts(0, 200);
        let queued = queue_all(&handle, &texts);
        assert!(queued > 2 * WRITE_NOW, "{queued} bytes");
        // Still the same turn: what the far end can read now, the actor wrote.
        let mut early = vec![0; queued];
        let n = theirs.read(&mut early).expect("bytes before the turn ends");
        assert!(
            n >= WRITE_NOW,
            "only {n} bytes on the wire before the turn ended"
        );
        early.truncate(n);
        // The writer task writes the rest, and shuts the connection down on drop.
        finish(handle).await;
        let mut rest = Vec::new();
        theirs
            .read_to_end(&mut rest)
            .expect("the rest, then end of stream");
        early.extend_from_slice(&rest);
        assert_eq!(decode(&early), texts);
    }

    /// A write end that takes at most `room` bytes and otherwise waits; opening it
    /// wakes nobody, as when the socket drains while the runtime is busy elsewhere.
    /// With `hold`, written bytes reach `out` only at a flush (as TLS may keep them).
    #[derive(Default)]
    struct Gate {
        room: Rc<std::cell::Cell<usize>>,
        out: Rc<RefCell<Vec<u8>>>,
        waker: Rc<RefCell<Option<std::task::Waker>>>,
        hold: bool,
        held: Vec<u8>,
        /// A flush never completes.
        stuck: bool,
    }

    impl AsyncWrite for Gate {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let n = buf.len().min(self.room.get());
            if n == 0 {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                return Poll::Pending;
            }
            self.room.set(self.room.get() - n);
            if self.hold {
                self.get_mut().held.extend_from_slice(&buf[..n]);
            } else {
                self.out.borrow_mut().extend_from_slice(&buf[..n]);
            }
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            if self.stuck {
                return Poll::Pending;
            }
            let this = self.get_mut();
            this.out.borrow_mut().append(&mut this.held);
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    impl tokio::io::AsyncRead for Gate {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            Poll::Pending
        }
    }

    /// While the writer task holds bytes the socket would not take, frames queued after
    /// them wait behind them, even when the socket has room again before the task runs.
    #[actix_rt::test]
    async fn frames_queued_while_the_task_is_writing_wait_behind_its_bytes() {
        let gate = Gate::default();
        let (room, out, waker) = (gate.room.clone(), gate.out.clone(), gate.waker.clone());
        let (_read, write) = tokio::io::split(Box::new(gate) as BoxedSocket);
        let handle = writer(write, usize::MAX, WAIT, |e| panic!("writer failed: {e}"));
        let (first, second) = (texts(0, 100), texts(100, 100));
        // The socket takes nothing: the burst waits, and the task takes it in hand.
        queue_all(&handle, &first);
        tokio::time::timeout(WAIT, async {
            while !handle.outbox.borrow().writing {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the writer task waits with the burst in hand");
        // Room again, and in the same turn a second burst.
        room.set(usize::MAX);
        queue_all(&handle, &second);
        assert!(
            out.borrow().is_empty(),
            "the second burst overtook the first"
        );
        if let Some(w) = waker.borrow_mut().take() {
            w.wake();
        }
        finish(handle).await;
        assert_eq!(decode(&out.borrow()), [first, second].concat());
    }

    /// A burst the actor wrote itself is flushed by the writer task, for a stream that
    /// keeps written bytes until then (TLS), with the connection still open.
    #[actix_rt::test]
    async fn what_the_actor_writes_is_flushed_by_the_task() {
        let gate = Gate {
            hold: true,
            ..Gate::default()
        };
        gate.room.set(usize::MAX);
        let out = gate.out.clone();
        let (_read, write) = tokio::io::split(Box::new(gate) as BoxedSocket);
        let handle = writer(write, usize::MAX, WAIT, |e| panic!("writer failed: {e}"));
        // Frames of 1008 bytes: the 66th passes `WRITE_NOW`, and the actor writes all.
        let texts = texts(0, 66);
        queue_all(&handle, &texts);
        assert!(handle.outbox.borrow().buf.is_empty(), "the actor wrote all");
        assert!(out.borrow().is_empty(), "held until a flush");
        tokio::time::timeout(WAIT, async {
            while decode(&out.borrow()).len() < texts.len() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the burst is flushed while the connection stays open");
        assert_eq!(decode(&out.borrow()), texts);
    }

    /// A flush of the actor's writes that never completes fails the connection within
    /// the write timeout.
    #[actix_rt::test]
    async fn a_flush_of_the_actors_writes_is_bounded_by_the_write_timeout() {
        let gate = Gate {
            hold: true,
            stuck: true,
            ..Gate::default()
        };
        gate.room.set(usize::MAX);
        let (_read, write) = tokio::io::split(Box::new(gate) as BoxedSocket);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let handle = writer(write, usize::MAX, Duration::from_millis(50), move |e| {
            let _ = tx.send(e);
        });
        queue_all(&handle, &texts(0, 66));
        assert!(handle.outbox.borrow().buf.is_empty(), "the actor wrote all");
        let error = tokio::time::timeout(WAIT, rx)
            .await
            .expect("the writer fails within the write timeout")
            .expect("the error");
        assert!(error.contains("write timeout"), "{error}");
    }

    /// Below `WRITE_NOW` frames wait for the writer task, and leave together.
    #[actix_rt::test]
    async fn a_short_burst_waits_for_the_writer_task() {
        let (mut theirs, handle) = writing_pair().await;
        let texts = texts(0, 10);
        queue_all(&handle, &texts);
        theirs.set_nonblocking(true).expect("nonblocking");
        let mut buf = [0; 1024];
        let early = theirs.read(&mut buf);
        assert!(
            matches!(&early, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "{early:?}"
        );
        theirs.set_nonblocking(false).expect("blocking");
        finish(handle).await;
        let mut all = Vec::new();
        theirs
            .read_to_end(&mut all)
            .expect("all, then end of stream");
        assert_eq!(decode(&all), texts);
    }
}
