//! A simulated disk for power-loss tests, after SQLite's crash-test VFS (`test6.c`): the
//! journal's [`Storage`] on memory, where every write and truncation stays *unsynced*
//! until the file is `fdatasync`ed, and a new file's directory entry stays unsynced until
//! its directory is synced.
//!
//! [`SimDisk::cut_after`] arms a power cut: from the given operation on, every operation
//! fails, as if the machine had stopped. [`SimDisk::crash`] then builds the disk a reboot
//! would find: the synced content of each file, plus any subset of its unsynced operations
//! — each write kept whole, kept as a prefix (a torn write) or dropped, the kept ones
//! applied in a random order (reordered) — and bytes never written read as zeros. A file
//! whose directory entry was never synced may be gone.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{self, Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use switchyard_journal::storage::{LockGuard, SegmentFile, Storage};

/// An unsynced operation on a file.
#[derive(Clone, Debug)]
enum Op {
    Write { at: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Clone, Debug, Default)]
struct SimFile {
    /// What survives a power cut for sure (the content at the last `fdatasync`).
    synced: Vec<u8>,
    /// What the running process sees.
    current: Vec<u8>,
    /// Operations since the last `fdatasync`, in order.
    pending: Vec<Op>,
    /// Whether the directory was synced since the file was created.
    entry_synced: bool,
}

#[derive(Debug, Default)]
struct Disk {
    files: BTreeMap<PathBuf, SimFile>,
    locks: Vec<PathBuf>,
    /// Operations that change the disk or its durability, so far.
    ops: u64,
    /// Operations allowed before the power is cut.
    budget: Option<u64>,
}

/// A simulated disk; clones share it.
#[derive(Clone, Debug, Default)]
pub struct SimDisk(Arc<Mutex<Disk>>);

/// A small deterministic generator for the crash's choices.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        // SplitMix64.
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

/// What a crash did, for failure messages and figures.
#[derive(Clone, Copy, Debug, Default)]
pub struct CrashStats {
    pub unsynced_writes: u64,
    pub kept_whole: u64,
    pub torn: u64,
    pub dropped: u64,
    pub reordered_files: u64,
    pub lost_files: u64,
}

fn power_cut() -> io::Error {
    io::Error::other("simulated power cut")
}

fn apply(content: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Write { at, data } => {
            let at = *at as usize;
            if content.len() < at + data.len() {
                content.resize(at + data.len(), 0);
            }
            content[at..at + data.len()].copy_from_slice(data);
        }
        Op::SetLen(len) => content.resize(*len as usize, 0),
    }
}

impl SimDisk {
    fn disk(&self) -> MutexGuard<'_, Disk> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Cut the power after `ops` more operations (writes, truncations, creations, syncs).
    pub fn cut_after(&self, ops: u64) {
        let mut d = self.disk();
        d.budget = Some(d.ops + ops);
    }

    /// Count one operation; fails once the power is cut.
    fn op(d: &mut Disk) -> io::Result<()> {
        if d.budget.is_some_and(|b| d.ops >= b) {
            return Err(power_cut());
        }
        d.ops += 1;
        Ok(())
    }

    /// The disk after a reboot: see the module docs. The result has no unsynced state
    /// and no power cut armed.
    pub fn crash(&self, rng: &mut Rng) -> (SimDisk, CrashStats) {
        let d = self.disk();
        let mut stats = CrashStats::default();
        let mut files = BTreeMap::new();
        for (path, f) in &d.files {
            if !f.entry_synced && rng.below(2) == 0 {
                stats.lost_files += 1;
                continue;
            }
            let mut kept: Vec<Op> = Vec::new();
            for op in &f.pending {
                match op {
                    Op::Write { at, data } => {
                        stats.unsynced_writes += 1;
                        match rng.below(3) {
                            0 => stats.dropped += 1,
                            1 => {
                                stats.kept_whole += 1;
                                kept.push(op.clone());
                            }
                            _ => {
                                stats.torn += 1;
                                let n = rng.below(data.len() as u64) as usize;
                                kept.push(Op::Write {
                                    at: *at,
                                    data: data[..n].to_vec(),
                                });
                            }
                        }
                    }
                    Op::SetLen(_) => {
                        if rng.below(2) == 0 {
                            kept.push(op.clone());
                        }
                    }
                }
            }
            if kept.len() > 1 && rng.below(2) == 0 {
                // Fisher-Yates: the kept operations reach the disk in any order.
                for i in (1..kept.len()).rev() {
                    kept.swap(i, rng.below(i as u64 + 1) as usize);
                }
                stats.reordered_files += 1;
            }
            let mut content = f.synced.clone();
            for op in &kept {
                apply(&mut content, op);
            }
            files.insert(
                path.clone(),
                SimFile {
                    synced: content.clone(),
                    current: content,
                    pending: Vec::new(),
                    entry_synced: true,
                },
            );
        }
        let disk = Disk {
            files,
            ..Disk::default()
        };
        (SimDisk(Arc::new(Mutex::new(disk))), stats)
    }

