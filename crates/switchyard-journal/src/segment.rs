//! Segment files: naming, listing, and the scanner that reads frames from one segment
//! in large chunks, decoding them in place, and applies the tail rule.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;
use switchyard::Timestamp;

use crate::codec::{
    self, Corruption, FrameError, FrameMeta, HEADER_LEN, HeaderError, MIN_FRAME_LEN, Record,
};
use crate::error::JournalError;
use crate::storage::{FsStorage, Storage};

/// File name extension of segment files.
pub const SEGMENT_EXT: &str = "sy-journal";

/// Bytes the scanner reads at a time.
const CHUNK: usize = 1 << 20;

/// The file name of the segment whose first record has index `first_index`:
/// 20 zero-padded digits, so that names sort like indexes.
pub fn segment_file_name(first_index: u64) -> String {
    format!("{first_index:020}.{SEGMENT_EXT}")
}

/// The first index encoded in a segment file name, if `name` is one (indexes start at 1).
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(SEGMENT_EXT)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok().filter(|&i| i > 0)
}

/// The segment files in `dir`, ordered by first index. Other files are ignored.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, JournalError> {
    list_segments_in(&FsStorage, dir)
}

/// [`list_segments`] through `storage`.
pub(crate) fn list_segments_in(
    storage: &dyn Storage,
    dir: &Path,
) -> Result<Vec<(u64, PathBuf)>, JournalError> {
    let names = storage
        .list(dir)
        .map_err(JournalError::io("listing", dir))?;
    let mut out: Vec<(u64, PathBuf)> = names
        .iter()
        .filter_map(|n| Some((parse_segment_name(n.to_str()?)?, dir.join(n))))
        .collect();
    out.sort();
    Ok(out)
}

/// A torn or corrupt tail at the end of the last segment: the bytes from `offset` to the
/// end of the file do not hold one whole valid frame. See the crate docs for the rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TornTail {
    /// The segment file.
    pub segment: PathBuf,
    /// Offset of the first byte that is not part of a valid frame.
    pub offset: u64,
    /// Bytes from `offset` to the end of the file.
    pub bytes: u64,
    /// Why the bytes at `offset` are not a valid frame.
    pub reason: String,
    /// Offset of a valid frame after the damage, if there is one: the tail is not a torn
    /// write but damage (a hole left by a power loss, or real damage). Only the writer's
    /// recovery cuts such a tail, and only after copying it to [`TornTail::kept_in`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_valid: Option<u64>,
    /// The side file the cut bytes were copied to (fsynced) before the cut, when valid
    /// frames were among them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_in: Option<PathBuf>,
}

impl std::fmt::Display for TornTail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "torn tail in {} at byte offset {}: {} bytes ({})",
            self.segment.display(),
            self.offset,
            self.bytes,
            self.reason
        )?;
        if let Some(q) = self.next_valid {
            write!(f, "; a valid frame follows at byte {q}")?;
        }
        if let Some(side) = &self.kept_in {
            write!(f, "; the cut bytes are kept in {}", side.display())?;
        }
        Ok(())
    }
}

/// What the scanner found next.
pub(crate) enum Step {
    /// A valid frame at `pos` in the scanner's buffer, `offset` in the file.
    Frame {
        meta: FrameMeta,
        pos: usize,
        offset: u64,
    },
    /// The end of the segment.
    End,
    /// A torn tail (last segment only); nothing follows.
    Tail(TornTail),
}

/// Reads the frames of one segment.
pub(crate) struct Scanner<R> {
    src: R,
    path: PathBuf,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// File offset of `buf[0]`.
    buf_off: u64,
    eof: bool,
    done: bool,
    last: bool,
    /// Writer recovery: in the last segment, damage followed by valid frames is a tail
    /// too (to be cut and kept aside), not an error.
    cut_damage: bool,
    first_index: u64,
    next_index: u64,
}

/// The result of opening a segment.
pub(crate) enum Opened<R> {
    /// Header valid; frames follow.
    Ready(Scanner<R>),
    /// The last segment's header is cut short (a crash while creating it).
    TornHeader(TornTail),
}

