//! A replica's side of a position report: one long-lived signed request to the primary,
//! carrying a line at every change of this node's LiteFS position and a heartbeat while it
//! does not change. Reconnects to whichever node is primary.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::config::POSITIONS_PATH;
use crate::db::ReplicatedDb;
use crate::litefs::role::Role;
use crate::protocol::auth;
use crate::protocol::positions::PositionLine;

/// First pause after a report failed; it doubles up to [`RETRY_MAX`].
const RETRY: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How long a primary that does not know the report's path (an older version) is left alone.
const UNKNOWN_PATH_PAUSE: Duration = Duration::from_secs(30);

/// Reports this node's position to the primary for as long as `handle` gives a handle (the
/// app holds one). Runs on every LiteFS node with a secret; while the node is the primary
/// (or knows none) it only waits for that to change.
pub(crate) async fn report_positions(handle: impl Fn() -> Option<ReplicatedDb>) {
    let node = hex::encode(rand::random::<[u8; 8]>());
    let client = crate::litefs::role::http_client();
    let mut retry = RETRY;
    loop {
        let Some(db) = handle() else { return };
        let role = db.role();
        let Role::Replica { primary } = &role else {
            let watch = db.role_watch().clone();
            drop(db);
            watch.changed_from(&role, Duration::from_secs(1)).await;
            continue;
        };
        let primary = primary.clone();
        drop(db);
        match report_once(&handle, &client, &node, &primary).await {
            Ended::RoleChanged | Ended::Closed => retry = RETRY,
            Ended::UnknownPath => tokio::time::sleep(UNKNOWN_PATH_PAUSE).await,
            Ended::Failed(why) => {
                tracing::debug!(%primary, error = %why, "position report to the primary ended");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(RETRY_MAX);
            }
        }
    }
}

/// How one report ended.
enum Ended {
    /// This node's role changed: report to the new primary.
    RoleChanged,
    /// The handle was dropped, or the primary ended the report.
    Closed,
    /// The primary does not serve [`POSITIONS_PATH`].
    UnknownPath,
    Failed(String),
}

async fn report_once(
    handle: &impl Fn() -> Option<ReplicatedDb>,
    client: &reqwest::Client,
    node: &str,
    primary: &str,
) -> Ended {
    let Some(db) = handle() else {
        return Ended::Closed;
    };
    let config = db.config().clone();
    let Some(secret) = db.token_secret().map(<[u8]>::to_vec) else {
        return Ended::Closed;
    };
    let Some(tracker) = db.position().cloned() else {
        return Ended::Closed;
    };
    let watch = db.role_watch().clone();
    let name = db.database_name().to_owned();
    drop(db);
    let candidate = match &config.litefs_http {
        Some(http) => match crate::litefs::role::fetch_info(client, http).await {
            Ok(info) => info.candidate,
            Err(e) => return Ended::Failed(format!("LiteFS's /info: {e}")),
        },
        // Without LiteFS's API this node cannot tell: say it may be elected.
        None => true,
    };
    let url = config.primary_url_for(primary, POSITIONS_PATH);
    let path = reqwest::Url::parse(&url)
        .map(|u| u.path().to_owned())
        .unwrap_or_else(|_| POSITIONS_PATH.to_owned());
    let sig = auth::sign(&secret, &path, b"");
    let (lines, body) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let body = reqwest::Body::wrap_stream(tokio_stream_of(body));
    let sent = client
        .post(&url)
        .header(auth::TIMESTAMP_HEADER, sig.timestamp_ms.to_string())
        .header(auth::NONCE_HEADER, &sig.nonce)
        .header(auth::SIGNATURE_HEADER, &sig.signature)
        .body(body)
        .send();
    tokio::pin!(sent);
    let heartbeat = config.durability_timeout / 4;
    let role = Role::Replica {
        primary: primary.to_owned(),
    };
    let mut positions = tracker.subscribe();
    let mut seq = 0u64;
    loop {
        let pos = tracker.last();
        let line = PositionLine::new(node, candidate, &name, pos, seq);
        seq += 1;
        if lines
            .send(Ok(Bytes::from(line.encode(&secret, &sig.nonce))))
            .await
            .is_err()
        {
            return Ended::Closed;
        }
        tokio::select! {
            answer = &mut sent => {
                return match answer {
                    Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => {
                        tracing::info!(%url, "the primary takes no position reports (an older version?); durability waits cannot count this node");
                        Ended::UnknownPath
                    }
                    Ok(r) => Ended::Failed(format!("the primary ended the report: {}", r.status())),
                    Err(e) => Ended::Failed(e.to_string()),
                };
            }
            () = watch.until_changed(&role) => return Ended::RoleChanged,
            changed = positions.changed() => {
                if changed.is_err() {
                    return Ended::Closed;
                }
            }
            () = tokio::time::sleep(heartbeat) => {
                if handle().is_none() {
                    return Ended::Closed;
                }
                // Without LiteFS's events nothing moves the position but a read.
                let _ = tracker.read_now().await;
            }
        }
    }
}

/// The lines sent on `rx`, as a request body stream.
fn tokio_stream_of(
    mut rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
