//! The journal's decoding side: frames ([`codec::decode_frame`]), segment headers and
//! whole segments ([`scan_segment_bytes`]), and journal directories as the reader,
//! [`inspect`] and [`verify`] see them. Writing is not fuzzed.
//!
//! Every frame carries a CRC32C, which a fuzzer cannot guess: where a flag says so, the
//! harness writes correct checksums (and segment headers) over the fuzzer's bytes, so the
//! decoding past the checksum is reached too.

use std::path::PathBuf;
use std::sync::OnceLock;

use switchyard_journal::codec::{
    self, BODY_FIXED_LEN, FRAME_HEADER_LEN, FrameError, HEADER_LEN, MAX_FRAME_LEN,
};
use switchyard_journal::segment::{scan_segment_bytes, segment_file_name};
use switchyard_journal::{JournalReader, ReadFilter, inspect, verify};
use switchyard_trading::exchange::ExecEvent;
use switchyard_trading::model::{MarketEvent, OrderRejected, OrderRequest};
use switchyard_trading::wire;

/// Writes correct checksums into the frames that lie one after another from the start of
/// `buf` (as far as their length fields make sense); with `renumber`, also their indexes,
/// from `first`. The number of frames.
fn fix_frames(buf: &mut [u8], renumber: Option<u64>) -> u64 {
    let mut at = 0;
    let mut n = 0u64;
    while buf.len() - at >= FRAME_HEADER_LEN {
        let body = u32::from_le_bytes(buf[at..at + 4].try_into().unwrap_or_default()) as usize;
        let total = FRAME_HEADER_LEN + body;
        if body < BODY_FIXED_LEN || total > MAX_FRAME_LEN || total > buf.len() - at {
            break;
        }
        let frame = &mut buf[at..at + total];
        if let Some(first) = renumber {
            frame[8..16].copy_from_slice(&first.wrapping_add(n).to_le_bytes());
        }
        let crc = crc32c::crc32c_append(crc32c::crc32c(&frame[0..4]), &frame[FRAME_HEADER_LEN..]);
        frame[4..8].copy_from_slice(&crc.to_le_bytes());
        at += total;
        n += 1;
    }
    n
}

/// Decodes a payload by its kind, as a replay would.
fn decode_payload(kind: &str, payload: &[u8]) {
    match kind {
        wire::MARKET_EVENT => drop(codec::decode_payload::<MarketEvent>(payload)),
        wire::ORDER_REQUEST => drop(codec::decode_payload::<OrderRequest>(payload)),
        wire::ORDER_REJECTED => drop(codec::decode_payload::<OrderRejected>(payload)),
        wire::EXEC_EVENT => drop(codec::decode_payload::<ExecEvent>(payload)),
        wire::FEED_END => drop(codec::decode_payload::<wire::FeedEnd>(payload)),
        switchyard_journal::CONTROL_KIND => {
            drop(serde_json::from_slice::<serde_json::Value>(payload))
        }
        _ => {}
    }
}

/// One frame from the front of the bytes (first byte: checksum fix-up on or off), its
/// payload decoded by kind, and the segment header decoder.
pub fn frame(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut buf = rest.to_vec();
    if flags & 1 == 1 {
        fix_frames(&mut buf, None);
    }
    match codec::decode_frame(&buf) {
        Ok((record, len)) => {
            assert!(len <= buf.len());
            assert_eq!(record.frame_len(), len);
            decode_payload(record.kind, record.payload);
            let _ = record.to_string();
        }
        Err(FrameError::Incomplete { needed, available }) => {
            assert!(needed > available && available == buf.len());
            assert!(needed <= MAX_FRAME_LEN);
        }
        Err(e @ FrameError::Corrupt(_)) => drop(e.to_string()),
    }
    if let Ok(h) = codec::decode_header(rest) {
        assert_eq!(h.version, codec::FORMAT_VERSION);
    }
}

