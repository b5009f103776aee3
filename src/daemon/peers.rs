//! Asking other members for their state over their REST API, as Patroni's
//! leader race does (`GET <api_url>`, 2 s timeout, no retry, all members
//! at once).

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;

use crate::api::http::tls::client::{member_client_config, MemberTlsOptions};
use crate::config::{Map, Value};
use crate::ha::race::PeerStatus;
use crate::model::Cluster;

/// How long one member may take to answer.
const PEER_TIMEOUT: Duration = Duration::from_secs(2);

/// The HTTP client for member-to-member calls, with Patroni's rules
/// (`PatroniRequest` as the daemon builds it): `ctl.certfile`/`keyfile` as
/// the client certificate, servers checked against `ctl.cacert` else
/// `restapi.cafile` (no host-name check), no check at all without a client
/// certificate; basic auth from `ctl.authentication` else
/// `restapi.authentication`.
pub fn client(effective: &Map) -> reqwest::Client {
    let section = |k: &str| effective.get(k).and_then(Value::as_map);
    let ctl = section("ctl");
    let restapi = section("restapi");
    let text = |m: Option<&Map>, k: &str| {
        m.and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let options = MemberTlsOptions {
        cacert: text(ctl, "cacert")
            .or_else(|| text(restapi, "cafile"))
            .map(PathBuf::from),
        certfile: text(ctl, "certfile").map(PathBuf::from),
        keyfile: text(ctl, "keyfile").map(PathBuf::from),
        keyfile_password: text(ctl, "keyfile_password"),
    };
    let mut builder = reqwest::Client::builder()
        .timeout(PEER_TIMEOUT)
        .pool_max_idle_per_host(0);
    match member_client_config(&options) {
        Ok(tls) => builder = builder.use_preconfigured_tls(tls),
        Err(e) => log::error!(target: "patroni.request", "member TLS settings: {e}"),
    }
    let auth = ctl
        .and_then(|c| c.get("authentication"))
        .or_else(|| restapi.and_then(|r| r.get("authentication")))
        .and_then(Value::as_map);
    if let (Some(user), Some(password)) = (text(auth, "username"), text(auth, "password")) {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let mut headers = reqwest::header::HeaderMap::new();
        if let Ok(value) = reqwest::header::HeaderValue::from_str(&format!("Basic {token}")) {
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        builder = builder.default_headers(headers);
    }
    builder.build().unwrap_or_else(|e| {
        log::warn!(target: "patroni.request", "cannot build the HTTP client with TLS settings: {e}");
        reqwest::Client::new()
    })
}

/// Fetch the status of `names` concurrently; members that do not answer
/// (or answer garbage) come back as unreachable.
pub async fn fetch_statuses(
    http: &reqwest::Client,
    cluster: &Cluster,
    names: &[String],
) -> Vec<PeerStatus> {
    let calls = names.iter().filter_map(|name| {
        let member = cluster.member(name)?.clone();
        let url = member.api_url()?.to_owned();
        let http = http.clone();
        Some(async move {
            let body = async {
                let response = http.get(&url).send().await.ok()?;
                response.json::<serde_json::Value>().await.ok()
            }
            .await;
            match body {
                Some(body) => PeerStatus::from_api_response(&member, &body),
                None => {
                    log::warn!(target: "patroni.ha", "Request failed to {}: GET {url}", member.name);
                    PeerStatus::unknown(&member)
                }
            }
        })
    });
    futures_join_all(calls.collect()).await
}

/// Run futures concurrently and collect their outputs in order.
async fn futures_join_all<F>(futures: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        if let Ok(v) = h.await {
            out.push(v);
        }
    }
    out
}
