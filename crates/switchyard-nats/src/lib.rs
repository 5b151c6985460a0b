//! NATS / JetStream bridge for the Switchyard bus.
//!
//! A [`Bridge`] forwards local bus events whose topic matches chosen patterns to NATS
//! (subject = `<prefix>.<topic>`), and imports NATS subjects into the local bus (topic =
//! subject without the prefix).
//!
//! ```no_run
//! # use switchyard::Bus;
//! # use switchyard_nats::{Bridge, BridgeConfig};
//! # #[derive(serde::Serialize, serde::Deserialize)] struct MarketEvent;
//! # #[derive(serde::Serialize, serde::Deserialize)] struct OrderRequest;
//! # async fn f() -> Result<(), switchyard_nats::BridgeError> {
//! let bus = Bus::new();
//! let bridge = Bridge::builder(bus.clone(), BridgeConfig::jetstream("nats://127.0.0.1:4222"))
//!     .export::<MarketEvent>("market_data.>", "market_event")
//!     .import::<OrderRequest>("orders.request.>", "order_request")
//!     .start()
//!     .await?;
//! // ...
//! bridge.flush().await?;
//! bridge.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Modes
//!
//! - **Core** ([`Mode::Core`]): plain NATS publish/subscribe. At-most-once: events
//!   published while the connection is down wait in the client's buffer and then in the
//!   bridge buffer; what a subscriber misses while away is gone.
//! - **JetStream** ([`Mode::JetStream`]): the stream is created at start-up, or verified if
//!   it exists (its subjects must capture the exported subjects, `no_ack` off, not
//!   sealed, duplicate window at least the configured one; otherwise
//!   [`BridgeError::IncompatibleStream`]). Publishes are pipelined, at most
//!   `max_in_flight` awaiting their ack; a failed or timed-out ack makes the exporter
//!   publish the same message again, with the same `Nats-Msg-Id`, until it is acked (the
//!   server drops the copy it already has within its duplicate window). An importing
//!   bridge owns one durable **pull** consumer (explicit ack). nats-server 2.9 allows one
//!   filter subject per consumer: with one import pattern the consumer filters on
//!   `<prefix>.<pattern>`; with several it reads the whole stream and the bridge filters
//!   locally (skipped messages are acked). A message is acked only after the local bus
//!   accepted the event (`bus.publish(..)` returned `Ok`); a message the bridge could not
//!   hand over (bus closed, bridge stopping), and the rest of its pulled batch, is NAKed
//!   so the server redelivers it at once, in order, to the next consumer. The importer
//!   remembers the last `dedup_capacity` message ids and drops repeats
//!   ([`BridgeStats::duplicates_dropped`]), so redeliveries and publish retries reach the
//!   local bus once *within one importer's memory*; a redelivery to a freshly started
//!   importer (e.g. after an ack was lost) can repeat an event: at-least-once, not
//!   exactly-once. Order is kept in normal operation; after a failed or timed-out
//!   publish ack the retried message can be stored after later ones, and the importer
//!   resequences each lane (origin, kind, export pattern) by `Switchyard-Lane-Seq`,
//!   holding what follows a gap, unacked, for at most `reorder_wait`
//!   ([`BridgeStats::resequenced`], [`BridgeStats::gaps_skipped`]). While disconnected
//!   the exporter sends nothing, and on reconnecting it sends every publish not yet acked
//!   again at once, in order. Publishes that keep failing while connected (stream deleted, stream
//!   limits) are retried forever and make [`Bridge::health`] `Degraded` after 5 s; a
//!   message larger than the server's `max_payload` can never be stored and is dropped
//!   with an error log ([`BridgeStats::publish_rejected`]).
//!
//! # Loops
//!
//! An event the bridge imported is never exported again: the importer records the bus
//! sequence number of every imported event that an export subscription will see (under a
//! lock held across the bus's synchronous `try_publish`, so the exporter cannot see the
//! event first), and the exporter skips those ([`BridgeStats::echo_suppressed`]). The
//! importer also skips messages carrying its own origin (its own exports coming back
//! through a stream), and in core mode the connection is made with `no_echo`.
//!
//! # Faults
//!
//! The client reconnects by itself, forever, with a back-off of 10 ms doubling up to
//! `max_reconnect_delay`. The *first* connection is not retried: `start` fails with
//! [`BridgeError::Connect`] so that a mistyped URL or bad credentials stop the process
//! at once. While disconnected, [`Bridge::health`] is `Degraded`; exported events wait
//! in a buffer of `buffer` events (plus `max_in_flight` awaiting acks), then in each
//! export subscription's queue, whose overflow policy decides once that is full
//! (default `Block`: local publishers wait; drops are counted in
//! [`BridgeStats::dropped_overflow`]).
//!
//! # Credentials
//!
//! Token, user/password, nkey seed or `.creds` file, from the config or the
//! environment ([`Auth::from_env_or`], [`BridgeConfig::with_env_auth`]). They are
//! [`Secret`]s: `Debug` of the config prints `[redacted]`, errors and logs name the server
//! URL with any `user:password@` removed. Credentials in the URL are stripped from every
//! server address before the client sees it (the client logs addresses) and passed as
//! connect options; a configured `auth` wins over them. TLS options ([`TlsConfig`]) are passed through
//! to `async_nats::ConnectOptions`.
//!
//! ## Wire format
//!
//! Every bridged event is one NATS message; any NATS client in any language can read and
//! write it.
//!
//! | part | value |
//! |---|---|
//! | subject | `<prefix>.<topic>`, e.g. `sy.market_data.trade.BTCUSDT` (local topic `market_data.trade.BTCUSDT`, prefix `sy`; with an empty prefix the subject is the topic) |
//! | payload | the event as JSON (`serde_json` of the Rust type: structs are objects, enums are `snake_case` and internally tagged with `"type"` where the type says so, fixed-point numbers are decimal strings, timestamps are integer ns since the Unix epoch) |
//! | `Nats-Msg-Id` | `<origin>:<seq>`, e.g. `feed-1@3f9a0c1d2e4b5a69:42`: unique per event; JetStream drops repeats within the stream's duplicate window and importers drop repeats they remember |
//! | `Switchyard-Kind` | the event type tag, e.g. `market_event`, `order_request`, `exec_event`, `order_rejected`; the importer decodes by it, and skips (acks) kinds it does not know |
//! | `Switchyard-Origin` | `<node>@<boot id>`: the configured origin (node name) and a 16-hex-digit id drawn at each start, so sequence numbers of different runs never collide |
//! | `Switchyard-Seq` | the event's sequence number on the publishing bus (decimal) |
//! | `Switchyard-Ts` | the event's publish time on the publishing bus, ns since the Unix epoch (decimal) |
//! | `Switchyard-Lane` | (JetStream) the exporting subscription's subject pattern: with origin and kind, the lane |
//! | `Switchyard-Lane-Seq` | (JetStream) the message's number in its lane, 1, 2, 3, … without gaps (the JetStream importer resequences by it) |
//! | `Content-Type` | `application/json` |
//!
//! Messages published by other programs need the `Switchyard-Kind` header (and should
//! set `Nats-Msg-Id` for de-duplication); the other headers are informative. A
//! `Switchyard-Origin` equal to the importing bridge's own origin is skipped.
//!
//! Example (as printed by `nats sub 'sy.>'`):
//!
//! ```text
//! [#1] Received on "sy.market_data.trade.BTCUSDT"
//! Nats-Msg-Id: feed-1@3f9a0c1d2e4b5a69:42
//! Switchyard-Kind: market_event
//! Switchyard-Origin: feed-1@3f9a0c1d2e4b5a69
//! Switchyard-Seq: 42
//! Switchyard-Ts: 1718000000123456789
//! Switchyard-Lane: sy.market_data.>
//! Switchyard-Lane-Seq: 40
//! Content-Type: application/json
//!
//! {"type":"trade","instrument":{"venue":"BINANCE","symbol":"BTCUSDT"},"ts_event":1718000000120000000,"ts_recv":1718000000121000000,"price":"64123.5","size":"0.01","aggressor":"buy","trade_id":"1"}
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod bridge;
mod component;
pub mod config;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod wire;

#[cfg(feature = "testing")]
pub mod bench;
#[cfg(feature = "testing")]
pub mod testing;

pub use bridge::{Bridge, BridgeBuilder, BridgeStats, ShutdownReport};
pub use component::BridgeComponent;
pub use config::{Auth, BridgeConfig, JetStreamConfig, Mode, Secret, Storage, TlsConfig};
pub use error::BridgeError;
pub use switchyard::lifecycle::Health;
