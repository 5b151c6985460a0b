//! The frame codec: round trips, and robustness against arbitrary bytes.

use proptest::prelude::*;
use switchyard::Timestamp;
use switchyard_journal::codec::{self, HEADER_LEN, MAX_FRAME_LEN};
use switchyard_journal::segment::{scan_segment_bytes, segment_file_name};
use switchyard_journal::{
    FrameError, Journal, JournalConfig, JournalReader, ReadFilter, decode_frame, encode_frame,
    verify,
};

proptest! {
    #[test]
    fn frames_round_trip(
        index in any::<u64>(),
        seq in any::<u64>(),
        ts in any::<u64>(),
        topic in "\\PC{0,40}",
        kind in "[a-z_]{0,20}",
        payload in proptest::collection::vec(any::<u8>(), 0..600),
        prefix in proptest::collection::vec(any::<u8>(), 0..8),
    ) {
        let mut buf = prefix.clone();
        encode_frame(&mut buf, index, seq, Timestamp(ts), &topic, &kind, &payload).unwrap();
        let (r, len) = decode_frame(&buf[prefix.len()..]).unwrap();
        prop_assert_eq!(len, buf.len() - prefix.len());
        prop_assert_eq!(r.index, index);
        prop_assert_eq!(r.seq, seq);
        prop_assert_eq!(r.ts, Timestamp(ts));
        prop_assert_eq!(r.topic, topic.as_str());
        prop_assert_eq!(r.kind, kind.as_str());
        prop_assert_eq!(r.payload, payload.as_slice());
        // Every strict prefix is incomplete, never corrupt and never a panic.
        for cut in 0..len {
            let res = decode_frame(&buf[prefix.len()..prefix.len() + cut]);
            prop_assert!(matches!(res, Err(FrameError::Incomplete { .. })), "cut {}: {:?}", cut, res);
        }
    }

    #[test]
    fn any_single_bit_flip_is_detected(
        payload in proptest::collection::vec(any::<u8>(), 0..100),
        bit in any::<prop::sample::Index>(),
    ) {
        let mut buf = Vec::new();
        encode_frame(&mut buf, 1, 2, Timestamp(3), "a.b", "k", &payload).unwrap();
        let i = bit.index(buf.len() * 8);
        buf[i / 8] ^= 1 << (i % 8);
        prop_assert!(decode_frame(&buf).is_err());
    }

    #[test]
    fn a_valid_header_with_any_first_index_and_random_bytes_never_panics(
        first in prop_oneof![Just(0u64), Just(u64::MAX), Just(u64::MAX - 1), any::<u64>()],
        frames in proptest::collection::vec(0u64..4, 0..4),
        tail in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        // Frame indexes near `first` (offsets 0..4, wrapping), so that index checks and
        // increments are exercised at the edges of u64.
        let mut data = codec::encode_header(first).to_vec();
        for d in &frames {
            encode_frame(&mut data, first.wrapping_add(*d), 0, Timestamp(0), "t", "k", b"").unwrap();
        }
        data.extend_from_slice(&tail);
        for last in [true, false] {
            if let Ok(s) = scan_segment_bytes(&data, last) {
                prop_assert!(s.valid_bytes <= data.len() as u64);
                prop_assert!(s.last_index != Some(u64::MAX));
            }
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        match decode_frame(&bytes) {
            Ok((_, len)) => prop_assert!(len <= bytes.len()),
            Err(FrameError::Incomplete { needed, .. }) => prop_assert!(needed <= MAX_FRAME_LEN),
            Err(FrameError::Corrupt(_)) => {}
        }
        let _ = scan_segment_bytes(&bytes, true);
        let _ = scan_segment_bytes(&bytes, false);
    }

    #[test]
    fn a_segment_of_header_plus_random_bytes_never_panics(
        tail in proptest::collection::vec(any::<u8>(), 0..1500),
        valid_frames in 0usize..4,
        first in prop_oneof![
            4 => Just(1u64),
            1 => Just(u64::MAX),
            1 => Just(u64::MAX - 1),
            1 => Just(u64::MAX - 2),
            1 => 1..=u64::MAX,
        ],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut data = codec::encode_header(first).to_vec();
        // Frames numbered on from `first` (wrapping past u64::MAX, as a crafted file may).
        for i in 0..valid_frames {
            let index = first.wrapping_add(i as u64);
            encode_frame(&mut data, index, 0, Timestamp(0), "t", "k", b"p").unwrap();
        }
        data.extend_from_slice(&tail);
        let _ = scan_segment_bytes(&data, true);
        let _ = scan_segment_bytes(&data, false);
        std::fs::write(dir.path().join(segment_file_name(first)), &data).unwrap();
        if let Ok(r) = JournalReader::open(dir.path()) {
            for rec in r.records(ReadFilter::all()) {
                if rec.is_err() {
                    break;
                }
            }
        }
        let _ = verify(dir.path());
        // Opening for writing either recovers (keeping at least the valid frames) or
        // reports the damage.
        // Index u64::MAX is never valid, so valid frames reaching it are damage.
        let reaches_max = (first - 1).checked_add(valid_frames as u64).is_none_or(|l| l == u64::MAX);
        match Journal::open(JournalConfig::new(dir.path())) {
            Ok((j, rep)) => {
                prop_assert!(!reaches_max);
                prop_assert!(rep.last_index >= first - 1 + valid_frames as u64);
                prop_assert!(rep.next_index > rep.last_index);
                // Appending either works or, at the end of the index space, is refused.
                let _ = j.append(1, Timestamp(1), "t", "k", b"p");
                j.close().unwrap();
            }
            Err(e) => prop_assert!(e.to_string().contains("offset"), "{}", e),
        }
    }
}

#[test]
fn header_is_32_bytes_and_versioned() {
    let h = codec::encode_header(5);
    assert_eq!(h.len(), HEADER_LEN);
    assert_eq!(&h[..8], b"SWYDJRNL");
    assert_eq!(u16::from_le_bytes([h[8], h[9]]), codec::FORMAT_VERSION);
    let mut v2 = h;
    v2[8] = 2;
    assert!(matches!(
        codec::decode_header(&v2),
        Err(codec::HeaderError::UnsupportedVersion { found: 2 })
    ));
}

#[test]
fn oversized_frames_are_refused() {
    let mut buf = Vec::new();
    let big = vec![0u8; MAX_FRAME_LEN];
    assert!(encode_frame(&mut buf, 1, 1, Timestamp(1), "t", "k", &big).is_err());
    assert!(buf.is_empty());
}
