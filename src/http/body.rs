//! The response body type: a complete buffer, or a backend body streamed through (`no-op`).
//! Dropping it — hyper does when the response has been handed to the socket — starts the
//! connection's keep-alive idle timer.

use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};

use crate::net::io::Watch;
use crate::proxy::{BoxError, Streaming};

enum Kind {
    Full(Option<Bytes>),
    Stream(Streaming),
}

/// A response body.
pub struct Body {
    kind: Kind,
    watch: Option<Rc<Watch>>,
}

impl Body {
    /// A complete body.
    pub fn full(bytes: impl Into<Bytes>) -> Body {
        Body {
            kind: Kind::Full(Some(bytes.into())),
            watch: None,
        }
    }

    /// A backend body passed through.
    pub fn stream(body: Streaming) -> Body {
        Body {
            kind: Kind::Stream(body),
            watch: None,
        }
    }

    /// The bytes of a complete body; `None` for a streamed one.
    pub fn full_bytes(&self) -> Option<&Bytes> {
        match &self.kind {
            Kind::Full(bytes) => bytes.as_ref(),
            Kind::Stream(_) => None,
        }
    }

    /// Tells `watch` when the response is done.
    pub fn watched(mut self, watch: Rc<Watch>) -> Body {
        self.watch = Some(watch);
        self
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        if let Some(w) = &self.watch {
            w.idle(Instant::now());
        }
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().filter(|b| !b.is_empty()).map(|b| Ok(Frame::data(b)))),
            Kind::Stream(s) => Pin::new(s).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(bytes) => bytes.as_ref().is_none_or(|b| b.is_empty()),
            Kind::Stream(s) => s.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Stream(s) => s.size_hint(),
        }
    }
}
