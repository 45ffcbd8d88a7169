//! The LiteFS contract: the files a LiteFS mount exposes and the JSON of its HTTP API.
//!
//! Everything here is read off LiteFS v0.5: `<mount>/.primary`, `<mount>/.lag`,
//! `<mount>/<db>-pos`, `GET /info` and `GET /events`. The library reads these; the
//! `litefs-orm-testkit` stand-in writes them, so both sides share one definition.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Name of the file that holds the primary's hostname on a connected replica.
pub const PRIMARY_FILE: &str = ".primary";
/// Name of the file that holds the milliseconds since the last contact with the primary.
pub const LAG_FILE: &str = ".lag";
/// The suffix LiteFS appends to a database's name for its position file.
pub const POS_SUFFIX: &str = "-pos";
/// Exact length of a `-pos` file: `%016x/%016x\n`.
pub const POS_LEN: usize = 34;
/// The `.lag` value LiteFS shows on a replica that has never synced.
pub const LAG_NEVER_SYNCED_MS: i64 = i32::MAX as i64;

/// A replication position: the last applied transaction ID and the database checksum after it.
///
/// ```
/// use litefs_orm::litefs::Pos;
/// let pos: Pos = "0000000000000130/ce552e44f23fbbdd\n".parse().unwrap();
/// assert_eq!(pos.txid, 0x130);
/// assert_eq!(pos.to_string(), "0000000000000130/ce552e44f23fbbdd\n");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    /// Transaction ID: grows by one with every committed transaction.
    pub txid: u64,
    /// Checksum of the whole database after that transaction.
    pub checksum: u64,
}

/// A `-pos` or `.lag` file whose contents do not follow the LiteFS format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed LiteFS {what}: {found:?}")]
pub struct FormatError {
    what: &'static str,
    found: String,
}

impl FormatError {
    fn new(what: &'static str, found: &str) -> Self {
        let found = found.chars().take(64).collect();
        FormatError { what, found }
    }
}

impl std::str::FromStr for Pos {
    type Err = FormatError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || FormatError::new("position", s);
        if s.len() != POS_LEN || !s.ends_with('\n') {
            return Err(bad());
        }
        let (txid, checksum) = s[..POS_LEN - 1].split_once('/').ok_or_else(bad)?;
        let hex = |h: &str| {
            (h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| u64::from_str_radix(h, 16).ok())
                .flatten()
                .ok_or_else(bad)
        };
        Ok(Pos {
            txid: hex(txid)?,
            checksum: hex(checksum)?,
        })
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:016x}/{:016x}", self.txid, self.checksum)
    }
}

/// Milliseconds since the last contact with the primary, as `.lag` shows it.
///
/// LiteFS writes `+000000000` on the primary and `+2147483647` on a replica that has
/// never synced.
///
/// ```
/// use litefs_orm::litefs::{format_lag, parse_lag};
/// assert_eq!(parse_lag("+000000012\n").unwrap(), 12);
/// assert_eq!(format_lag(12), "+000000012\n");
/// ```
pub fn parse_lag(s: &str) -> Result<i64, FormatError> {
    let t = s.strip_suffix('\n').unwrap_or(s);
    let ok = t.len() >= 2 && (t.starts_with('+') || t.starts_with('-'));
    ok.then(|| t.parse::<i64>().ok())
        .flatten()
        .ok_or_else(|| FormatError::new("lag", s))
}

/// Formats milliseconds of lag the way LiteFS writes `.lag` (`%+010d\n`).
pub fn format_lag(ms: i64) -> String {
    format!("{ms:+010}\n")
}

/// Paths of the LiteFS files of one database in a mount.
#[derive(Clone, Debug)]
pub struct MountPaths {
    /// The FUSE mount directory (`fuse.dir` in `litefs.yml`).
    pub mount: PathBuf,
    /// The database file inside the mount.
    pub db: PathBuf,
}

impl MountPaths {
    /// Paths for database `db_name` in `mount`.
    pub fn new(mount: impl Into<PathBuf>, db_name: &str) -> Self {
        let mount = mount.into();
        let db = mount.join(db_name);
        MountPaths { mount, db }
    }
    /// `<mount>/.primary`.
    pub fn primary(&self) -> PathBuf {
        self.mount.join(PRIMARY_FILE)
    }
    /// `<mount>/.lag`.
    pub fn lag(&self) -> PathBuf {
        self.mount.join(LAG_FILE)
    }
    /// `<mount>/<db>-pos`.
    pub fn pos(&self) -> PathBuf {
        pos_path(&self.db)
    }
}

/// The `-pos` file beside a database file.
pub fn pos_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(POS_SUFFIX);
    PathBuf::from(name)
}

/// Reads a `-pos` file. A missing file means the database has no transaction yet.
pub fn read_pos(path: &Path) -> std::io::Result<Pos> {
    match std::fs::read_to_string(path) {
        Ok(s) => s
            .parse()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Pos::default()),
        Err(e) => Err(e),
    }
}

