//! The on-disk byte layout: segment header and frames.
//!
//! Every integer is little-endian. See the [crate docs](crate) for the layout tables.
//!
//! [`encode_frame`] appends one frame to a `Vec<u8>`; [`decode_frame`] reads one from the
//! front of a byte slice and tells a frame that is merely cut short
//! ([`FrameError::Incomplete`]) from one that can never be valid ([`FrameError::Corrupt`]).
//! Decoding never allocates and never trusts a length before bounding it by
//! [`MAX_FRAME_LEN`].

use std::fmt;

use serde::Serialize;
use switchyard::Timestamp;

/// Magic bytes at the start of every segment file.
pub const MAGIC: [u8; 8] = *b"SWYDJRNL";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Size of the segment header in bytes.
pub const HEADER_LEN: usize = 32;
/// Size of the frame header (length + checksum) in bytes.
pub const FRAME_HEADER_LEN: usize = 8;
/// Fixed part of a frame body: index, seq, ts (3 × u64), topic and kind lengths (2 × u16).
pub const BODY_FIXED_LEN: usize = 28;
/// Smallest possible frame (empty topic, kind and payload).
pub const MIN_FRAME_LEN: usize = FRAME_HEADER_LEN + BODY_FIXED_LEN;
/// Largest frame accepted, header included (16 MiB). A length field above it is corrupt,
/// so a garbage length never makes a reader allocate or wait for gigabytes.
pub const MAX_FRAME_LEN: usize = 16 * 1024 * 1024;
/// Longest topic or kind, in bytes.
pub const MAX_NAME_LEN: usize = u16::MAX as usize;

/// One journal record, borrowed from a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// The journal's own sequence number: gapless, starting at 1, assigned by append.
    pub index: u64,
    /// The envelope's bus sequence number.
    pub seq: u64,
    /// The envelope's timestamp.
    pub ts: Timestamp,
    /// The topic the event was published on.
    pub topic: &'a str,
    /// The type tag chosen by the recorder, e.g. `"market_event"`.
    pub kind: &'a str,
    /// The serialized event (MessagePack, or JSON for kind `"control"`).
    pub payload: &'a [u8],
}

impl Record<'_> {
    /// An owned copy.
    pub fn to_owned_record(&self) -> OwnedRecord {
        OwnedRecord {
            index: self.index,
            seq: self.seq,
            ts: self.ts,
            topic: self.topic.to_owned(),
            kind: self.kind.to_owned(),
            payload: self.payload.to_vec(),
        }
    }

    /// Size of this record's frame on disk.
    pub fn frame_len(&self) -> usize {
        MIN_FRAME_LEN + self.topic.len() + self.kind.len() + self.payload.len()
    }
}

/// One journal record, owned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OwnedRecord {
    /// See [`Record::index`].
    pub index: u64,
    /// See [`Record::seq`].
    pub seq: u64,
    /// See [`Record::ts`].
    pub ts: Timestamp,
    /// See [`Record::topic`].
    pub topic: String,
    /// See [`Record::kind`].
    pub kind: String,
    /// See [`Record::payload`].
    pub payload: Vec<u8>,
}

impl OwnedRecord {
    /// Borrow as a [`Record`].
    pub fn as_record(&self) -> Record<'_> {
        Record {
            index: self.index,
            seq: self.seq,
            ts: self.ts,
            topic: &self.topic,
            kind: &self.kind,
            payload: &self.payload,
        }
    }
}

/// Why bytes are not a valid frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The bytes are a valid beginning but the frame needs `needed` bytes in all.
    #[error("incomplete frame: {needed} bytes needed, {available} available")]
    Incomplete {
        /// Bytes the whole frame needs (at least the frame header).
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The bytes can never become a valid frame.
    #[error("corrupt frame: {0}")]
    Corrupt(#[from] Corruption),
}

/// What is wrong with a corrupt frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Corruption {
    /// The length field is below the minimum or above [`MAX_FRAME_LEN`].
    #[error("impossible body length {len}")]
    BadLength {
        /// The body length read.
        len: u32,
    },
    /// The checksum does not match the bytes.
    #[error("checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    Checksum {
        /// CRC32C stored in the frame.
        stored: u32,
        /// CRC32C of the bytes.
        computed: u32,
    },
    /// The checksum matches but the body does not parse.
    #[error("malformed body: {what}")]
    Malformed {
        /// What is wrong.
        what: &'static str,
    },
    /// A well-formed frame whose index is not the next one expected.
    #[error("index out of order: expected {expected}, found {found}")]
    IndexGap {
        /// Index the position calls for.
        expected: u64,
        /// Index in the frame.
        found: u64,
    },
    /// The frame is cut short (only an error where a whole frame must be).
    #[error("truncated frame: {needed} bytes needed, {available} available")]
    Truncated {
        /// Bytes the frame needs.
        needed: usize,
        /// Bytes there are.
        available: usize,
    },
    /// A bad frame, followed further on by a valid one: damage, not a torn write.
    #[error("{cause}; a valid frame follows at byte {next_valid}, so this is not a torn tail")]
    FollowedByValid {
        /// The damage found.
        cause: Box<Corruption>,
        /// Offset of the next valid frame in the segment.
        next_valid: u64,
    },
}

