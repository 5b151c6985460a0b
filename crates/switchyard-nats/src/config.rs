//! Bridge configuration: server, subjects, mode, credentials, TLS.
//!
//! Everything deserializes from TOML/JSON (durations as `"250ms"`, `"5s"`, `"2m"`, `"1h"`
//! or an integer number of milliseconds). Secrets are [`Secret`]s: their `Debug` and
//! `Display` print `[redacted]`, and they cannot be serialized.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A secret string (token, password, nkey seed). Never printed: `Debug` and `Display`
/// show `[redacted]`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret::new(s)
    }
}

/// Environment variable holding a token (overrides the configured auth).
pub const ENV_TOKEN: &str = "SWITCHYARD_NATS_TOKEN";
/// Environment variable holding a user name (with [`ENV_PASSWORD`]).
pub const ENV_USER: &str = "SWITCHYARD_NATS_USER";
/// Environment variable holding a password (overrides the configured auth).
pub const ENV_PASSWORD: &str = "SWITCHYARD_NATS_PASSWORD";
/// Environment variable holding an nkey seed (overrides the configured auth).
pub const ENV_NKEY: &str = "SWITCHYARD_NATS_NKEY";
/// Environment variable holding the path of a `.creds` file (overrides the configured auth).
pub const ENV_CREDS: &str = "SWITCHYARD_NATS_CREDS";

/// How the bridge authenticates.
///
/// In TOML: `auth = "none"`, `auth = { token = "..." }`,
/// `auth = { user_password = { user = "u", password = "p" } }`, `auth = { nkey = "SU..." }`,
/// `auth = { creds_file = "/etc/nats/app.creds" }`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Auth {
    /// No credentials.
    #[default]
    None,
    /// A token.
    Token(Secret),
    /// User and password.
    UserPassword {
        /// User name (not secret).
        user: String,
        /// Password.
        password: Secret,
    },
    /// An nkey seed (`SU...`).
    NKey(Secret),
    /// A `.creds` file (JWT plus nkey seed).
    CredsFile(PathBuf),
}

impl Auth {
    /// Credentials from the environment if any are set, otherwise `fallback` (the
    /// configured ones). Precedence: [`ENV_TOKEN`], [`ENV_NKEY`], [`ENV_CREDS`],
    /// [`ENV_PASSWORD`] (user from [`ENV_USER`], else the user of `fallback`).
    pub fn from_env_or(fallback: Auth) -> Auth {
        Auth::from_lookup_or(fallback, |k| std::env::var(k).ok())
    }

    /// As [`Auth::from_env_or`], reading variables through `lookup` (for tests, or a
    /// secrets store).
    pub fn from_lookup_or(fallback: Auth, lookup: impl Fn(&str) -> Option<String>) -> Auth {
        let get = |k: &str| lookup(k).filter(|v| !v.is_empty());
        if let Some(t) = get(ENV_TOKEN) {
            return Auth::Token(Secret::new(t));
        }
        if let Some(s) = get(ENV_NKEY) {
            return Auth::NKey(Secret::new(s));
        }
        if let Some(p) = get(ENV_CREDS) {
            return Auth::CredsFile(PathBuf::from(p));
        }
        if let Some(p) = get(ENV_PASSWORD) {
            let user = get(ENV_USER).or(match &fallback {
                Auth::UserPassword { user, .. } => Some(user.clone()),
                _ => None,
            });
            if let Some(user) = user {
                return Auth::UserPassword {
                    user,
                    password: Secret::new(p),
                };
            }
        }
        fallback
    }

    /// A short name of the method, safe to log.
    pub fn method(&self) -> &'static str {
        match self {
            Auth::None => "none",
            Auth::Token(_) => "token",
            Auth::UserPassword { .. } => "user_password",
            Auth::NKey(_) => "nkey",
            Auth::CredsFile(_) => "creds_file",
        }
    }
}

/// TLS options, passed through to `async_nats::ConnectOptions`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Refuse to connect without TLS.
    pub require_tls: bool,
    /// Start TLS before the server's INFO (servers configured with `handshake_first`).
    pub tls_first: bool,
    /// PEM file of root certificates to trust (in addition to the system roots).
    pub root_ca: Option<PathBuf>,
    /// PEM client certificate (mutual TLS); needs `client_key`.
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    pub client_key: Option<PathBuf>,
}

/// Where a JetStream stream keeps its messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Storage {
    /// On disk (survives a server restart).
    #[default]
    File,
    /// In memory.
    Memory,
}

