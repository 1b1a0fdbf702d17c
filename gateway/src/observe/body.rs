//! Bodies that count their bytes as they flow: the request body as s3s
//! reads it, the response body as hyper sends it. The response body also
//! carries the request's [`Finish`], run when hyper drops it: after its
//! last byte, or when the client went away mid-body.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::metrics;

/// The request body, counting into `n` (and the bytes-in counter).
pub struct CountIn {
    pub inner: Incoming,
    pub n: Arc<AtomicU64>,
}

impl Body for CountIn {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let got = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &got
            && let Some(d) = f.data_ref()
        {
            let len = d.len() as u64;
            self.n.fetch_add(len, Ordering::Relaxed);
            metrics::bytes_in(len);
        }
        got
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Runs once, when the response body is done with.
pub trait Finish: Send + 'static {
    fn finish(self: Box<Self>, bytes_out: u64);
}

/// The response body, counting what goes out.
pub struct CountOut {
    inner: s3s::Body,
    sent: u64,
    finish: Option<Box<dyn Finish>>,
}

impl CountOut {
    pub fn new(inner: s3s::Body, finish: Box<dyn Finish>) -> Self {
        Self {
            inner,
            sent: 0,
            finish: Some(finish),
        }
    }
}

impl Body for CountOut {
    type Data = Bytes;
    type Error = <s3s::Body as Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let got = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &got
            && let Some(d) = f.data_ref()
        {
            let len = d.len() as u64;
            self.sent += len;
            metrics::bytes_out(len);
        }
        got
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for CountOut {
    fn drop(&mut self) {
        if let Some(f) = self.finish.take() {
            f.finish(self.sent);
        }
    }
}