impl From<FrameError> for Corruption {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::Incomplete { needed, available } => {
                Corruption::Truncated { needed, available }
            }
            FrameError::Corrupt(c) => c,
        }
    }
}

/// Why a frame could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// Topic or kind longer than [`MAX_NAME_LEN`].
    #[error("{what} is {len} bytes long, the limit is {MAX_NAME_LEN}")]
    NameTooLong {
        /// `"topic"` or `"kind"`.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// The frame would exceed [`MAX_FRAME_LEN`].
    #[error("frame of {len} bytes exceeds the limit of {MAX_FRAME_LEN}")]
    TooLarge {
        /// The frame's size.
        len: usize,
    },
    /// The payload failed to serialize.
    #[error("payload serialization failed: {0}")]
    Serialize(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// Append a frame holding `payload` verbatim to `out`.
pub fn encode_frame(
    out: &mut Vec<u8>,
    index: u64,
    seq: u64,
    ts: Timestamp,
    topic: &str,
    kind: &str,
    payload: &[u8],
) -> Result<(), EncodeError> {
    encode_frame_with(out, index, seq, ts, topic, kind, |buf| {
        buf.extend_from_slice(payload);
        Ok::<(), std::convert::Infallible>(())
    })
}

/// Append a frame to `out`, the payload written by `write_payload` straight into `out`
/// (no intermediate buffer). On any error `out` is left as it was.
///
/// If `write_payload` panics, `out` is truncated back to its length on entry (no partial
/// frame is left behind) and the panic is resumed.
pub fn encode_frame_with<E>(
    out: &mut Vec<u8>,
    index: u64,
    seq: u64,
    ts: Timestamp,
    topic: &str,
    kind: &str,
    write_payload: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<(), EncodeError>
where
    E: std::error::Error + Send + Sync + 'static,
{
    if topic.len() > MAX_NAME_LEN {
        return Err(EncodeError::NameTooLong {
            what: "topic",
            len: topic.len(),
        });
    }
    if kind.len() > MAX_NAME_LEN {
        return Err(EncodeError::NameTooLong {
            what: "kind",
            len: kind.len(),
        });
    }
    let start = out.len();
    out.reserve(MIN_FRAME_LEN + topic.len() + kind.len() + 64);
    out.extend_from_slice(&[0u8; FRAME_HEADER_LEN]);
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&ts.as_nanos().to_le_bytes());
    out.extend_from_slice(&(topic.len() as u16).to_le_bytes());
    out.extend_from_slice(&(kind.len() as u16).to_le_bytes());
    out.extend_from_slice(topic.as_bytes());
    out.extend_from_slice(kind.as_bytes());
    // `AssertUnwindSafe`: on a panic the only state touched, `out`, is restored below.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| write_payload(&mut *out))) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            out.truncate(start);
            return Err(EncodeError::Serialize(Box::new(e)));
        }
        Err(panic) => {
            out.truncate(start);
            std::panic::resume_unwind(panic);
        }
    }
    let len = out.len() - start;
    if len > MAX_FRAME_LEN {
        out.truncate(start);
        return Err(EncodeError::TooLarge { len });
    }
    let body_len = (len - FRAME_HEADER_LEN) as u32;
    let frame = &mut out[start..];
    frame[0..4].copy_from_slice(&body_len.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&frame[0..4]), &frame[FRAME_HEADER_LEN..]);
    frame[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Append a frame whose payload is `value` as MessagePack, serialized straight into
/// `out`.
pub fn encode_frame_serialized<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    index: u64,
    seq: u64,
    ts: Timestamp,
    topic: &str,
    kind: &str,
    value: &T,
) -> Result<(), EncodeError> {
    encode_frame_with(out, index, seq, ts, topic, kind, |buf| {
        write_payload(buf, value)
    })
}

/// Why a payload did not serialize or deserialize.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// The value did not serialize.
    #[error("MessagePack encoding: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    /// The bytes are not a MessagePack value of the expected type.
    #[error("MessagePack decoding: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
}

/// Serialize `value` as a journal payload (MessagePack, structs as arrays) onto the end
/// of `buf`: no intermediate allocation.
#[inline]
pub fn write_payload<T: Serialize + ?Sized>(
    buf: &mut Vec<u8>,
    value: &T,
) -> Result<(), PayloadError> {
    rmp_serde::encode::write(buf, value).map_err(PayloadError::from)
}