impl Scanner<File> {
    /// Open a segment file. `last` selects the tail rule (only the last segment may have
    /// a torn tail).
    pub fn open(path: &Path, name_index: u64, last: bool) -> Result<Opened<File>, JournalError> {
        let file = File::open(path).map_err(JournalError::io("opening", path))?;
        Scanner::start(file, path.to_path_buf(), Some(name_index), last)
    }
}

impl<R: Read> Scanner<R> {
    pub fn start(
        mut src: R,
        path: PathBuf,
        name_index: Option<u64>,
        last: bool,
    ) -> Result<Opened<R>, JournalError> {
        let mut h = [0u8; HEADER_LEN];
        let mut got = 0;
        while got < HEADER_LEN {
            match src.read(&mut h[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(JournalError::io("reading", path)(e)),
            }
        }
        if got < HEADER_LEN && last {
            return Ok(Opened::TornHeader(TornTail {
                segment: path,
                offset: 0,
                bytes: got as u64,
                reason: HeaderError::Short { len: got }.to_string(),
                next_valid: None,
                kept_in: None,
            }));
        }
        let header = codec::decode_header(&h[..got]).map_err(|reason| JournalError::BadHeader {
            path: path.clone(),
            reason,
        })?;
        if let Some(name) = name_index
            && name != header.first_index
        {
            return Err(JournalError::BadHeader {
                path,
                reason: HeaderError::NameMismatch {
                    header: header.first_index,
                    name,
                },
            });
        }
        Ok(Opened::Ready(Scanner {
            src,
            path,
            buf: Vec::new(),
            start: 0,
            end: 0,
            buf_off: HEADER_LEN as u64,
            eof: false,
            done: false,
            last,
            cut_damage: false,
            first_index: header.first_index,
            next_index: header.first_index,
        }))
    }

    /// Treat damage followed by valid frames in the last segment as a tail to cut (the
    /// writer's recovery), instead of an error.
    pub fn cut_damage(mut self, yes: bool) -> Self {
        self.cut_damage = yes;
        self
    }

    /// The segment's first index (from its header).
    pub fn first_index(&self) -> u64 {
        self.first_index
    }

    /// The index the next frame must have.
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// The record of a frame returned by [`Scanner::next`].
    #[inline]
    pub fn record(&self, meta: &FrameMeta, pos: usize) -> Record<'_> {
        meta.record(&self.buf[pos..])
    }

    /// The topic of a frame returned by [`Scanner::next`].
    #[inline]
    pub fn topic(&self, meta: &FrameMeta, pos: usize) -> &str {
        meta.topic(&self.buf[pos..])
    }

    /// The next frame, the end, or the torn tail.
    pub fn next(&mut self) -> Result<Step, JournalError> {
        loop {
            if self.done {
                return Ok(Step::End);
            }
            let avail = &self.buf[self.start..self.end];
            if avail.is_empty() && self.eof {
                self.done = true;
                return Ok(Step::End);
            }
            match codec::check_frame(avail) {
                Ok(meta) => {
                    let pos = self.start;
                    let offset = self.buf_off + pos as u64;
                    if meta.index != self.next_index {
                        self.done = true;
                        return Err(JournalError::Corrupt {
                            path: self.path.clone(),
                            offset,
                            reason: Corruption::IndexGap {
                                expected: self.next_index,
                                found: meta.index,
                            },
                        });
                    }
                    // Index `u64::MAX` would leave no index for the record after it (a
                    // crafted header or frame, never written by a journal): damage.
                    let Some(after) = self.next_index.checked_add(1) else {
                        self.done = true;
                        return Err(JournalError::Corrupt {
                            path: self.path.clone(),
                            offset,
                            reason: Corruption::Malformed {
                                what: "record index u64::MAX leaves no room for a next index",
                            },
                        });
                    };
                    self.start += meta.len;
                    self.next_index = after;
                    return Ok(Step::Frame { meta, pos, offset });
                }
                Err(FrameError::Incomplete { needed, .. }) if !self.eof => self.fill(needed)?,
                Err(e) => return self.bad(e.into()),
            }
        }
    }

