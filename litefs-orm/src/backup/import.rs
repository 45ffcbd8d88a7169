//! Importing a restored database into LiteFS through its HTTP API (`POST /import?name=`).
//!
//! A LiteFS mount holds only databases that LiteFS itself creates, so Litestream cannot
//! restore into it directly (it writes a temporary file and renames it). The restore goes
//! to the state directory, then to LiteFS exactly as `litefs import -name <db> <file>` sends
//! it: the file as the body of `POST <api>/import?name=<db>`, answered with 200 on the
//! primary. LiteFS replicates the imported database to every replica.

use std::path::Path;
use std::time::Duration;

use futures_util::stream;
use tokio::io::AsyncReadExt;

use super::error::BackupError;

/// Size of each chunk of the uploaded file.
const CHUNK: usize = 256 * 1024;

/// Uploads the database file `file` to LiteFS at `api` (e.g. `http://127.0.0.1:20202`) as
/// database `name`, within `timeout`.
pub async fn import(
    api: &str,
    name: &str,
    file: &Path,
    timeout: Duration,
) -> Result<(), BackupError> {
    let url = format!("{}/import", api.trim_end_matches('/'));
    let fail = |detail: String| BackupError::Import {
        url: url.clone(),
        detail,
        kept: file.display().to_string(),
    };
    let f = tokio::fs::File::open(file)
        .await
        .map_err(|e| fail(format!("cannot open the restored file: {e}")))?;
    let chunks = stream::unfold(f, |mut f| async move {
        let mut buf = vec![0u8; CHUNK];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    let response = reqwest::Client::new()
        .post(&url)
        .query(&[("name", name)])
        .timeout(timeout)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    Err(fail(format!("LiteFS answered {status}: {}", body.trim())))
}