/// JetStream mode settings.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JetStreamConfig {
    /// Stream name (created if missing, verified if present).
    pub stream: String,
    /// Subjects the stream captures; empty means `<prefix>.>`.
    pub subjects: Vec<String>,
    /// Durable consumer name (one per importing bridge instance role).
    pub durable: String,
    /// Most publishes awaiting their ack at once (default 1024).
    pub max_in_flight: usize,
    /// How long the server waits for the consumer's ack before redelivering.
    #[serde(deserialize_with = "de_duration")]
    pub ack_wait: Duration,
    /// Most deliveries of one message (`-1`: unlimited).
    pub max_deliver: i64,
    /// Server-side duplicate window for `Nats-Msg-Id`.
    #[serde(deserialize_with = "de_duration")]
    pub duplicate_window: Duration,
    /// How long the exporter waits for one publish ack before publishing again (same id).
    #[serde(deserialize_with = "de_duration")]
    pub publish_timeout: Duration,
    /// Stream storage.
    pub storage: Storage,
    /// Messages per pull request.
    pub pull_batch: usize,
    /// How long the importer holds messages behind a gap in their lane (a publish retried
    /// after a fault, stored behind later ones) waiting for it to fill, before it gives
    /// the gap up and lets them go on (default 2 s; `0s` turns resequencing off). Held
    /// messages are unacked: it must be shorter than `ack_wait`.
    #[serde(deserialize_with = "de_duration")]
    pub reorder_wait: Duration,
    /// Most messages the importer holds behind gaps at once; past it, the gap is given up
    /// at once (default 4096). The consumer's `max_ack_pending` is set above it.
    pub reorder_max_held: usize,
}

impl Default for JetStreamConfig {
    fn default() -> Self {
        JetStreamConfig {
            stream: "SWITCHYARD".into(),
            subjects: Vec::new(),
            durable: "switchyard".into(),
            max_in_flight: 1024,
            ack_wait: Duration::from_secs(30),
            max_deliver: -1,
            duplicate_window: Duration::from_secs(120),
            publish_timeout: Duration::from_secs(5),
            storage: Storage::File,
            pull_batch: 256,
            reorder_wait: Duration::from_secs(2),
            reorder_max_held: 4096,
        }
    }
}

/// Delivery mode.
///
/// In TOML: `mode = "core"` or `[mode.jetstream]` with [`JetStreamConfig`] fields.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Core NATS: fast, at-most-once.
    #[default]
    Core,
    /// JetStream: durable, at-least-once.
    ///
    /// Duplicates (publish retries, redeliveries) are removed by message id
    /// (`Nats-Msg-Id`): by the server within the stream's duplicate window, and by the
    /// importer within the ids it remembers (`dedup_capacity`, in memory). That is not
    /// exactly-once: a message redelivered to a freshly started importer (e.g. the
    /// previous one put it on its bus but its ack was lost) is imported again.
    ///
    /// Ordering: in publish order in normal operation. After a failed or timed-out
    /// publish ack the exporter sends the message again (at once when the connection
    /// comes back), and the retry can be stored after later messages that were already
    /// in flight. The importer puts each lane (origin, kind and export pattern) back in
    /// order: it holds what follows a gap until the gap fills, for at most
    /// `reorder_wait` (see [`BridgeStats`](crate::BridgeStats)'s `resequenced`,
    /// `gaps_skipped` and `late_after_gap`).
    #[serde(rename = "jetstream")]
    JetStream(JetStreamConfig),
}

/// Bridge configuration. Its `Debug` redacts secrets, including credentials in the URL.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BridgeConfig {
    /// Server URL(s), comma separated, e.g. `nats://127.0.0.1:4222`. Credentials in
    /// the URL (`nats://user:password@host`, `nats://token@host`, percent-encoded or raw)
    /// work but are better put in [`BridgeConfig::auth`]; they are never printed: the
    /// bridge strips them from every URL before handing the servers to the client and
    /// passes them as connect options. If [`BridgeConfig::auth`] is set (anything but
    /// `none`, including from the environment) it wins and URL credentials are ignored
    /// (with a warning). Servers carrying different URL credentials are refused.
    pub url: String,
    /// Subject prefix: local topic `a.b` travels on subject `<prefix>.a.b`. May be empty.
    pub subject_prefix: String,
    /// This node's name, e.g. `feed-1`. The wire origin is `<origin>@<boot id>`.
    pub origin: String,
    /// Core or JetStream.
    pub mode: Mode,
    /// Credentials.
    pub auth: Auth,
    /// TLS.
    pub tls: TlsConfig,
    /// Exported events buffered (serialized, not yet sent or not yet acked) before the
    /// export subscriptions' overflow policies apply.
    pub buffer: usize,
    /// Message ids remembered by the importer for duplicate removal.
    pub dedup_capacity: usize,
    /// Connection name shown by the server (`None`: `switchyard-<origin>`).
    pub connection_name: Option<String>,
    /// How long [`crate::Bridge::shutdown`] waits for in-flight work.
    #[serde(deserialize_with = "de_duration")]
    pub shutdown_timeout: Duration,
    /// Most delay between reconnect attempts (attempts back off from 10 ms up to this).
    #[serde(deserialize_with = "de_duration")]
    pub max_reconnect_delay: Duration,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            url: "nats://127.0.0.1:4222".into(),
            subject_prefix: "sy".into(),
            origin: "switchyard".into(),
            mode: Mode::Core,
            auth: Auth::None,
            tls: TlsConfig::default(),
            buffer: 8192,
            dedup_capacity: 200_000,
            connection_name: None,
            shutdown_timeout: Duration::from_secs(5),
            max_reconnect_delay: Duration::from_secs(2),
        }
    }
}