/// Serialize a payload as the journal does, e.g. to compare with recorded payloads byte
/// for byte.
pub fn encode_payload<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, PayloadError> {
    let mut v = Vec::new();
    write_payload(&mut v, value)?;
    Ok(v)
}

/// Deserialize a payload written by [`Journal::append_serialized`](crate::Journal::append_serialized)
/// or a [`Recorder`](crate::Recorder).
pub fn decode_payload<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, PayloadError> {
    rmp_serde::from_slice(bytes).map_err(PayloadError::from)
}

/// Where the parts of a validated frame lie, relative to the frame's first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameMeta {
    pub len: usize,
    pub index: u64,
    pub seq: u64,
    pub ts: u64,
    pub topic_len: usize,
    pub kind_len: usize,
}

impl FrameMeta {
    /// The record, from the frame's bytes (`buf` starts at the frame).
    pub fn record<'a>(&self, buf: &'a [u8]) -> Record<'a> {
        let t0 = MIN_FRAME_LEN;
        let k0 = t0 + self.topic_len;
        let p0 = k0 + self.kind_len;
        Record {
            index: self.index,
            seq: self.seq,
            ts: Timestamp(self.ts),
            // Validated by `check_frame`; the fallback is unreachable.
            topic: std::str::from_utf8(&buf[t0..k0]).unwrap_or_default(),
            kind: std::str::from_utf8(&buf[k0..p0]).unwrap_or_default(),
            payload: &buf[p0..self.len],
        }
    }

    /// The topic bytes (validated UTF-8).
    pub fn topic<'a>(&self, buf: &'a [u8]) -> &'a str {
        std::str::from_utf8(&buf[MIN_FRAME_LEN..MIN_FRAME_LEN + self.topic_len]).unwrap_or_default()
    }
}

#[inline]
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

#[inline]
fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

#[inline]
fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

/// The total frame length announced by the frame header at the front of `buf`, if the
/// header is there and the length is possible.
#[inline]
pub(crate) fn announced_len(buf: &[u8]) -> Option<usize> {
    if buf.len() < FRAME_HEADER_LEN {
        return None;
    }
    let body = u32_at(buf, 0) as usize;
    let total = FRAME_HEADER_LEN + body;
    (body >= BODY_FIXED_LEN && total <= MAX_FRAME_LEN).then_some(total)
}

/// The index field of a complete frame at the front of `buf` (no checks).
#[inline]
pub(crate) fn index_of(buf: &[u8]) -> u64 {
    u64_at(buf, FRAME_HEADER_LEN)
}

/// Validate the frame at the front of `buf`.
pub(crate) fn check_frame(buf: &[u8]) -> Result<FrameMeta, FrameError> {
    if buf.len() < FRAME_HEADER_LEN {
        return Err(FrameError::Incomplete {
            needed: FRAME_HEADER_LEN,
            available: buf.len(),
        });
    }
    let body_len = u32_at(buf, 0);
    let total = FRAME_HEADER_LEN + body_len as usize;
    if (body_len as usize) < BODY_FIXED_LEN || total > MAX_FRAME_LEN {
        return Err(Corruption::BadLength { len: body_len }.into());
    }
    if buf.len() < total {
        return Err(FrameError::Incomplete {
            needed: total,
            available: buf.len(),
        });
    }
    let stored = u32_at(buf, 4);
    let computed = crc32c::crc32c_append(crc32c::crc32c(&buf[0..4]), &buf[FRAME_HEADER_LEN..total]);
    if stored != computed {
        return Err(Corruption::Checksum { stored, computed }.into());
    }
    let topic_len = u16_at(buf, 32) as usize;
    let kind_len = u16_at(buf, 34) as usize;
    if MIN_FRAME_LEN + topic_len + kind_len > total {
        return Err(Corruption::Malformed {
            what: "topic and kind lengths exceed the frame",
        }
        .into());
    }
    let k0 = MIN_FRAME_LEN + topic_len;
    if std::str::from_utf8(&buf[MIN_FRAME_LEN..k0]).is_err() {
        return Err(Corruption::Malformed {
            what: "topic is not UTF-8",
        }
        .into());
    }
    if std::str::from_utf8(&buf[k0..k0 + kind_len]).is_err() {
        return Err(Corruption::Malformed {
            what: "kind is not UTF-8",
        }
        .into());
    }
    Ok(FrameMeta {
        len: total,
        index: u64_at(buf, 8),
        seq: u64_at(buf, 16),
        ts: u64_at(buf, 24),
        topic_len,
        kind_len,
    })
}

