//! Crash recovery, the tail rule, segments, filters, inspect and verify.

use std::path::{Path, PathBuf};
use std::time::Duration;

use switchyard::Timestamp;
use switchyard_journal::codec::{Corruption, HEADER_LEN};
use switchyard_journal::segment::{list_segments, segment_file_name};
use switchyard_journal::{
    Journal, JournalConfig, JournalError, JournalReader, OwnedRecord, ReadFilter, SyncPolicy,
    inspect, verify,
};

fn cfg(dir: &Path) -> JournalConfig {
    JournalConfig::new(dir).sync(SyncPolicy::Group {
        every_events: 10,
        every: Duration::from_millis(1),
    })
}

fn topic_of(i: u64) -> &'static str {
    [
        "md.trade.BTC",
        "md.trade.ETH",
        "md.quote.BTC",
        "orders.fill",
    ][(i % 4) as usize]
}

fn kind_of(i: u64) -> &'static str {
    if i % 4 == 3 { "fill" } else { "market_event" }
}

fn payload_of(i: u64) -> Vec<u8> {
    (0..(i % 13) as u8 + 1).map(|b| b ^ i as u8).collect()
}

/// Append records `from..from+n` with deterministic contents; seq = 100 + i, ts = 1000 × i.
fn fill(j: &Journal, from: u64, n: u64) {
    for i in from..from + n {
        let idx = j
            .append(
                100 + i,
                Timestamp(1000 * i),
                topic_of(i),
                kind_of(i),
                &payload_of(i),
            )
            .unwrap();
        assert_eq!(idx, i);
    }
}

fn expected(i: u64) -> OwnedRecord {
    OwnedRecord {
        index: i,
        seq: 100 + i,
        ts: Timestamp(1000 * i),
        topic: topic_of(i).to_owned(),
        kind: kind_of(i).to_owned(),
        payload: payload_of(i),
    }
}

fn read_all(dir: &Path, filter: ReadFilter) -> Vec<OwnedRecord> {
    JournalReader::open(dir)
        .unwrap()
        .records(filter)
        .collect::<Result<_, _>>()
        .unwrap()
}

fn write_journal(dir: &Path, n: u64) -> PathBuf {
    let (j, rep) = Journal::open(cfg(dir)).unwrap();
    assert!(rep.created);
    fill(&j, 1, n);
    let stats = j.close().unwrap();
    assert_eq!(stats.durable, n);
    list_segments(dir).unwrap().pop().unwrap().1
}

/// Byte offsets where each frame of the (single) segment starts, plus the end.
fn frame_offsets(seg: &Path) -> Vec<u64> {
    let data = std::fs::read(seg).unwrap();
    let mut offs = vec![HEADER_LEN as u64];
    let mut at = HEADER_LEN;
    while at < data.len() {
        let (_, len) = switchyard_journal::decode_frame(&data[at..]).unwrap();
        at += len;
        offs.push(at as u64);
    }
    offs
}

