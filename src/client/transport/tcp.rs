//! The TCP stream under every connection, and read coalescing while a server floods it.
//!
//! A Phoenix node writes each frame with a `send` of its own. A client that reads as
//! soon as anything arrives wakes up every few frames while a server pushes at full
//! speed: every wake-up costs the client a round through the event loop and costs the
//! server the wake-up of a sleeping thread, which on a machine shared with the server
//! preempts it (measured: tens of thousands of preemptions of the server's writer in a
//! 200,000-message flood; see docs/performance.md).
//!
//! So, on Linux, once more than [`FLOOD_BYTES`] arrive within [`WINDOW`], the stream
//! raises the socket's receive low-water mark (`SO_RCVLOWAT`) to [`FLOOD_LOWAT`]: the
//! kernel then wakes the reader only once that much is queued. A read still returns
//! whatever is queued, so nothing waits for the mark while the reader is busy. The
//! mark goes back to one byte (the kernel then signals what has arrived at once) when
//! no read happens for [`WINDOW`], so the end of a flood waits about one window more
//! (1–2 ms with tokio's millisecond timer), and before any write, so the reply to what
//! the client sends is never held back. Below the rate, the stream is a plain TCP
//! stream. [`Config::coalesce_reads`](crate::Config::coalesce_reads)
//! turns it off.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_rt::net::{ActixStream, Ready, TcpStream};
use actix_service::Service;
use actix_tls::connect::{
    ConnectError as TcpConnectError, ConnectInfo, Connection as TcpConnection, ConnectorService,
};
use awc::http::Uri;
use futures_util::future::LocalBoxFuture;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Bytes arriving within one [`WINDOW`] that make a flood.
const FLOOD_BYTES: usize = 16 * 1024;
/// The receive low-water mark while flooded.
const FLOOD_LOWAT: usize = 32 * 1024;
/// The rate window, and the longest a raised mark stays up without a read.
const WINDOW: Duration = Duration::from_millis(1);

/// The TCP connector of the awc client: the default one, each stream wrapped in a [`Tcp`].
#[derive(Clone)]
pub(crate) struct TcpConnector {
    inner: ConnectorService,
    coalesce: bool,
}

impl TcpConnector {
    pub(crate) fn new(coalesce: bool) -> Self {
        TcpConnector {
            inner: ConnectorService::default(),
            coalesce,
        }
    }
}

impl Service<ConnectInfo<Uri>> for TcpConnector {
    type Response = TcpConnection<Uri, Tcp>;
    type Error = TcpConnectError;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    actix_service::always_ready!();

    fn call(&self, req: ConnectInfo<Uri>) -> Self::Future {
        let connect = self.inner.call(req);
        let coalesce = self.coalesce;
        Box::pin(async move {
            let (io, connection) = connect.await?.replace_io(());
            Ok(connection.replace_io(Tcp::new(io, coalesce)).1)
        })
    }
}

/// A TCP stream that coalesces reads while flooded (see the module's docs).
pub(crate) struct Tcp {
    io: TcpStream,
    flood: Option<Flood>,
}

/// The read-coalescing state of one stream.
struct Flood {
    /// Start of the current rate window, and the bytes read within it.
    window_start: Instant,
    window_bytes: usize,
    /// The mark is raised until this instant (moved on by every read).
    raised_until: Option<Instant>,
    /// The timer that lowers the mark when no read came in time.
    timer: Option<Pin<Box<Sleep>>>,
}

impl Tcp {
    fn new(io: TcpStream, coalesce: bool) -> Self {
        let flood = (coalesce && cfg!(target_os = "linux")).then(|| Flood {
            window_start: Instant::now(),
            window_bytes: 0,
            raised_until: None,
            timer: None,
        });
        Tcp { io, flood }
    }

    /// Whether the low-water mark is raised now (for tests).
    #[cfg(test)]
    fn is_raised(&self) -> bool {
        self.flood
            .as_ref()
            .is_some_and(|f| f.raised_until.is_some())
    }