/// Reads `.primary`: `Some(hostname)` on a replica connected to a primary, `None` when absent.
pub fn read_primary(path: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s.trim_end_matches('\n').to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads `.lag` as a duration; `None` when the file is absent (no LiteFS there).
pub fn read_lag(path: &Path) -> std::io::Result<Option<i64>> {
    match std::fs::read_to_string(path) {
        Ok(s) => parse_lag(&s)
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Lag in milliseconds as a [`Duration`], clamping negative values to zero.
pub fn lag_duration(ms: i64) -> Duration {
    Duration::from_millis(ms.max(0) as u64)
}

/// The body of LiteFS's `GET /info`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Cluster ID (absent before the node joined a cluster).
    #[serde(
        rename = "clusterID",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub cluster_id: String,
    /// True when this node holds the primary lease.
    #[serde(rename = "isPrimary")]
    pub is_primary: bool,
    /// True when this node may become primary.
    pub candidate: bool,
    /// The data directory.
    #[serde(default)]
    pub path: String,
    /// The current primary (empty hostname when there is none).
    #[serde(default)]
    pub primary: PrimaryInfo,
}

/// The `primary` object of [`NodeInfo`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrimaryInfo {
    /// The primary's `lease.hostname`; empty when no primary is known.
    #[serde(default)]
    pub hostname: String,
}

/// One line of LiteFS's `GET /events` stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// `init`, `primaryChange` or `tx`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The database a `tx` event is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db: Option<String>,
    /// Event data; for `init` and `primaryChange` a [`PrimaryEventData`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

/// Data of the `init` and `primaryChange` events.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrimaryEventData {
    /// True when the node sending the event is primary.
    #[serde(rename = "isPrimary")]
    pub is_primary: bool,
    /// The primary's hostname; absent when there is no primary.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
}

/// Data of the `tx` event: a transaction now applied on the node sending it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxEventData {
    /// The transaction's TXID: 16 hex digits, as in `-pos`.
    #[serde(rename = "txID")]
    pub txid: serde_json::Value,
    /// The database checksum after it: 16 hex digits.
    #[serde(rename = "postApplyChecksum", default)]
    pub post_apply_checksum: serde_json::Value,
}

impl TxEventData {
    /// The position the event reports (TXID and checksum as hex strings, or plain numbers).
    pub fn pos(&self) -> Option<Pos> {
        fn number(v: &serde_json::Value) -> Option<u64> {
            match v {
                serde_json::Value::String(s) => u64::from_str_radix(s, 16).ok(),
                v => v.as_u64(),
            }
        }
        Some(Pos {
            txid: number(&self.txid)?,
            checksum: number(&self.post_apply_checksum).unwrap_or_default(),
        })
    }
}

/// Event type of the first event of every `/events` stream.
pub const EVENT_INIT: &str = "init";
/// Event type sent when the primary changes.
pub const EVENT_PRIMARY_CHANGE: &str = "primaryChange";
/// Event type sent for every transaction.
pub const EVENT_TX: &str = "tx";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pos_parses_the_documented_example() {
        let pos: Pos = "0000000000000130/ce552e44f23fbbdd\n".parse().unwrap();
        assert_eq!(
            pos,
            Pos {
                txid: 0x130,
                checksum: 0xce552e44f23fbbdd
            }
        );
    }

    #[test]
    fn pos_formats_to_exactly_34_bytes() {
        let s = Pos {
            txid: 1,
            checksum: u64::MAX,
        }
        .to_string();
        assert_eq!(s.len(), POS_LEN);
        assert_eq!(s, "0000000000000001/ffffffffffffffff\n");
    }

    #[test]
    fn pos_rejects_wrong_length_missing_newline_and_non_hex() {
        for bad in [
            "",
            "0000000000000130/ce552e44f23fbbdd",
            "000000000000130/ce552e44f23fbbdd\n\n",
            "000000000000013g/ce552e44f23fbbdd\n",
            "0000000000000130:ce552e44f23fbbdd\n",
            "+000000000000130/ce552e44f23fbbdd\n",
        ] {
            assert!(bad.parse::<Pos>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn lag_round_trips_the_never_synced_value() {
        let s = format_lag(LAG_NEVER_SYNCED_MS);
        assert_eq!(s, "+2147483647\n");
        assert_eq!(parse_lag(&s).unwrap(), LAG_NEVER_SYNCED_MS);
        assert_eq!(format_lag(0), "+000000000\n");
    }

    #[test]
    fn info_reads_litefs_json() {
        let json = r#"{"clusterID":"LFSC1","isPrimary":false,"candidate":true,"path":"/var/lib/litefs","primary":{"hostname":"n1"}}"#;
        let info: NodeInfo = serde_json::from_str(json).unwrap();
        assert!(!info.is_primary);
        assert_eq!(info.primary.hostname, "n1");
    }
}
