//! [`Replayer`]: publish a journal back onto a bus, driving a replay clock.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use switchyard::bus::TryPublishError;
use switchyard::{Bus, ManualClock, Timestamp, Topic};

use crate::codec::Record;
use crate::error::{JournalError, ReplayError};
use crate::reader::{JournalReader, ReadFilter};
use crate::segment::TornTail;

/// How fast to replay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// As fast as the bus takes the events.
    Max,
    /// Keep the original gaps between timestamps, divided by `speed` (2.0 = twice as
    /// fast). Uses `tokio::time`, so a test can pause and auto-advance time. A speed that
    /// is not a positive finite number means [`Pace::Max`].
    Original {
        /// Speed factor.
        speed: f64,
    },
}

/// What a replay did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReplayStats {
    /// Records that passed the filter.
    pub matched: u64,
    /// Records published onto the bus.
    pub published: u64,
    /// Records skipped because no decoder is registered for their kind.
    pub skipped: u64,
    /// The skipped records per kind.
    pub skipped_kinds: BTreeMap<String, u64>,
    /// Timestamp of the first record published.
    pub first_ts: Option<Timestamp>,
    /// Timestamp of the last record published.
    pub last_ts: Option<Timestamp>,
    /// The torn tail where reading stopped, if any.
    pub torn_tail: Option<TornTail>,
}

impl fmt::Display for ReplayStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "replayed {} of {} matching records",
            self.published, self.matched
        )?;
        if let (Some(a), Some(b)) = (self.first_ts, self.last_ts) {
            write!(f, " ({a} .. {b})")?;
        }
        if self.skipped > 0 {
            write!(f, "; skipped {} without decoder:", self.skipped)?;
            for (k, n) in &self.skipped_kinds {
                write!(f, " {k}={n}")?;
            }
        }
        if let Some(t) = &self.torn_tail {
            write!(f, "; stopped at {t}")?;
        }
        Ok(())
    }
}

type PublishFuture<'a> = Pin<Box<dyn Future<Output = Result<(), ReplayError>> + Send + 'a>>;

trait Decoder: Send + Sync {
    /// Decode and publish. `Ok(None)`: published without waiting; `Ok(Some(f))`: a queue
    /// was full, `f` waits for room.
    fn publish<'a>(
        &self,
        bus: &'a Bus,
        topic: Topic,
        record: &Record<'_>,
    ) -> Result<Option<PublishFuture<'a>>, ReplayError>;
}

struct Typed<T>(PhantomData<fn() -> T>);

impl<T: DeserializeOwned + Send + Sync + 'static> Decoder for Typed<T> {
    fn publish<'a>(
        &self,
        bus: &'a Bus,
        topic: Topic,
        record: &Record<'_>,
    ) -> Result<Option<PublishFuture<'a>>, ReplayError> {
        let index = record.index;
        let value: T =
            crate::codec::decode_payload(record.payload).map_err(|source| ReplayError::Decode {
                index,
                kind: record.kind.to_owned(),
                source,
            })?;
        match bus.try_publish(topic, value) {
            Ok(_) => Ok(None),
            Err(TryPublishError::Full { event, .. }) => Ok(Some(Box::pin(async move {
                bus.publish(topic, event)
                    .await
                    .map(|_| ())
                    .map_err(|_| ReplayError::BusClosed { index })
            }))),
            Err(TryPublishError::Closed(_)) => Err(ReplayError::BusClosed { index }),
        }
    }
}

/// What a [`Replayer`] reads: a directory (opened when the replay runs) or an open
/// reader.
#[derive(Clone, Debug)]
pub enum ReplaySource {
    /// The journal directory.
    Dir(PathBuf),
    /// An open reader.
    Reader(JournalReader),
}

impl From<JournalReader> for ReplaySource {
    fn from(r: JournalReader) -> Self {
        ReplaySource::Reader(r)
    }
}
impl From<PathBuf> for ReplaySource {
    fn from(p: PathBuf) -> Self {
        ReplaySource::Dir(p)
    }
}
impl From<&PathBuf> for ReplaySource {
    fn from(p: &PathBuf) -> Self {
        ReplaySource::Dir(p.clone())
    }
}
impl From<&Path> for ReplaySource {
    fn from(p: &Path) -> Self {
        ReplaySource::Dir(p.to_path_buf())
    }
}
impl From<&str> for ReplaySource {
    fn from(p: &str) -> Self {
        ReplaySource::Dir(PathBuf::from(p))
    }
}