#[test]
fn every_truncation_point_recovers_to_the_last_whole_frame() {
    let src = tempfile::tempdir().unwrap();
    let seg = write_journal(src.path(), 6);
    let original = std::fs::read(&seg).unwrap();
    let offs = frame_offsets(&seg);
    for len in 0..=original.len() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(segment_file_name(1));
        std::fs::write(&path, &original[..len]).unwrap();
        // Whole frames that fit in `len` bytes.
        let whole = offs
            .iter()
            .filter(|&&o| o <= len as u64)
            .count()
            .saturating_sub(1) as u64;
        let keep_bytes = if len < HEADER_LEN {
            0
        } else {
            offs[whole as usize]
        };

        // The reader reports the tail and stops there, leaving the file alone.
        let r = JournalReader::open(dir.path()).unwrap();
        let tail = r.report().torn_tail.clone();
        if len == keep_bytes as usize && len >= HEADER_LEN {
            assert!(tail.is_none(), "len {len}: {tail:?}");
        } else {
            let t = tail.unwrap_or_else(|| panic!("len {len}: no tail reported"));
            assert_eq!(t.segment, path);
            assert_eq!(t.offset, keep_bytes, "len {len}");
            assert_eq!(t.bytes, len as u64 - keep_bytes, "len {len}");
        }
        let got: Vec<_> = r
            .records(ReadFilter::all())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            got,
            (1..=whole).map(expected).collect::<Vec<_>>(),
            "len {len}"
        );
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len as u64);

        // The writer cuts the tail off, reports it, and continues after the last record.
        let (j, rep) = Journal::open(cfg(dir.path())).unwrap();
        assert_eq!(rep.last_index, whole, "len {len}");
        assert_eq!(rep.next_index, whole + 1);
        if len != keep_bytes as usize || len < HEADER_LEN {
            let t = rep.truncated.clone().expect("truncation reported");
            assert_eq!((t.offset, t.bytes), (keep_bytes, len as u64 - keep_bytes));
        } else {
            assert!(rep.truncated.is_none());
        }
        fill(&j, whole + 1, 2);
        j.close().unwrap();
        let got = read_all(dir.path(), ReadFilter::all());
        assert_eq!(
            got,
            (1..=whole + 2).map(expected).collect::<Vec<_>>(),
            "len {len}"
        );
        assert!(verify(dir.path()).unwrap().ok());
    }
}

#[test]
fn a_bad_checksum_in_the_tail_is_truncated_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let seg = write_journal(dir.path(), 5);
    let offs = frame_offsets(&seg);
    let mut data = std::fs::read(&seg).unwrap();
    // Flip a payload byte of the last frame.
    let last = offs[4] as usize;
    let end = data.len();
    data[end - 1] ^= 0x40;
    std::fs::write(&seg, &data).unwrap();

    let r = JournalReader::open(dir.path()).unwrap();
    let t = r.report().torn_tail.clone().unwrap();
    assert_eq!((t.offset, t.bytes), (last as u64, (end - last) as u64));
    assert!(t.reason.contains("checksum"), "{}", t.reason);
    assert_eq!(r.records(ReadFilter::all()).count(), 4);

    let (j, rep) = Journal::open(cfg(dir.path())).unwrap();
    let t = rep.truncated.unwrap();
    assert_eq!((t.segment, t.offset), (seg.clone(), last as u64));
    assert_eq!(rep.next_index, 5);
    j.close().unwrap();
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), last as u64);
}

#[test]
fn a_bad_frame_followed_by_valid_ones_in_the_last_segment_is_cut_and_kept_aside() {
    let dir = tempfile::tempdir().unwrap();
    let seg = write_journal(dir.path(), 5);
    let offs = frame_offsets(&seg);
    let mut data = std::fs::read(&seg).unwrap();
    let bad = offs[2] as usize; // frame #3
    data[bad + 20] ^= 0x01;
    std::fs::write(&seg, &data).unwrap();

    // Reader (read-only): refuses, naming segment and offset, and leaves the file alone.
    match JournalReader::open(dir.path()).unwrap_err() {
        JournalError::Corrupt {
            path,
            offset,
            reason,
        } => {
            assert_eq!((path, offset), (seg.clone(), bad as u64));
            assert!(
                matches!(reason, Corruption::FollowedByValid { .. }),
                "{reason}"
            );
        }
        other => panic!("unexpected {other}"),
    }
    // Verify (read-only): a problem, which says what opening for writing will do.
    let v = verify(dir.path()).unwrap();
    assert!(!v.ok());
    assert_eq!(v.problems[0].offset, Some(bad as u64));
    let side = dir
        .path()
        .join(format!("00000000000000000001.sy-journal.cut-{bad}"));
    let text = v.to_string();
    assert!(text.contains("CORRUPT"), "{text}");
    assert!(
        text.contains("opening the journal for writing cuts")
            && text.contains(&side.display().to_string()),
        "{text}"
    );
    assert_eq!(std::fs::read(&seg).unwrap(), data);

    // Writer: cuts at the bad frame, after copying the cut bytes to the side file.
    let (j, rep) = Journal::open(cfg(dir.path())).unwrap();
    let t = rep.truncated.clone().unwrap();
    assert_eq!((t.segment.clone(), t.offset), (seg.clone(), bad as u64));
    assert_eq!(t.bytes, (data.len() - bad) as u64);
    assert_eq!(t.next_valid, Some(offs[3]));
    assert_eq!(t.kept_in.as_deref(), Some(side.as_path()));
    let shown = rep.to_string();
    assert!(
        shown.contains("kept in") && shown.contains(&side.display().to_string()),
        "{shown}"
    );
    assert_eq!(rep.next_index, 3);
    fill(&j, 3, 2);
    j.close().unwrap();
    assert_eq!(std::fs::read(&side).unwrap(), &data[bad..]);
    assert_eq!(&std::fs::read(&seg).unwrap()[..bad], &data[..bad]);
    // The journal is whole again; the side file is not taken for a segment.
    let v = verify(dir.path()).unwrap();
    assert!(v.ok(), "{v}");
    assert_eq!(
        read_all(dir.path(), ReadFilter::all()),
        (1..=4).map(expected).collect::<Vec<_>>()
    );
}

