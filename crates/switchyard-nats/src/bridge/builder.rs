//! [`BridgeBuilder`]: what to export and import, then start.

use std::any::TypeId;
use std::collections::{HashMap, HashSet};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self};
use bytes::BytesMut;
use serde::Serialize;
use serde::de::DeserializeOwned;
use switchyard::bus::{DEFAULT_CAPACITY, Overflow};
use switchyard::{Bus, Pattern, Subscription};
use tokio::sync::{mpsc, watch};

use super::{Bridge, Inner};
use super::{
    connect::connect,
    dedup::Dedup,
    export::{ExportHandler, ExportShared, Outgoing, run_core_exporter, run_js_exporter},
    import::{ImportEntry, Importer, Reorder, run_core_importer, run_js_importer},
    loop_guard::LoopGuard,
    sink::JsonSink,
    stats::{Counters, now_ms},
    stream_setup::{ensure_consumer, ensure_stream},
};
use crate::config::{BridgeConfig, Mode};
use crate::error::BridgeError;

pub(super) type SubscribeFn = Box<
    dyn FnOnce(&Bus, mpsc::Sender<Outgoing>, Arc<ExportShared>) -> Result<Subscription, BridgeError>
        + Send
        + Sync,
>;

pub(super) struct ExportSpec {
    pub(super) pattern: Pattern,
    pub(super) type_id: TypeId,
    pub(super) subscribe: SubscribeFn,
}

/// Builds a [`Bridge`]: choose what to export and import, then [`BridgeBuilder::start`].
pub struct BridgeBuilder {
    pub(super) bus: Bus,
    pub(super) config: BridgeConfig,
    pub(super) exports: Vec<ExportSpec>,
    pub(super) imports: Vec<ImportEntry>,
    pub(super) kinds: HashMap<&'static str, TypeId>,
    pub(super) error: Option<BridgeError>,
}

