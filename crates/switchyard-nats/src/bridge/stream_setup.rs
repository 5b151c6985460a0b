//! JetStream stream and consumer: created, or checked against what the bridge needs.

use async_nats::jetstream::{self, consumer::pull};

use super::{builder::ExportSpec, import::ImportEntry};
use crate::config::{BridgeConfig, JetStreamConfig, Storage};
use crate::error::BridgeError;

/// Does stream subject `filter` (which may have wildcards) cover every subject of `subject`?
pub(crate) fn covers(filter: &str, subject: &str) -> bool {
    let f: Vec<&str> = filter.split('.').collect();
    let s: Vec<&str> = subject.split('.').collect();
    for (i, ft) in f.iter().enumerate() {
        match (*ft, s.get(i)) {
            (">", Some(_)) => return true,
            (_, None) => return false,
            ("*", Some(st)) if *st != ">" => {}
            (ft, Some(st)) if ft == *st => {}
            _ => return false,
        }
    }
    f.len() == s.len()
}

pub(super) async fn ensure_stream(
    js: &jetstream::Context,
    cfg: &BridgeConfig,
    jsc: &JetStreamConfig,
    exports: &[ExportSpec],
) -> Result<Vec<String>, BridgeError> {
    let subjects = if jsc.subjects.is_empty() {
        vec![format!("{}.>", cfg.subject_prefix)]
    } else {
        jsc.subjects.clone()
    };
    let want = jetstream::stream::Config {
        name: jsc.stream.clone(),
        subjects: subjects.clone(),
        storage: match jsc.storage {
            Storage::File => jetstream::stream::StorageType::File,
            Storage::Memory => jetstream::stream::StorageType::Memory,
        },
        duplicate_window: jsc.duplicate_window,
        ..Default::default()
    };
    let stream_err = |reason: String| BridgeError::Stream {
        stream: jsc.stream.clone(),
        reason,
    };
    let stream = js
        .get_or_create_stream(want)
        .await
        .map_err(|e| stream_err(format!("create or look up: {e}")))?;
    let have = &stream.cached_info().config;
    let incompatible = |reason: String| BridgeError::IncompatibleStream {
        stream: jsc.stream.clone(),
        reason,
    };
    for e in exports {
        let subject = cfg.subject_for(e.pattern.as_str());
        if !have.subjects.iter().any(|s| covers(s, &subject)) {
            return Err(incompatible(format!(
                "its subjects {:?} do not cover exported subject {subject:?}",
                have.subjects
            )));
        }
    }
    if have.no_ack {
        return Err(incompatible(
            "no_ack is set: publishes would never be acknowledged".into(),
        ));
    }
    if have.sealed {
        return Err(incompatible("the stream is sealed".into()));
    }
    if have.duplicate_window < jsc.duplicate_window {
        return Err(incompatible(format!(
            "duplicate_window is {:?}, the bridge needs at least {:?}",
            have.duplicate_window, jsc.duplicate_window
        )));
    }
    if have.retention == jetstream::stream::RetentionPolicy::WorkQueue {
        tracing::warn!(stream = %jsc.stream, "work-queue retention: only one durable consumer per subject");
    }
    Ok(have.subjects.clone())
}

pub(super) async fn ensure_consumer(
    js: &jetstream::Context,
    cfg: &BridgeConfig,
    jsc: &JetStreamConfig,
    imports: &[ImportEntry],
    stream_subjects: &[String],
) -> Result<jetstream::consumer::Consumer<pull::Config>, BridgeError> {
    let err = |reason: String| BridgeError::Consumer {
        stream: jsc.stream.clone(),
        consumer: jsc.durable.clone(),
        reason,
    };
    let incompatible = |reason: String| BridgeError::IncompatibleConsumer {
        stream: jsc.stream.clone(),
        consumer: jsc.durable.clone(),
        reason,
    };
    // nats-server 2.9 allows one filter subject per consumer: with one import pattern the
    // consumer filters on it; with several it reads the whole stream and the importer
    // filters locally.
    let mut filters: Vec<String> = imports
        .iter()
        .map(|e| cfg.subject_for(e.pattern.as_str()))
        .collect();
    filters.dedup();
    for f in &filters {
        if !stream_subjects.iter().any(|s| covers(s, f)) {
            return Err(err(format!(
                "imported subject {f:?} is not captured by the stream's subjects {stream_subjects:?}"
            )));
        }
    }
    let filter = if filters.len() == 1 {
        filters[0].clone()
    } else {
        String::new()
    };
    let want = pull::Config {
        durable_name: Some(jsc.durable.clone()),
        deliver_policy: jetstream::consumer::DeliverPolicy::All,
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: jsc.ack_wait,
        max_deliver: jsc.max_deliver,
        filter_subject: filter.clone(),
        // Room for the messages the resequencer holds (unacked) on top of the pulls.
        max_ack_pending: ((jsc.pull_batch.max(1) * 4).max(1000) + jsc.reorder_max_held) as i64,
        ..Default::default()
    };
    let stream = js
        .get_stream(&jsc.stream)
        .await
        .map_err(|e| err(format!("look up stream: {e}")))?;
    let consumer = stream
        .get_or_create_consumer::<pull::Config>(&jsc.durable, want)
        .await
        .map_err(|e| {
            if matches!(
                e.kind(),
                jetstream::stream::ConsumerErrorKind::InvalidConsumerType
            ) {
                incompatible("it is a push consumer; the bridge needs a pull consumer".into())
            } else {
                err(format!("create or look up: {e}"))
            }
        })?;
    let have = &consumer.cached_info().config;
    if have.filter_subject != filter {
        return Err(incompatible(format!(
            "filter subject is {:?}, the bridge needs {:?}",
            have.filter_subject, filter
        )));
    }
    if have.ack_policy != jetstream::consumer::AckPolicy::Explicit {
        return Err(incompatible(format!(
            "ack policy is {:?}, the bridge needs explicit acks",
            have.ack_policy
        )));
    }
    Ok(consumer)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn subject_cover() {
        assert!(covers("sy.>", "sy.a.b"));
        assert!(covers("sy.>", "sy.a.>"));
        assert!(covers("sy.*.b", "sy.x.b"));
        assert!(covers("sy.*.b", "sy.*.b"));
        assert!(!covers("sy.*.b", "sy.>"));
        assert!(!covers("sy.a", "sy.a.b"));
        assert!(!covers("sy.a.b", "sy.a"));
        assert!(!covers("sy.x.>", "sy.>"));
    }
}
