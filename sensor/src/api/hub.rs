//! A broadcast hub: every message published reaches every subscriber, each through its own
//! bounded queue.
//!
//! Publishing never blocks and never waits on a subscriber (capture publishes; a gRPC client
//! reading slowly must not stall it, nor the other clients). When a subscriber's queue is full
//! the message is dropped *for that subscriber* and counted; the subscriber then receives, in
//! band and at the exact place of the loss, a [`Delivery::Gap`] with the number of messages it
//! missed, followed by the messages published after the loss.
//!
//! A subscriber may install a filter ([`Subscription::set_filter`]): the publisher skips the
//! messages it rejects, so they take no room in the queue and a gap counts only messages the
//! subscriber wanted.
//!
//! Locking: the subscriber list and each queue are behind plain mutexes held for a push or a
//! pop only (never across an `.await`), so the publisher waits at most for another push or pop,
//! never for a consumer to do its work.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError, Weak,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::sync::Notify;

/// The default queue capacity of a subscriber.
pub const DEFAULT_CAPACITY: usize = 4096;

/// What a subscriber receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery<T> {
    Message(T),
    /// This many messages were dropped here because the queue was full.
    Gap(u64),
}

/// Counters of a hub (for metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HubStats {
    /// Subscribers now.
    pub subscribers: usize,
    /// Messages published (each counted once, whatever the number of subscribers).
    pub published: u64,
    /// Messages dropped, summed over subscribers.
    pub dropped: u64,
    /// Gap notices handed to subscribers.
    pub gaps: u64,
}

type Filter<T> = Arc<dyn Fn(&T) -> bool + Send + Sync>;

struct Queue<T> {
    /// (messages missed just before this one, the message).
    items: VecDeque<(u64, T)>,
    /// Messages dropped since the last push: reported before the next message, or on their
    /// own once the queue is drained.
    missed: u64,
    filter: Option<Filter<T>>,
    closed: bool,
}

struct Slot<T> {
    capacity: usize,
    queue: Mutex<Queue<T>>,
    notify: Notify,
}

impl<T> Slot<T> {
    fn lock(&self) -> MutexGuard<'_, Queue<T>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_one();
    }
}

struct Shared<T> {
    subscribers: Mutex<Vec<Arc<Slot<T>>>>,
    capacity: usize,
    published: AtomicU64,
    dropped: AtomicU64,
    gaps: Arc<AtomicU64>,
}

impl<T> Shared<T> {
    fn subscribers(&self) -> MutexGuard<'_, Vec<Arc<Slot<T>>>> {
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T> Drop for Shared<T> {
    /// The last [`Hub`] handle is gone: subscribers drain what they have, then see the end.
    fn drop(&mut self) {
        for slot in self.subscribers().drain(..) {
            slot.close();
        }
    }
}

/// The publishing side; clones publish to the same subscribers.
pub struct Hub<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Hub<T> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<T> std::fmt::Debug for Hub<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("stats", &self.stats()).finish()
    }
}

impl<T> Default for Hub<T> {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl<T> Hub<T> {
    /// A hub whose subscribers each queue at most `capacity` messages (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                subscribers: Mutex::new(Vec::new()),
                capacity: capacity.max(1),
                published: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                gaps: Arc::new(AtomicU64::new(0)),
            }),
        }
    }

    /// A new subscriber with the hub's capacity; it receives what is published from now on.
    pub fn subscribe(&self) -> Subscription<T> {
        self.subscribe_with_capacity(self.shared.capacity)
    }

    /// A new subscriber with its own queue capacity (at least 1).
    pub fn subscribe_with_capacity(&self, capacity: usize) -> Subscription<T> {
        let slot = Arc::new(Slot {
            capacity: capacity.max(1),
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                missed: 0,
                filter: None,
                closed: false,
            }),
            notify: Notify::new(),
        });
        self.shared.subscribers().push(slot.clone());
        Subscription {
            slot,
            hub: Arc::downgrade(&self.shared),
            gaps: self.shared.gaps.clone(),
            pending: None,
        }
    }

    /// Ends every current subscription: each drains its queue, then receives `None` (shutdown).
    pub fn close(&self) {
        for slot in self.shared.subscribers().drain(..) {
            slot.close();
        }
    }

    pub fn stats(&self) -> HubStats {
        HubStats {
            subscribers: self.shared.subscribers().len(),
            published: self.shared.published.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
            gaps: self.shared.gaps.load(Ordering::Relaxed),
        }
    }
}

