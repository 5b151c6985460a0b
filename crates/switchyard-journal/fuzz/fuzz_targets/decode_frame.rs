//! Arbitrary bytes into the frame decoder and the segment scanner: never panic, never
//! claim more bytes than given.
//!
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run decode_frame` (from crates/switchyard-journal).
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_journal::codec::{self, FrameError};
use switchyard_journal::segment::scan_segment_bytes;

fuzz_target!(|data: &[u8]| {
    match codec::decode_frame(data) {
        Ok((record, len)) => {
            assert!(len <= data.len());
            assert_eq!(record.frame_len(), len);
        }
        Err(FrameError::Incomplete { needed, .. }) => {
            assert!(needed > data.len() && needed <= codec::MAX_FRAME_LEN)
        }
        Err(FrameError::Corrupt(_)) => {}
    }
    // As a whole segment, and behind a valid header.
    let _ = scan_segment_bytes(data, true);
    let _ = scan_segment_bytes(data, false);
    let mut seg = codec::encode_header(1).to_vec();
    seg.extend_from_slice(data);
    if let Ok(summary) = scan_segment_bytes(&seg, true) {
        assert!(summary.valid_bytes <= seg.len() as u64);
        if let Some(t) = summary.torn_tail {
            assert_eq!(t.offset + t.bytes, seg.len() as u64);
        }
    }
    // Behind a header with an input-chosen first index (often an extreme one), followed
    // by valid frames numbered on from it (wrapping), then the rest of the input: the
    // index arithmetic at the edges of u64 must not panic.
    if let Some((head, rest)) = data.split_first_chunk::<9>() {
        let first = match head[8] % 4 {
            0 => u64::MAX,
            1 => u64::MAX - 1,
            2 => 0,
            _ => u64::from_le_bytes(head[..8].try_into().unwrap_or_default()),
        };
        let mut seg = codec::encode_header(first).to_vec();
        for k in 0..u64::from(head[8] >> 2 & 3) {
            let index = first.wrapping_add(u64::from(head[k as usize]) % 3);
            // Timestamp 0 (`Default`): the fuzz crate does not depend on `switchyard`.
            let _ = codec::encode_frame(&mut seg, index, 0, Default::default(), "t", "k", b"");
        }
        seg.extend_from_slice(rest);
        for last in [true, false] {
            if let Ok(summary) = scan_segment_bytes(&seg, last) {
                assert!(summary.valid_bytes <= seg.len() as u64);
                assert_ne!(summary.last_index, Some(u64::MAX));
            }
        }
    }
});