impl std::fmt::Debug for BridgeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeBuilder")
            .field("config", &self.config)
            .field(
                "exports",
                &self
                    .exports
                    .iter()
                    .map(|e| e.pattern.as_str())
                    .collect::<Vec<_>>(),
            )
            .field(
                "imports",
                &self
                    .imports
                    .iter()
                    .map(|e| (e.pattern.as_str(), e.kind))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl BridgeBuilder {
    pub(super) fn pattern(&mut self, pattern: &str) -> Option<Pattern> {
        match Pattern::new(pattern) {
            Ok(p) => Some(p),
            Err(source) => {
                self.error.get_or_insert(BridgeError::Pattern {
                    pattern: pattern.to_owned(),
                    source,
                });
                None
            }
        }
    }

    pub(super) fn kind<T: 'static>(&mut self, kind: &'static str) {
        let id = TypeId::of::<T>();
        if *self.kinds.entry(kind).or_insert(id) != id {
            self.error.get_or_insert(BridgeError::KindConflict { kind });
        }
    }

    /// Export local events of type `T` whose topic matches `local_pattern`, tagged
    /// `kind` (the `Switchyard-Kind` header). The export subscription has the default
    /// capacity and [`Overflow::Block`] (lossless: local publishers wait when the bridge
    /// buffer and the queue are full).
    pub fn export<T: Serialize + Send + Sync + 'static>(
        self,
        local_pattern: &str,
        kind: &'static str,
    ) -> Self {
        self.export_with::<T>(local_pattern, kind, DEFAULT_CAPACITY, Overflow::Block)
    }

    /// As [`BridgeBuilder::export`], with the export subscription's queue capacity and
    /// overflow policy: what happens once the bridge buffer (`BridgeConfig::buffer`) is
    /// full, e.g. while the server is away. Drops are counted in
    /// [`BridgeStats::dropped_overflow`].
    pub fn export_with<T: Serialize + Send + Sync + 'static>(
        mut self,
        local_pattern: &str,
        kind: &'static str,
        capacity: usize,
        overflow: Overflow<T>,
    ) -> Self {
        let Some(pattern) = self.pattern(local_pattern) else {
            return self;
        };
        self.kind::<T>(kind);
        let name = format!("nats-export:{local_pattern}:{kind}");
        let pat = local_pattern.to_owned();
        self.exports.push(ExportSpec {
            pattern,
            type_id: TypeId::of::<T>(),
            subscribe: Box::new(move |bus, tx, shared| {
                bus.subscription::<T>(&pat)
                    .map_err(|source| BridgeError::Pattern {
                        pattern: pat.clone(),
                        source,
                    })?
                    .name(name)
                    .capacity(capacity)
                    .overflow(overflow)
                    .subscribe(ExportHandler {
                        kind,
                        tx,
                        lane: Arc::from(if shared.prefix.is_empty() {
                            pat.clone()
                        } else {
                            format!("{}.{pat}", shared.prefix)
                        }),
                        lane_seq: 0,
                        shared,
                        subjects: HashMap::new(),
                        buf: BytesMut::new(),
                    })
                    .map_err(|source| BridgeError::Bus {
                        pattern: pat.clone(),
                        source,
                    })
            }),
        });
        self
    }

    /// Import messages on subject `<prefix>.<local_pattern>` whose `Switchyard-Kind` is
    /// `kind`, decoded as `T`, into the local bus on topic = subject without the prefix.
    /// Messages of other kinds are counted ([`BridgeStats::unknown_kind`]) and skipped
    /// (acked in JetStream mode).
    pub fn import<T: DeserializeOwned + Send + Sync + 'static>(
        mut self,
        local_pattern: &str,
        kind: &'static str,
    ) -> Self {
        let Some(pattern) = self.pattern(local_pattern) else {
            return self;
        };
        self.kind::<T>(kind);
        self.imports.push(ImportEntry {
            pattern,
            kind,
            sink: Box::new(JsonSink::<T>(PhantomData)),
        });
        self
    }

    /// Wrap the builder in a [`switchyard::lifecycle::Component`] named `name` that
    /// starts the bridge in `start` and shuts it down in `stop`.
    pub fn into_component(self, name: impl Into<String>) -> crate::BridgeComponent {
        crate::component::BridgeComponent::new(name.into(), self)
    }

    /// Connect, create or verify the JetStream stream and consumer, subscribe, and start
    /// the exporter and importer tasks.
    pub async fn start(mut self) -> Result<Bridge, BridgeError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let cfg = self.config.clone();
        validate(&cfg)?;
        let url = cfg.redacted_url();
        let counters = Arc::new(Counters::default());
        let origin = format!("{}@{}", cfg.origin, boot_id());

        let client = connect(&cfg, &self.exports.is_empty(), Arc::clone(&counters)).await?;
        counters.connected.store(true, Ordering::SeqCst);
        counters.ever_connected.store(true, Ordering::SeqCst);
        counters
            .connected_since_ms
            .store(now_ms(), Ordering::SeqCst);

        let js = match &cfg.mode {
            Mode::Core => None,
            Mode::JetStream(jsc) => Some(
                jetstream::ContextBuilder::new()
                    .timeout(jsc.publish_timeout)
                    .max_ack_inflight(jsc.max_in_flight.max(1) + 16)
                    .backpressure_on_inflight(true)
                    .build(client.clone()),
            ),
        };

        // JetStream: stream and consumer before anything moves.
        let mut consumer = None;
        if let (Some(js), Mode::JetStream(jsc)) = (&js, &cfg.mode) {
            let stream_subjects = ensure_stream(js, &cfg, jsc, &self.exports).await?;
            if !self.imports.is_empty() {
                consumer =
                    Some(ensure_consumer(js, &cfg, jsc, &self.imports, &stream_subjects).await?);
            }
        }

        let guard = Arc::new(LoopGuard::new(1 << 16));
        let import_types: HashSet<TypeId> = self.imports.iter().map(|e| e.sink.type_id()).collect();
        let export_shared = Arc::new(ExportShared {
            prefix: cfg.subject_prefix.clone(),
            origin: origin.clone(),
            guard: Arc::clone(&guard),
            guard_enabled: self
                .exports
                .iter()
                .any(|e| import_types.contains(&e.type_id)),
            counters: Arc::clone(&counters),
            lanes: matches!(cfg.mode, Mode::JetStream(_)),
        });
        let (stop_tx, stop_rx) = watch::channel(false);

        // Importer first, so the bridge never misses what arrives once start returns.
        let mut import_tasks = Vec::new();
        if !self.imports.is_empty() {
            let subjects: Vec<String> = self
                .imports
                .iter()
                .map(|e| cfg.subject_for(e.pattern.as_str()))
                .collect();
            let importer = Arc::new(Importer {
                bus: self.bus.clone(),
                prefix: cfg.subject_prefix.clone(),
                own_origin: origin.clone(),
                entries: std::mem::take(&mut self.imports),
                exports: self
                    .exports
                    .iter()
                    .map(|e| (e.pattern.clone(), e.type_id))
                    .collect(),
                guard: Arc::clone(&guard),
                dedup: Mutex::new(Dedup::new(cfg.dedup_capacity)),
                counters: Arc::clone(&counters),
                stop: stop_rx.clone(),
            });
            match (consumer, &cfg.mode) {
                (Some(c), Mode::JetStream(jsc)) => {
                    let reorder = (!jsc.reorder_wait.is_zero()).then(|| Reorder {
                        wait: jsc.reorder_wait,
                        max_held: jsc.reorder_max_held,
                        filter: c.cached_info().config.filter_subject.clone(),
                    });
                    import_tasks.push(tokio::spawn(run_js_importer(
                        importer,
                        c,
                        jsc.pull_batch,
                        reorder,
                    )));
                }
                _ => {
                    let mut unique: Vec<String> = Vec::new();
                    for s in subjects {
                        if !unique.contains(&s) {
                            unique.push(s);
                        }
                    }
                    for subject in unique {
                        let sub = client.subscribe(subject.clone()).await.map_err(|e| {
                            BridgeError::Subscribe {
                                subject: subject.clone(),
                                reason: e.to_string(),
                            }
                        })?;
                        import_tasks
                            .push(tokio::spawn(run_core_importer(Arc::clone(&importer), sub)));
                    }
                    // The server has the subscriptions once it answered a ping.
                    client.flush().await.map_err(|e| BridgeError::Server {
                        url: url.clone(),
                        reason: format!("flush after subscribing: {e}"),
                    })?;
                }
            }
        }

        let (tx, rx) = mpsc::channel::<Outgoing>(cfg.buffer.max(1));
        let exporter = match (&js, &cfg.mode) {
            (Some(js), Mode::JetStream(jsc)) => tokio::spawn(run_js_exporter(
                js.clone(),
                rx,
                Arc::clone(&counters),
                jsc.max_in_flight,
                Arc::from(origin.as_str()),
            )),
            _ => tokio::spawn(run_core_exporter(
                client.clone(),
                rx,
                Arc::clone(&counters),
                Arc::from(origin.as_str()),
            )),
        };
        let mut export_subs = Vec::new();
        for spec in self.exports {
            match (spec.subscribe)(&self.bus, tx.clone(), Arc::clone(&export_shared)) {
                Ok(s) => export_subs.push(s),
                Err(e) => {
                    for s in &export_subs {
                        s.unsubscribe();
                    }
                    let _ = stop_tx.send(true);
                    return Err(e);
                }
            }
        }
        drop(tx);
        tracing::info!(
            url = %url,
            origin = %origin,
            mode = match cfg.mode { Mode::Core => "core", Mode::JetStream(_) => "jetstream" },
            auth = cfg.auth.method(),
            exports = export_subs.len(),
            "NATS bridge started"
        );

        Ok(Bridge {
            inner: Arc::new(Inner {
                config: cfg,
                url,
                origin,
                client,
                counters,
                export_subs,
                exporter: Mutex::new(Some(exporter)),
                importers: Mutex::new(import_tasks),
                stop: stop_tx,
                closed: AtomicBool::new(false),
            }),
        })
    }
}

