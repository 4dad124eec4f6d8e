//! `GET /metrics`: the Prometheus text exposition (behind the same auth as `/api`).

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, Method, header};
use warp::reply::Response;

use super::error::respond;
use super::{ApiError, method_not_allowed, with_app};
use crate::App;
use crate::metrics::CONTENT_TYPE;
use crate::store::{events, specs, state, webhooks};

pub fn routes(app: App) -> BoxedFilter<(Response,)> {
    warp::path!("metrics")
        .and(warp::method())
        .and(with_app(app))
        .then(|method: Method, app: App| async move {
            respond(if method == Method::GET || method == Method::HEAD {
                exposition(app).await
            } else {
                Err(method_not_allowed(&method, "/metrics", "GET"))
            })
        })
        .boxed()
}

async fn exposition(app: App) -> Result<Response, ApiError> {
    let (state_keys, specs, retained, hooks) = app
        .store
        .read(|c| {
            Ok((
                state::count(c)?,
                specs::count(c)?,
                events::count(c)?,
                webhooks::health_counts(c)?,
            ))
        })
        .await?;
    let m = &app.metrics;
    let db = app.store.path();
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let wal = db.with_file_name("data.db-wal");
    m.database_bytes
        .set(i64::try_from(size(db) + size(&wal)).unwrap_or(i64::MAX));
    m.set_events_published(app.bus.last_id());
    m.events_retained.set(retained);
    m.state_keys.set(state_keys);
    m.specs.set(specs);
    m.subscribers.set(app.bus.subscriber_count());
    m.log_subscribers.set(app.logs.subscriber_count());
    let (instances, stale) = app.instances.counts();
    m.instances.set(instances);
    m.stale_instances.set(stale);
    m.uptime_seconds
        .set(i64::try_from(app.started.elapsed().as_secs()).unwrap_or(i64::MAX));
    for (health, n) in [("ok", hooks.0), ("failing", hooks.1), ("disabled", hooks.2)] {
        m.webhooks
            .get_or_create(&crate::metrics::HealthLabels { health })
            .set(n);
    }
    let mut resp = Response::new(m.encode().into());
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    Ok(resp)
}
