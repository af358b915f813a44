//! `StreamAnomalies` and `StreamEvents`: one task per stream, between a [`Subscription`] of the
//! agent's hub and the client.
//!
//! Anomalies, replay then live, without loss or duplicate across the switch:
//! 1. subscribe first (anything published from now on is queued for this stream);
//! 2. replay the log after `since_seq`, page by page, to its end;
//! 3. forward from the queue only anomalies with `seq` above the last one sent.
//!
//! Anything published before step 1 was logged before it (the [`AnomalySource`] contract), so
//! the replay has it; anything published after is queued. While the replay runs the queue may
//! overflow: a gap seen before the queue has caught up with the replay is healed from the log
//! (read again after the last sequence number sent), so it costs the client nothing. Once
//! caught up, a gap means this client is too slow: it is forwarded in band with the exact count
//! (the hub counts only anomalies the filter accepts) and the sequence number it happened
//! after, so the client can fetch the missed ones with a new stream.
//!
//! Streams end with UNAVAILABLE when the server shuts down, and when the client goes away the
//! task ends and unsubscribes.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::convert::now;
use super::filter::{AnomalyFilter, EventFilter};
use super::hub::{Delivery, Subscription};
use super::message;
use super::proto::{self, anomaly_message, event_message};
use super::source::{AnomalySource, EventSource};
use crate::attribution::event::Event;
use crate::detect::model::Anomaly;

/// Records read from the log per call while replaying.
pub const REPLAY_PAGE: usize = 512;
/// Messages between the stream task and the HTTP/2 stream (the hub queue is the real buffer).
const OUT_BUFFER: usize = 16;

pub type AnomalyStream = ReceiverStream<Result<proto::AnomalyMessage, Status>>;
pub type EventStream = ReceiverStream<Result<proto::EventMessage, Status>>;

fn shutting_down() -> Status {
    Status::unavailable(
        "the agent is shutting down: reconnect and resume with since_seq = the last seq received",
    )
}

/// Sends `item` unless the client is gone or the server is stopping (then `false`).
async fn send<T>(
    tx: &mpsc::Sender<Result<T, Status>>,
    item: T,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    if *shutdown.borrow() {
        let _ = tx.try_send(Err(shutting_down()));
        return false;
    }
    tokio::select! {
        sent = tx.send(Ok(item)) => sent.is_ok(),
        _ = shutdown.changed() => {
            let _ = tx.try_send(Err(shutting_down()));
            false
        }
    }
}

/// Starts a `StreamAnomalies` stream. Subscribes before returning; OUT_OF_RANGE when
/// `since_seq` is beyond the last sequence number given out (a client from before a state
/// reset: resuming from it would silently skip anomalies).
pub fn anomalies(
    source: Arc<dyn AnomalySource>,
    node: String,
    filter: AnomalyFilter,
    since_seq: Option<u64>,
    shutdown: watch::Receiver<bool>,
) -> Result<AnomalyStream, Status> {
    let filter = Arc::new(filter);
    let subscription = source.subscribe();
    {
        let filter = filter.clone();
        subscription.set_filter(move |a| filter.matches(a));
    }
    let head = source.last_seq();
    if let Some(since) = since_seq
        && since > head
    {
        return Err(Status::out_of_range(format!(
            "since_seq {since} is beyond the last anomaly of this node (#{head}): its state was \
             reset, or the sequence number is from another node; resume with since_seq = 0"
        )));
    }
    let (tx, rx) = mpsc::channel(OUT_BUFFER);
    let task = AnomalyTask {
        source,
        node,
        filter,
        tx,
        shutdown,
        last: since_seq.unwrap_or(head),
    };
    tokio::spawn(task.run(subscription, since_seq.is_some(), head));
    Ok(ReceiverStream::new(rx))
}

struct AnomalyTask {
    source: Arc<dyn AnomalySource>,
    node: String,
    filter: Arc<AnomalyFilter>,
    tx: mpsc::Sender<Result<proto::AnomalyMessage, Status>>,
    shutdown: watch::Receiver<bool>,
    /// The highest sequence number this stream has dealt with (sent, or filtered out).
    last: u64,
}

enum Replayed {
    Done,
    /// The client is gone or the server stops.
    Stop,
}

