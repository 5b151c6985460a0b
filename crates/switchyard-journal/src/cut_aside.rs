//! Keeping cut bytes aside: before the writer's recovery cuts a damaged tail of the last
//! segment that valid frames follow (see the crate docs, "The tail rule"), it copies the
//! bytes from the cut on to a side file next to the segment, `<segment>.cut-<offset>`,
//! fsyncs it and syncs the directory. Nothing is destroyed without a copy; the side file
//! is not a segment (its name does not parse as one), so readers ignore it.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::error::JournalError;
use crate::storage::Storage;

/// Side files tried for one cut (`.cut-<offset>`, then `.cut-<offset>.1`, ...), for when
/// an earlier recovery made a copy and crashed before its cut was durable.
const MAX_ATTEMPTS: u32 = 100;

/// The side file name for a cut of `segment` at `offset`, `attempt` 0 first.
pub fn side_file_name(segment: &Path, offset: u64, attempt: u32) -> PathBuf {
    let mut name = segment.as_os_str().to_owned();
    name.push(format!(".cut-{offset}"));
    if attempt > 0 {
        name.push(format!(".{attempt}"));
    }
    PathBuf::from(name)
}

/// Copy the bytes of `segment` from `offset` to its end into a new side file, durable
/// (file fsynced, directory synced) before this returns. Returns the side file's path.
pub(crate) fn keep_aside(
    storage: &dyn Storage,
    dir: &Path,
    segment: &Path,
    offset: u64,
) -> Result<PathBuf, JournalError> {
    let (mut src, len) = storage
        .open_read(segment)
        .map_err(JournalError::io("opening", segment))?;
    let mut data = Vec::with_capacity(len.saturating_sub(offset) as usize);
    src.read_to_end(&mut data)
        .map_err(JournalError::io("reading", segment))?;
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(data.len());
    let cut = &data[start..];
    for attempt in 0..MAX_ATTEMPTS {
        let side = side_file_name(segment, offset, attempt);
        let mut f = match storage.create_new(&side) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(JournalError::io("creating side file", side)(e)),
        };
        f.write_all(cut)
            .map_err(JournalError::io("writing side file", &side))?;
        f.sync_data()
            .map_err(JournalError::io("syncing side file", &side))?;
        storage
            .sync_dir(dir)
            .map_err(JournalError::io("syncing directory", dir))?;
        return Ok(side);
    }
    Err(JournalError::io(
        "creating side file",
        side_file_name(segment, offset, MAX_ATTEMPTS),
    )(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("{MAX_ATTEMPTS} side files for this cut exist already"),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_file_names_sit_next_to_the_segment_and_are_not_segments() {
        let seg = Path::new("/j/00000000000000000001.sy-journal");
        let a = side_file_name(seg, 812, 0);
        assert_eq!(a, Path::new("/j/00000000000000000001.sy-journal.cut-812"));
        assert_eq!(
            side_file_name(seg, 812, 2),
            Path::new("/j/00000000000000000001.sy-journal.cut-812.2")
        );
        let name = a.file_name().unwrap().to_str().unwrap();
        assert_eq!(crate::segment::parse_segment_name(name), None);
    }
}
