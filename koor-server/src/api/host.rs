//! DNS-rebinding protection: the `Host` a request names must be this server.
//!
//! A web page on `http://evil.example` can make its name resolve to 127.0.0.1 after it loaded
//! ("DNS rebinding"); its scripts then reach our loopback listener as same-origin requests, with
//! no `Origin` header on GETs, so [`super::origin_allowed`] never sees them. What such a request
//! cannot hide is the name it was sent to: the `Host` header (or HTTP/2 `:authority`) still says
//! `evil.example`. So, when no token is set, every route but `/health` answers 403 unless the
//! host is:
//!
//! - a loopback name or address (`localhost`, `127.0.0.1`, `[::1]`, ...);
//! - any IP address literal (a page reached by address cannot rebind anything: there is no name
//!   to re-resolve), which covers a LAN address the server is bound to;
//! - the host part of `--bind` / `--dashboard-bind` (e.g. `--bind myhost.lan:9800`);
//! - a name listed in `--allowed-hosts` (`*` turns the check off).
//!
//! With a token, the check is off: a rebinding page does not know the token, so every route but
//! `/health` already refuses it, and a LAN deployment (which should use a token) keeps working
//! under whatever name its clients use.

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::uri::Authority;
use warp::path::FullPath;

use super::ApiError;
use crate::App;

/// Refuses (403) requests whose `Host` is not this server, on every path but `/health`.
pub fn guard(app: App) -> BoxedFilter<()> {
    if app.config.auth_token.is_some() || app.config.allowed_hosts.iter().any(|h| h == "*") {
        return warp::any().boxed();
    }
    warp::path::full()
        .and(warp::host::optional())
        .and_then(move |path: FullPath, host: Option<Authority>| {
            let app = app.clone();
            async move {
                let Some(host) = host else {
                    // HTTP/1.0 without `Host`: no browser sends that.
                    return Ok(());
                };
                if path.as_str() == "/health" || host_allowed(&app, &host) {
                    return Ok(());
                }
                Err(warp::reject::custom(ApiError::Forbidden(format!(
                    "host {host} is not allowed: this server answers to loopback names and addresses, IP addresses, its --bind host and the names given with --allowed-hosts (DNS-rebinding protection)"
                ))))
            }
        })
        .untuple_one()
        .boxed()
}

fn host_allowed(app: &App, authority: &Authority) -> bool {
    let host = authority.host();
    // Every IP literal passes, loopback ones included: only `localhost` needs naming.
    if host.eq_ignore_ascii_case("localhost") || is_ip_literal(host) {
        return true;
    }
    let config = &app.config;
    let bound = [Some(config.bind.as_str()), config.dashboard_bind.as_deref()];
    if bound
        .into_iter()
        .flatten()
        .filter_map(|b| b.parse::<Authority>().ok())
        .any(|b| b.host().eq_ignore_ascii_case(host))
    {
        return true;
    }
    config.allowed_hosts.iter().any(|allowed| {
        // An entry with a port must match the port too.
        match allowed.parse::<Authority>() {
            Ok(a) if a.port().is_some() => a == *authority,
            Ok(a) => a.host().eq_ignore_ascii_case(host),
            Err(_) => false,
        }
    })
}

/// `localhost` or a loopback address (`127.0.0.0/8`, `::1`, bracketed or not).
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn is_ip_literal(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<std::net::IpAddr>().is_ok()
}
