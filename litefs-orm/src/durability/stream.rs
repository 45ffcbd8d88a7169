//! The primary's side of a position report: the endpoint that reads a replica's signed
//! lines as they arrive and keeps its [`Peers`](super::Peers) current.

use axum::extract::{OriginalUri, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use crate::config::POSITIONS_PATH;
use crate::db::ReplicatedDb;
use crate::primary::endpoint::{Databases, signature};
use crate::protocol::positions::{MAX_LINE, PositionLine};

/// How many durability timeouts a report may stay silent before the primary ends it (a
/// replica sends a heartbeat every quarter of one): a node gone without closing its
/// connection then stops counting, as one whose connection closed does at once.
const SILENT_TIMEOUTS: u32 = 10;

/// `POST` [`POSITIONS_PATH`]: one replica's report, read line by line until it ends. The
/// request is authenticated by its headers (its body is the stream, signed line by line
/// for the request's nonce); a line that does not verify, a database this endpoint does not
/// serve, a sequence that goes back, or this node not being the primary ends the report.
pub(crate) async fn handle_positions(State(dbs): State<Databases>, request: Request) -> Response {
    let front = dbs.front().clone();
    let (parts, body) = request.into_parts();
    let path = parts
        .extensions
        .get::<OriginalUri>()
        .map_or(POSITIONS_PATH, |uri| uri.path())
        .to_owned();
    let sig = match signature(&parts.headers) {
        Ok(sig) => sig,
        Err(e) => return (StatusCode::UNAUTHORIZED, e.to_string()).into_response(),
    };
    if let Err(e) = front.verifier().verify(&sig, &path, b"") {
        return (StatusCode::UNAUTHORIZED, e.to_string()).into_response();
    }
    let Some(secret) = front.token_secret().map(<[u8]>::to_vec) else {
        return (StatusCode::UNAUTHORIZED, "no secret").into_response();
    };
    let mut report = Report {
        dbs: &dbs,
        from: None,
        seq: None,
    };
    let mut stream = body.into_data_stream();
    let mut buf: Vec<u8> = Vec::new();
    let silence = front.config().durability_timeout * SILENT_TIMEOUTS;
    let ended = loop {
        let chunk = match tokio::time::timeout(silence, stream.next()).await {
            Ok(Some(Ok(chunk))) => chunk,
            Ok(Some(Err(e))) => break format!("the report broke off: {e}"),
            Ok(None) => break "the replica ended its report".to_owned(),
            // A machine that vanished without closing its connection: its report never ends
            // by itself.
            Err(_) => break format!("no line for {silence:?}"),
        };
        buf.extend_from_slice(&chunk);
        let mut refused = None;
        while let Some(n) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=n).collect();
            let read = PositionLine::decode(&line[..n], &secret, &sig.nonce)
                .and_then(|line| report.take(line));
            if let Err(why) = read {
                refused = Some(why);
                break;
            }
        }
        if let Some(why) = refused {
            break why;
        }
        if buf.len() > MAX_LINE {
            break format!("a line over {MAX_LINE} bytes");
        }
    };
    tracing::debug!(reason = %ended, "a position report ended");
    (StatusCode::OK, ended).into_response()
}

/// The report being read: the node and handle it is from, once its first line said.
struct Report<'a> {
    dbs: &'a Databases,
    from: Option<(String, ReplicatedDb)>,
    seq: Option<u64>,
}

impl Report<'_> {
    /// Takes one verified line.
    fn take(&mut self, line: PositionLine) -> Result<(), String> {
        let pos = line
            .pos()
            .ok_or_else(|| "a line with a malformed checksum".to_owned())?;
        if self.seq.is_some_and(|seq| line.seq <= seq) {
            return Err("a line out of sequence".into());
        }
        self.seq = Some(line.seq);
        let db = match &self.from {
            Some((node, db)) if *node == line.node && db.database_name() == line.db => db,
            Some(_) => return Err("a line of another node or database".into()),
            None => {
                let db = self
                    .dbs
                    .by_name(&line.db)
                    .ok_or_else(|| format!("this endpoint serves no database {:?}", line.db))?
                    .clone();
                db.peers().opened(&line.node, line.candidate);
                &self.from.insert((line.node.clone(), db)).1
            }
        };
        if !db.role().writes_locally() {
            return Err("this node is not the primary".into());
        }
        db.peers().report(&line.node, pos);
        Ok(())
    }
}

impl Drop for Report<'_> {
    fn drop(&mut self) {
        if let Some((node, db)) = &self.from {
            db.peers().closed(node);
        }
    }
}