/// Decode the frame at the front of `buf`: the record (borrowing `buf`) and the frame's
/// length in bytes. Verifies the checksum.
pub fn decode_frame(buf: &[u8]) -> Result<(Record<'_>, usize), FrameError> {
    let meta = check_frame(buf)?;
    Ok((meta.record(buf), meta.len))
}

/// The segment file header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SegmentHeader {
    /// Format version.
    pub version: u16,
    /// Index of the segment's first record (also in the file name).
    pub first_index: u64,
}

/// Why a segment header is not valid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HeaderError {
    /// Fewer than [`HEADER_LEN`] bytes.
    #[error("header cut short ({len} of {HEADER_LEN} bytes)")]
    Short {
        /// Bytes present.
        len: usize,
    },
    /// Not a Switchyard journal segment.
    #[error("bad magic bytes {found:02x?}")]
    BadMagic {
        /// The first eight bytes.
        found: [u8; 8],
    },
    /// Written by another format version.
    #[error("unsupported format version {found} (this build reads version {FORMAT_VERSION})")]
    UnsupportedVersion {
        /// Version in the file.
        found: u16,
    },
    /// The header's checksum does not match.
    #[error("header checksum mismatch")]
    Checksum,
    /// The header disagrees with the file name.
    #[error("header says first index {header}, file name says {name}")]
    NameMismatch {
        /// From the header.
        header: u64,
        /// From the file name.
        name: u64,
    },
}

/// Encode a segment header.
pub fn encode_header(first_index: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[10..12].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
    h[16..24].copy_from_slice(&first_index.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..28]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Decode a segment header from the front of `buf`.
pub fn decode_header(buf: &[u8]) -> Result<SegmentHeader, HeaderError> {
    if buf.len() < HEADER_LEN {
        return Err(HeaderError::Short { len: buf.len() });
    }
    let mut magic = [0u8; 8];
    magic.copy_from_slice(&buf[0..8]);
    if magic != MAGIC {
        return Err(HeaderError::BadMagic { found: magic });
    }
    let version = u16_at(buf, 8);
    if version != FORMAT_VERSION {
        return Err(HeaderError::UnsupportedVersion { found: version });
    }
    if crc32c::crc32c(&buf[0..28]) != u32_at(buf, 28) {
        return Err(HeaderError::Checksum);
    }
    Ok(SegmentHeader {
        version,
        first_index: u64_at(buf, 16),
    })
}

impl fmt::Display for Record<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#{} seq={} ts={} topic={} kind={} payload={}B",
            self.index,
            self.seq,
            self.ts,
            self.topic,
            self.kind,
            self.payload.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_layout_is_as_documented() {
        let mut v = Vec::new();
        encode_frame(&mut v, 7, 9, Timestamp(11), "a.b", "k", b"xyz").unwrap();
        assert_eq!(v.len(), MIN_FRAME_LEN + 3 + 1 + 3);
        assert_eq!(u32_at(&v, 0) as usize, v.len() - FRAME_HEADER_LEN);
        assert_eq!(u64_at(&v, 8), 7);
        assert_eq!(u64_at(&v, 16), 9);
        assert_eq!(u64_at(&v, 24), 11);
        assert_eq!(&v[36..39], b"a.b");
        let (r, n) = decode_frame(&v).unwrap();
        assert_eq!(n, v.len());
        assert_eq!(r.payload, b"xyz");
        assert_eq!(r.frame_len(), n);
    }

    #[test]
    fn header_round_trips() {
        let h = encode_header(42);
        assert_eq!(
            decode_header(&h).unwrap(),
            SegmentHeader {
                version: FORMAT_VERSION,
                first_index: 42
            }
        );
        let mut bad = h;
        bad[20] ^= 1;
        assert_eq!(decode_header(&bad), Err(HeaderError::Checksum));
        assert!(matches!(
            decode_header(&h[..10]),
            Err(HeaderError::Short { len: 10 })
        ));
    }

    #[test]
    fn garbage_length_is_corrupt_not_incomplete() {
        let mut v = vec![0xff; 8];
        assert!(matches!(
            decode_frame(&v),
            Err(FrameError::Corrupt(Corruption::BadLength { .. }))
        ));
        v[0..4].copy_from_slice(&0u32.to_le_bytes());
        assert!(matches!(
            decode_frame(&v),
            Err(FrameError::Corrupt(Corruption::BadLength { len: 0 }))
        ));
    }

    #[test]
    fn serialized_payload_goes_straight_into_the_buffer() {
        let mut v = b"prefix".to_vec();
        encode_frame_serialized(&mut v, 1, 2, Timestamp(3), "t", "k", &(5u32, "hi")).unwrap();
        let (r, _) = decode_frame(&v[6..]).unwrap();
        let back: (u32, String) = decode_payload(r.payload).unwrap();
        assert_eq!(back, (5, "hi".to_owned()));
    }
}
