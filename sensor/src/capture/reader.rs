//! Drains the kernel ring buffer as soon as it signals data, decodes each record and hands it to
//! the consumer through a bounded queue. The reader never waits on the consumer: when the
//! queue is full the event is dropped and counted, so a slow consumer cannot back up the kernel.

use std::sync::Arc;

use aya::maps::{MapData, RingBuf};
use tokio::{
    io::{Interest, unix::AsyncFd},
    sync::mpsc,
};
use tracing::warn;

use super::{
    counters::Counters,
    decode::{KernelEvent, decode},
};

pub async fn run(
    ring: RingBuf<MapData>,
    tx: mpsc::Sender<KernelEvent>,
    counters: Arc<Counters>,
) -> std::io::Result<()> {
    // SAFETY: the ring buffer owns its fd and lives inside the AsyncFd until it is dropped,
    // so the registered fd stays valid for the whole registration.
    let mut fd = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .map_err(|e| e.into_parts().1)?;
    loop {
        let mut guard = fd.readable_mut().await?;
        let ring = guard.get_inner_mut();
        while let Some(item) = ring.next() {
            match decode(&item) {
                Ok(event) => {
                    let kind = event.kind();
                    counters.decoded(kind);
                    match tx.try_send(event) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => counters.queue_full(kind),
                        Err(mpsc::error::TrySendError::Closed(_)) => return Ok(()),
                    }
                }
                Err(e) => {
                    let n = counters
                        .malformed
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n < 10 {
                        warn!("skipping malformed kernel record: {e}");
                    }
                }
            }
        }
        guard.clear_ready();
    }
}
