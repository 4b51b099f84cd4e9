//! Accepting connections without letting slow or silent clients hold the
//! process: a bound on open connections, and deadlines on connections that
//! stop moving.
//!
//! [`BoundedListener`] takes a permit before each `accept`, so beyond the
//! bound new clients wait in the kernel's backlog instead of costing a file
//! descriptor and memory each; a failed `accept` (out of file descriptors)
//! pauses instead of spinning. Every accepted socket is a [`Watched`]
//! stream that fails with `TimedOut` once its [`Timeouts`] say it has been
//! quiet too long, which makes the HTTP server close it.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Pause after an `accept` that failed for a reason other than the one
/// connection (out of file descriptors, say): long enough not to spin,
/// short enough to recover quickly once descriptors are free.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// When a connection counts as stuck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeouts {
    /// Nothing read or written for this long. For gRPC, whose live
    /// connections carry HTTP/2 pings and stream heartbeats.
    Inactivity(Duration),
    /// HTTP request phases, which the server reports through
    /// [`Activity::request`]: a connection with no request in flight is
    /// closed `keep_alive` after its last response (or its opening), and
    /// a request head must be complete within `header` of its first byte.
    /// While a request runs, its handler keeps its own deadlines.
    Http {
        /// From a head's first byte to its end.
        header: Duration,
        /// Idle, between requests.
        keep_alive: Duration,
    },
}

#[derive(Debug)]
struct Phase {
    in_flight: usize,
    /// Last response sent (or the connection opened), with nothing since.
    idle_since: Instant,
    /// First byte of a request head not yet handed to the server.
    head_since: Option<Instant>,
    last_io: Instant,
    /// The connection's task, woken when a request ends so that the idle
    /// deadline is armed even if the socket is not polled again.
    waker: Option<Waker>,
}

/// What a connection is doing, shared between its socket and the server
/// code that sees requests start and end.
#[derive(Debug)]
pub struct Activity {
    timeouts: Timeouts,
    phase: Mutex<Phase>,
}

impl Activity {
    fn new(timeouts: Timeouts) -> Arc<Self> {
        let now = Instant::now();
        Arc::new(Activity {
            timeouts,
            phase: Mutex::new(Phase {
                in_flight: 0,
                idle_since: now,
                head_since: None,
                last_io: now,
                waker: None,
            }),
        })
    }

    fn with<R>(&self, f: impl FnOnce(&mut Phase) -> R) -> R {
        // A panic elsewhere cannot leave these few fields inconsistent.
        f(&mut self.phase.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Marks a request as running until the returned guard is dropped.
    pub fn request(self: &Arc<Self>) -> RequestGuard {
        self.with(|p| {
            p.in_flight += 1;
            p.head_since = None;
        });
        RequestGuard(self.clone())
    }

    fn deadline(&self) -> Option<Instant> {
        self.with(|p| match self.timeouts {
            Timeouts::Inactivity(limit) => Some(p.last_io + limit),
            Timeouts::Http { .. } if p.in_flight > 0 => None,
            Timeouts::Http { header, .. } if p.head_since.is_some() => {
                p.head_since.map(|since| since + header)
            }
            Timeouts::Http { keep_alive, .. } => Some(p.idle_since + keep_alive),
        })
    }

    fn moved(&self, read: bool) {
        let now = Instant::now();
        self.with(|p| {
            p.last_io = now;
            if read && p.in_flight == 0 && p.head_since.is_none() {
                p.head_since = Some(now);
            }
        });
    }
}

/// A running request; dropping it ends it.
#[derive(Debug)]
pub struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let now = Instant::now();
        let waker = self.0.with(|p| {
            p.in_flight = p.in_flight.saturating_sub(1);
            if p.in_flight == 0 {
                p.idle_since = now;
                p.head_since = None;
                return p.waker.take();
            }
            None
        });
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// A socket that fails with `TimedOut` once its connection is stuck, and
/// holds its place under the connection bound until dropped.
#[derive(Debug)]
pub struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
    timer: Pin<Box<Sleep>>,
    _permit: OwnedSemaphorePermit,
}

impl<T> Watched<T> {
    /// What the connection is doing, for the server to report requests.
    pub fn activity(&self) -> Arc<Activity> {
        self.activity.clone()
    }