impl fmt::Debug for BridgeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BridgeConfig")
            .field("url", &self.redacted_url())
            .field("subject_prefix", &self.subject_prefix)
            .field("origin", &self.origin)
            .field("mode", &self.mode)
            .field("auth", &self.auth)
            .field("tls", &self.tls)
            .field("buffer", &self.buffer)
            .field("dedup_capacity", &self.dedup_capacity)
            .field("connection_name", &self.connection_name)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("max_reconnect_delay", &self.max_reconnect_delay)
            .finish()
    }
}

impl BridgeConfig {
    /// A core-mode config for `url` with the other settings at their defaults.
    pub fn core(url: impl Into<String>) -> Self {
        BridgeConfig {
            url: url.into(),
            ..Default::default()
        }
    }

    /// A JetStream-mode config for `url` with default stream settings.
    pub fn jetstream(url: impl Into<String>) -> Self {
        BridgeConfig {
            url: url.into(),
            mode: Mode::JetStream(JetStreamConfig::default()),
            ..Default::default()
        }
    }

    /// Replace the credentials with those in the environment, if any
    /// (see [`Auth::from_env_or`]).
    pub fn with_env_auth(mut self) -> Self {
        self.auth = Auth::from_env_or(std::mem::take(&mut self.auth));
        self
    }

    /// The subject for local topic (or pattern) `topic`.
    pub fn subject_for(&self, topic: &str) -> String {
        if self.subject_prefix.is_empty() {
            topic.to_owned()
        } else {
            format!("{}.{}", self.subject_prefix, topic)
        }
    }

