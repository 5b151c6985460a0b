//! Bridge errors. None of them carries a credential: URLs are redacted and credentials
//! are never formatted.

use switchyard::TopicError;
use switchyard::bus::SubscribeError;

/// Why the bridge could not start or do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// A setting is unusable.
    #[error("invalid bridge config: {field}: {reason}")]
    InvalidConfig {
        /// The setting.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An export or import pattern is not a valid topic pattern.
    #[error("invalid pattern {pattern:?}: {source}")]
    Pattern {
        /// The pattern given.
        pattern: String,
        /// Why it is invalid.
        source: TopicError,
    },
    /// The same kind was registered for two different types.
    #[error("kind {kind:?} is registered for two different event types")]
    KindConflict {
        /// The kind.
        kind: &'static str,
    },
    /// The credentials file could not be read.
    #[error("cannot read NATS credentials file {path}: {reason}")]
    Credentials {
        /// The file.
        path: String,
        /// Why (never the file's content).
        reason: String,
    },
    /// Connecting failed (unreachable, TLS, authentication...).
    #[error("cannot connect to NATS server {url}: {reason}")]
    Connect {
        /// The server URL, credentials removed.
        url: String,
        /// What the client reported (never a credential).
        reason: String,
        /// True if the server refused the credentials.
        auth_failed: bool,
    },
    /// Creating or reading the JetStream stream failed.
    #[error("JetStream stream {stream:?}: {reason}")]
    Stream {
        /// Stream name.
        stream: String,
        /// What failed.
        reason: String,
    },
    /// The stream exists with settings the bridge cannot work with.
    #[error("JetStream stream {stream:?} exists with an incompatible config: {reason}")]
    IncompatibleStream {
        /// Stream name.
        stream: String,
        /// The mismatch.
        reason: String,
    },
    /// Creating or reading the durable consumer failed.
    #[error("JetStream consumer {consumer:?} on stream {stream:?}: {reason}")]
    Consumer {
        /// Stream name.
        stream: String,
        /// Durable name.
        consumer: String,
        /// What failed.
        reason: String,
    },
    /// The durable consumer exists with settings the bridge cannot work with.
    #[error(
        "JetStream consumer {consumer:?} on stream {stream:?} exists with an incompatible config: {reason}"
    )]
    IncompatibleConsumer {
        /// Stream name.
        stream: String,
        /// Durable name.
        consumer: String,
        /// The mismatch.
        reason: String,
    },
    /// Subscribing to a NATS subject failed.
    #[error("cannot subscribe to NATS subject {subject:?}: {reason}")]
    Subscribe {
        /// The subject.
        subject: String,
        /// Why.
        reason: String,
    },
    /// Subscribing on the local bus failed.
    #[error("cannot subscribe to local pattern {pattern:?}: {source}")]
    Bus {
        /// The local pattern.
        pattern: String,
        /// Why.
        source: SubscribeError,
    },
    /// Waiting for the NATS server failed (flush).
    #[error("NATS server {url}: {reason}")]
    Server {
        /// The server URL, credentials removed.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The bridge is shut down.
    #[error("the bridge is shut down")]
    Closed,
}
