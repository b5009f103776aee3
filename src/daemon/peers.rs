//! Asking other members for their state over their REST API, as Patroni's
//! leader race does (`GET <api_url>`, 2 s timeout, no retry, all members
//! at once).

use std::time::Duration;

use crate::config::{Map, Value};
use crate::ha::race::PeerStatus;
use crate::model::Cluster;

/// How long one member may take to answer.
const PEER_TIMEOUT: Duration = Duration::from_secs(2);

/// The HTTP client for member-to-member calls.
pub fn client(restapi: Option<&Map>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .timeout(PEER_TIMEOUT)
        .pool_max_idle_per_host(0);
    if let Some(cafile) = restapi
        .and_then(|r| r.get("cafile"))
        .and_then(Value::as_str)
    {
        match std::fs::read(cafile)
            .ok()
            .and_then(|pem| reqwest::Certificate::from_pem(&pem).ok())
        {
            Some(cert) => builder = builder.add_root_certificate(cert),
            None => log::warn!(target: "patroni.ha", "cannot read restapi.cafile {cafile}"),
        }
    }
    builder.build().unwrap_or_else(|e| {
        log::warn!(target: "patroni.ha", "cannot build the HTTP client with TLS settings: {e}");
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