    /// The URL with any `user:password@` removed: safe to log.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

/// `url` with any userinfo (`user:pass@`, `token@`) replaced by `[redacted]@`, for each
/// comma-separated server. Everything up to the last `@` after the scheme counts as
/// userinfo (a raw password may contain `/`, `?`, `#` or `@`).
pub fn redact_url(url: &str) -> String {
    url.split(',')
        .map(|u| {
            let u = u.trim();
            let (scheme, rest) = split_scheme(u);
            match rest.rfind('@') {
                Some(at) => format!("{scheme}[redacted]@{}", &rest[at + 1..]),
                None => u.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// (`"nats://"`, rest) or (`""`, url) without a scheme.
fn split_scheme(u: &str) -> (&str, &str) {
    match u.find("://") {
        Some(i) => (&u[..i + 3], &u[i + 3..]),
        None => ("", u),
    }
}

/// Credentials found in a server URL's userinfo (percent-decoded).
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum UrlCredentials {
    /// `nats://token@host`.
    Token(String),
    /// `nats://user:password@host`.
    UserPassword(String, String),
}

impl fmt::Debug for UrlCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlCredentials::Token(_) => f.write_str("Token([redacted])"),
            UrlCredentials::UserPassword(u, _) => write!(f, "UserPassword({u:?}, [redacted])"),
        }
    }
}

/// The comma-separated servers of `url` split into server addresses without userinfo
/// (safe to hand to the client, which logs them) and the credentials the entries carried
/// (in order, one per entry that had any). Empty entries are skipped.
pub(crate) fn split_url_credentials(url: &str) -> (Vec<String>, Vec<UrlCredentials>) {
    let mut servers = Vec::new();
    let mut creds = Vec::new();
    for u in url.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        let (scheme, rest) = split_scheme(u);
        match rest.rfind('@') {
            Some(at) => {
                let userinfo = &rest[..at];
                servers.push(format!("{scheme}{}", &rest[at + 1..]));
                if !userinfo.is_empty() {
                    creds.push(match userinfo.split_once(':') {
                        Some((user, pass)) => {
                            UrlCredentials::UserPassword(percent_decode(user), percent_decode(pass))
                        }
                        None => UrlCredentials::Token(percent_decode(userinfo)),
                    });
                }
            }
            None => servers.push(u.to_owned()),
        }
    }
    (servers, creds)
}

/// Every form in which a secret of `url`'s userinfo could be printed: raw userinfo, raw
/// and decoded passwords and tokens. Longest first (replace whole before parts).
pub(crate) fn url_secrets(url: &str) -> Vec<String> {
    let mut out = Vec::new();
    for u in url.split(',').map(str::trim) {
        let (_, rest) = split_scheme(u);
        let Some(at) = rest.rfind('@') else { continue };
        let userinfo = &rest[..at];
        out.push(userinfo.to_owned());
        let secret = userinfo.split_once(':').map_or(userinfo, |(_, p)| p);
        out.push(secret.to_owned());
        out.push(percent_decode(secret));
    }
    out.retain(|s| !s.is_empty());
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

/// Decode `%XX` escapes (invalid escapes are kept as they are).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Parse `"250ms"`, `"5s"`, `"2m"`, `"1h"`, or a bare number of milliseconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    Some(match unit.trim() {
        "" | "ms" => Duration::from_millis(n),
        "us" => Duration::from_micros(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return None,
    })
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Millis(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Millis(ms) => Ok(Duration::from_millis(ms)),
        Raw::Text(s) => parse_duration(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "invalid duration {s:?} (use e.g. \"250ms\", \"5s\", \"2m\")"
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secrets() {
        let c = BridgeConfig {
            url: "nats://alice:hunter2@localhost:4222".into(),
            auth: Auth::UserPassword {
                user: "alice".into(),
                password: Secret::new("hunter2"),
            },
            ..Default::default()
        };
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("[redacted]"));
        assert_eq!(c.redacted_url(), "nats://[redacted]@localhost:4222");
        let a = Auth::Token(Secret::new("s3cr3t"));
        assert!(!format!("{a:?}").contains("s3cr3t"));
    }

    #[test]
    fn env_lookup_overrides() {
        let fb = Auth::UserPassword {
            user: "u".into(),
            password: Secret::new("old"),
        };
        let a = Auth::from_lookup_or(fb.clone(), |k| {
            (k == ENV_PASSWORD).then(|| "new".to_string())
        });
        assert_eq!(
            a,
            Auth::UserPassword {
                user: "u".into(),
                password: Secret::new("new")
            }
        );
        let a = Auth::from_lookup_or(fb.clone(), |k| (k == ENV_TOKEN).then(|| "t".into()));
        assert_eq!(a, Auth::Token(Secret::new("t")));
        assert_eq!(Auth::from_lookup_or(fb.clone(), |_| None), fb);
    }

    #[test]
    fn redact_url_userinfo_with_slash_and_many_servers() {
        assert_eq!(
            redact_url("nats://u:pa/ss@h:4222"),
            "nats://[redacted]@h:4222"
        );
        assert_eq!(
            redact_url("nats://u:p@ss/w?d#x@h:4222"),
            "nats://[redacted]@h:4222"
        );
        assert_eq!(
            redact_url("nats://a:one@h1:4222, tok/en@h2:4223,nats://h3:4224"),
            "nats://[redacted]@h1:4222,[redacted]@h2:4223,nats://h3:4224"
        );
        assert_eq!(redact_url("nats://h:4222/x"), "nats://h:4222/x");
        let r = redact_url("nats://u:pa/ss@h:1,nats://v:qq/rr@h:2");
        assert!(!r.contains("ss") && !r.contains("rr"), "{r}");
    }

    #[test]
    fn url_credentials_split_off() {
        let (servers, creds) =
            split_url_credentials("nats://u:pa%2Fss@h:1, nats://u:pa/ss@h:2,tok@h:3,h:4,");
        assert_eq!(servers, ["nats://h:1", "nats://h:2", "h:3", "h:4"]);
        assert_eq!(
            creds,
            [
                UrlCredentials::UserPassword("u".into(), "pa/ss".into()),
                UrlCredentials::UserPassword("u".into(), "pa/ss".into()),
                UrlCredentials::Token("tok".into()),
            ]
        );
        assert!(!format!("{creds:?}").contains("pa/ss"));
        let secrets = url_secrets("nats://u:pa%2Fss@h:1,nats://t0k@h:2");
        for s in ["u:pa%2Fss", "pa%2Fss", "pa/ss", "t0k"] {
            assert!(secrets.iter().any(|x| x == s), "{s} in {secrets:?}");
        }
        assert_eq!(percent_decode("a%zz%4"), "a%zz%4");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("40"), Some(Duration::from_millis(40)));
        assert_eq!(parse_duration("5x"), None);
    }
}
