//! How trading events are named when they leave the process: the type tags (`kind`) that
//! the journal and the NATS bridge write next to each payload, and the topics they travel
//! on. A reader in another process or language dispatches on the tag.
//!
//! | kind | type | topics |
//! |---|---|---|
//! | `market_event` | [`MarketEvent`](crate::model::MarketEvent) | `market_data.{trade,quote}.<symbol>` |
//! | `order_request` | [`OrderRequest`](crate::model::OrderRequest) | `orders.request.<strategy>` |
//! | `order_rejected` | [`OrderRejected`](crate::model::OrderRejected) | `orders.rejected.<strategy>` |
//! | `exec_event` | [`ExecEvent`](crate::exchange::ExecEvent) | `orders.event.<strategy>` |
//! | `feed_end` | [`FeedEnd`] | `feed.end` |

use serde::{Deserialize, Serialize};

/// Tag of [`MarketEvent`](crate::model::MarketEvent).
pub const MARKET_EVENT: &str = "market_event";
/// Tag of [`OrderRequest`](crate::model::OrderRequest).
pub const ORDER_REQUEST: &str = "order_request";
/// Tag of [`OrderRejected`](crate::model::OrderRejected).
pub const ORDER_REJECTED: &str = "order_rejected";
/// Tag of [`ExecEvent`](crate::exchange::ExecEvent).
pub const EXEC_EVENT: &str = "exec_event";
/// Tag of [`FeedEnd`].
pub const FEED_END: &str = "feed_end";

/// Pattern of every market data topic.
pub const MARKET_DATA: &str = "market_data.>";
/// Pattern of order requests.
pub const ORDER_REQUESTS: &str = "orders.request.>";
/// Pattern of risk/breaker/kill-switch rejections.
pub const ORDER_REJECTIONS: &str = "orders.rejected.>";
/// Pattern of execution events (accepted, fills, venue rejections, cancels).
pub const EXEC_EVENTS: &str = "orders.event.>";
/// The topic of [`FeedEnd`].
pub const FEED_END_TOPIC: &str = "feed.end";

/// Published by a feed when its data has ended, so that a process consuming the feed
/// from elsewhere knows how many events to expect before it stops.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedEnd {
    /// The feed's name or node.
    pub origin: String,
    /// Market data events it published.
    pub published: u64,
}
