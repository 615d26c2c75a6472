//! The read loop the message readers share: messages become batches of the task's fields, each
//! tagged with the source's position and handed to the engine.
//!
//! A reader that receives messages one by one (a Kafka consumer, a RabbitMQ consumer) gives
//! [`pump`] a [`Feed`]; [`pump`] gathers up to `batch_rows` messages, or fewer once `linger`
//! passes since the first of them, decodes them ([`MessageDecoder::batch`]) and sends the batch with the
//! position after it, until the source is drained (a timing run), ends, or the run is
//! cancelled. A reader that pulls its messages a page at a time (Redis) uses
//! [`MessageDecoder::batch`] alone.

use std::future::Future;
use std::time::{Duration, Instant};

use fdi_connector::stream::send_batch;
use fdi_connector::{
    BatchSender, ConnectorError, RejectedRecord, Result, SourceBatch, SourcePosition,
};
use tokio_util::sync::CancellationToken;

use crate::{Message, MessageDecoder};

impl MessageDecoder {
    /// The rows of `messages` as one batch carrying `position`. A message that does not convert
    /// travels with it as a rejected record named `name(its index)`, with its payload: the engine
    /// keeps it as a dirty row, or fails the run at it (then it is not acknowledged and stays in
    /// the source).
    pub fn batch(
        &self,
        messages: &[Message],
        name: impl Fn(usize) -> String,
        position: Option<SourcePosition>,
    ) -> Result<SourceBatch> {
        let (rows, dirty) = self.decode(messages);
        let mut batch = SourceBatch::new(rows, position);
        batch.rejected = dirty
            .into_iter()
            .map(|d| {
                let payload = &messages[d.index].payload;
                RejectedRecord {
                    index: d.index,
                    reason: d.reason,
                    origin: name(d.index),
                    data: serde_json::from_slice(payload).unwrap_or_else(|_| {
                        serde_json::Value::String(String::from_utf8_lossy(payload).into_owned())
                    }),
                }
            })
            .collect();
        Ok(batch)
    }
}

/// A source that hands over its messages one at a time, as [`pump`] reads it.
pub trait Feed: Send {
    /// Where a message came from (Kafka: partition and offset; RabbitMQ: its delivery tag).
    type Origin: Send;

    /// The next message and its origin; None once the source has closed. [`pump`] gives up
    /// waiting after its linger (the future is dropped), so a message must not be taken from
    /// the source before the last await.
    fn next(&mut self) -> impl Future<Output = Result<Option<(Self::Origin, Message)>>> + Send;
    /// A timing (not following) run has read what the source held when it started.
    fn drained(&self) -> bool;
    /// How long a timing run waits without a message before it stops, having read `read`.
    fn patience(&self, read: u64) -> Duration;
    /// Whether waiting without a message now counts towards the patience (not while the
    /// source holds messages back for acknowledgements).
    fn counts_silence(&self) -> bool {
        true
    }
    /// How an error names the message from `origin` (`topic "t", partition 0, offset 7`).
    fn name(&self, origin: &Self::Origin) -> String;
    /// The source's position after the messages from `origins` (the batch about to be sent).
    fn position(&self, origins: &[Self::Origin]) -> Option<SourcePosition>;
}

/// How [`pump`] cuts batches.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// Messages per batch at the most.
    pub batch_rows: usize,
    /// How long a batch may gather messages (from its first one) before it is sent, full or not;
    /// also the unit of a timing run's patience with a silent source.
    pub linger: Duration,
    /// Follow the source until cancelled (a realtime run) rather than stop once it is drained.
    pub follow: bool,
}