    /// Accounts for a read of `n` bytes: raises the mark once the rate is a flood's,
    /// and keeps it raised while reads go on.
    fn after_read(&mut self, n: usize) {
        let Some(flood) = self.flood.as_mut() else {
            return;
        };
        let now = Instant::now();
        if flood.raised_until.is_some() {
            flood.raised_until = Some(now + WINDOW);
            return;
        }
        if now.duration_since(flood.window_start) >= WINDOW {
            flood.window_start = now;
            flood.window_bytes = 0;
        }
        flood.window_bytes += n;
        if flood.window_bytes >= FLOOD_BYTES {
            match set_rcvlowat(&self.io, FLOOD_LOWAT) {
                Ok(()) => {
                    log::trace!(target: crate::logging::WIRE,
                        "{} bytes within {WINDOW:?}: reads coalesced (SO_RCVLOWAT {FLOOD_LOWAT})",
                        flood.window_bytes
                    );
                    flood.raised_until = Some(now + WINDOW);
                }
                Err(e) => {
                    log::debug!("read coalescing off for this connection: SO_RCVLOWAT: {e}");
                    self.flood = None;
                }
            }
        }
    }

    /// The reader found nothing to read: if the mark is raised, waits for its window to
    /// run out, then lowers it (the kernel then signals what is queued, which wakes the
    /// reader through the reactor).
    fn poll_window(&mut self, cx: &mut Context<'_>) {
        let Some(flood) = self.flood.as_mut() else {
            return;
        };
        let Some(until) = flood.raised_until else {
            return;
        };
        let timer = match &mut flood.timer {
            Some(timer) => {
                if timer.deadline().into_std() != until {
                    timer.as_mut().reset(until.into());
                }
                timer
            }
            None => flood
                .timer
                .insert(Box::pin(tokio::time::sleep_until(until.into()))),
        };
        if timer.as_mut().poll(cx).is_pending() {
            return;
        }
        log::trace!(target: crate::logging::WIRE, "no read for {WINDOW:?}: reads no longer coalesced");
        self.lower();
    }

    /// About to write: a request's reply must not wait for the window, so a raised
    /// mark goes back down first.
    fn before_write(&mut self) {
        if self
            .flood
            .as_ref()
            .is_some_and(|f| f.raised_until.is_some())
        {
            log::trace!(target: crate::logging::WIRE, "a write: reads no longer coalesced");
            self.lower();
        }
    }

    /// Lowers the mark to one byte: the kernel signals what is queued at once.
    fn lower(&mut self) {
        let Some(flood) = self.flood.as_mut() else {
            return;
        };
        flood.raised_until = None;
        flood.timer = None;
        flood.window_start = Instant::now();
        flood.window_bytes = 0;
        if let Err(e) = set_rcvlowat(&self.io, 1) {
            log::debug!("read coalescing off for this connection: SO_RCVLOWAT: {e}");
            self.flood = None;
        }
    }
}

#[cfg(target_os = "linux")]
fn set_rcvlowat(io: &TcpStream, bytes: usize) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: the descriptor is the stream's own, open for as long as `io` lives, and
    // setsockopt reads exactly `size_of::<c_int>()` bytes from `&value`.
    let rc = unsafe {
        libc::setsockopt(
            io.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            std::ptr::from_ref(&value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn set_rcvlowat(_io: &TcpStream, _bytes: usize) -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "Linux only"))
}

impl fmt::Debug for Tcp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tcp")
            .field("io", &self.io)
            .field("coalescing", &self.flood.is_some())
            .finish()
    }
}