impl AnomalyTask {
    fn envelope(&self, event: anomaly_message::Payload) -> proto::AnomalyMessage {
        proto::AnomalyMessage {
            payload: Some(event),
            node_name: self.node.clone(),
            time: now(),
        }
    }

    async fn emit(&mut self, event: anomaly_message::Payload) -> bool {
        let msg = self.envelope(event);
        send(&self.tx, msg, &mut self.shutdown).await
    }

    async fn gap(&mut self, missed: u64, reason: proto::GapReason) -> bool {
        let gap = proto::Gap {
            missed,
            reason: reason.into(),
            after_seq: self.last,
        };
        self.emit(anomaly_message::Payload::Gap(gap)).await
    }

    /// Sends `a` if it is new and matches; false when the stream must stop.
    async fn forward(&mut self, a: &Anomaly) -> bool {
        if a.seq <= self.last {
            return true;
        }
        self.last = a.seq;
        if !self.filter.matches(a) {
            return true;
        }
        self.emit(anomaly_message::Payload::Anomaly(message::anomaly(a)))
            .await
    }

    /// Sends the logged records after `self.last`, to the end of the log. Records missing from
    /// the log (a hole in the numbering: retention, a cut line) become a LOG_RETENTION gap.
    async fn replay(&mut self, head: u64) -> Replayed {
        loop {
            let source = self.source.clone();
            let after = self.last;
            let page = tokio::task::spawn_blocking(move || source.read_after(after, REPLAY_PAGE))
                .await
                .unwrap_or_else(|e| Err(format!("the log reader panicked: {e}")));
            let page = match page {
                Ok(page) => page,
                Err(e) => {
                    let _ = self
                        .tx
                        .send(Err(Status::unavailable(format!(
                            "reading the anomaly log: {e}"
                        ))))
                        .await;
                    return Replayed::Stop;
                }
            };
            let full = page.len() >= REPLAY_PAGE;
            for a in &page {
                if a.seq > self.last + 1 {
                    let missed = a.seq - self.last - 1;
                    if !self.gap(missed, proto::GapReason::LogRetention).await {
                        return Replayed::Stop;
                    }
                }
                if !self.forward(a).await {
                    return Replayed::Stop;
                }
            }
            if !full {
                break;
            }
        }
        // Given out before we subscribed but no longer in the log.
        if self.last < head {
            let missed = head - self.last;
            if !self.gap(missed, proto::GapReason::LogRetention).await {
                return Replayed::Stop;
            }
            self.last = head;
        }
        Replayed::Done
    }

    async fn run(mut self, mut subscription: Subscription<Anomaly>, replay: bool, head: u64) {
        if replay && matches!(self.replay(head).await, Replayed::Stop) {
            return;
        }
        let live = proto::Live {
            last_seq: self.last,
        };
        if !self.emit(anomaly_message::Payload::Live(live)).await {
            return;
        }
        // Until the queue delivers something newer than the replay, a gap may hide anomalies
        // the replay did not send: read them from the log instead of reporting a loss.
        let mut caught_up = !replay;
        loop {
            let delivery = tokio::select! {
                d = subscription.recv() => d,
                _ = self.tx.closed() => return,
                _ = self.shutdown.changed() => {
                    let _ = self.tx.try_send(Err(shutting_down()));
                    return;
                }
            };
            match delivery {
                None => {
                    let _ = self
                        .tx
                        .send(Err(Status::unavailable("the anomaly source closed")))
                        .await;
                    return;
                }
                Some(Delivery::Message(a)) => {
                    if a.seq > self.last {
                        caught_up = true;
                    }
                    if !self.forward(&a).await {
                        return;
                    }
                }
                Some(Delivery::Gap(missed)) if caught_up => {
                    if !self.gap(missed, proto::GapReason::SlowConsumer).await {
                        return;
                    }
                }
                Some(Delivery::Gap(_)) => {
                    if matches!(self.replay(0).await, Replayed::Stop) {
                        return;
                    }
                }
            }
        }
    }
}

/// Starts a `StreamEvents` stream (live only).
pub fn events(
    source: Arc<dyn EventSource>,
    node: String,
    filter: EventFilter,
    shutdown: watch::Receiver<bool>,
) -> EventStream {
    let filter = Arc::new(filter);
    let subscription = source.subscribe();
    {
        let filter = filter.clone();
        subscription.set_filter(move |e| filter.matches(e));
    }
    let (tx, rx) = mpsc::channel(OUT_BUFFER);
    tokio::spawn(run_events(subscription, node, filter, tx, shutdown));
    ReceiverStream::new(rx)
}

