//! Atomic writes of the LiteFS files (`-pos`, `.lag`, `.primary`) in a node's mount.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use litefs_orm::litefs::{MountPaths, Pos, format_lag};

/// Writes `contents` to a temporary file beside `path`, then renames it over `path`, so a
/// reader sees either the old or the new contents, never a partial file.
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.testkit-{}-{seq}.tmp", std::process::id()));
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Writes `<db>-pos`.
pub(crate) fn write_pos(paths: &MountPaths, pos: Pos) -> io::Result<()> {
    write_atomic(&paths.pos(), pos.to_string().as_bytes())
}

/// Writes `.lag` (milliseconds since the last contact with the primary).
pub(crate) fn write_lag(paths: &MountPaths, ms: i64) -> io::Result<()> {
    write_atomic(&paths.lag(), format_lag(ms).as_bytes())
}

/// Writes `.primary` with `hostname`, or removes it when `None`.
pub(crate) fn write_primary(paths: &MountPaths, hostname: Option<&str>) -> io::Result<()> {
    match hostname {
        Some(h) => write_atomic(&paths.primary(), format!("{h}\n").as_bytes()),
        None => match std::fs::remove_file(paths.primary()) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
    }
}

/// Length of the SQLite database header: a shorter file holds no database yet.
pub(crate) const HEADER_LEN: u64 = 100;

/// True when the file at `db` has a database header (an empty file is an empty database
/// nobody has written yet).
pub(crate) fn has_header(db: &Path) -> bool {
    std::fs::metadata(db).is_ok_and(|m| m.len() >= HEADER_LEN)
}

/// True when the database header in the main file says WAL (bytes 18 and 19 are 2).
pub(crate) fn header_says_wal(db: &Path) -> bool {
    use std::io::Read;
    let mut header = [0u8; 20];
    std::fs::File::open(db)
        .and_then(|mut f| f.read_exact(&mut header))
        .is_ok_and(|()| header[18] == 2 && header[19] == 2)
}

/// The stand-in's `postApplyChecksum` for a TXID: splitmix64 of the TXID.
///
/// Real LiteFS checksums the database pages; the stand-in only needs a deterministic value that
/// changes with every transaction, and the replicas copy the primary's value.
pub(crate) fn checksum(txid: u64) -> u64 {
    let mut z = txid.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