#[test]
fn a_second_cut_at_the_same_offset_gets_its_own_side_file() {
    let dir = tempfile::tempdir().unwrap();
    let seg = write_journal(dir.path(), 5);
    let offs = frame_offsets(&seg);
    let mut data = std::fs::read(&seg).unwrap();
    let bad = offs[1] as usize;
    data[bad + 20] ^= 0x01;
    // An earlier recovery kept the bytes aside and crashed before its cut was durable.
    let first = dir
        .path()
        .join(format!("00000000000000000001.sy-journal.cut-{bad}"));
    std::fs::write(&first, b"an earlier copy").unwrap();
    std::fs::write(&seg, &data).unwrap();
    let (j, rep) = Journal::open(cfg(dir.path())).unwrap();
    j.close().unwrap();
    let side = rep.truncated.unwrap().kept_in.unwrap();
    assert_eq!(side, first.with_extension(format!("cut-{bad}.1")));
    assert_eq!(std::fs::read(&first).unwrap(), b"an earlier copy");
    assert_eq!(std::fs::read(&side).unwrap(), &data[bad..]);
}

#[test]
fn damage_in_an_older_segment_is_an_error_even_at_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(cfg(dir.path()).segment_bytes(200)).unwrap();
    fill(&j, 1, 20);
    j.close().unwrap();
    let segs = list_segments(dir.path()).unwrap();
    assert!(segs.len() > 3, "{segs:?}");
    let first = &segs[0].1;
    let mut data = std::fs::read(first).unwrap();
    let n = data.len();
    data[n - 1] ^= 0xff; // last byte of the last frame of a non-last segment
    std::fs::write(first, &data).unwrap();

    let r = JournalReader::open(dir.path()).unwrap();
    let err = r
        .records(ReadFilter::all())
        .find_map(Result::err)
        .expect("an error");
    match err {
        JournalError::Corrupt { path, .. } => assert_eq!(&path, first),
        other => panic!("unexpected {other}"),
    }
    let v = verify(dir.path()).unwrap();
    assert_eq!(v.problems.len(), 1);
    assert_eq!(&v.problems[0].segment, first);
    assert!(inspect(dir.path()).is_err());
    // Opening for writing checks only the last segment by default; with
    // verify_on_open it finds the damage.
    assert!(Journal::open(cfg(dir.path()).verify_on_open(true)).is_err());
}

