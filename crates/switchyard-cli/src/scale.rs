//! Multi-process runs: the NATS bridge of `switchyard run --role feed|strategy`.
//!
//! - `feed`: the feed publishes market data on the local bus; the bridge exports
//!   `market_data.>` and, when the data ends, a [`FeedEnd`] with the count published.
//! - `strategy`: the bridge imports `market_data.>` and `feed.end` into the local bus,
//!   where the trading engine runs; it exports what the engine decides (`orders.>`), so
//!   that a risk or monitoring process elsewhere can follow. It stops when the feed's
//!   [`FeedEnd`] arrives: the feed publishes it only after NATS has acknowledged every
//!   market event, so it comes after them in the stream.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;
use switchyard::Bus;
use switchyard::bus::{Overflow, Subscription, sync_handler};
use switchyard_nats::{Auth, Bridge, BridgeConfig, JetStreamConfig, Mode, Secret, TlsConfig};
use switchyard_trading::exchange::ExecEvent;
use switchyard_trading::feed::FeedStats;
use switchyard_trading::model::{MarketEvent, OrderRejected, OrderRequest};
use switchyard_trading::wire::{self, FeedEnd};
use tokio::sync::watch;

use crate::config::{Config, Role};

/// The bridge settings of the configuration for `role`; credentials come from the
/// environment only.
pub fn bridge_config(cfg: &Config, role: Role) -> BridgeConfig {
    let n = &cfg.nats;
    let role_name = match role {
        Role::All => "all",
        Role::Feed => "feed",
        Role::Strategy => "strategy",
    };
    let origin = if n.origin.is_empty() {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "switchyard".into())
    } else {
        n.origin.clone()
    };
    let mode = match n.mode.as_str() {
        "core" => Mode::Core,
        _ => Mode::JetStream(JetStreamConfig {
            stream: n.stream.clone(),
            // One consumer per node and role: two processes sharing a durable would split
            // the stream between them.
            durable: if n.durable.is_empty() {
                let node: String = origin
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                format!("switchyard-{node}-{role_name}")
            } else {
                n.durable.clone()
            },
            max_in_flight: n.max_in_flight.max(1),
            ..JetStreamConfig::default()
        }),
    };
    let configured = if !n.creds_file.is_empty() {
        Auth::CredsFile(n.creds_file.clone().into())
    } else if !n.user.is_empty() {
        // The password is filled in from the environment by `from_env_or`.
        Auth::UserPassword {
            user: n.user.clone(),
            password: Secret::new(""),
        }
    } else {
        Auth::None
    };
    let opt = |s: &str| (!s.is_empty()).then(|| s.into());
    BridgeConfig {
        url: n.url.clone(),
        subject_prefix: n.prefix.clone(),
        origin: format!("{origin}-{role_name}"),
        mode,
        auth: Auth::from_env_or(configured),
        tls: TlsConfig {
            require_tls: n.tls_required,
            root_ca: opt(&n.tls_ca_file),
            client_cert: opt(&n.tls_cert_file),
            client_key: opt(&n.tls_key_file),
            ..TlsConfig::default()
        },
        ..BridgeConfig::default()
    }
}

/// Start the bridge a role needs (none for `all`).
pub async fn start(cfg: &Config, role: Role, bus: &Bus) -> anyhow::Result<Option<Bridge>> {
    let config = bridge_config(cfg, role);
    let url = config.redacted_url();
    let b = Bridge::builder(bus.clone(), config);
    let b = match role {
        Role::All => return Ok(None),
        Role::Feed => b
            .export::<MarketEvent>(wire::MARKET_DATA, wire::MARKET_EVENT)
            .export::<FeedEnd>(wire::FEED_END_TOPIC, wire::FEED_END),
        Role::Strategy => b
            .import::<MarketEvent>(wire::MARKET_DATA, wire::MARKET_EVENT)
            .import::<FeedEnd>(wire::FEED_END_TOPIC, wire::FEED_END)
            .export::<OrderRequest>(wire::ORDER_REQUESTS, wire::ORDER_REQUEST)
            .export::<OrderRejected>(wire::ORDER_REJECTIONS, wire::ORDER_REJECTED)
            .export::<ExecEvent>(wire::EXEC_EVENTS, wire::EXEC_EVENT),
    };
    let bridge = b
        .start()
        .await
        .with_context(|| format!("NATS bridge to {url}"))?;
    tracing::info!(%url, ?role, "NATS bridge started");
    Ok(Some(bridge))
}

/// Counts market events arriving from NATS and waits for the feed's end.
pub struct RemoteFeed {
    stats: Arc<FeedStats>,
    end: watch::Receiver<Option<FeedEnd>>,
    _subs: [Subscription; 2],
}

impl RemoteFeed {
    /// Subscribe the counters on `bus` (before the bridge starts importing).
    pub fn new(bus: &Bus, stats: Arc<FeedStats>) -> anyhow::Result<RemoteFeed> {
        let r = Arc::clone(&stats);
        let count = bus
            .subscription::<MarketEvent>(wire::MARKET_DATA)?
            .name("remote-feed-counter")
            .capacity(65_536)
            .overflow(Overflow::Block)
            .subscribe(sync_handler(
                move |_: &switchyard::Envelope<MarketEvent>| {
                    r.published.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                },
            ))?;
        let (tx, end) = watch::channel(None);
        let ended = bus
            .subscription::<FeedEnd>(wire::FEED_END_TOPIC)?
            .name("remote-feed-end")
            .subscribe(sync_handler(move |ev: &switchyard::Envelope<FeedEnd>| {
                tx.send_replace(Some(ev.payload().clone()));
                Ok(())
            }))?;
        Ok(RemoteFeed {
            stats,
            end,
            _subs: [count, ended],
        })
    }

    /// Market events received so far.
    pub fn received(&self) -> u64 {
        self.stats.published.load(Ordering::Relaxed)
    }

    /// Wait for the feed's end-of-feed marker. The feed publishes it only once NATS has
    /// stored every market event before it, and the bridge imports in stream order, so
    /// when it arrives every market event of that feed run is in the local bus (or was,
    /// in an earlier run of this process that acknowledged it: a restarted strategy
    /// resumes where its durable consumer left off).
    pub async fn finished(&mut self) -> FeedEnd {
        let end = self
            .end
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|e| e.clone());
        match end {
            Some(end) => end,
            // The bus closed before the end arrived: a signal or --duration ends the run.
            None => std::future::pending().await,
        }
    }
}
