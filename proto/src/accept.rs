//! Accepting connections: what every listening port applies before a byte
//! reaches its protocol (ADR 0032). A cap on open connections (the accept
//! loop waits for a free slot, so excess clients queue in the kernel's
//! backlog instead of costing a task and a buffer each), TCP keepalive (a
//! peer that vanished without a FIN is found by the kernel), and an
//! inactivity timeout (a connection that moves no byte while no request is
//! in flight is closed).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Idle time before the kernel's first keepalive probe.
pub const TCP_KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
/// Time between keepalive probes.
pub const TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// Unanswered probes after which the kernel drops the connection
/// (10 s + 3 × 5 s: a vanished peer is found within 25 s of silence).
pub const TCP_KEEPALIVE_RETRIES: u32 = 3;

/// Turns on TCP keepalive (and TCP_NODELAY) on `tcp`. Failure is only
/// logged: the connection still works, it just finds a dead peer later.
pub fn tune(tcp: &TcpStream) {
    let _ = tcp.set_nodelay(true);
    let ka = socket2::TcpKeepalive::new()
        .with_time(TCP_KEEPALIVE_IDLE)
        .with_interval(TCP_KEEPALIVE_INTERVAL)
        .with_retries(TCP_KEEPALIVE_RETRIES);
    if let Err(e) = socket2::SockRef::from(tcp).set_tcp_keepalive(&ka) {
        tracing::debug!(error = %e, "setting TCP keepalive failed");
    }
}

/// At most so many connections open at once on one port.
#[derive(Clone)]
pub struct Cap {
    slots: Arc<Semaphore>,
    max: usize,
}

/// One open connection's slot; freed when dropped.
pub type Slot = OwnedSemaphorePermit;

impl Cap {
    pub fn new(max: usize) -> Self {
        // Zero would accept nothing, ever: one is the least that works.
        let max = max.max(1);
        Self {
            slots: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// Waits for a free slot. The accept loop calls this before
    /// `accept()`, so at the cap it stops accepting until one closes.
    /// None only if the semaphore were closed, which nothing does.
    pub async fn slot(&self) -> Option<Slot> {
        self.slots.clone().acquire_owned().await.ok()
    }

    /// Connections open now.
    pub fn in_use(&self) -> usize {
        self.max - self.slots.available_permits()
    }
}

/// Requests in flight on one connection: while any is, the connection is
/// not idle however long it stays silent (a slow answer is not a dead
/// client).
#[derive(Clone, Default)]
pub struct InFlight(Arc<AtomicUsize>);

/// Held for the life of one request.
pub struct Busy(Arc<AtomicUsize>);

impl InFlight {
    pub fn enter(&self) -> Busy {
        self.0.fetch_add(1, Ordering::Relaxed);
        Busy(self.0.clone())
    }

    fn any(&self) -> bool {
        self.0.load(Ordering::Relaxed) > 0
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A stream that fails its reads with `TimedOut` once no byte has moved
/// either way for `idle` while nothing is in flight; before the first
/// byte read, the bound is `first` (a client that connects and says
/// nothing). The protocol above sees an error and closes the connection.
pub struct Idle<IO> {
    inner: IO,
    first: bool,
    idle: Duration,
    last: Instant,
    deadline: Pin<Box<Sleep>>,
    busy: InFlight,
}

impl<IO> Idle<IO> {
    pub fn new(inner: IO, first: Duration, idle: Duration, busy: InFlight) -> Self {
        let now = Instant::now();
        Self {
            inner,
            first: true,
            idle,
            last: now,
            deadline: Box::pin(tokio::time::sleep_until(now + first)),
            busy,
        }
    }

    pub fn get_ref(&self) -> &IO {
        &self.inner
    }

    /// Whether the deadline has passed for good; re-arms it otherwise.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.deadline.as_mut().poll(cx).is_pending() {
                return false;
            }
            let next = if self.busy.any() {
                Instant::now() + self.idle
            } else if !self.first && self.last + self.idle > Instant::now() {
                self.last + self.idle
            } else {
                return true;
            };
            self.deadline.as_mut().reset(next);
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Idle<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.first = false;
                    self.last = Instant::now();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection idle",
            ))),
            other => other,
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Idle<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.last = Instant::now();
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.last = Instant::now();
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_silent_stream_times_out_a_busy_one_does_not() {
        let ms = Duration::from_millis;
        let (a, _b) = tokio::io::duplex(64);
        let busy = InFlight::default();
        let mut s = Idle::new(a, ms(200), ms(300), busy.clone());
        // Nothing said: the first-byte bound ends it.
        let mut buf = [0u8; 8];
        let e = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("not left open")
            .expect_err("times out");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);

        let (a, mut b) = tokio::io::duplex(64);
        let mut s = Idle::new(a, ms(200), ms(300), busy.clone());
        b.write_all(b"x").await.expect("write");
        assert_eq!(s.read(&mut buf).await.expect("byte"), 1);
        // A request in flight: silence is allowed as long as it lasts.
        let guard = busy.enter();
        let read = tokio::time::timeout(ms(1500), s.read(&mut buf)).await;
        assert!(read.is_err(), "closed while a request was in flight");
        drop(guard);
        let e = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("not left open")
            .expect_err("idle once nothing is in flight");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn the_cap_hands_out_its_slots_and_waits_for_a_free_one() {
        let cap = Cap::new(2);
        let a = cap.slot().await;
        let _b = cap.slot().await;
        assert_eq!(cap.in_use(), 2);
        let waited = tokio::time::timeout(Duration::from_millis(50), cap.slot()).await;
        assert!(waited.is_err(), "a third slot waits");
        drop(a);
        let _c = tokio::time::timeout(Duration::from_secs(5), cap.slot())
            .await
            .expect("freed");
    }
}
