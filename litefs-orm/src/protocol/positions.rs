//! The lines of a replica's position report ([`POSITIONS_PATH`](crate::POSITIONS_PATH)): one
//! per change of its LiteFS position (and one per heartbeat), each signed for the report
//! request's nonce, so that a line cannot be forged, altered or replayed into another report.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::litefs::Pos;

/// Longest line accepted, signature included.
pub const MAX_LINE: usize = 1024;

/// One report line: who reports, and the position its LiteFS is at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PositionLine {
    /// The reporting node's id (random, made when its handle opened).
    pub node: String,
    /// Its LiteFS is a lease candidate.
    pub candidate: bool,
    /// The database, by its file name in the mount.
    pub db: String,
    /// The position: TXID and post-apply checksum.
    pub txid: u64,
    /// The post-apply checksum at `txid`, 16 hex digits.
    pub checksum: String,
    /// Counts the report's lines from 0: each line's is higher than the one before.
    pub seq: u64,
}

impl PositionLine {
    /// The line for `pos`.
    pub fn new(node: &str, candidate: bool, db: &str, pos: Pos, seq: u64) -> Self {
        PositionLine {
            node: node.to_owned(),
            candidate,
            db: db.to_owned(),
            txid: pos.txid,
            checksum: format!("{:016x}", pos.checksum),
            seq,
        }
    }

    /// The position it reports; `None` when its checksum is not 16 hex digits.
    pub fn pos(&self) -> Option<Pos> {
        let checksum = u64::from_str_radix(&self.checksum, 16).ok()?;
        (self.checksum.len() == 16).then_some(Pos {
            txid: self.txid,
            checksum,
        })
    }

    /// The line as sent: `<hex signature> <json>\n`, signed with `secret` for `nonce`.
    pub fn encode(&self, secret: &[u8], nonce: &str) -> Vec<u8> {
        let json = serde_json::to_string(self).expect("a position line serializes");
        let sig = hex::encode(mac(secret, nonce, json.as_bytes()).finalize().into_bytes());
        format!("{sig} {json}\n").into_bytes()
    }

    /// Reads one line (without its newline) of a report with `nonce`, checking its signature.
    pub fn decode(line: &[u8], secret: &[u8], nonce: &str) -> Result<Self, String> {
        if line.len() > MAX_LINE {
            return Err(format!("a line over {MAX_LINE} bytes"));
        }
        let text = std::str::from_utf8(line).map_err(|_| "a line that is not UTF-8".to_owned())?;
        let (sig, json) = text
            .split_once(' ')
            .ok_or_else(|| "a line without its signature".to_owned())?;
        let sig = hex::decode(sig).map_err(|_| "a malformed signature".to_owned())?;
        mac(secret, nonce, json.as_bytes())
            .verify_slice(&sig)
            .map_err(|_| "a line whose signature does not match".to_owned())?;
        serde_json::from_str(json).map_err(|e| format!("a malformed line: {e}"))
    }
}

fn mac(secret: &[u8], nonce: &str, json: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(format!("litefs-orm/1 position\n{nonce}\n").as_bytes());
    mac.update(json);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a long random shared secret";

    fn line() -> PositionLine {
        let pos = Pos {
            txid: 42,
            checksum: 0xdead_beef,
        };
        PositionLine::new("n-1", true, "app.db", pos, 7)
    }

    fn body(sent: &[u8]) -> &[u8] {
        sent.strip_suffix(b"\n").unwrap()
    }

    #[test]
    fn a_line_reads_back_with_its_position() {
        let sent = line().encode(SECRET, "nonce");
        let back = PositionLine::decode(body(&sent), SECRET, "nonce").unwrap();
        assert_eq!(back, line());
        assert_eq!(back.pos().unwrap().checksum, 0xdead_beef);
    }

    #[test]
    fn a_line_of_another_report_is_refused() {
        let sent = line().encode(SECRET, "nonce");
        assert!(PositionLine::decode(body(&sent), SECRET, "another nonce").is_err());
    }

    #[test]
    fn an_altered_line_is_refused() {
        let sent = String::from_utf8(line().encode(SECRET, "nonce")).unwrap();
        let altered = sent.replace("\"txid\":42", "\"txid\":43");
        assert!(PositionLine::decode(body(altered.as_bytes()), SECRET, "nonce").is_err());
    }

    #[test]
    fn a_line_signed_with_another_secret_is_refused() {
        let sent = line().encode(b"another cluster's secret", "nonce");
        assert!(PositionLine::decode(body(&sent), SECRET, "nonce").is_err());
    }
}