/// Publishes the records of a journal onto a bus, in journal order, as the types
/// registered per kind, setting a [`ManualClock`] to each record's timestamp first, so
/// that components on a bus built with that clock see the same events at the same
/// logical times as when they were recorded. (The bus assigns its own sequence numbers.)
pub struct Replayer {
    source: ReplaySource,
    decoders: Vec<(String, Box<dyn Decoder>)>,
}

impl fmt::Debug for Replayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replayer")
            .field("source", &self.source)
            .field(
                "kinds",
                &self.decoders.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Replayer {
    /// A replayer of a journal directory (opened by [`Replayer::run`]) or of an open
    /// [`JournalReader`].
    pub fn new(source: impl Into<ReplaySource>) -> Self {
        Replayer {
            source: source.into(),
            decoders: Vec::new(),
        }
    }

    /// A replayer of the journal in `dir`, opened now (errors now rather than in `run`).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, JournalError> {
        Ok(Self::new(JournalReader::open(dir)?))
    }

    /// What it reads.
    pub fn source(&self) -> &ReplaySource {
        &self.source
    }

    /// Publish records of `kind` as `T`, decoded from MessagePack. Registering a kind again
    /// replaces its decoder.
    pub fn decoder<T: DeserializeOwned + Send + Sync + 'static>(mut self, kind: &str) -> Self {
        self.decoders.retain(|(k, _)| k != kind);
        self.decoders
            .push((kind.to_owned(), Box::new(Typed::<T>(PhantomData))));
        self
    }

    /// Replay the records passing `filter` onto `bus`. With `clock`, sets it to each
    /// record's timestamp before publishing it (build the bus with the same clock so the
    /// envelopes carry the original times). Returns once the last record is published;
    /// subscribers may still be handling it (use [`Bus::shutdown`] to wait for them).
    /// Reads the files with blocking I/O in large chunks.
    pub async fn run(
        &self,
        bus: &Bus,
        clock: Option<&ManualClock>,
        pace: Pace,
        filter: ReadFilter,
    ) -> Result<ReplayStats, ReplayError> {
        let speed = match pace {
            Pace::Original { speed } if speed.is_finite() && speed > 0.0 => Some(speed),
            _ => None,
        };
        let mut stats = ReplayStats::default();
        let mut topics: HashMap<String, Topic> = HashMap::new();
        let mut origin: Option<(tokio::time::Instant, Timestamp)> = None;
        let opened;
        let reader = match &self.source {
            ReplaySource::Reader(r) => r,
            ReplaySource::Dir(dir) => {
                opened = JournalReader::open(dir)?;
                &opened
            }
        };
        let mut cursor = reader.cursor(filter);
        while let Some(record) = cursor.next() {
            let record = record?;
            stats.matched += 1;
            let Some((_, decoder)) = self.decoders.iter().find(|(k, _)| k == record.kind) else {
                stats.skipped += 1;
                *stats
                    .skipped_kinds
                    .entry(record.kind.to_owned())
                    .or_default() += 1;
                continue;
            };
            let topic = match topics.get(record.topic) {
                Some(t) => *t,
                None => {
                    let t = Topic::new(record.topic).map_err(|source| ReplayError::Topic {
                        index: record.index,
                        source,
                    })?;
                    topics.insert(record.topic.to_owned(), t);
                    t
                }
            };
            if let Some(speed) = speed {
                match origin {
                    None => origin = Some((tokio::time::Instant::now(), record.ts)),
                    Some((t0, ts0)) => {
                        let gap = record.ts.saturating_duration_since(ts0);
                        let scaled = Duration::try_from_secs_f64(gap.as_secs_f64() / speed)
                            .unwrap_or(Duration::MAX);
                        if let Some(at) = t0.checked_add(scaled) {
                            tokio::time::sleep_until(at).await;
                        }
                    }
                }
            }
            if let Some(c) = clock {
                c.set(record.ts);
            }
            if stats.first_ts.is_none() {
                stats.first_ts = Some(record.ts);
            }
            stats.last_ts = Some(record.ts);
            if let Some(wait) = decoder.publish(bus, topic, &record)? {
                wait.await?;
            }
            stats.published += 1;
        }
        stats.torn_tail = cursor.torn_tail().cloned();
        Ok(stats)
    }
}
