//! `GET /api/backup`: a consistent snapshot of the whole store, streamed as a SQLite file.

use futures_util::stream;
use tokio::io::AsyncReadExt;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, Method, header};
use warp::reply::{Reply, Response};

use super::error::respond;
use super::{ApiError, method_not_allowed, with_app};
use crate::App;
use crate::store::backup;

/// Bytes read from the snapshot per chunk of the response.
const CHUNK: usize = 256 * 1024;

pub fn routes(app: App) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "backup")
        .and(warp::method())
        .and(with_app(app))
        .then(|method: Method, app: App| async move {
            respond(if method == Method::GET {
                snapshot(app).await
            } else {
                Err(method_not_allowed(&method, "/api/backup", "GET"))
            })
        })
        .boxed()
}

async fn snapshot(app: App) -> Result<Response, ApiError> {
    let dir = app
        .store
        .path()
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let path = dir.join(format!(".backup-{}.db", uuid::Uuid::new_v4().simple()));
    let dest = path.clone();
    let taken = app.store.read(move |c| backup::snapshot(c, &dest)).await;
    if let Err(e) = taken {
        let _ = tokio::fs::remove_file(&path).await;
        return Err(e.into());
    }
    let file = tokio::fs::File::open(&path).await;
    // The open handle keeps the data readable; the name goes now so nothing is left behind.
    let _ = tokio::fs::remove_file(&path).await;
    let file = file.map_err(|e| ApiError::Internal(format!("cannot read the snapshot: {e}")))?;
    let size = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let body = stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; CHUNK];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    tracing::info!(bytes = size, "backup taken");
    let mut resp = warp::reply::stream(body).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.sqlite3"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    if let Ok(v) =
        HeaderValue::from_str(&format!("attachment; filename=\"koor-backup-{stamp}.db\""))
    {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}