impl<T: Clone> Hub<T> {
    /// Hands `message` to every subscriber whose filter accepts it; a full queue drops it for
    /// that subscriber (counted, reported to it as a gap). Never blocks on a subscriber.
    pub fn publish(&self, message: T) {
        self.shared.published.fetch_add(1, Ordering::Relaxed);
        let subscribers = self.shared.subscribers();
        let mut dropped = 0;
        for slot in subscribers.iter() {
            let mut q = slot.lock();
            if q.closed || q.filter.as_ref().is_some_and(|f| !f(&message)) {
                continue;
            }
            if q.items.len() >= slot.capacity {
                q.missed += 1;
                dropped += 1;
                continue;
            }
            let missed = std::mem::take(&mut q.missed);
            q.items.push_back((missed, message.clone()));
            drop(q);
            slot.notify.notify_one();
        }
        drop(subscribers);
        if dropped > 0 {
            self.shared.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
    }
}

/// Why [`Subscription::try_recv`] returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing queued now.
    Empty,
    /// The hub is closed (or gone) and the queue is drained.
    Closed,
}

/// The receiving side of one subscriber. Dropping it unsubscribes.
pub struct Subscription<T> {
    slot: Arc<Slot<T>>,
    hub: Weak<Shared<T>>,
    gaps: Arc<AtomicU64>,
    /// A message that came right after a gap: returned by the next receive.
    pending: Option<T>,
}

impl<T> std::fmt::Debug for Subscription<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("capacity", &self.slot.capacity)
            .finish()
    }
}

impl<T> Subscription<T> {
    /// Only messages `filter` accepts are queued from now on (messages already queued are not
    /// re-checked: a receiver that needs them filtered checks them again). Runs on the
    /// publisher's thread: keep it cheap.
    pub fn set_filter(&self, filter: impl Fn(&T) -> bool + Send + Sync + 'static) {
        self.slot.lock().filter = Some(Arc::new(filter));
    }

    /// The next message or gap; `None` once the hub is closed and the queue drained.
    pub async fn recv(&mut self) -> Option<Delivery<T>> {
        loop {
            match self.try_recv() {
                Ok(d) => return Some(d),
                Err(TryRecvError::Closed) => return None,
                // A push between the check and the wait leaves a permit: no lost wakeup.
                Err(TryRecvError::Empty) => self.slot.notify.notified().await,
            }
        }
    }

    /// The next message or gap, without waiting.
    pub fn try_recv(&mut self) -> Result<Delivery<T>, TryRecvError> {
        if let Some(m) = self.pending.take() {
            return Ok(Delivery::Message(m));
        }
        let mut q = self.slot.lock();
        if let Some((missed, m)) = q.items.pop_front() {
            if missed > 0 {
                self.pending = Some(m);
                self.gaps.fetch_add(1, Ordering::Relaxed);
                return Ok(Delivery::Gap(missed));
            }
            return Ok(Delivery::Message(m));
        }
        if q.missed > 0 {
            let missed = std::mem::take(&mut q.missed);
            self.gaps.fetch_add(1, Ordering::Relaxed);
            return Ok(Delivery::Gap(missed));
        }
        if q.closed || self.hub.strong_count() == 0 {
            return Err(TryRecvError::Closed);
        }
        Err(TryRecvError::Empty)
    }

    /// Messages queued now (not counting a pending gap notice).
    pub fn len(&self) -> usize {
        self.slot.lock().items.len() + usize::from(self.pending.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.slot.capacity
    }
}

impl<T> Drop for Subscription<T> {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.subscribers().retain(|s| !Arc::ptr_eq(s, &self.slot));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn drain(sub: &mut Subscription<u64>) -> Vec<Delivery<u64>> {
        let mut out = Vec::new();
        while let Ok(d) = sub.try_recv() {
            out.push(d);
        }
        out
    }

    fn msgs(range: std::ops::RangeInclusive<u64>) -> Vec<Delivery<u64>> {
        range.map(Delivery::Message).collect()
    }

