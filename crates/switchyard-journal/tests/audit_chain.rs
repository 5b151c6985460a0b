//! The audit trail's hash chain on a real journal on disk: control events recorded from a
//! bus are chained, `verify` names the first record that breaks the chain when one byte
//! of an audit record is edited and its frame checksum fixed up (so only the chain can
//! tell), and the chain continues across reopening the journal.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use switchyard::control::ControlEvent;
use switchyard::kill_switch::{
    AuditAction, AuditRecord, KillSwitchEvent, Mode, RefusalReason, Scope,
};
use switchyard::{Bus, ManualClock, Timestamp};
use switchyard_journal::audit_chain::{self, GENESIS};
use switchyard_journal::codec::HEADER_LEN;
use switchyard_journal::segment::list_segments;
use switchyard_journal::{
    CONTROL_KIND, ChainBreak, Journal, JournalConfig, JournalReader, ReadFilter, Recorder,
    SyncPolicy, decode_frame, encode_frame, verify,
};

fn config(dir: &Path) -> JournalConfig {
    JournalConfig::new(dir)
        .segment_bytes(2048)
        .sync(SyncPolicy::Never)
}

fn audit(seq: u64, action: AuditAction, who: &str) -> ControlEvent {
    ControlEvent::KillSwitch(KillSwitchEvent {
        record: AuditRecord {
            seq,
            at: Timestamp(seq * 1_000),
            action,
            scope: Some(Scope::Strategy("mm".into())),
            mode: Some(Mode::Halt),
            reason: "loss limit".into(),
            source_or_who: who.into(),
        },
        active: Vec::new(),
    })
}

/// A journal of market data with a trigger, a refused reset and a reset recorded from a
/// bus in between, over several segments.
async fn record(dir: &Path) {
    let (j, _) = Journal::open(config(dir)).unwrap();
    let bus = Bus::with_clock(Arc::new(ManualClock::new(Timestamp(1))));
    let _sub = Recorder::new(j.clone(), bus.clone())
        .record_control()
        .unwrap();
    let events = [
        audit(1, AuditAction::Triggered, "risk"),
        audit(
            2,
            AuditAction::ResetRefused {
                reason: RefusalReason::WrongSecret,
            },
            "mallory",
        ),
        audit(3, AuditAction::Reset, "alice"),
    ];
    for ev in events {
        for i in 0..20u64 {
            j.append(i, Timestamp(i), "md.trade.BTC", "bytes", &[7; 40])
                .unwrap();
        }
        bus.publish_control(ev);
        // The recorder appends from its subscription's worker: wait until it has.
        let before = j.next_index();
        while j.next_index() == before {
            tokio::task::yield_now().await;
        }
    }
    bus.shutdown(Duration::from_secs(5)).await;
    j.close().unwrap();
}

/// Where each audit record is: segment, offset, frame bytes.
fn audit_frames(dir: &Path) -> Vec<(PathBuf, usize, Vec<u8>)> {
    let mut out = Vec::new();
    for (_, path) in list_segments(dir).unwrap() {
        let bytes = std::fs::read(&path).unwrap();
        let mut pos = HEADER_LEN;
        while pos < bytes.len() {
            let (r, len) = decode_frame(&bytes[pos..]).unwrap();
            if r.kind == CONTROL_KIND {
                out.push((path.clone(), pos, bytes[pos..pos + len].to_vec()));
            }
            pos += len;
        }
    }
    out
}

/// Replace the frame at `offset` of `path` by the same record with `payload`, its frame
/// checksum computed anew (same length).
fn rewrite(path: &Path, offset: usize, frame: &[u8], payload: &[u8]) {
    let (r, len) = decode_frame(frame).unwrap();
    let mut new = Vec::new();
    encode_frame(&mut new, r.index, r.seq, r.ts, r.topic, r.kind, payload).unwrap();
    assert_eq!(new.len(), len);
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset..offset + len].copy_from_slice(&new);
    std::fs::write(path, bytes).unwrap();
}

fn every_frame_checks_out(dir: &Path) -> usize {
    let r = JournalReader::open(dir).unwrap();
    let mut n = 0;
    for rec in r.records(ReadFilter::all()) {
        rec.unwrap();
        n += 1;
    }
    assert!(r.report().torn_tail.is_none());
    n
}

#[tokio::test]
async fn recorded_control_events_form_a_chain_that_verify_checks() {
    let tmp = tempfile::tempdir().unwrap();
    record(tmp.path()).await;
    let v = verify(tmp.path()).unwrap();
    assert!(v.ok(), "{v}");
    assert!(v.segments > 1, "{v}");
    assert_eq!(v.audit.records, 3, "{v}");
    let frames = audit_frames(tmp.path());
    let (last, _) = decode_frame(&frames[2].2).unwrap();
    assert_eq!(v.audit.head_index, Some(last.index));
    let json: serde_json::Value = serde_json::from_slice(last.payload).unwrap();
    assert_eq!(v.audit.head.as_deref(), json["chain"]["hash"].as_str());
    // The event is still readable as it was, with the chain member alongside.
    assert_eq!(json["type"], "kill_switch");
    assert_eq!(json["record"]["source_or_who"], "alice");
    let first: serde_json::Value =
        serde_json::from_slice(decode_frame(&frames[0].2).unwrap().0.payload).unwrap();
    assert_eq!(first["chain"]["prev"], audit_chain::hex(&GENESIS));
    assert!(format!("{v}").contains(&format!("head #{} sha256", last.index)));
}

