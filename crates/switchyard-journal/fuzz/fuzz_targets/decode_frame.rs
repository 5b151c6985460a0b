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
});