#[test]
fn segments_roll_over_and_reopen_continues_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path()).segment_bytes(300);
    let (j, _) = Journal::open(c.clone()).unwrap();
    fill(&j, 1, 25);
    let stats = j.close().unwrap();
    assert!(stats.segments_created > 3, "{stats}");
    let segs = list_segments(dir.path()).unwrap();
    // Named by their first index, each within the size limit (or a single frame).
    for w in segs.windows(2) {
        assert!(w[0].0 < w[1].0);
    }
    for (_, p) in &segs {
        assert!(std::fs::metadata(p).unwrap().len() <= 300);
    }
    drop(j);
    let (j, rep) = Journal::open(c).unwrap();
    assert_eq!(rep.next_index, 26);
    assert!(rep.truncated.is_none());
    fill(&j, 26, 25);
    j.close().unwrap();
    let got = read_all(dir.path(), ReadFilter::all());
    assert_eq!(got, (1..=50).map(expected).collect::<Vec<_>>());
    let names: Vec<u64> = list_segments(dir.path())
        .unwrap()
        .iter()
        .map(|s| s.0)
        .collect();
    assert_eq!(names[0], 1);
    let ins = inspect(dir.path()).unwrap();
    for (s, next) in ins.segments.iter().zip(names.iter().skip(1)) {
        assert_eq!(s.last_index, Some(next - 1));
    }
    assert!(verify(dir.path()).unwrap().ok());
}

#[test]
fn a_frame_larger_than_a_segment_gets_its_own_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(cfg(dir.path()).segment_bytes(100)).unwrap();
    j.append(1, Timestamp(1), "a", "k", &[7u8; 500]).unwrap();
    j.append(2, Timestamp(2), "a", "k", &[8u8; 10]).unwrap();
    j.append(3, Timestamp(3), "a", "k", &[9u8; 500]).unwrap();
    j.close().unwrap();
    let got = read_all(dir.path(), ReadFilter::all());
    assert_eq!(got.len(), 3);
    assert_eq!(got[2].payload, vec![9u8; 500]);
    assert_eq!(list_segments(dir.path()).unwrap().len(), 3);
}

#[test]
fn filters_select_by_index_seq_time_and_topic() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(cfg(dir.path()).segment_bytes(400)).unwrap();
    fill(&j, 1, 40);
    j.close().unwrap();
    let idx =
        |f: ReadFilter| -> Vec<u64> { read_all(dir.path(), f).iter().map(|r| r.index).collect() };
    assert_eq!(idx(ReadFilter::all().index(10..=12)), vec![10, 11, 12]);
    assert_eq!(idx(ReadFilter::all().index(38..)), vec![38, 39, 40]);
    assert_eq!(idx(ReadFilter::all().seq(105..107)), vec![5, 6]);
    assert_eq!(
        idx(ReadFilter::all().time(Timestamp(20_000)..=Timestamp(22_000))),
        vec![20, 21, 22]
    );
    assert_eq!(
        idx(ReadFilter::all().topic("md.trade.*").unwrap().index(..=9)),
        vec![1, 4, 5, 8, 9]
    );
    assert_eq!(
        idx(ReadFilter::all()
            .topic("orders.>")
            .unwrap()
            .topic("md.quote.BTC")
            .unwrap()
            .index(..=8)),
        vec![2, 3, 6, 7]
    );
    assert!(idx(ReadFilter::all().index(5..5)).is_empty());
    assert!(idx(ReadFilter::all().topic("nope").unwrap()).is_empty());
}

#[test]
fn inspect_counts_topics_kinds_and_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(cfg(dir.path()).segment_bytes(500)).unwrap();
    fill(&j, 1, 40);
    j.close().unwrap();
    let ins = inspect(dir.path()).unwrap();
    assert_eq!(ins.records, 40);
    assert_eq!((ins.first_index, ins.last_index), (Some(1), Some(40)));
    assert_eq!(ins.min_ts, Some(Timestamp(1000)));
    assert_eq!(ins.max_ts, Some(Timestamp(40_000)));
    assert_eq!(ins.by_topic["md.trade.BTC"], 10);
    assert_eq!(ins.by_topic.len(), 4);
    assert_eq!(ins.by_kind["fill"], 10);
    assert_eq!(ins.by_kind["market_event"], 30);
    assert_eq!(ins.segments.iter().map(|s| s.records).sum::<u64>(), 40);
    assert!(ins.segments.len() > 1);
    assert_eq!(ins.segments[0].first_ts, Some(Timestamp(1000)));
    let text = ins.to_string();
    assert!(text.contains("md.trade.BTC") && text.contains("00000000000000000001.sy-journal"));
    let json = serde_json::to_value(&ins).unwrap();
    assert_eq!(json["records"], 40);
}