#[tokio::test]
async fn one_edited_byte_with_a_fixed_up_checksum_is_caught_by_the_chain() {
    let tmp = tempfile::tempdir().unwrap();
    record(tmp.path()).await;
    let frames = audit_frames(tmp.path());
    let (path, offset, frame) = &frames[1];
    let (r, _) = decode_frame(frame).unwrap();
    let (index, seq) = (r.index, r.seq);
    // "mallory" becomes "mallorz": the refused reset now blames someone else.
    let mut payload = r.payload.to_vec();
    let at = payload
        .windows(7)
        .position(|w| w == b"mallory")
        .expect("the name in the payload");
    payload[at + 6] = b'z';
    rewrite(path, *offset, frame, &payload);

    // Every frame checksum holds: the frame layer cannot see the edit.
    assert_eq!(every_frame_checks_out(tmp.path()), 63);
    let v = verify(tmp.path()).unwrap();
    assert!(!v.ok(), "{v}");
    let b = v.audit.broken.as_ref().expect("a broken link");
    assert_eq!(
        (&b.segment, b.offset, b.index, b.seq),
        (path, *offset as u64, index, seq)
    );
    assert!(matches!(b.reason, ChainBreak::WrongHash { .. }), "{b:?}");
    assert_eq!(v.audit.records, 1, "the first record still holds");
    assert_eq!(v.problems.len(), 1, "{v}");
    let text = v.to_string();
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(text.contains("audit chain: BROKEN"), "{text}");
    assert!(
        text.contains(&format!("{name} at byte offset {offset}")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "audit record #{index} (seq {seq}) breaks the audit chain"
        )),
        "{text}"
    );
    assert!(text.contains("changed after it was written"), "{text}");
}

#[tokio::test]
async fn an_edit_with_its_own_hash_recomputed_breaks_the_next_link() {
    let tmp = tempfile::tempdir().unwrap();
    record(tmp.path()).await;
    let frames = audit_frames(tmp.path());
    let (path, offset, frame) = &frames[0];
    let (r, _) = decode_frame(frame).unwrap();
    // The forger rewrites the trigger's reason and seals it again, consistently.
    let json = String::from_utf8(r.payload.to_vec()).unwrap();
    let cut = json.find(r#","chain":"#).unwrap();
    let event = format!("{}}}", &json[..cut]).replace("loss limit", "loss limiT");
    let hash = audit_chain::seal(
        &GENESIS,
        r.index,
        r.seq,
        r.ts.as_nanos(),
        r.topic,
        r.kind,
        event.as_bytes(),
    );
    let forged = format!(
        "{},\"chain\":{{\"prev\":\"{}\",\"hash\":\"{}\"}}}}",
        &event[..event.len() - 1],
        audit_chain::hex(&GENESIS),
        audit_chain::hex(&hash)
    );
    rewrite(path, *offset, frame, forged.as_bytes());
    every_frame_checks_out(tmp.path());

    let v = verify(tmp.path()).unwrap();
    let b = v.audit.broken.as_ref().expect("a broken link");
    let (next, _) = decode_frame(&frames[1].2).unwrap();
    assert_eq!((&b.segment, b.index), (&frames[1].0, next.index), "{v}");
    match &b.reason {
        ChainBreak::WrongPrev {
            expected, previous, ..
        } => {
            assert_eq!(expected, &audit_chain::hex(&hash));
            assert_eq!(*previous, Some(r.index));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        v.to_string()
            .contains("a record was removed, inserted or moved")
    );
}

#[test]
fn the_chain_continues_across_reopening_even_from_an_older_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ev = |s| audit(s, AuditAction::Triggered, "risk");
    let (j, _) = Journal::open(config(dir)).unwrap();
    assert_eq!(j.audit_head(), GENESIS);
    j.append_audit(1, Timestamp(1), "switchyard.control.kill_switch", &ev(1))
        .unwrap();
    let head = j.audit_head();
    assert_ne!(head, GENESIS);
    j.close().unwrap();
    drop(j);

    // Reopened: the head is found in the last segment. Then enough data that the last
    // segment holds no audit record.
    let (j, _) = Journal::open(config(dir)).unwrap();
    assert_eq!(j.audit_head(), head);
    for i in 0..100u64 {
        j.append(i, Timestamp(i), "md", "bytes", &[1; 40]).unwrap();
    }
    j.close().unwrap();
    drop(j);
    assert!(list_segments(dir).unwrap().len() > 2);

    let (j, _) = Journal::open(config(dir)).unwrap();
    assert_eq!(j.audit_head(), head, "found back in an older segment");
    j.append_audit(2, Timestamp(2), "switchyard.control.kill_switch", &ev(2))
        .unwrap();
    j.close().unwrap();
    let v = verify(dir).unwrap();
    assert!(v.ok(), "{v}");
    assert_eq!(v.audit.records, 2);
}

#[test]
fn an_event_that_is_not_a_json_object_is_refused_and_the_chain_is_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(config(tmp.path())).unwrap();
    let e = j
        .append_audit(1, Timestamp(1), "switchyard.control.x", &[1, 2])
        .unwrap_err();
    assert!(e.to_string().contains("JSON object"), "{e}");
    assert_eq!(j.audit_head(), GENESIS);
    assert_eq!(j.next_index(), 1);
}