impl AsyncRead for Tcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.after_read(buf.filled().len() - before);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                this.poll_window(cx);
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for Tcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.before_write();
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.before_write();
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl ActixStream for Tcp {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Ready>> {
        ActixStream::poll_read_ready(&self.io, cx)
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Ready>> {
        ActixStream::poll_write_ready(&self.io, cx)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use actix_rt::net::TcpListener;
    use futures_util::FutureExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const WAIT: Duration = Duration::from_secs(5);

    /// A connected pair on loopback: the far end, and our end wrapped in a [`Tcp`].
    async fn pair(coalesce: bool) -> (TcpStream, Tcp) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (ours, theirs) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let (theirs, _) = theirs.expect("accept");
        (theirs, Tcp::new(ours.expect("connect"), coalesce))
    }

    fn rcvlowat(io: &TcpStream) -> libc::c_int {
        use std::os::fd::AsRawFd;
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: reads at most `len` bytes into `value`, from our own open socket.
        let rc = unsafe {
            libc::getsockopt(
                io.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                std::ptr::from_mut(&mut value).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0, "getsockopt: {}", io::Error::last_os_error());
        value
    }

    /// Reads exactly `n` bytes, each read bounded by [`WAIT`].
    async fn read_n(tcp: &mut Tcp, n: usize) -> Vec<u8> {
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            let mut buf = vec![0; 64 * 1024];
            let k = tokio::time::timeout(WAIT, tcp.read(&mut buf))
                .await
                .unwrap_or_else(|_| {
                    panic!("no data within {WAIT:?} after {} of {n} bytes", got.len())
                })
                .expect("read");
            assert!(k > 0, "end of stream after {} of {n} bytes", got.len());
            got.extend_from_slice(&buf[..k]);
        }
        got
    }

    /// A pair whose far end has just written 64 KiB at once, all read: the mark is raised.
    async fn flooded_pair() -> (TcpStream, Tcp) {
        let (mut theirs, mut tcp) = pair(true).await;
        theirs.write_all(&[7; 64 * 1024]).await.expect("write");
        read_n(&mut tcp, 64 * 1024).await;
        assert!(tcp.is_raised(), "64 KiB at once is a flood");
        (theirs, tcp)
    }

    #[actix_rt::test]
    async fn a_flood_raises_the_low_water_mark_and_a_quiet_window_lowers_it() {
        let (mut theirs, mut tcp) = pair(true).await;
        assert_eq!(rcvlowat(&tcp.io), 1);
        theirs.write_all(&[7; 64 * 1024]).await.expect("write");
        read_n(&mut tcp, 64 * 1024).await;
        assert!(tcp.is_raised(), "64 KiB at once is a flood");
        assert_eq!(rcvlowat(&tcp.io), FLOOD_LOWAT as libc::c_int);

        // Nothing more to read: the reader waits (the stream's readiness is cleared).
        let mut buf = [0; 16];
        assert!(tcp.read(&mut buf).now_or_never().is_none());
        // Fewer bytes than the mark: they are read once the window runs out and the
        // mark is lowered (without that, this read would wait forever).
        theirs.write_all(b"last frame").await.expect("write");
        assert_eq!(read_n(&mut tcp, 10).await, b"last frame");
        assert!(!tcp.is_raised());
        assert_eq!(rcvlowat(&tcp.io), 1);

        // Afterwards a lone small write is read as it comes, as on a plain stream.
        theirs.write_all(b"reply").await.expect("write");
        assert_eq!(read_n(&mut tcp, 5).await, b"reply");
        assert!(!tcp.is_raised());
    }

    #[actix_rt::test]
    async fn a_write_lowers_a_raised_mark_so_its_reply_is_read_at_once() {
        let (mut theirs, mut tcp) = flooded_pair().await;
        tcp.write_all(b"request").await.expect("write");
        assert!(!tcp.is_raised(), "a write lowers the mark");
        assert_eq!(rcvlowat(&tcp.io), 1);
        let mut request = [0; 7];
        theirs.read_exact(&mut request).await.expect("read");
        theirs.write_all(b"reply").await.expect("write");
        assert_eq!(read_n(&mut tcp, 5).await, b"reply");
    }

    #[actix_rt::test]
    async fn the_end_of_the_stream_is_seen_while_the_mark_is_raised() {
        let (mut theirs, mut tcp) = flooded_pair().await;
        let mut buf = [0; 16];
        assert!(tcp.read(&mut buf).now_or_never().is_none());
        theirs.write_all(b"bye").await.expect("write");
        drop(theirs);
        assert_eq!(read_n(&mut tcp, 3).await, b"bye");
        let end = tokio::time::timeout(WAIT, tcp.read(&mut buf))
            .await
            .expect("the end of the stream within the wait")
            .expect("read");
        assert_eq!(end, 0);
    }

    #[actix_rt::test]
    async fn small_reads_and_coalescing_turned_off_leave_the_mark_alone() {
        let (mut theirs, mut tcp) = pair(true).await;
        for _ in 0..20 {
            theirs.write_all(&[1; 100]).await.expect("write");
            read_n(&mut tcp, 100).await;
        }
        assert!(!tcp.is_raised(), "2,000 bytes is no flood");
        assert_eq!(rcvlowat(&tcp.io), 1);

        let (mut theirs, mut tcp) = pair(false).await;
        theirs.write_all(&[7; 64 * 1024]).await.expect("write");
        read_n(&mut tcp, 64 * 1024).await;
        assert!(!tcp.is_raised());
        assert_eq!(rcvlowat(&tcp.io), 1);
    }
}
