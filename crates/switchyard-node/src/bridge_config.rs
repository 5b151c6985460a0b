//! The NATS bridge settings of a node's role: origin and durable names, credentials from
//! the environment, and which events the role exports and imports.

use switchyard::Bus;
use switchyard_nats::{
    Auth, Bridge, BridgeBuilder, BridgeConfig, JetStreamConfig, Mode, Secret, TlsConfig,
};
use switchyard_trading::model::MarketEvent;
use switchyard_trading::wire::{self, FeedEnd};

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
            reorder_wait: std::time::Duration::from_millis(n.reorder_ms),
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

/// The bridge a role needs (none for `all`): its builder and its redacted URL.
pub fn bridge_for(cfg: &Config, role: Role, bus: &Bus) -> Option<(BridgeBuilder, String)> {
    let config = bridge_config(cfg, role);
    let url = config.redacted_url();
    let b = Bridge::builder(bus.clone(), config);
    let b = match role {
        Role::All => return None,
        Role::Feed => b
            .export::<MarketEvent>(wire::MARKET_DATA, wire::MARKET_EVENT)
            .export::<FeedEnd>(wire::FEED_END_TOPIC, wire::FEED_END),
        Role::Strategy => crate::catalog::export_decisions(
            b.import::<MarketEvent>(wire::MARKET_DATA, wire::MARKET_EVENT)
                .import::<FeedEnd>(wire::FEED_END_TOPIC, wire::FEED_END),
        ),
    };
    Some((b, url))
}