    /// Make `needed` bytes available from `start`, or reach the end of the file.
    fn fill(&mut self, needed: usize) -> Result<(), JournalError> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.buf_off += self.start as u64;
            self.end -= self.start;
            self.start = 0;
        }
        let want = needed.max(CHUNK);
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        while self.end < needed {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.done = true;
                    return Err(JournalError::io("reading", &self.path)(e));
                }
            }
        }
        Ok(())
    }

    /// A frame that is not valid at `start`: an error, or (last segment, nothing valid
    /// after it) a torn tail.
    fn bad(&mut self, cause: Corruption) -> Result<Step, JournalError> {
        self.done = true;
        let offset = self.buf_off + self.start as u64;
        if !self.last {
            return Err(JournalError::Corrupt {
                path: self.path.clone(),
                offset,
                reason: cause,
            });
        }
        let mut rest = self.buf[self.start..self.end].to_vec();
        if !self.eof {
            self.src
                .read_to_end(&mut rest)
                .map_err(JournalError::io("reading", &self.path))?;
        }
        let next_valid = find_valid_frame(&rest, 1, self.next_index).map(|q| offset + q as u64);
        if let Some(next_valid) = next_valid
            && !self.cut_damage
        {
            return Err(JournalError::Corrupt {
                path: self.path.clone(),
                offset,
                reason: Corruption::FollowedByValid {
                    cause: Box::new(cause),
                    next_valid,
                },
            });
        }
        Ok(Step::Tail(TornTail {
            segment: self.path.clone(),
            offset,
            bytes: rest.len() as u64,
            reason: cause.to_string(),
            next_valid,
            kept_in: None,
        }))
    }
}

/// The first position at or after `from` in `data` where a valid frame starts whose index
/// could follow `next_index` (from `next_index` up to as many frames as fit). Cheap checks
/// (length, index) come before the checksum, so scanning garbage stays linear in practice.
pub(crate) fn find_valid_frame(data: &[u8], from: usize, next_index: u64) -> Option<usize> {
    let hi = next_index.saturating_add((data.len() / MIN_FRAME_LEN) as u64 + 1);
    (from..data.len().saturating_sub(MIN_FRAME_LEN - 1)).find(|&q| {
        let b = &data[q..];
        match codec::announced_len(b) {
            Some(len) if len <= b.len() => {
                let idx = codec::index_of(b);
                idx >= next_index && idx <= hi && codec::check_frame(b).is_ok()
            }
            _ => false,
        }
    })
}

/// The index after `last`, for segment chaining. The scanner never yields a record with
/// index `u64::MAX`, so this does not saturate in practice.
pub(crate) fn index_after(last: u64) -> u64 {
    last.saturating_add(1)
}

/// What a scan of one segment found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SegmentSummary {
    /// The file.
    pub path: PathBuf,
    /// Index of the first record (from the header; for an empty segment, the index its
    /// first record will have).
    pub first_index: u64,
    /// Index of the last valid record, if any.
    pub last_index: Option<u64>,
    /// Valid records.
    pub records: u64,
    /// File size in bytes.
    pub bytes: u64,
    /// Bytes up to the end of the last valid frame (header included).
    pub valid_bytes: u64,
    /// Timestamp of the first record.
    pub first_ts: Option<Timestamp>,
    /// Timestamp of the last record.
    pub last_ts: Option<Timestamp>,
    /// Smallest envelope sequence number.
    pub min_seq: Option<u64>,
    /// Largest envelope sequence number.
    pub max_seq: Option<u64>,
    /// A torn tail (last segment only).
    pub torn_tail: Option<TornTail>,
    /// The header is cut short (last segment only): the segment holds nothing.
    pub torn_header: bool,
}

impl SegmentSummary {
    fn add(&mut self, r: &Record<'_>, end: u64) {
        if self.records == 0 {
            self.first_ts = Some(r.ts);
        }
        self.records += 1;
        self.last_index = Some(r.index);
        self.last_ts = Some(r.ts);
        self.min_seq = Some(self.min_seq.map_or(r.seq, |s| s.min(r.seq)));
        self.max_seq = Some(self.max_seq.map_or(r.seq, |s| s.max(r.seq)));
        self.valid_bytes = end;
    }
}

