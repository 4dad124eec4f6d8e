//! Request bodies with a hard size limit that holds for chunked bodies too.

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use warp::{Filter, Rejection};

use super::error::ApiError;

/// The whole body, at most `limit` bytes; a larger body is a 413, whether or not it declared a
/// `Content-Length`.
pub fn limited(limit: usize) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .and_then(move |declared: Option<u64>, stream| async move {
            if declared.is_some_and(|n| n > limit as u64) {
                return Err(warp::reject::custom(ApiError::PayloadTooLarge { limit }));
            }
            collect(stream, limit).await.map_err(warp::reject::custom)
        })
}

/// Like [`limited`], with the outcome as a value: for routes that answer an oversized body in
/// their own format (MCP answers a JSON-RPC error).
pub fn try_limited(
    limit: usize,
) -> impl Filter<Extract = (Result<Bytes, ApiError>,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .then(move |declared: Option<u64>, stream| async move {
            if declared.is_some_and(|n| n > limit as u64) {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            collect(stream, limit).await
        })
}

async fn collect<S, B>(stream: S, limit: usize) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut stream = std::pin::pin!(stream);
    let mut out = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("cannot read request body: {e}")))?;
        if out.len() + chunk.remaining() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            out.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(out.freeze())
}
