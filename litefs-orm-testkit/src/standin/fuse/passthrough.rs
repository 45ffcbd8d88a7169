//! The FUSE file system of one node: its store passed through, with LiteFS's refusals of the
//! app's writes on a replica.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo, LockOwner, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use super::{TRUST_PREFIX, Trusted};
use crate::standin::state::lock;

/// Nothing is cached by the kernel: every look-up and stat asks the mount.
const TTL: Duration = Duration::ZERO;

struct Handle {
    file: File,
    name: OsString,
}

pub(super) struct PassThrough {
    store: PathBuf,
    /// `<db>`, `<db>-journal`, `<db>-wal`: what LiteFS guards on a replica.
    db: OsString,
    journal: OsString,
    wal: OsString,
    /// `<db>-shm`: written by readers too, and mapped shared.
    shm: OsString,
    primary: Arc<AtomicBool>,
    trusted: Arc<Trusted>,
    /// Inode → the name it was last seen under.
    names: Mutex<HashMap<u64, OsString>>,
    handles: Mutex<HashMap<u64, Arc<Handle>>>,
    next_handle: AtomicU64,
}

/// The mount's root directory.
const ROOT: u64 = INodeNo::ROOT.0;

impl PassThrough {
    /// Serves `store`; `db`'s files are guarded while `primary` is false.
    pub(super) fn new(
        store: &Path,
        db: &str,
        primary: Arc<AtomicBool>,
        trusted: Arc<Trusted>,
    ) -> PassThrough {
        PassThrough {
            store: store.to_owned(),
            db: OsString::from(db),
            journal: OsString::from(format!("{db}-journal")),
            wal: OsString::from(format!("{db}-wal")),
            shm: OsString::from(format!("{db}-shm")),
            primary,
            trusted,
            names: Mutex::new(HashMap::new()),
            handles: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
        }
    }

    /// Inode number of a store file: its own, moved past the root's.
    fn ino(meta: &std::fs::Metadata) -> u64 {
        meta.ino().wrapping_add(2)
    }

