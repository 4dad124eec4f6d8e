//! `GET /health` and `GET /api/metrics`.

use koor_shared::time::format_uptime;
use koor_shared::types::{Health, Metrics};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::Method;
use warp::reply::Response;

use super::{ApiError, method_not_allowed, ok, with_app};
use crate::App;
use crate::store::{events, specs, state};

pub fn routes(app: App) -> BoxedFilter<(Response,)> {
    let health = warp::path!("health")
        .and(warp::method())
        .and(with_app(app.clone()))
        .map(|method: Method, app: App| {
            if method != Method::GET && method != Method::HEAD {
                return super::error::respond(Err(method_not_allowed(&method, "/health", "GET")));
            }
            ok(&Health {
                status: "ok".into(),
                uptime: format_uptime(app.started.elapsed()),
                version: Some(env!("CARGO_PKG_VERSION").into()),
            })
        });
    let metrics = warp::path!("api" / "metrics")
        .and(warp::method())
        .and(with_app(app))
        .then(|method: Method, app: App| async move {
            if method != Method::GET && method != Method::HEAD {
                return super::error::respond(Err(method_not_allowed(
                    &method,
                    "/api/metrics",
                    "GET",
                )));
            }
            super::error::respond(metrics(app).await)
        });
    health.or(metrics).unify().boxed()
}

async fn metrics(app: App) -> Result<Response, ApiError> {
    let (state_keys, specs, events_retained) = app
        .store
        .read(|conn| {
            Ok((
                state::count(conn)?,
                specs::count(conn)?,
                events::count(conn)?,
            ))
        })
        .await?;
    let (instances, stale_instances) = app.instances.counts();
    let (api_bind, dashboard_bind) = app.addrs();
    Ok(ok(&Metrics {
        uptime: format_uptime(app.started.elapsed()),
        state_keys,
        instances,
        last_event_id: app.bus.last_id(),
        api_bind,
        dashboard_bind,
        specs,
        events_retained,
        stale_instances,
        subscribers: app.bus.subscriber_count(),
        log_subscribers: app.logs.subscriber_count(),
        waiters: i64::try_from(app.waiting()).unwrap_or(i64::MAX),
        version: env!("CARGO_PKG_VERSION").into(),
    }))
}