    /// An independent copy of the disk as the running process sees it, with no power cut
    /// armed (unsynced state kept as it is).
    pub fn fork(&self) -> SimDisk {
        let d = self.disk();
        let copy = Disk {
            files: d.files.clone(),
            ..Disk::default()
        };
        SimDisk(Arc::new(Mutex::new(copy)))
    }

    /// The content of `path` as the running process sees it, if it exists.
    pub fn read(&self, path: &Path) -> Option<Vec<u8>> {
        self.disk().files.get(path).map(|f| f.current.clone())
    }

    /// Whether the armed power cut has happened.
    pub fn is_cut(&self) -> bool {
        let d = self.disk();
        d.budget.is_some_and(|b| d.ops >= b)
    }

    /// Write every file to the real directory `to` (same names), to read the disk with
    /// the journal's own tools. (Not fsynced: the copy only has to outlive the check.)
    pub fn materialize(&self, root: &Path, to: &Path) {
        for (path, f) in &self.disk().files {
            let rel = path
                .strip_prefix(root)
                .expect("a file under the journal root");
            let out = to.join(rel);
            std::fs::create_dir_all(out.parent().unwrap()).unwrap();
            std::fs::write(&out, &f.current).unwrap();
        }
    }
}

struct Handle {
    disk: SimDisk,
    path: PathBuf,
    pos: u64,
}

impl SegmentFile for Handle {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        let mut d = self.disk.disk();
        SimDisk::op(&mut d)?;
        let f = d.files.get_mut(&self.path).ok_or_else(power_cut)?;
        let op = Op::Write {
            at: self.pos,
            data: data.to_vec(),
        };
        apply(&mut f.current, &op);
        f.pending.push(op);
        self.pos += data.len() as u64;
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut d = self.disk.disk();
        SimDisk::op(&mut d)?;
        let f = d.files.get_mut(&self.path).ok_or_else(power_cut)?;
        f.synced = f.current.clone();
        f.pending.clear();
        Ok(())
    }

    fn truncate_to(&mut self, len: u64) -> io::Result<()> {
        let mut d = self.disk.disk();
        SimDisk::op(&mut d)?;
        let f = d.files.get_mut(&self.path).ok_or_else(power_cut)?;
        let op = Op::SetLen(len);
        apply(&mut f.current, &op);
        f.pending.push(op);
        self.pos = len;
        Ok(())
    }
}

struct Lock {
    disk: SimDisk,
    path: PathBuf,
}

impl Drop for Lock {
    fn drop(&mut self) {
        self.disk.disk().locks.retain(|p| p != &self.path);
    }
}

impl Storage for SimDisk {
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        // Directories are implicit: a file's directory is its path's parent.
        Ok(())
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<LockGuard>> {
        let mut d = self.disk();
        if d.locks.iter().any(|p| p == path) {
            return Ok(None);
        }
        d.locks.push(path.to_path_buf());
        Ok(Some(Box::new(Lock {
            disk: self.clone(),
            path: path.to_path_buf(),
        })))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        Ok(self
            .disk()
            .files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(|n| n.to_owned()))
            .collect())
    }

    fn open_read(&self, path: &Path) -> io::Result<(Box<dyn Read + Send>, u64)> {
        let d = self.disk();
        let f = d
            .files
            .get(path)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let len = f.current.len() as u64;
        Ok((Box::new(Cursor::new(f.current.clone())), len))
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        let mut d = self.disk();
        SimDisk::op(&mut d)?;
        if d.files.contains_key(path) {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        d.files.insert(path.to_path_buf(), SimFile::default());
        Ok(Box::new(Handle {
            disk: self.clone(),
            path: path.to_path_buf(),
            pos: 0,
        }))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        let d = self.disk();
        let f = d
            .files
            .get(path)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        Ok(Box::new(Handle {
            disk: self.clone(),
            path: path.to_path_buf(),
            pos: f.current.len() as u64,
        }))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut d = self.disk();
        SimDisk::op(&mut d)?;
        d.files
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut d = self.disk();
        SimDisk::op(&mut d)?;
        for (_, f) in d.files.iter_mut().filter(|(p, _)| p.parent() == Some(dir)) {
            f.entry_synced = true;
        }
        Ok(())
    }
}
