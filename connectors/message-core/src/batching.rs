//! The read loop the message readers share: messages become batches of the task's fields, each
//! tagged with the source's position and handed to the engine.
//!
//! A reader that receives messages one by one (a Kafka consumer, a RabbitMQ consumer) gives
//! [`pump`] a [`Feed`]; [`pump`] gathers up to `batch_rows` messages, or fewer once `linger`
//! passes without one, decodes them ([`MessageDecoder::batch`]) and sends the batch with the
//! position after it, until the source is drained (a timing run), ends, or the run is
//! cancelled. A reader that pulls its messages a page at a time (Redis) uses
//! [`MessageDecoder::batch`] alone.

use std::future::Future;
use std::time::Duration;

use fdi_connector::stream::send_batch;
use fdi_connector::{BatchSender, ConnectorError, Result, SourceBatch, SourcePosition};
use tokio_util::sync::CancellationToken;

use crate::{Message, MessageDecoder};

impl MessageDecoder {
    /// The rows of `messages` as one batch carrying `position`. The first message that does not
    /// convert fails it, a user error `{name}: {reason}` with `name(its index)` saying which
    /// message it was (it is not acknowledged, so it stays in the source).
    pub fn batch(
        &self,
        messages: &[Message],
        name: impl Fn(usize) -> String,
        position: Option<SourcePosition>,
    ) -> Result<SourceBatch> {
        let (rows, dirty) = self.decode(messages);
        if let Some(d) = dirty.first() {
            return Err(ConnectorError::user(format!(
                "{}: {}",
                name(d.index),
                d.reason
            )));
        }
        Ok(SourceBatch { rows, position })
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
    /// How long a partial batch waits for more messages before it is sent.
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
    loop {
        if !follow && feed.drained() {
            break;
        }
        let next = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(ConnectorError::cancelled()),
            m = tokio::time::timeout(linger, feed.next()) => m,
        };
        match next {
            Ok(received) => {
                let Some((origin, m)) = received? else { break };
                silent = Duration::ZERO;
                origins.push(origin);
                messages.push(m);
                read += 1;
                if messages.len() < batch_rows && (follow || !feed.drained()) {
                    continue;
                }
            }
            Err(_) => {
                if feed.counts_silence() {
                    silent += linger;
                }
                if !follow && silent >= feed.patience(read) {
                    break;
                }
                if messages.is_empty() {
                    continue;
                }
            }
        }
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
    async fn a_message_that_does_not_convert_fails_the_read_naming_it() {
        let (r, batches) = run(&["1", "2", "\"x\""], false).await;
        let e = r.unwrap_err();
        assert_eq!(e.kind, ErrorKind::User);
        assert_eq!(e.message, "message 3: id: \"x\" is not an integer");
        assert_eq!(batches.len(), 1);
    }
}
