//! The event catalog: which trading event types travel on which topics under which wire
//! kind. One table drives the journal's recorder, the replay's parity capture and the
//! NATS bridge's exports and imports.

use switchyard::Pattern;
use switchyard::bus::{SubscribeError, Subscription};
use switchyard_journal::Recorder;
use switchyard_trading::exchange::ExecEvent;
use switchyard_trading::model::{MarketEvent, OrderRejected, OrderRequest};
use switchyard_trading::wire::{self, FeedEnd};

/// The decision kinds (outputs of the engine) compared by replay parity, with their
/// topic spaces.
pub const DECISIONS: [(&str, &str); 3] = [
    (wire::ORDER_REQUESTS, wire::ORDER_REQUEST),
    (wire::ORDER_REJECTIONS, wire::ORDER_REJECTED),
    (wire::EXEC_EVENTS, wire::EXEC_EVENT),
];

/// Records, on `pattern`, every catalogued type whose topic space it reaches.
pub fn record(
    recorder: &Recorder,
    text: &str,
    pattern: &Pattern,
) -> Result<Vec<Subscription>, SubscribeError> {
    let reaches = |space: &str| pattern.overlaps(&Pattern::new(space).expect("valid pattern"));
    let mut subs = Vec::new();
    if reaches(wire::MARKET_DATA) {
        subs.push(recorder.record::<MarketEvent>(text, wire::MARKET_EVENT)?);
    }
    if reaches(wire::ORDER_REQUESTS) {
        subs.push(recorder.record::<OrderRequest>(text, wire::ORDER_REQUEST)?);
    }
    if reaches(wire::ORDER_REJECTIONS) {
        subs.push(recorder.record::<OrderRejected>(text, wire::ORDER_REJECTED)?);
    }
    if reaches(wire::EXEC_EVENTS) {
        subs.push(recorder.record::<ExecEvent>(text, wire::EXEC_EVENT)?);
    }
    if reaches(wire::FEED_END_TOPIC) {
        subs.push(recorder.record::<FeedEnd>(text, wire::FEED_END)?);
    }
    Ok(subs)
}

/// The bridge's exports of the engine's decisions.
pub fn export_decisions(b: switchyard_nats::BridgeBuilder) -> switchyard_nats::BridgeBuilder {
    b.export::<OrderRequest>(wire::ORDER_REQUESTS, wire::ORDER_REQUEST)
        .export::<OrderRejected>(wire::ORDER_REJECTIONS, wire::ORDER_REJECTED)
        .export::<ExecEvent>(wire::EXEC_EVENTS, wire::EXEC_EVENT)
}
