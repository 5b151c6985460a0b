//! Bus errors. Each hands back what could not be delivered.

use crate::topic::TopicError;

/// `publish` failed: the bus is shut down. The event is handed back.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PublishError<T> {
    /// The bus no longer accepts events (shutdown started).
    #[error("the bus is shut down and accepts no new events")]
    Closed(T),
}

impl<T> PublishError<T> {
    /// The event that was not published.
    pub fn into_inner(self) -> T {
        match self {
            PublishError::Closed(t) => t,
        }
    }
}

/// `try_publish` failed. The event is handed back.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TryPublishError<T> {
    /// A subscription with [`super::Overflow::Block`] is full; nobody received the event.
    #[error("subscription {subscription:?} is full (overflow policy Block)")]
    Full {
        /// The event.
        event: T,
        /// The full subscription.
        subscription: String,
    },
    /// The bus no longer accepts events (shutdown started).
    #[error("the bus is shut down and accepts no new events")]
    Closed(T),
}

impl<T> TryPublishError<T> {
    /// The event that was not published.
    pub fn into_inner(self) -> T {
        match self {
            TryPublishError::Full { event, .. } | TryPublishError::Closed(event) => event,
        }
    }
}

/// `subscribe` failed.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// The pattern is not valid.
    #[error("invalid subscription pattern: {0}")]
    Pattern(#[from] TopicError),
    /// Capacity or batch size of zero.
    #[error("subscription {name:?}: {what} must be at least 1")]
    ZeroSize {
        /// Subscription name.
        name: String,
        /// Which setting.
        what: &'static str,
    },
    /// The bus is shut down.
    #[error("the bus is shut down")]
    Closed,
    /// Not called inside a tokio runtime (the worker task needs one).
    #[error("subscribe must be called inside a tokio runtime")]
    NoRuntime,
    /// The OS refused the thread of a spinning subscription.
    #[error("subscription {name:?}: cannot start its spinning thread: {reason}")]
    Thread {
        /// Subscription name.
        name: String,
        /// The OS's error.
        reason: String,
    },
}

/// The error a handler returns: any error, boxed. Like `anyhow::Error` it converts from
/// every `std::error::Error` with `?`, so it deliberately does not implement `Error`.
pub struct HandlerError(Box<dyn std::error::Error + Send + Sync + 'static>);

impl HandlerError {
    /// An error from a message.
    pub fn msg(m: impl std::fmt::Display) -> Self {
        HandlerError(m.to_string().into())
    }

    /// The underlying error.
    pub fn into_inner(self) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self.0
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for HandlerError {
    fn from(e: E) -> Self {
        HandlerError(Box::new(e))
    }
}

impl std::fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0, f)
    }
}

impl std::fmt::Display for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)?;
        let mut src = self.0.source();
        while let Some(s) = src {
            write!(f, ": {s}")?;
            src = s.source();
        }
        Ok(())
    }
}

/// What a handler returns.
pub type HandlerResult = Result<(), HandlerError>;
