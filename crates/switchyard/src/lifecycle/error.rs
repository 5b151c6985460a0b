//! Lifecycle errors: a component's own error, registration, start and run failures.

use std::error::Error;
use std::fmt;
use std::time::Duration;

/// An error returned by a component's `start`, `stop` or one of its supervised tasks.
///
/// Built from a message ([`ComponentError::msg`]), from any error
/// ([`ComponentError::new`], `From<Box<dyn Error + Send + Sync>>`: transparent, its
/// `Display` and `source()` are the wrapped error's), or from a message with a cause
/// ([`ComponentError::with_source`]). A *fatal* error ([`ComponentError::fatal`]) tells the
/// supervisor not to restart the task: its restart budget is considered spent at once.
pub struct ComponentError {
    repr: Repr,
    fatal: bool,
}

enum Repr {
    Msg(String),
    Wrapped(Box<dyn Error + Send + Sync + 'static>),
    Context {
        message: String,
        source: Box<dyn Error + Send + Sync + 'static>,
    },
}

impl ComponentError {
    /// An error from a message.
    pub fn msg(message: impl fmt::Display) -> Self {
        ComponentError {
            repr: Repr::Msg(message.to_string()),
            fatal: false,
        }
    }

    /// Wrap an error transparently (same `Display`, same `source()`).
    pub fn new(error: impl Error + Send + Sync + 'static) -> Self {
        ComponentError {
            repr: Repr::Wrapped(Box::new(error)),
            fatal: false,
        }
    }

    /// A message whose `source()` is `source`.
    pub fn with_source(
        message: impl fmt::Display,
        source: impl Into<Box<dyn Error + Send + Sync + 'static>>,
    ) -> Self {
        ComponentError {
            repr: Repr::Context {
                message: message.to_string(),
                source: source.into(),
            },
            fatal: false,
        }
    }

    /// A fatal error from a message: a supervised task ending with it is not restarted,
    /// its component escalates at once.
    pub fn fatal(message: impl fmt::Display) -> Self {
        Self::msg(message).into_fatal()
    }

    /// This error, marked fatal (not recoverable by restarting).
    pub fn into_fatal(mut self) -> Self {
        self.fatal = true;
        self
    }

    /// True if restarting cannot help (see [`ComponentError::fatal`]).
    pub fn is_fatal(&self) -> bool {
        self.fatal
    }

    /// The wrapped error, if built with [`ComponentError::new`] or from a boxed error
    /// (to downcast it).
    pub fn get_ref(&self) -> Option<&(dyn Error + Send + Sync + 'static)> {
        match &self.repr {
            Repr::Wrapped(e) => Some(&**e),
            _ => None,
        }
    }
}

impl fmt::Debug for ComponentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ComponentError");
        match &self.repr {
            Repr::Msg(m) => d.field("message", m),
            Repr::Wrapped(e) => d.field("error", e),
            Repr::Context { message, source } => {
                d.field("message", message).field("source", source)
            }
        };
        d.field("fatal", &self.fatal).finish()
    }
}

impl fmt::Display for ComponentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Msg(m) => f.write_str(m),
            Repr::Wrapped(e) => fmt::Display::fmt(e, f),
            Repr::Context { message, .. } => f.write_str(message),
        }
    }
}

impl Error for ComponentError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match &self.repr {
            Repr::Msg(_) => None,
            Repr::Wrapped(e) => e.source(),
            Repr::Context { source, .. } => Some(&**source),
        }
    }
}

impl From<Box<dyn Error + Send + Sync + 'static>> for ComponentError {
    fn from(error: Box<dyn Error + Send + Sync + 'static>) -> Self {
        ComponentError {
            repr: Repr::Wrapped(error),
            fatal: false,
        }
    }
}

impl From<String> for ComponentError {
    fn from(message: String) -> Self {
        Self::msg(message)
    }
}

impl From<&str> for ComponentError {
    fn from(message: &str) -> Self {
        Self::msg(message)
    }
}

impl From<std::io::Error> for ComponentError {
    fn from(error: std::io::Error) -> Self {
        Self::new(error)
    }
}

/// A registry that cannot be started as it is. Every variant names the components.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// Two components with the same name.
    #[error("component `{0}` is already registered")]
    Duplicate(String),
    /// A component name must not be empty.
    #[error("a component name must not be empty")]
    EmptyName,
    /// A dependency that no registered component provides.
    #[error("component `{component}` depends on `{dependency}`, which is not registered")]
    UnknownDependency {
        /// The component that declared it.
        component: String,
        /// The missing name.
        dependency: String,
    },
    /// Components that depend on each other in a circle; the path starts and ends with
    /// the same name.
    #[error("dependency cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    /// `register` after `start_all`.
    #[error("cannot register `{0}`: the registry has already been started")]
    AlreadyStarted(String),
}

/// Why [`Registry::start_all`](super::Registry::start_all) failed. When a component's
/// start failed, the components already started have been stopped (in reverse
/// dependency order) before this is returned.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The registry is not valid (unknown dependency, cycle); nothing was started.
    #[error("invalid registry: {0}")]
    Invalid(#[from] RegistryError),
    /// `start_all` was called before.
    #[error("the registry has already been started")]
    AlreadyStarted,
    /// A component's `start` returned an error.
    #[error("component `{component}` failed to start: {source}")]
    Failed {
        /// The component.
        component: String,
        /// Its error.
        #[source]
        source: ComponentError,
    },
    /// A component's `start` panicked.
    #[error("component `{component}` panicked while starting: {message}")]
    Panicked {
        /// The component.
        component: String,
        /// The panic message.
        message: String,
    },
    /// A component's `start` did not finish within the start deadline.
    #[error("component `{component}` did not start within {deadline:?}")]
    Timeout {
        /// The component.
        component: String,
        /// The deadline it missed.
        deadline: Duration,
    },
}

impl StartError {
    /// The component that failed, if one did.
    pub fn component(&self) -> Option<&str> {
        match self {
            StartError::Failed { component, .. }
            | StartError::Panicked { component, .. }
            | StartError::Timeout { component, .. } => Some(component),
            StartError::Invalid(_) | StartError::AlreadyStarted => None,
        }
    }
}

/// Why [`Runtime::run`](super::Runtime::run) returned without a shutdown report.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Starting failed (the started components were rolled back and the bus shut down).
    #[error(transparent)]
    Start(#[from] StartError),
}

impl RunError {
    /// The process exit code for this error: 70 (`EX_SOFTWARE`).
    pub fn exit_code(&self) -> i32 {
        70
    }
}