    fn attr(ino: u64, meta: &std::fs::Metadata) -> FileAttr {
        let time = |secs: i64, nanos: i64| {
            let d = Duration::new(secs.unsigned_abs(), nanos.clamp(0, 999_999_999) as u32);
            match secs >= 0 {
                true => SystemTime::UNIX_EPOCH + d,
                false => SystemTime::UNIX_EPOCH - d,
            }
        };
        FileAttr {
            ino: INodeNo(ino),
            size: meta.size(),
            blocks: meta.blocks(),
            atime: time(meta.atime(), meta.atime_nsec()),
            mtime: time(meta.mtime(), meta.mtime_nsec()),
            ctime: time(meta.ctime(), meta.ctime_nsec()),
            crtime: SystemTime::UNIX_EPOCH,
            kind: kind(meta),
            perm: (meta.mode() & 0o7777) as u16,
            nlink: meta.nlink() as u32,
            uid: meta.uid(),
            gid: meta.gid(),
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    /// The name of file `ino`, as a look-up last saw it.
    fn name_of(&self, ino: u64) -> Option<OsString> {
        lock(&self.names).get(&ino).cloned()
    }

    /// Looks `name` up in the store and remembers its inode.
    fn entry(&self, name: &OsStr) -> io::Result<FileAttr> {
        let meta = std::fs::symlink_metadata(self.store.join(name))?;
        let ino = Self::ino(&meta);
        lock(&self.names).insert(ino, name.to_owned());
        Ok(Self::attr(ino, &meta))
    }

    /// Whether `req` may change file `name`: always on the primary, from a trusted thread,
    /// or for a file LiteFS does not guard.
    fn may_write(&self, req: &Request, name: &OsStr) -> bool {
        let guarded = name == self.db || name == self.journal || name == self.wal;
        self.primary.load(Ordering::SeqCst) || !guarded || self.trusted.trusts(req.pid())
    }

    fn handle(&self, fh: FileHandle) -> Option<Arc<Handle>> {
        lock(&self.handles).get(&fh.0).cloned()
    }

    fn open_handle(&self, file: File, name: &OsStr) -> (FileHandle, FopenFlags) {
        let fh = self.next_handle.fetch_add(1, Ordering::Relaxed);
        lock(&self.handles).insert(
            fh,
            Arc::new(Handle {
                file,
                name: name.to_owned(),
            }),
        );
        // `-shm` is mapped shared by SQLite: it keeps the page cache, which every process
        // shares through this mount. Everything else bypasses it. No file asks the mount
        // anything when closed: a process that serves this mount and exits with files open
        // on it must not wait for its own, stopped, threads.
        let flags = FopenFlags::FOPEN_NOFLUSH
            | match name == self.shm {
                true => FopenFlags::FOPEN_KEEP_CACHE,
                false => FopenFlags::FOPEN_DIRECT_IO,
            };
        (FileHandle(fh), flags)
    }

    fn options(flags: i32) -> OpenOptions {
        let mut o = OpenOptions::new();
        match flags & O_ACCMODE {
            0 => o.read(true),
            1 => o.write(true),
            _ => o.read(true).write(true),
        };
        o.custom_flags(flags & !(O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC));
        o
    }
}

/// `O_ACCMODE`, `O_CREAT`, `O_EXCL`, `O_TRUNC` on Linux.
const O_ACCMODE: i32 = 0o3;
const O_CREAT: i32 = 0o100;
const O_EXCL: i32 = 0o200;
const O_TRUNC: i32 = 0o1000;

fn errno(e: &io::Error) -> Errno {
    e.raw_os_error().map_or(Errno::EIO, Errno::from_i32)
}

fn kind(meta: &std::fs::Metadata) -> FileType {
    match meta.is_dir() {
        true => FileType::Directory,
        false => FileType::RegularFile,
    }
}

impl fuser::Filesystem for PassThrough {
    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        if parent.0 != ROOT {
            return reply.error(Errno::ENOENT);
        }
        if self.trusted.grant(name, req.pid()) {
            return reply.error(Errno::ENOENT);
        }
        match self.entry(name) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let meta = match (fh.and_then(|fh| self.handle(fh)), ino.0) {
            (Some(h), _) => h.file.metadata(),
            (None, ROOT) => std::fs::metadata(&self.store),
            (None, ino) => match self.name_of(ino) {
                Some(name) => std::fs::symlink_metadata(self.store.join(name)),
                None => return reply.error(Errno::ENOENT),
            },
        };
        match meta {
            Ok(m) => reply.attr(&TTL, &Self::attr(ino.0, &m)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let Some(name) = self.name_of(ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        let path = self.store.join(&name);
        if let Some(size) = size {
            if !self.may_write(req, &name) {
                return reply.error(Errno::EACCES);
            }
            let truncated = match fh.and_then(|fh| self.handle(fh)) {
                Some(h) => h.file.set_len(size),
                None => OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(size)),
            };
            if let Err(e) = truncated {
                return reply.error(errno(&e));
            }
        }
        // Modes, owners and times are the store's own: SQLite's `fchown` of a new journal
        // changes nothing that matters here.
        match std::fs::symlink_metadata(&path) {
            Ok(m) => reply.attr(&TTL, &Self::attr(ino.0, &m)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let Some(name) = self.name_of(ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        if flags.0 & O_TRUNC != 0 && !self.may_write(req, &name) {
            return reply.error(Errno::EACCES);
        }
        let mut options = Self::options(flags.0);
        options.truncate(flags.0 & O_TRUNC != 0);
        match options.open(self.store.join(&name)) {
            Ok(file) => {
                let (fh, flags) = self.open_handle(file, &name);
                reply.opened(fh, flags);
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        if parent.0 != ROOT || name.as_bytes().starts_with(TRUST_PREFIX.as_bytes()) {
            return reply.error(Errno::EACCES);
        }
        // LiteFS refuses a journal on a replica: SQLite's first step of a write there.
        let exists = self.store.join(name).exists();
        if name == self.journal && !exists && !self.may_write(req, name) {
            return reply.error(Errno::EACCES);
        }
        let mut options = Self::options(flags);
        options
            .create(true)
            .create_new(flags & O_EXCL != 0)
            .mode(mode);
        let file = match options.open(self.store.join(name)) {
            Ok(f) => f,
            Err(e) => return reply.error(errno(&e)),
        };
        match (file.metadata(), self.entry(name)) {
            (Ok(meta), Ok(_)) => {
                let attr = Self::attr(Self::ino(&meta), &meta);
                let (fh, flags) = self.open_handle(file, name);
                reply.created(&TTL, &attr, Generation(0), fh, flags);
            }
            (Err(e), _) | (_, Err(e)) => reply.error(errno(&e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(h) = self.handle(fh) else {
            return reply.error(Errno::EBADF);
        };
        let mut buf = vec![0u8; size as usize];
        let mut done = 0;
        while done < buf.len() {
            match h.file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return reply.error(errno(&e)),
            }
        }
        reply.data(&buf[..done]);
    }

    fn write(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let Some(h) = self.handle(fh) else {
            return reply.error(Errno::EBADF);
        };
        if !self.may_write(req, &h.name) {
            return reply.error(Errno::EACCES);
        }
        match h.file.write_all_at(data, offset) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        lock(&self.handles).remove(&fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let Some(h) = self.handle(fh) else {
            return reply.error(Errno::EBADF);
        };
        let synced = match datasync {
            true => h.file.sync_data(),
            false => h.file.sync_all(),
        };
        match synced {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        if parent.0 != ROOT {
            return reply.error(Errno::ENOENT);
        }
        if !self.may_write(req, name) {
            return reply.error(Errno::EACCES);
        }
        match std::fs::remove_file(self.store.join(name)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if parent.0 != ROOT || newparent.0 != ROOT {
            return reply.error(Errno::ENOENT);
        }
        if !self.may_write(req, name) || !self.may_write(req, newname) {
            return reply.error(Errno::EACCES);
        }
        match std::fs::rename(self.store.join(name), self.store.join(newname)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        if ino.0 != ROOT {
            return reply.error(Errno::ENOTDIR);
        }
        let entries = match std::fs::read_dir(&self.store) {
            Ok(d) => d,
            Err(e) => return reply.error(errno(&e)),
        };
        let mut all = vec![
            (ROOT, FileType::Directory, OsString::from(".")),
            (ROOT, FileType::Directory, OsString::from("..")),
        ];
        for entry in entries.flatten() {
            if let Ok(meta) = entry.metadata() {
                all.push((Self::ino(&meta), kind(&meta), entry.file_name()));
            }
        }
        for (i, (ino, kind, name)) in all.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(ino), (i + 1) as u64, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }
}