    /// The wrapped socket.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// `TimedOut` if the deadline has passed; otherwise arms the timer to
    /// wake this task at the deadline.
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        self.activity.with(|p| match &p.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => p.waker = Some(cx.waker().clone()),
        });
        let Some(deadline) = self.activity.deadline() else {
            return Ok(());
        };
        if self.timer.deadline() != deadline {
            self.timer.as_mut().reset(deadline);
        }
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection idle or too slow",
            )),
            Poll::Pending => Ok(()),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                this.activity.moved(true);
                // A client trickling bytes is still held to its deadline.
                match this.check(cx) {
                    Ok(()) => Poll::Ready(Ok(())),
                    Err(err) => Poll::Ready(Err(err)),
                }
            }
            Poll::Pending => match this.check(cx) {
                Ok(()) => Poll::Pending,
                Err(err) => Poll::Ready(Err(err)),
            },
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> Watched<T> {
    fn after_write<R>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match result {
            Poll::Ready(Ok(written)) => {
                self.activity.moved(false);
                // Arms the deadline: after a response, the socket may not be
                // read again until the client sends something.
                match self.check(cx) {
                    Ok(()) => Poll::Ready(Ok(written)),
                    Err(err) => Poll::Ready(Err(err)),
                }
            }
            // A client that does not read its response is stuck too.
            Poll::Pending => match self.check(cx) {
                Ok(()) => Poll::Pending,
                Err(err) => Poll::Ready(Err(err)),
            },
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.after_write(cx, result)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.after_write(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        this.after_write(cx, result)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for Watched<TcpStream> {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// A listener that keeps at most a fixed number of connections open.
#[derive(Debug)]
pub struct BoundedListener {
    listener: TcpListener,
    permits: Arc<Semaphore>,
    timeouts: Timeouts,
}

impl BoundedListener {
    /// At most `max_connections` (at least one) open at once, each watched
    /// with `timeouts`.
    pub fn new(listener: TcpListener, max_connections: usize, timeouts: Timeouts) -> Self {
        BoundedListener {
            listener,
            permits: Arc::new(Semaphore::new(max_connections.max(1))),
            timeouts,
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The next connection, once one may be opened. TCP_NODELAY is on:
    /// responses and gRPC messages are small writes that Nagle would hold.
    pub async fn accept(&self) -> (Watched<TcpStream>, SocketAddr) {
        loop {
            let Ok(permit) = self.permits.clone().acquire_owned().await else {
                // The semaphore is never closed.
                return std::future::pending().await;
            };
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let activity = Activity::new(self.timeouts);
                    let watched = Watched {
                        inner: stream,
                        activity,
                        timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
                        _permit: permit,
                    };
                    return (watched, peer);
                }
                // The client gave up before we accepted: nothing to wait for.
                Err(err) if is_connection_error(&err) => {}
                Err(err) => {
                    tracing::error!(%err, "accept failed; pausing");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            }
        }
    }

    /// The connections as a stream, for `tonic`'s `serve_with_incoming`.
    /// Dropping it closes the listening socket.
    pub fn into_stream(
        self,
    ) -> impl futures::Stream<Item = io::Result<Watched<TcpStream>>> + Send + 'static {
        futures::stream::unfold(self, |listener| async move {
            let (stream, _) = listener.accept().await;
            Some((Ok(stream), listener))
        })
    }
}

fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pair(max: usize, timeouts: Timeouts) -> (BoundedListener, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        (BoundedListener::new(listener, max, timeouts), addr)
    }

    #[tokio::test]
    async fn a_silent_connection_times_out_and_an_active_one_does_not_until_it_stops() {
        let limit = Duration::from_secs(1);
        let (listener, addr) = pair(4, Timeouts::Inactivity(limit)).await;
        let mut client = TcpStream::connect(addr).await.expect("connect");
        let (mut server, _) = listener.accept().await;
        // The client keeps talking for longer than the limit in total, a
        // byte at a time well within it, then falls silent.
        let talking = tokio::spawn(async move {
            for _ in 0..15 {
                client.write_all(b"x").await.expect("write");
                tokio::time::sleep(limit / 10).await;
            }
            client
        });
        let mut received = 0;
        let mut buf = [0u8; 8];
        let err = loop {
            match server.read(&mut buf).await {
                Ok(0) => panic!("client closed"),
                Ok(n) => received += n,
                Err(err) => break err,
            }
        };
        assert_eq!(received, 15, "no timeout while bytes keep arriving");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        drop(talking.await.expect("client"));
    }

    #[tokio::test]
    async fn the_bound_holds_until_a_connection_closes() {
        let (listener, addr) = pair(1, Timeouts::Inactivity(Duration::from_secs(60))).await;
        let _first_client = TcpStream::connect(addr).await.expect("connect");
        let (first, _) = listener.accept().await;
        let _second_client = TcpStream::connect(addr).await.expect("connect");
        let listener = Arc::new(listener);
        let second = tokio::spawn({
            let listener = listener.clone();
            async move { listener.accept().await }
        });
        tokio::task::yield_now().await;
        assert!(
            !second.is_finished(),
            "a second connection waits for a place"
        );
        drop(first);
        let (second, _) = tokio::time::timeout(Duration::from_secs(10), second)
            .await
            .expect("accepted once the first closed")
            .expect("task");
        drop(second);
    }

    #[tokio::test]
    async fn http_phases_use_the_keep_alive_and_header_deadlines() {
        let header = Duration::from_secs(60);
        let keep_alive = Duration::from_secs(75);
        let activity = Activity::new(Timeouts::Http { header, keep_alive });
        let opened = activity.deadline().expect("idle deadline");
        activity.moved(true);
        let head = activity.deadline().expect("head deadline");
        assert!(
            head < opened,
            "a started head has the shorter header deadline"
        );
        let guard = activity.request();
        assert_eq!(
            activity.deadline(),
            None,
            "a running request keeps its own deadlines"
        );
        drop(guard);
        let idle = activity.deadline().expect("idle again");
        assert!(idle >= opened, "idle again counts from the response");
    }
}