    #[test]
    fn a_slow_subscriber_gets_a_gap_with_the_exact_count_a_fast_one_gets_everything() {
        let hub = Hub::new(1000);
        let mut fast = hub.subscribe();
        let mut slow = hub.subscribe_with_capacity(4);
        for i in 1..=10 {
            hub.publish(i);
        }
        assert_eq!(drain(&mut fast), msgs(1..=10));
        let mut want = msgs(1..=4);
        want.push(Delivery::Gap(6));
        assert_eq!(
            drain(&mut slow),
            want,
            "the gap comes after what was queued"
        );
        hub.publish(11);
        assert_eq!(drain(&mut slow), msgs(11..=11));
        assert_eq!(drain(&mut fast), msgs(11..=11));
        assert_eq!(
            hub.stats(),
            HubStats {
                subscribers: 2,
                published: 11,
                dropped: 6,
                gaps: 1
            }
        );
    }

    #[test]
    fn the_gap_sits_exactly_where_the_loss_happened() {
        let hub = Hub::new(3);
        let mut sub = hub.subscribe();
        for i in 1..=5 {
            hub.publish(i); // 4 and 5 dropped
        }
        assert_eq!(sub.try_recv(), Ok(Delivery::Message(1)));
        hub.publish(6); // room again: queued behind the loss
        hub.publish(7); // full again: dropped
        assert_eq!(
            drain(&mut sub),
            vec![
                Delivery::Message(2),
                Delivery::Message(3),
                Delivery::Gap(2),
                Delivery::Message(6),
                Delivery::Gap(1),
            ]
        );
        assert_eq!(hub.stats().dropped, 3);
        assert_eq!(hub.stats().gaps, 2);
    }

    #[test]
    fn filters_keep_rejected_messages_out_of_the_queue_and_the_gap_count() {
        let hub = Hub::new(2);
        let mut evens = hub.subscribe();
        evens.set_filter(|m: &u64| m.is_multiple_of(2));
        for i in 1..=10 {
            hub.publish(i);
        }
        // 2 and 4 queued; 6, 8, 10 dropped: odd numbers never counted.
        assert_eq!(
            drain(&mut evens),
            vec![Delivery::Message(2), Delivery::Message(4), Delivery::Gap(3)]
        );
    }

    #[test]
    fn publishing_never_waits_for_a_subscriber_that_does_not_read() {
        let hub = Hub::new(8);
        let _stuck = hub.subscribe();
        let mut reader = hub.subscribe_with_capacity(200_000);
        let start = Instant::now();
        for i in 0..100_000 {
            hub.publish(i);
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(hub.stats().dropped, 100_000 - 8);
        assert_eq!(reader.len(), 100_000);
        assert_eq!(reader.try_recv(), Ok(Delivery::Message(0)));
    }

    #[test]
    fn dropping_a_subscription_unsubscribes_and_dropping_the_hub_closes() {
        let hub = Hub::new(4);
        let a = hub.subscribe();
        let mut b = hub.subscribe();
        assert_eq!(hub.stats().subscribers, 2);
        drop(a);
        assert_eq!(hub.stats().subscribers, 1);
        hub.publish(1u64);
        drop(hub);
        assert_eq!(b.try_recv(), Ok(Delivery::Message(1)));
        assert_eq!(b.try_recv(), Err(TryRecvError::Closed));
    }

    #[tokio::test]
    async fn recv_wakes_up_on_publish_and_ends_on_close() {
        let hub = Hub::new(16);
        let mut sub = hub.subscribe();
        let publisher = {
            let hub = hub.clone();
            tokio::spawn(async move {
                for i in 0..100u64 {
                    hub.publish(i);
                    if i % 10 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                hub.close();
            })
        };
        let mut got = Vec::new();
        let mut missed = 0;
        while let Some(d) = sub.recv().await {
            match d {
                Delivery::Message(m) => got.push(m),
                Delivery::Gap(n) => missed += n,
            }
        }
        publisher.await.unwrap();
        assert_eq!(
            got.len() as u64 + missed,
            100,
            "every message is received or counted"
        );
        assert!(got.windows(2).all(|w| w[0] < w[1]), "in order");
    }
}
