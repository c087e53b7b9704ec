//! The response body: generated chunk by chunk as the connection takes it, paced for a slow
//! source, cut or corrupted on purpose, and counted.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hyper::body::{Body, Bytes, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::body::SourceBody;

/// The most a response hands the connection at once; the only buffer a response holds.
pub const CHUNK: u64 = 64 * 1024;

/// The chunk a slow source sends at a time: a tenth of a second's worth, so pacing is smooth
/// without a wake-up per byte. A client may get one chunk ahead of the cap, no more: `n` bytes
/// take at least `(n - slow_chunk(rate)) / rate` seconds.
pub fn slow_chunk(bytes_per_second: u64) -> u64 {
    (bytes_per_second / 10).clamp(1, CHUNK)
}

/// What a generated response sends.
pub struct Generated {
    /// The body the bytes come from.
    pub body: SourceBody,
    /// The next body offset to send.
    pub at: u64,
    /// The body offset to stop before.
    pub end: u64,
    /// A body offset at which the connection is cut instead of sending more.
    pub cut_at: Option<u64>,
    /// The body offset from which bytes are inverted.
    pub wrong_from: Option<u64>,
    /// The pace, if slow.
    pub bytes_per_second: Option<u64>,
    /// Counters to add every chunk to (the path's and the server's).
    pub counters: [Arc<AtomicU64>; 2],
}

/// A response body: fixed bytes or a generated range of a [`SourceBody`].
pub struct SourceStream {
    kind: Kind,
}

enum Kind {
    Done,
    Once(Bytes),
    Generated(Box<Pacer>),
}

/// A generated response with its clock.
struct Pacer {
    what: Generated,
    started: Instant,
    sent: u64,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl SourceStream {
    /// No body (HEAD).
    pub fn empty() -> Self {
        Self { kind: Kind::Done }
    }

    /// These bytes.
    pub fn once(bytes: Bytes) -> Self {
        Self {
            kind: Kind::Once(bytes),
        }
    }

    /// Bytes generated as the connection takes them.
    pub fn generated(what: Generated) -> Self {
        Self {
            kind: Kind::Generated(Box::new(Pacer {
                what,
                started: Instant::now(),
                sent: 0,
                sleep: None,
            })),
        }
    }
}

impl Body for SourceStream {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = &mut *self;
        match &mut this.kind {
            Kind::Done => Poll::Ready(None),
            Kind::Once(_) => match std::mem::replace(&mut this.kind, Kind::Done) {
                Kind::Once(bytes) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
                _ => Poll::Ready(None),
            },
            Kind::Generated(pacer) => {
                let next = ready!(pacer.poll_chunk(cx));
                if next.is_none() {
                    this.kind = Kind::Done;
                }
                Poll::Ready(next)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.kind, Kind::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Done => SizeHint::with_exact(0),
            Kind::Once(bytes) => SizeHint::with_exact(bytes.len() as u64),
            // The headers carry the length, which may lie on purpose: no hint to contradict them.
            Kind::Generated(_) => SizeHint::default(),
        }
    }
}

impl Pacer {
    fn poll_chunk(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let what = &self.what;
        if what.cut_at == Some(what.at) {
            let cut = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "cut on purpose");
            return Poll::Ready(Some(Err(cut)));
        }
        if what.at >= what.end {
            return Poll::Ready(None);
        }
        let mut chunk = CHUNK;
        if let Some(rate) = what.bytes_per_second {
            chunk = slow_chunk(rate);
            // Chunk k leaves no earlier than the cap allows for the bytes before it.
            let due = self.started + Duration::from_secs_f64(self.sent as f64 / rate as f64);
            if Instant::now() < due {
                let sleep = self
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
                sleep.as_mut().reset(due);
                ready!(sleep.as_mut().poll(cx));
            }
        }
        let what = &mut self.what;
        let stop = what.cut_at.unwrap_or(what.end).min(what.end);
        let len = (stop - what.at).min(chunk);
        let mut buf = vec![0; len as usize];
        what.body.fill(what.at, &mut buf);
        if let Some(from) = what.wrong_from {
            let skip = from.saturating_sub(what.at).min(len) as usize;
            for byte in &mut buf[skip..] {
                *byte ^= 0xFF;
            }
        }
        what.at += len;
        self.sent += len;
        for counter in &what.counters {
            counter.fetch_add(len, Ordering::Relaxed);
        }
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(buf)))))
    }
}
