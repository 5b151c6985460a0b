//! [`Storage`]: the file operations the journal's writer and its recovery make, behind a
//! small trait, so that a test can put a simulated disk under a real [`Journal`] (power
//! loss: unsynced writes kept, torn or dropped). [`FsStorage`], the real file system, is
//! what [`Journal::open`] uses.
//!
//! Only the writer side goes through it: creating a segment, writing, `fdatasync`,
//! syncing the directory, truncating a torn tail at recovery, the lock file, and the
//! reads recovery makes. The read-only tools ([`JournalReader`](crate::JournalReader),
//! [`inspect`](crate::inspect), [`verify`](crate::verify)) read real files.
//!
//! [`Journal`]: crate::Journal
//! [`Journal::open`]: crate::Journal::open

use std::any::Any;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// A segment file open for writing. Writes go at the end of what was written before
/// (the file position), as with a [`File`] opened for writing and positioned at its end.
pub trait SegmentFile: Send {
    /// Write all of `data` at the current position.
    fn write_all(&mut self, data: &[u8]) -> io::Result<()>;
    /// Make every byte written so far, and the file's length, durable (`fdatasync`).
    fn sync_data(&mut self) -> io::Result<()>;
    /// Cut the file to `len` bytes (or extend it with zeros) and put the position there.
    fn truncate_to(&mut self, len: u64) -> io::Result<()>;
}

/// A held writer lock; released when dropped.
pub type LockGuard = Box<dyn Any + Send + Sync>;

/// The file operations of a journal's writer. Paths are those the journal computes from
/// [`JournalConfig::dir`](crate::JournalConfig::dir).
pub trait Storage: Send + Sync + 'static {
    /// Create `dir` and its parents if missing.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Take the exclusive writer lock on the file `path` (created if missing). `Ok(None)`
    /// if another writer holds it.
    fn try_lock(&self, path: &Path) -> io::Result<Option<LockGuard>>;
    /// The names of the entries of `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>>;
    /// Open `path` for reading; also returns its length.
    fn open_read(&self, path: &Path) -> io::Result<(Box<dyn Read + Send>, u64)>;
    /// Create `path`, which must not exist, empty, for writing.
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>>;
    /// Open the existing `path` for writing, positioned at its end.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>>;
    /// Make the entries of `dir` (files created in it) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Remove the file `path` (a segment whose creation failed, before retrying it).
    fn remove_file(&self, path: &Path) -> io::Result<()>;
}

/// The real file system: `std::fs`, `fdatasync` for [`SegmentFile::sync_data`], an
/// advisory `flock` for the writer lock, `fsync` of the directory for
/// [`Storage::sync_dir`].
#[derive(Clone, Copy, Debug, Default)]
pub struct FsStorage;

struct FsFile(File);

impl SegmentFile for FsFile {
    #[inline]
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.0.write_all(data)
    }

    #[inline]
    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn truncate_to(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)?;
        self.0.seek(SeekFrom::Start(len)).map(|_| ())
    }
}

impl Storage for FsStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<LockGuard>> {
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        match lock.try_lock() {
            Ok(()) => Ok(Some(Box::new(lock))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect()
    }

    fn open_read(&self, path: &Path) -> io::Result<(Box<dyn Read + Send>, u64)> {
        let f = File::open(path)?;
        let len = f.metadata()?.len();
        Ok((Box::new(f), len))
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        let f = OpenOptions::new().write(true).create_new(true).open(path)?;
        Ok(Box::new(FsFile(f)))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        let mut f = OpenOptions::new().write(true).open(path)?;
        f.seek(SeekFrom::End(0))?;
        Ok(Box::new(FsFile(f)))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
}
