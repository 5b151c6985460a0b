//! The node's parts as [`Component`](switchyard::lifecycle::Component)s.
//!
//! | component | kind | what it does at start / at stop |
//! |---|---|---|
//! | `ops-api` | observer | serves the operations API / stops last, so `/status` stays readable through the shutdown |
//! | `status-lines` | observer | prints a status line per interval |
//! | `journal` | service | opens the run's journal and records the bus / closes it (final fsync) after the drain |
//! | `trading-engine` | service | subscribes the engine (strategies → guards → breakers → venues) / unsubscribes |
//! | `remote-feed` | service | counts market events arriving from NATS; the feed's end-of-feed marker completes the run |
//! | `nats-bridge` | service | starts the bridge (imports begin) / *intake*: stops importing; in the feed role flushes the exports, then publishes the end-of-feed marker / after the drain: waits for the exports' acks |
//! | `feed` | producer | runs the feed on a cooperative task / cancels it and collects its summary |
//! | `journal-replay` | producer | replays a journal's market data (on the replay clock) |
//! | `parity-capture` | service | captures the decisions of a replay for the parity check |

pub mod bridge;
pub mod capture;
pub mod engine;
pub mod feed;
pub mod journal;
pub mod ops;
pub mod remote_feed;
pub mod status;

/// Unsubscribes every subscription a component holds (at its stop).
pub(crate) fn unsubscribe_all(subs: &std::sync::Mutex<Vec<switchyard::bus::Subscription>>) {
    for s in subs.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
        s.unsubscribe();
    }
}