/// Whole segments: the bytes as they are, and behind a valid header (first byte: first
/// index, checksum fix-up and renumbering), as the last segment and as an earlier one.
pub fn segment(data: &[u8]) {
    let _ = scan_segment_bytes(data, true);
    let _ = scan_segment_bytes(data, false);
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    // An extreme first index now and then: the index arithmetic at the edges of u64.
    let first = match flags % 4 {
        0 => 1,
        1 => u64::MAX - 1,
        2 => u64::MAX,
        _ => u64::from(flags),
    };
    let mut seg = codec::encode_header(first).to_vec();
    seg.extend_from_slice(rest);
    if flags & 4 != 0 {
        let renumber = (flags & 8 != 0).then_some(first);
        fix_frames(&mut seg[HEADER_LEN..], renumber);
    }
    for last in [true, false] {
        match scan_segment_bytes(&seg, last) {
            Ok(summary) => {
                assert!(summary.valid_bytes <= seg.len() as u64);
                assert!(summary.valid_bytes >= HEADER_LEN as u64);
                assert_ne!(summary.last_index, Some(u64::MAX));
                assert!(
                    summary.torn_tail.is_none() || last,
                    "a torn tail only at the end"
                );
                if let Some(t) = summary.torn_tail {
                    assert_eq!(t.offset + t.bytes, seg.len() as u64);
                    assert_eq!(t.offset, summary.valid_bytes);
                } else {
                    assert_eq!(summary.valid_bytes, seg.len() as u64);
                }
            }
            Err(e) => drop(e.to_string()),
        }
    }
}

fn scratch_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = std::path::Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        base.join(format!("switchyard-fuzz-journal-{}", std::process::id()))
    })
}

/// A journal directory of one to three segment files cut from the input, read through
/// [`JournalReader`] and checked by [`inspect`] and [`verify`].
///
/// Input: a flag byte (segments, header, fix-up, names), for each segment but the last a
/// little-endian `u16` length, then the segments' bytes.
pub fn reader(data: &[u8]) {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let count = 1 + usize::from(flags % 3);
    let mut chunks = Vec::with_capacity(count);
    for _ in 1..count {
        let Some((len, tail)) = rest.split_first_chunk::<2>() else {
            break;
        };
        let len = usize::from(u16::from_le_bytes(*len)).min(tail.len());
        chunks.push(&tail[..len]);
        rest = &tail[len..];
    }
    chunks.push(rest);

    let dir = scratch_dir();
    let _ = std::fs::remove_dir_all(dir);
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let mut first = 1u64;
    for chunk in &chunks {
        let mut seg = Vec::with_capacity(HEADER_LEN + chunk.len());
        if flags & 4 != 0 {
            seg.extend_from_slice(&codec::encode_header(first));
        }
        seg.extend_from_slice(chunk);
        let frames = if flags & 8 != 0 && seg.len() >= HEADER_LEN {
            let renumber = (flags & 16 != 0).then_some(first);
            fix_frames(&mut seg[HEADER_LEN..], renumber)
        } else {
            1
        };
        // Now and then a file name that disagrees with the header.
        let name = first.wrapping_add(u64::from(flags & 32 != 0));
        if std::fs::write(dir.join(segment_file_name(name)), &seg).is_err() {
            return;
        }
        first = first.saturating_add(frames.max(1));
    }
    // Not a segment: ignored by every reader.
    let _ = std::fs::write(dir.join("notes.txt"), b"x");

    if let Ok(reader) = JournalReader::open(dir) {
        let _ = reader.report().to_string();
        let mut records = reader.records(ReadFilter::all());
        let mut last: Option<u64> = None;
        for item in records.by_ref() {
            match item {
                Ok(r) => {
                    if let Some(l) = last {
                        assert_eq!(r.index, l + 1, "records in journal order, no gap");
                    }
                    last = Some(r.index);
                    decode_payload(&r.kind, &r.payload);
                }
                Err(e) => {
                    let _ = e.to_string();
                    break;
                }
            }
        }
        assert!(
            records.next().is_none(),
            "nothing after the end or an error"
        );
        let filter = ReadFilter::all().index(2..=3).seq(..10);
        let filter = match filter.topic("a.>") {
            Ok(f) => f,
            Err(_) => return,
        };
        for r in reader.records(filter).flatten() {
            assert!((2..=3).contains(&r.index) && r.seq < 10);
        }
    }
    match inspect(dir) {
        Ok(i) => drop(i.to_string()),
        Err(e) => drop(e.to_string()),
    }
    match verify(dir) {
        Ok(v) => drop(v.to_string()),
        Err(e) => drop(e.to_string()),
    }
}