#[test]
fn verify_finds_a_flipped_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(cfg(dir.path()).segment_bytes(500)).unwrap();
    fill(&j, 1, 40);
    j.close().unwrap();
    let v = verify(dir.path()).unwrap();
    assert!(v.ok(), "{v}");
    assert_eq!(v.records, 40);
    let segs = list_segments(dir.path()).unwrap();
    let target = &segs[1].1;
    let mut data = std::fs::read(target).unwrap();
    let offs = {
        let mut at = HEADER_LEN;
        let mut o = vec![];
        while at < data.len() {
            o.push(at);
            at += switchyard_journal::decode_frame(&data[at..]).unwrap().1;
        }
        o
    };
    let at = offs[1] + 30;
    data[at] ^= 0x10;
    std::fs::write(target, &data).unwrap();
    let v = verify(dir.path()).unwrap();
    assert!(!v.ok());
    assert_eq!(v.problems.len(), 1);
    assert_eq!(&v.problems[0].segment, target);
    assert_eq!(v.problems[0].offset, Some(offs[1] as u64));
    assert!(
        v.problems[0].reason.contains("checksum"),
        "{}",
        v.problems[0]
    );
    let text = v.to_string();
    assert!(
        text.contains(&format!("at byte offset {}", offs[1])),
        "{text}"
    );
}

#[test]
fn a_second_writer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(cfg(dir.path())).unwrap();
    assert!(matches!(
        Journal::open(cfg(dir.path())),
        Err(JournalError::Locked { .. })
    ));
    j.close().unwrap();
    drop(j);
    let (j, _) = Journal::open(cfg(dir.path())).unwrap();
    j.close().unwrap();
}

#[test]
fn a_torn_segment_header_is_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    write_journal(dir.path(), 3);
    // A crash right after creating the next segment: an empty file.
    std::fs::write(dir.path().join(segment_file_name(4)), b"SWY").unwrap();
    let (j, rep) = Journal::open(cfg(dir.path())).unwrap();
    assert_eq!(rep.next_index, 4);
    assert_eq!(rep.truncated.unwrap().bytes, 3);
    fill(&j, 4, 2);
    j.close().unwrap();
    assert_eq!(read_all(dir.path(), ReadFilter::all()).len(), 5);
}

/// A payload whose serializer panics half-way (after writing some bytes).
struct PanickingPayload;

impl serde::Serialize for PanickingPayload {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(3))?;
        seq.serialize_element(&12345u32)?;
        seq.serialize_element("written before the panic")?;
        panic!("serializer bug");
    }
}

#[test]
fn a_panicking_serializer_between_good_records_leaves_the_journal_readable() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(cfg(dir.path())).unwrap();
    fill(&j, 1, 1);
    for bad in 0..2 {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if bad == 0 {
                j.append_serialized(7, Timestamp(7), "x.y", "bad", &PanickingPayload)
            } else {
                j.append_json(7, Timestamp(7), "x.y", "bad", &PanickingPayload)
            }
        }));
        let msg = r.expect_err("the panic reaches the caller");
        assert_eq!(msg.downcast_ref::<&str>(), Some(&"serializer bug"));
    }
    // No index was used up, and the journal still takes appends.
    assert_eq!(j.next_index(), 2);
    fill(&j, 2, 1);
    let stats = j.close().unwrap();
    assert_eq!((stats.records, stats.durable), (2, 2));
    drop(j);

    let (j, rep) = Journal::open(cfg(dir.path())).unwrap();
    assert_eq!((rep.last_index, rep.truncated), (2, None));
    j.close().unwrap();
    assert_eq!(
        read_all(dir.path(), ReadFilter::all()),
        vec![expected(1), expected(2)]
    );
    let v = verify(dir.path()).unwrap();
    assert!(v.ok(), "{v}");
    assert_eq!(v.records, 2);
}