/// Read `feed` into batches of `decoder`'s fields and send them to `out` (see the module).
/// Returns the messages read.
pub async fn pump<F: Feed>(
    feed: &mut F,
    decoder: &MessageDecoder,
    batching: Batching,
    out: &BatchSender,
    cancel: &CancellationToken,
) -> Result<u64> {
    let Batching {
        batch_rows,
        linger,
        follow,
    } = batching;
    let batch_rows = batch_rows.max(1);
    let mut messages: Vec<Message> = Vec::with_capacity(batch_rows);
    let mut origins: Vec<F::Origin> = Vec::with_capacity(batch_rows);
    let mut read = 0u64;
    let mut silent = Duration::ZERO;
    // When the first message of the batch in hand arrived: a batch goes once it is full or
    // `linger` old, so a steady stream waits at most `linger` in the reader (not until
    // `batch_rows` messages have come).
    let mut batch_started: Option<Instant> = None;
    loop {
        if !follow && feed.drained() {
            break;
        }
        let wait = batch_started.map_or(linger, |t| linger.saturating_sub(t.elapsed()));
        let next = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(ConnectorError::cancelled()),
            m = tokio::time::timeout(wait, feed.next()) => m,
        };
        match next {
            Ok(received) => {
                let Some((origin, m)) = received? else { break };
                silent = Duration::ZERO;
                let started = *batch_started.get_or_insert_with(Instant::now);
                origins.push(origin);
                messages.push(m);
                read += 1;
                if messages.len() < batch_rows
                    && started.elapsed() < linger
                    && (follow || !feed.drained())
                {
                    continue;
                }
            }
            // The batch in hand is `linger` old: it goes.
            Err(_) if !messages.is_empty() => {}
            // A silent `linger` with nothing in hand.
            Err(_) => {
                if feed.counts_silence() {
                    silent += linger;
                }
                if !follow && silent >= feed.patience(read) {
                    break;
                }
                continue;
            }
        }
        batch_started = None;
        let batch = decoder.batch(
            &messages,
            |i| feed.name(&origins[i]),
            feed.position(&origins),
        )?;
        messages.clear();
        origins.clear();
        send_batch(out, batch, cancel).await?;
    }
    if !messages.is_empty() {
        let batch = decoder.batch(
            &messages,
            |i| feed.name(&origins[i]),
            feed.position(&origins),
        )?;
        send_batch(out, batch, cancel).await?;
    }
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fdi_connector::ErrorKind;

    /// Numbered messages `{"id": n}` (`"x"` for a bad one), then silence.
    struct Numbers(std::collections::VecDeque<(u64, &'static str)>);

    impl Feed for Numbers {
        type Origin = u64;

        async fn next(&mut self) -> Result<Option<(u64, Message)>> {
            match self.0.pop_front() {
                Some((n, id)) => Ok(Some((
                    n,
                    Message {
                        payload: format!(r#"{{"id": {id}}}"#).into_bytes(),
                        properties: Vec::new(),
                    },
                ))),
                None => std::future::pending().await,
            }
        }
        fn drained(&self) -> bool {
            self.0.is_empty()
        }
        fn patience(&self, _read: u64) -> Duration {
            Duration::from_millis(50)
        }
        fn name(&self, n: &u64) -> String {
            format!("message {n}")
        }
        fn position(&self, origins: &[u64]) -> Option<SourcePosition> {
            origins.last().map(|n| SourcePosition((*n).into()))
        }
    }

    async fn run(ids: &[&'static str], follow: bool) -> (Result<u64>, Vec<SourceBatch>) {
        let decoder = MessageDecoder::new(vec![
            fdi_connector::MessageField::from_meta(
                0,
                &fdi_types::MetaField {
                    name: "id".into(),
                    field_type: Some("Long".into()),
                    path: Some(String::new()),
                    format: None,
                },
            )
            .unwrap(),
        ]);
        let mut feed = Numbers((1..).zip(ids.iter().copied()).collect());
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            stop.cancel();
        });
        let batching = Batching {
            batch_rows: 2,
            linger: Duration::from_millis(10),
            follow,
        };
        let r = pump(&mut feed, &decoder, batching, &tx, &cancel).await;
        drop(tx);
        let mut batches = Vec::new();
        while let Some(b) = rx.recv().await {
            batches.push(b);
        }
        (r, batches)
    }

    #[tokio::test]
    async fn batches_carry_the_position_after_their_last_message() {
        let (r, batches) = run(&["1", "2", "3", "4", "5"], false).await;
        assert_eq!(r.unwrap(), 5);
        let got: Vec<(usize, Option<SourcePosition>)> = batches
            .into_iter()
            .map(|b| (b.rows.num_rows(), b.position))
            .collect();
        let at = |n: u64| Some(SourcePosition(n.into()));
        assert_eq!(got, [(2, at(2)), (2, at(4)), (1, at(5))]);
    }

    #[tokio::test]
    async fn a_following_read_sends_partial_batches_and_ends_when_cancelled() {
        let (r, batches) = run(&["1", "2", "3"], true).await;
        assert_eq!(r.unwrap_err().kind, ErrorKind::Cancelled);
        let rows: Vec<usize> = batches.iter().map(|b| b.rows.num_rows()).collect();
        assert_eq!(rows, [2, 1], "the last one after the linger");
    }

    #[tokio::test]
    async fn a_message_that_does_not_convert_travels_as_a_rejected_record() {
        let (r, batches) = run(&["1", "2", "\"x\""], false).await;
        assert_eq!(r.unwrap(), 3);
        let rows: Vec<usize> = batches.iter().map(|b| b.rows.num_rows()).collect();
        assert_eq!(rows, [2, 0]);
        assert_eq!(
            batches[1].rejected,
            [RejectedRecord {
                index: 0,
                reason: "id: \"x\" is not an integer".into(),
                origin: "message 3".into(),
                data: serde_json::json!({"id": "x"}),
            }]
        );
        assert_eq!(batches[1].position, Some(SourcePosition(3.into())));
    }
}