/// Scan a whole segment from `src`, calling `visit` for each valid record.
pub(crate) fn scan<R: Read>(
    src: R,
    path: PathBuf,
    name_index: Option<u64>,
    last: bool,
    bytes: u64,
    mut visit: impl FnMut(&Record<'_>, u64),
) -> Result<SegmentSummary, JournalError> {
    scan_with(src, path, name_index, last, false, bytes, &mut visit)
}

/// [`scan`], with `cut_damage` as [`Scanner::cut_damage`].
fn scan_with<R: Read>(
    src: R,
    path: PathBuf,
    name_index: Option<u64>,
    last: bool,
    cut_damage: bool,
    bytes: u64,
    visit: &mut dyn FnMut(&Record<'_>, u64),
) -> Result<SegmentSummary, JournalError> {
    let mut sum = SegmentSummary {
        path: path.clone(),
        bytes,
        ..Default::default()
    };
    let mut sc = match Scanner::start(src, path, name_index, last)? {
        Opened::Ready(sc) => sc.cut_damage(cut_damage),
        Opened::TornHeader(t) => {
            sum.first_index = name_index.unwrap_or(0);
            sum.torn_header = true;
            sum.torn_tail = Some(t);
            return Ok(sum);
        }
    };
    sum.first_index = sc.first_index();
    sum.valid_bytes = HEADER_LEN as u64;
    loop {
        match sc.next()? {
            Step::Frame { meta, pos, offset } => {
                let r = sc.record(&meta, pos);
                sum.add(&r, offset + meta.len as u64);
                visit(&r, offset);
            }
            Step::End => return Ok(sum),
            Step::Tail(t) => {
                sum.torn_tail = Some(t);
                return Ok(sum);
            }
        }
    }
}

/// Scan one segment file, calling `visit` with each valid record and its offset.
pub(crate) fn scan_file(
    path: &Path,
    name_index: u64,
    last: bool,
    visit: impl FnMut(&Record<'_>, u64),
) -> Result<SegmentSummary, JournalError> {
    let file = File::open(path).map_err(JournalError::io("opening", path))?;
    let bytes = file
        .metadata()
        .map_err(JournalError::io("reading metadata of", path))?
        .len();
    scan(
        file,
        path.to_path_buf(),
        Some(name_index),
        last,
        bytes,
        visit,
    )
}

/// [`scan_file`] through `storage` (the writer's recovery).
pub(crate) fn scan_stored(
    storage: &dyn Storage,
    path: &Path,
    name_index: u64,
    last: bool,
    visit: impl FnMut(&Record<'_>, u64),
) -> Result<SegmentSummary, JournalError> {
    let (src, bytes) = storage
        .open_read(path)
        .map_err(JournalError::io("opening", path))?;
    scan(
        src,
        path.to_path_buf(),
        Some(name_index),
        last,
        bytes,
        visit,
    )
}

/// Scan the last segment through `storage` for the writer's recovery: damage followed by
/// valid frames is reported as a tail to cut (with [`TornTail::next_valid`] set), not
/// as an error.
pub(crate) fn scan_stored_for_recovery(
    storage: &dyn Storage,
    path: &Path,
    name_index: u64,
    mut visit: impl FnMut(&Record<'_>, u64),
) -> Result<SegmentSummary, JournalError> {
    let (src, bytes) = storage
        .open_read(path)
        .map_err(JournalError::io("opening", path))?;
    scan_with(
        src,
        path.to_path_buf(),
        Some(name_index),
        true,
        true,
        bytes,
        &mut visit,
    )
}

/// Scan a segment held in memory (header included), as the last segment when `last`.
/// For tools and fuzzing: never panics, whatever the bytes.
pub fn scan_segment_bytes(bytes: &[u8], last: bool) -> Result<SegmentSummary, JournalError> {
    scan(
        bytes,
        PathBuf::from("<memory>"),
        None,
        last,
        bytes.len() as u64,
        |_, _| {},
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_like_indexes() {
        assert_eq!(segment_file_name(1), "00000000000000000001.sy-journal");
        assert_eq!(
            parse_segment_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
        assert_eq!(parse_segment_name("1.sy-journal"), None);
        assert_eq!(parse_segment_name("0000000000000000000a.sy-journal"), None);
        assert_eq!(parse_segment_name("00000000000000000001.log"), None);
        assert_eq!(parse_segment_name(&segment_file_name(0)), None);
    }

    /// A segment whose header says `first`, holding `n` frames of `payload` bytes each,
    /// and the offset of every frame.
    fn segment(first: u64, n: u64, payload: usize) -> (Vec<u8>, Vec<u64>) {
        let mut data = codec::encode_header(first).to_vec();
        let mut offsets = Vec::new();
        for i in first..first + n {
            offsets.push(data.len() as u64);
            let body = vec![i as u8; payload];
            codec::encode_frame(&mut data, i, 100 + i, Timestamp(10 * i), "a.b", "k", &body)
                .unwrap();
        }
        (data, offsets)
    }

    /// Scan `src` as segment `first` (name and header agree), collecting each visited
    /// record's index and offset.
    fn scan_all<R: Read>(
        src: R,
        first: u64,
        bytes: u64,
    ) -> (Result<SegmentSummary, JournalError>, Vec<(u64, u64)>) {
        let mut seen = Vec::new();
        let path = PathBuf::from(segment_file_name(first));
        let sum = scan(src, path, Some(first), true, bytes, |r, off| {
            seen.push((r.index, off))
        });
        (sum, seen)
    }

    /// Hands out at most `step` bytes per read, with an `Interrupted` error before each
    /// read, and fails once with a real error when it reaches `fail_at`.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        step: usize,
        interrupt: bool,
        fail_at: Option<usize>,
    }

    impl Trickle {
        fn new(data: Vec<u8>, step: usize) -> Self {
            Trickle {
                data,
                pos: 0,
                step,
                interrupt: false,
                fail_at: None,
            }
        }
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.interrupt = !self.interrupt;
            if self.interrupt {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let mut end = self.data.len().min(self.pos + self.step);
            if let Some(at) = self.fail_at {
                if self.pos == at {
                    self.fail_at = None;
                    return Err(io::Error::other("disk on fire"));
                }
                if self.pos < at {
                    end = end.min(at);
                }
            }
            let n = buf.len().min(end - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    fn check_whole(sum: &SegmentSummary, data: &[u8], first: u64, n: u64) {
        assert_eq!(sum.path, PathBuf::from(segment_file_name(first)));
        assert_eq!(sum.first_index, first);
        assert_eq!(sum.records, n);
        assert_eq!(sum.last_index, Some(first + n - 1));
        assert_eq!(sum.valid_bytes, data.len() as u64);
        assert_eq!(sum.bytes, data.len() as u64);
        assert_eq!(sum.first_ts, Some(Timestamp(10 * first)));
        assert_eq!(sum.last_ts, Some(Timestamp(10 * (first + n - 1))));
        assert_eq!(
            (sum.min_seq, sum.max_seq),
            (Some(100 + first), Some(100 + first + n - 1))
        );
        assert_eq!(sum.torn_tail, None);
        assert!(!sum.torn_header);
    }

    #[test]
    fn short_and_interrupted_reads_scan_like_one_read() {
        let (data, offsets) = segment(7, 20, 50);
        let (sum, seen) = scan_all(Trickle::new(data.clone(), 5), 7, data.len() as u64);
        check_whole(&sum.unwrap(), &data, 7, 20);
        let want: Vec<(u64, u64)> = (7..27).zip(offsets).collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn a_segment_larger_than_the_read_chunk_is_read_whole() {
        // Frames of ~4 KiB straddle the 1 MiB chunk boundaries.
        let (data, offsets) = segment(1, 300, 4_000);
        assert!(data.len() > CHUNK + CHUNK / 8);
        let (sum, seen) = scan_all(&data[..], 1, data.len() as u64);
        check_whole(&sum.unwrap(), &data, 1, 300);
        let want: Vec<(u64, u64)> = (1..301).zip(offsets).collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn a_frame_larger_than_the_read_chunk_and_the_frames_after_it_are_read() {
        let mut data = codec::encode_header(1).to_vec();
        let mut offsets = Vec::new();
        for (i, len) in [(1u64, 10), (2, CHUNK + CHUNK / 2), (3, 10), (4, 10)] {
            offsets.push(data.len() as u64);
            codec::encode_frame(&mut data, i, i, Timestamp(i), "a.b", "k", &vec![7; len]).unwrap();
        }
        let (sum, seen) = scan_all(&data[..], 1, data.len() as u64);
        let sum = sum.unwrap();
        assert_eq!((sum.records, sum.valid_bytes), (4, data.len() as u64));
        assert_eq!(sum.torn_tail, None);
        let want: Vec<(u64, u64)> = (1..5).zip(offsets).collect();
        assert_eq!(seen, want);
    }

    /// Counts the reads made through it.
    struct Counting<'a> {
        data: &'a [u8],
        reads: usize,
    }

    impl Read for Counting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.reads += 1;
            self.data.read(buf)
        }
    }

    #[test]
    fn a_segment_is_read_in_large_chunks_not_a_read_per_frame() {
        let (data, _) = segment(1, 1_000, 20);
        assert!(data.len() < CHUNK);
        let mut src = Counting {
            data: &data,
            reads: 0,
        };
        let sum = scan(&mut src, PathBuf::from("x"), None, true, 0, |_, _| {}).unwrap();
        assert_eq!(sum.records, 1_000);
        // The header, then the whole segment at once, then the end of the file.
        assert!(src.reads <= 3, "{} reads for 1000 frames", src.reads);
    }

    #[test]
    fn a_read_error_fails_the_scan_in_the_header_and_in_the_frames() {
        let (data, offsets) = segment(1, 3, 10);
        for at in [10, offsets[1] as usize + 3] {
            let mut src = Trickle::new(data.clone(), 1_000);
            src.fail_at = Some(at);
            let (sum, _) = scan_all(src, 1, data.len() as u64);
            match sum {
                Err(JournalError::Io { op, source, .. }) => {
                    assert_eq!(op, "reading");
                    assert_eq!(source.to_string(), "disk on fire");
                }
                other => panic!("failing at byte {at}: expected an I/O error, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_header_that_disagrees_with_the_file_name_is_refused() {
        let (data, _) = segment(5, 1, 10);
        let scan_as = |name: Option<u64>| {
            scan(
                &data[..],
                PathBuf::from("x"),
                name,
                true,
                data.len() as u64,
                |_, _| {},
            )
        };
        match scan_as(Some(6)) {
            Err(JournalError::BadHeader {
                reason: HeaderError::NameMismatch { header, name },
                ..
            }) => assert_eq!((header, name), (5, 6)),
            other => panic!("expected a name mismatch, got {other:?}"),
        }
        assert_eq!(scan_as(Some(5)).unwrap().records, 1);
        assert_eq!(scan_as(None).unwrap().first_index, 5);
    }

    #[test]
    fn a_short_header_is_a_torn_tail_only_in_the_last_segment() {
        let (data, _) = segment(1, 0, 0);
        let short = &data[..HEADER_LEN - 1];
        let sum = scan_segment_bytes(short, true).unwrap();
        assert!(sum.torn_header);
        let t = sum.torn_tail.unwrap();
        assert_eq!((t.offset, t.bytes), (0, HEADER_LEN as u64 - 1));
        assert!(matches!(
            scan_segment_bytes(short, false),
            Err(JournalError::BadHeader { .. })
        ));
        let whole = scan_segment_bytes(&data, true).unwrap();
        assert!(!whole.torn_header);
        assert_eq!((whole.records, whole.valid_bytes), (0, HEADER_LEN as u64));
    }

    fn frame(index: u64, topic: &str, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        codec::encode_frame(&mut out, index, 1, Timestamp(1), topic, "", payload).unwrap();
        out
    }

    fn followed_by_valid(r: Result<SegmentSummary, JournalError>) -> Option<(u64, u64)> {
        match r {
            Err(JournalError::Corrupt {
                offset,
                reason: Corruption::FollowedByValid { next_valid, .. },
                ..
            }) => Some((offset, next_valid)),
            Ok(sum) => {
                let t = sum
                    .torn_tail
                    .expect("damage must show as an error or a tail");
                assert_eq!(t.next_valid, None);
                None
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }

    #[test]
    fn damage_is_told_from_a_torn_tail_by_a_valid_frame_whose_index_could_follow() {
        let (good, _) = segment(1, 3, 10);
        let bad_at = good.len() as u64;
        let garbage = [0xFFu8; 100];
        let with_next = |f: &[u8]| {
            let mut data = good.clone();
            data.extend_from_slice(&garbage);
            data.extend_from_slice(f);
            scan_segment_bytes(&data, true)
        };
        let flen = frame(0, "a.b", b"p").len();
        // As many frames as the damaged bytes could hold may be missing: index 4 (the
        // next) up to 4 + (bytes after the damage) / MIN_FRAME_LEN + 1.
        let top = 4 + ((garbage.len() + flen) / MIN_FRAME_LEN) as u64 + 1;
        let next = bad_at + garbage.len() as u64;
        for index in [4, top] {
            assert_eq!(
                followed_by_valid(with_next(&frame(index, "a.b", b"p"))),
                Some((bad_at, next)),
                "index {index}"
            );
        }
        // A frame past that range, or one the segment already holds, is stale bytes: a
        // torn tail.
        for index in [top + 1, 3, 1] {
            assert_eq!(
                followed_by_valid(with_next(&frame(index, "a.b", b"p"))),
                None,
                "index {index}"
            );
        }
        // The smallest possible frame, at the very end, counts too.
        let tiny = frame(4, "", b"");
        assert_eq!(tiny.len(), MIN_FRAME_LEN);
        let mut data = good.clone();
        data.extend_from_slice(&[0xFF; 5]);
        data.extend_from_slice(&tiny);
        assert_eq!(
            followed_by_valid(scan_segment_bytes(&data, true)),
            Some((bad_at, bad_at + 5))
        );
    }

    #[test]
    fn damage_in_a_large_last_segment_finds_a_valid_frame_past_the_read_chunk() {
        let (mut data, offsets) = segment(1, 300, 4_000);
        // Frames 3 to 280 are wiped: the first valid one after them lies past the first
        // chunk the scanner has read.
        let (from, to) = (offsets[2] as usize, offsets[280] as usize);
        assert!(to > CHUNK);
        data[from..to].fill(0);
        let bytes = data.len() as u64;
        assert_eq!(
            followed_by_valid(scan_segment_bytes(&data, true)),
            Some((offsets[2], offsets[280]))
        );
        // The writer's recovery: a tail to cut, holding everything from the damage on.
        let path = PathBuf::from(segment_file_name(1));
        let sum = scan_with(&data[..], path, Some(1), true, true, bytes, &mut |_, _| {}).unwrap();
        assert_eq!((sum.records, sum.valid_bytes), (2, offsets[2]));
        let t = sum.torn_tail.unwrap();
        assert_eq!(
            (t.offset, t.bytes, t.next_valid),
            (offsets[2], bytes - offsets[2], Some(offsets[280]))
        );
        // Not the last segment: an error whatever follows.
        assert!(matches!(
            scan_segment_bytes(&data, false),
            Err(JournalError::Corrupt { offset, .. }) if offset == offsets[2]
        ));
    }

    #[test]
    fn a_torn_tail_says_where_what_and_what_follows() {
        let mut t = TornTail {
            segment: PathBuf::from("j/00000000000000000001.sy-journal"),
            offset: 132,
            bytes: 40,
            reason: "checksum mismatch".into(),
            next_valid: None,
            kept_in: None,
        };
        assert_eq!(
            t.to_string(),
            "torn tail in j/00000000000000000001.sy-journal at byte offset 132: 40 bytes \
             (checksum mismatch)"
        );
        t.next_valid = Some(150);
        t.kept_in = Some(PathBuf::from("j/side"));
        assert_eq!(
            t.to_string(),
            "torn tail in j/00000000000000000001.sy-journal at byte offset 132: 40 bytes \
             (checksum mismatch); a valid frame follows at byte 150; the cut bytes are kept \
             in j/side"
        );
    }
}