pub(super) fn validate(cfg: &BridgeConfig) -> Result<(), BridgeError> {
    let bad = |field, reason: &str| {
        Err(BridgeError::InvalidConfig {
            field,
            reason: reason.to_owned(),
        })
    };
    if cfg.url.trim().is_empty() {
        return bad("url", "empty");
    }
    if cfg.origin.is_empty() || cfg.origin.contains(|c: char| c.is_whitespace() || c == ':') {
        return bad("origin", "must be non-empty, without whitespace or ':'");
    }
    if !cfg.subject_prefix.is_empty()
        && Pattern::new(&cfg.subject_prefix)
            .map(|p| !p.is_exact())
            .unwrap_or(true)
    {
        return bad(
            "subject_prefix",
            "must be a valid subject without wildcards",
        );
    }
    if let Mode::JetStream(j) = &cfg.mode {
        if j.stream.is_empty() || j.stream.contains(['.', '*', '>', ' ']) {
            return bad(
                "mode.jetstream.stream",
                "must be a non-empty name without '.', '*', '>' or spaces",
            );
        }
        if j.durable.is_empty() || j.durable.contains(['.', '*', '>', ' ']) {
            return bad(
                "mode.jetstream.durable",
                "must be a non-empty name without '.', '*', '>' or spaces",
            );
        }
        if !j.reorder_wait.is_zero() && j.reorder_wait >= j.ack_wait {
            return bad(
                "mode.jetstream.reorder_wait",
                "must be shorter than ack_wait (held messages are unacked)",
            );
        }
        if j.reorder_max_held == 0 {
            return bad("mode.jetstream.reorder_max_held", "must be at least 1");
        }
        if cfg.subject_prefix.is_empty() && j.subjects.is_empty() {
            return bad(
                "mode.jetstream.subjects",
                "needed when subject_prefix is empty",
            );
        }
    }
    Ok(())
}

pub(super) fn boot_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut x =
        nanos ^ (u64::from(std::process::id()) << 32) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // splitmix64 finaliser: spread the bits.
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    format!("{x:016x}")
}
