//! Connecting to the server: options, credentials, TLS, connection events.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::{Client, ConnectOptions};

use super::stats::{Counters, inc, now_ms};
use crate::config::{self, Auth, BridgeConfig, Mode};
use crate::error::BridgeError;

pub(super) async fn connect(
    cfg: &BridgeConfig,
    no_exports: &bool,
    counters: Arc<Counters>,
) -> Result<Client, BridgeError> {
    let _ = no_exports;
    let url = cfg.redacted_url();
    let max_delay = cfg.max_reconnect_delay;
    let ev_counters = Arc::clone(&counters);
    let ev_url = url.clone();
    let mut opts = ConnectOptions::new()
        .name(
            cfg.connection_name
                .clone()
                .unwrap_or_else(|| format!("switchyard-{}", cfg.origin)),
        )
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(5))
        .reconnect_delay_callback(move |attempts| {
            let ms = 10u64.saturating_mul(1 << attempts.min(16));
            Duration::from_millis(ms).min(max_delay)
        })
        .event_callback(move |event| {
            let c = Arc::clone(&ev_counters);
            let url = ev_url.clone();
            async move {
                match event {
                    async_nats::Event::Connected => {
                        c.connected_since_ms.store(now_ms(), Ordering::SeqCst);
                        if !c.connected.swap(true, Ordering::SeqCst)
                            && c.ever_connected.swap(true, Ordering::SeqCst)
                        {
                            inc(&c.reconnects);
                            c.link.restored();
                            tracing::info!(url = %url, "NATS connection restored");
                        }
                    }
                    async_nats::Event::Disconnected | async_nats::Event::Closed
                        if c.closing.load(Ordering::SeqCst) =>
                    {
                        c.connected.store(false, Ordering::SeqCst);
                        tracing::debug!(url = %url, "NATS connection closed by shutdown");
                    }
                    async_nats::Event::Disconnected | async_nats::Event::Closed => {
                        if c.connected.swap(false, Ordering::SeqCst) {
                            inc(&c.disconnects);
                            c.link.down();
                            tracing::warn!(url = %url, "NATS connection lost; reconnecting");
                        }
                    }
                    other => tracing::warn!(url = %url, event = %other, "NATS client event"),
                }
            }
        });
    if matches!(cfg.mode, Mode::Core) {
        // The server does not send our own publishes back to our own subscriptions.
        opts = opts.no_echo();
    }
    // Credentials never travel inside the server addresses: the client logs those
    // (`server = ?addr` at debug level on every (re)connect) with their userinfo.
    let (servers, url_creds) = config::split_url_credentials(&cfg.url);
    if servers.is_empty() {
        return Err(BridgeError::InvalidConfig {
            field: "url",
            reason: "no server".into(),
        });
    }
    if url_creds.windows(2).any(|w| w[0] != w[1]) {
        return Err(BridgeError::InvalidConfig {
            field: "url",
            reason: "the servers carry different credentials; put them in `auth`".into(),
        });
    }
    let url_creds = url_creds.into_iter().next();
    if url_creds.is_some() && !matches!(cfg.auth, Auth::None) {
        tracing::warn!(
            url = %url,
            auth = cfg.auth.method(),
            "credentials in the NATS URL ignored: the configured auth wins"
        );
    }
    opts = match &cfg.auth {
        Auth::None => match url_creds {
            None => opts,
            Some(config::UrlCredentials::Token(t)) => opts.token(t),
            Some(config::UrlCredentials::UserPassword(u, p)) => opts.user_and_password(u, p),
        },
        Auth::Token(t) => opts.token(t.expose().to_owned()),
        Auth::UserPassword { user, password } => {
            opts.user_and_password(user.clone(), password.expose().to_owned())
        }
        Auth::NKey(seed) => opts.nkey(seed.expose().to_owned()),
        Auth::CredsFile(path) => {
            opts.credentials_file(path)
                .await
                .map_err(|e| BridgeError::Credentials {
                    path: path.display().to_string(),
                    reason: format!("{:?}", e.kind()),
                })?
        }
    };
    let tls = &cfg.tls;
    if tls.require_tls {
        opts = opts.require_tls(true);
    }
    if tls.tls_first {
        opts = opts.tls_first();
    }
    if let Some(ca) = &tls.root_ca {
        opts = opts.add_root_certificates(ca.clone());
    }
    match (&tls.client_cert, &tls.client_key) {
        (Some(c), Some(k)) => opts = opts.add_client_certificate(c.clone(), k.clone()),
        (None, None) => {}
        _ => {
            return Err(BridgeError::InvalidConfig {
                field: "tls",
                reason: "client_cert and client_key go together".into(),
            });
        }
    }
    opts.connect(servers).await.map_err(|e| {
        let auth_failed = matches!(
            e.kind(),
            async_nats::ConnectErrorKind::AuthorizationViolation
        );
        let mut reason = e.to_string();
        // Whatever the client put in its message, never echo a credential.
        let mut all = secrets(&cfg.auth);
        all.extend(config::url_secrets(&cfg.url));
        all.sort_by_key(|s| std::cmp::Reverse(s.len()));
        for secret in all {
            if !secret.is_empty() {
                reason = reason.replace(&secret, "[redacted]");
            }
        }
        BridgeError::Connect {
            url,
            reason,
            auth_failed,
        }
    })
}

pub(super) fn secrets(auth: &Auth) -> Vec<String> {
    match auth {
        Auth::Token(t) | Auth::NKey(t) => vec![t.expose().to_owned()],
        Auth::UserPassword { password, .. } => vec![password.expose().to_owned()],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn secrets_out_of_urls() {
        let s = config::url_secrets("nats://u:pw@h:1,nats://tok@h:2,nats://x:pa/ss@h:3");
        for want in ["pw", "tok", "pa/ss"] {
            assert!(s.iter().any(|x| x == want), "{want} in {s:?}");
        }
        assert!(config::url_secrets("nats://h:1").is_empty());
    }
}
