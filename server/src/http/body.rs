//! A response body: a complete buffer (every answer but a streamed one, and the hot
//! path of persisted queries, kept a plain `Full<Bytes>`) or a subscription's event
//! stream (SSE or multipart, [`super::stream`]).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Frame, SizeHint};

use super::stream::{SlowConsumer, StreamBody};

/// Every response's body.
#[derive(Debug)]
pub enum Body {
    /// The whole body at once.
    Full(Full<Bytes>),
    /// A subscription's events as they come.
    Stream(StreamBody),
}

impl Body {
    /// A body of these bytes.
    pub fn new(bytes: Bytes) -> Body {
        Body::Full(Full::new(bytes))
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = SlowConsumer;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, SlowConsumer>>> {
        match self.get_mut() {
            Body::Full(full) => Pin::new(full)
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(|never| match never {}))),
            Body::Stream(stream) => stream.poll_data(cx).map(|f| f.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(full) => full.is_end_stream(),
            Body::Stream(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(full) => full.size_hint(),
            Body::Stream(_) => SizeHint::default(),
        }
    }
}