/// A segment file named for and headed by `first`, holding valid frames for `indexes`.
fn crafted_segment(dir: &Path, first: u64, indexes: &[u64]) -> PathBuf {
    let mut data = switchyard_journal::codec::encode_header(first).to_vec();
    for &i in indexes {
        switchyard_journal::encode_frame(&mut data, i, 1, Timestamp(1), "a.b", "k", b"p").unwrap();
    }
    let path = dir.join(segment_file_name(first));
    std::fs::write(&path, &data).unwrap();
    path
}

fn assert_index_overflow(e: &JournalError, seg: &Path) {
    match e {
        JournalError::Corrupt {
            path,
            offset,
            reason: Corruption::Malformed { what },
        } => {
            assert_eq!(path, seg);
            assert!(*offset >= HEADER_LEN as u64);
            assert!(what.contains("u64::MAX"), "{what}");
        }
        other => panic!("unexpected: {other}"),
    }
}

#[test]
fn record_index_u64_max_is_damage_not_an_overflow() {
    // Header u64::MAX, one valid frame #u64::MAX: damage, in every reader.
    let dir = tempfile::tempdir().unwrap();
    let seg = crafted_segment(dir.path(), u64::MAX, &[u64::MAX]);
    assert_index_overflow(&Journal::open(cfg(dir.path())).unwrap_err(), &seg);
    let r = JournalReader::open(dir.path());
    assert_index_overflow(&r.unwrap_err(), &seg);
    assert_index_overflow(&inspect(dir.path()).unwrap_err(), &seg);
    assert!(!verify(dir.path()).unwrap().ok());
    let data = std::fs::read(&seg).unwrap();
    assert!(switchyard_journal::segment::scan_segment_bytes(&data, true).is_err());
    assert!(switchyard_journal::segment::scan_segment_bytes(&data, false).is_err());

    // Header u64::MAX - 1: the frame #u64::MAX - 1 is fine, the one after it is damage.
    let dir = tempfile::tempdir().unwrap();
    let seg = crafted_segment(dir.path(), u64::MAX - 1, &[u64::MAX - 1, u64::MAX]);
    let e = Journal::open(cfg(dir.path())).unwrap_err();
    assert_index_overflow(&e, &seg);
    let e = verify(dir.path()).unwrap();
    assert_eq!((e.records, e.problems.len()), (1, 1));

    // Only #u64::MAX - 1: opens, but no index is left for an append.
    let dir = tempfile::tempdir().unwrap();
    crafted_segment(dir.path(), u64::MAX - 1, &[u64::MAX - 1]);
    let (j, rep) = Journal::open(cfg(dir.path())).unwrap();
    assert_eq!((rep.last_index, rep.next_index), (u64::MAX - 1, u64::MAX));
    assert!(matches!(
        j.append(1, Timestamp(1), "a", "k", b""),
        Err(JournalError::IndexExhausted { next: u64::MAX })
    ));
    assert_eq!(j.close().unwrap().durable, u64::MAX - 1);
    assert_eq!(read_all(dir.path(), ReadFilter::all()).len(), 1);
    assert!(verify(dir.path()).unwrap().ok());
    assert_eq!(inspect(dir.path()).unwrap().last_index, Some(u64::MAX - 1));

    // An empty segment headed u64::MAX: nothing to read, nothing can be appended.
    let dir = tempfile::tempdir().unwrap();
    crafted_segment(dir.path(), u64::MAX, &[]);
    let (j, rep) = Journal::open(cfg(dir.path())).unwrap();
    assert_eq!(rep.next_index, u64::MAX);
    assert!(j.append(1, Timestamp(1), "a", "k", b"").is_err());
    j.close().unwrap();
}
