//! What one client may take from the agent: the size of a request and the number of streams
//! open at once. The agent is a node's security sensor; a buggy or hostile client on the node
//! must not be able to make it allocate without bound, nor crowd out the other clients.
//!
//! - Requests are at most [`MAX_REQUEST_BYTES`] (every request is a few names and filters: far
//!   below it). A larger one is refused by tonic's decoder with OUT_OF_RANGE ("decoded message
//!   length too large") before its body is buffered.
//! - Each stream kind (`StreamAnomalies`, `StreamEvents`) has at most [`MAX_STREAMS_PER_KIND`]
//!   open at once: each holds a subscriber queue of up to 4096 messages, so the bound is also the
//!   bound on that memory. One more is refused with RESOURCE_EXHAUSTED, which says how many are
//!   open; the permit is released when the client goes away (the response stream is dropped).
//! - HTTP/2 streams per connection are capped at [`MAX_CONCURRENT_STREAMS`], so one connection
//!   cannot open unbounded calls either.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_stream::Stream;
use tonic::Status;

/// Largest request message the server decodes (tonic's default is 4 MiB).
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// Open streams of one kind, over all connections.
pub const MAX_STREAMS_PER_KIND: usize = 32;
/// HTTP/2 streams (calls in flight) per connection.
pub const MAX_CONCURRENT_STREAMS: u32 = 128;

/// Permits for the open streams of one kind.
#[derive(Debug, Clone)]
pub struct StreamSlots {
    what: &'static str,
    limit: usize,
    permits: Arc<Semaphore>,
}

impl StreamSlots {
    /// `what` names the call in the refusal (`StreamEvents`).
    pub fn new(what: &'static str, limit: usize) -> Self {
        Self {
            what,
            limit,
            permits: Arc::new(Semaphore::new(limit)),
        }
    }

    /// A permit for one more stream, or RESOURCE_EXHAUSTED when `limit` are open.
    pub fn acquire(&self) -> Result<OwnedSemaphorePermit, Status> {
        self.permits.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "{} streams of this agent are all in use ({} open, the limit): close one, or \
                 retry later",
                self.what, self.limit
            ))
        })
    }

    /// Streams open now.
    pub fn in_use(&self) -> usize {
        self.limit - self.permits.available_permits()
    }
}

/// A response stream that holds its permit until tonic drops it (client gone, or stream over).
pub struct Permitted<S> {
    inner: S,
    _permit: OwnedSemaphorePermit,
}

impl<S> Permitted<S> {
    pub fn new(inner: S, permit: OwnedSemaphorePermit) -> Self {
        Self {
            inner,
            _permit: permit,
        }
    }
}

impl<S: Stream + Unpin> Stream for Permitted<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt;

    #[tokio::test]
    async fn the_limit_refuses_one_more_and_a_dropped_stream_frees_its_slot() {
        let slots = StreamSlots::new("StreamEvents", 2);
        let a = Permitted::new(tokio_stream::iter([1, 2]), slots.acquire().unwrap());
        let b = slots.acquire().unwrap();
        let refused = slots.acquire().unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(
            refused
                .message()
                .starts_with("StreamEvents streams of this agent are all in use (2 open"),
            "{}",
            refused.message()
        );
        assert_eq!(a.collect::<Vec<_>>().await, [1, 2]);
        assert_eq!(slots.in_use(), 1, "a finished stream gives its slot back");
        drop(b);
        assert_eq!(slots.in_use(), 0);
        let _again = slots.acquire().unwrap();
    }
}