async fn run_events(
    mut subscription: Subscription<Event>,
    node: String,
    filter: Arc<EventFilter>,
    tx: mpsc::Sender<Result<proto::EventMessage, Status>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let delivery = tokio::select! {
            d = subscription.recv() => d,
            _ = tx.closed() => return,
            _ = shutdown.changed() => {
                let _ = tx.try_send(Err(shutting_down()));
                return;
            }
        };
        let event = match delivery {
            None => {
                let _ = tx
                    .send(Err(Status::unavailable("the event source closed")))
                    .await;
                return;
            }
            Some(Delivery::Message(e)) if filter.matches(&e) => {
                event_message::Payload::Event(message::event(&e))
            }
            Some(Delivery::Message(_)) => continue,
            Some(Delivery::Gap(missed)) => event_message::Payload::Gap(proto::Gap {
                missed,
                reason: proto::GapReason::SlowConsumer.into(),
                after_seq: 0,
            }),
        };
        let msg = proto::EventMessage {
            payload: Some(event),
            node_name: node.clone(),
            time: now(),
        };
        if !send(&tx, msg, &mut shutdown).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio_stream::StreamExt;

    use super::*;
    use crate::api::source::MemoryAnomalies;

    fn seqs(msgs: &[proto::AnomalyMessage]) -> Vec<String> {
        msgs.iter()
            .map(|m| match m.payload.as_ref().unwrap() {
                anomaly_message::Payload::Anomaly(a) => a.seq.to_string(),
                anomaly_message::Payload::Gap(g) => format!("gap{}@{}", g.missed, g.after_seq),
                anomaly_message::Payload::Live(l) => format!("live{}", l.last_seq),
            })
            .collect()
    }

    async fn take(stream: &mut AnomalyStream, n: usize) -> Vec<proto::AnomalyMessage> {
        let mut out = Vec::new();
        while out.len() < n {
            let m = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
                .await
                .expect("a message within 5 s")
                .expect("stream open")
                .expect("not an error");
            out.push(m);
        }
        out
    }

    #[tokio::test]
    async fn replay_then_live_and_holes_in_the_log_are_gaps() {
        let src = Arc::new(MemoryAnomalies::new(64));
        for i in 0..5 {
            src.append(Anomaly::sample(&format!("/bin/p{i}")));
        }
        src.drop_through(2); // retention removed 1 and 2
        let (_stop, shutdown) = watch::channel(false);
        let mut s = anomalies(
            src.clone(),
            "n".into(),
            AnomalyFilter::default(),
            Some(0),
            shutdown,
        )
        .unwrap();
        src.append(Anomaly::sample("/bin/live"));
        let got = take(&mut s, 6).await;
        assert_eq!(seqs(&got), ["gap2@0", "3", "4", "5", "6", "live6"]);
        src.append(Anomaly::sample("/bin/later"));
        assert_eq!(seqs(&take(&mut s, 1).await), ["7"]);
        assert_eq!(got[0].node_name, "n");
    }

    #[tokio::test]
    async fn since_beyond_the_log_is_out_of_range_and_live_only_starts_at_the_head() {
        let src = Arc::new(MemoryAnomalies::new(64));
        src.append(Anomaly::sample("/bin/a"));
        let (stop, shutdown) = watch::channel(false);
        let e = anomalies(
            src.clone(),
            "n".into(),
            AnomalyFilter::default(),
            Some(5),
            shutdown.clone(),
        )
        .unwrap_err();
        assert_eq!(e.code(), tonic::Code::OutOfRange);
        let mut s = anomalies(
            src.clone(),
            "n".into(),
            AnomalyFilter::default(),
            None,
            shutdown,
        )
        .unwrap();
        assert_eq!(seqs(&take(&mut s, 1).await), ["live1"]);
        src.append(Anomaly::sample("/bin/b"));
        assert_eq!(seqs(&take(&mut s, 1).await), ["2"]);
        stop.send(true).unwrap();
        let end = tokio::time::timeout(std::time::Duration::from_secs(5), s.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap_err();
        assert_eq!(end.code(), tonic::Code::Unavailable);
    }
}
