//! OS signals for binaries.
//!
//! Only a binary handles OS signals (a library that installed handlers would take them
//! away from its host). These helpers live here so every Switchyard binary and example
//! handles them the same way, but the library itself never calls them. The usual wiring:
//!
//! ```no_run
//! # use switchyard::lifecycle::{Registry, Runtime, RuntimeConfig, signals};
//! # async fn demo(registry: Registry, bus: switchyard::Bus) {
//! let runtime = Runtime::new(registry, bus, RuntimeConfig::default());
//! let signal = async {
//!     let first = signals::wait_for_signal().await;
//!     signals::spawn_force_exit_on_second_signal();
//!     first
//! };
//! let report = runtime.run(signal).await.expect("started");
//! println!("{report}");
//! std::process::exit(report.exit_code());
//! # }
//! ```

use super::runtime::{ShutdownTrigger, Signal};

/// Resolves with the first SIGINT or SIGTERM (Ctrl-C only on non-Unix systems). The
/// handlers are installed on the first poll. If they cannot be installed, logs an error
/// and never resolves.
pub async fn wait_for_signal() -> ShutdownTrigger {
    let signal = next_signal().await;
    tracing::warn!(%signal, "signal received");
    ShutdownTrigger::Signal { signal }
}

/// Install handlers now (on the calling runtime) and spawn a task that, at the next
/// SIGINT or SIGTERM, prints a line to stderr and exits the process with 130 or 143 at
/// once. Call it after the first signal, so that a second one during a slow shutdown
/// forces the exit. Must be called from within a tokio runtime.
pub fn spawn_force_exit_on_second_signal() {
    let next = listen();
    tokio::spawn(async move {
        let signal = next.await;
        eprintln!(
            "second signal ({signal}) during shutdown: forcing exit with code {}",
            signal.exit_code()
        );
        std::process::exit(signal.exit_code());
    });
}

async fn next_signal() -> Signal {
    listen().await
}

/// Registers the handlers before returning the future, so that no signal arriving after
/// this call is missed.
#[cfg(unix)]
fn listen() -> impl std::future::Future<Output = Signal> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let int = signal(SignalKind::interrupt());
    let term = signal(SignalKind::terminate());
    async move {
        match (int, term) {
            (Ok(mut int), Ok(mut term)) => tokio::select! {
                _ = int.recv() => Signal::Interrupt,
                _ = term.recv() => Signal::Terminate,
            },
            (Ok(mut int), Err(e)) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                int.recv().await;
                Signal::Interrupt
            }
            (Err(e), Ok(mut term)) => {
                tracing::error!(error = %e, "cannot listen for SIGINT");
                term.recv().await;
                Signal::Terminate
            }
            (Err(e), Err(_)) => {
                tracing::error!(error = %e, "cannot listen for signals");
                std::future::pending().await
            }
        }
    }
}

#[cfg(not(unix))]
fn listen() -> impl std::future::Future<Output = Signal> + Send + 'static {
    async {
        match tokio::signal::ctrl_c().await {
            Ok(()) => Signal::Interrupt,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for Ctrl-C");
                std::future::pending().await
            }
        }
    }
}
