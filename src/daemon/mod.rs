//! The running daemon: configuration, DCS client, local PostgreSQL and REST
//! API wired together around the HA loop.
//!
//! - [`node`]: what the daemon reads from the configuration.
//! - [`local`]: the local PostgreSQL (files, postmaster, monitoring query).
//! - [`cycle`]: one HA cycle: observe, ask [`crate::ha::decide`], execute.
//! - [`peers`]: other members' REST status for the leader race.
//! - [`probe`]: refreshes the REST status's PostgreSQL part every second.
//! - [`slots`]: the primary's physical slots for members.
//! - [`history`]: the `/history` key and timeline divergence.
//! - `leader`: the leader's per-cycle duties (slots, `/status`, `/history`).
//! - [`commands`]: the REST API's modifying requests.
//! - [`callbacks`]: `postgresql.callbacks` commands.
//!
//! The loop runs a cycle, then sleeps until `loop_wait` has passed since
//! the cycle began, a DCS watch event (the leader key changed), a REST
//! request that needs the loop, or a signal: SIGHUP reloads the
//! configuration, SIGTERM and SIGINT stop (handing the leader key over).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, Notify};

use crate::api::http::{bind_listen, ApiServer, ApiSettings};
use crate::api::status::{NodeStatus, PostgresView, StatusPublisher};
use crate::config::effective::{Config, ConfigEvent, EventLevel};
use crate::config::Map;
use crate::dcs::Dcs;
use crate::model::Cluster;

pub mod callbacks;
pub mod commands;
mod cycle;
mod failsafe;
mod fence;
mod global;
pub mod history;
mod leader;
pub mod local;
pub mod node;
pub mod peers;
pub mod probe;
mod provision;
pub mod requests;
pub mod slots;
mod standby;
mod stop;
mod sync;
mod watchdog;

use local::LocalPostgres;
use node::NodeConfig;

/// Everything the HA loop owns.
pub struct Daemon {
    config: Config,
    cfg: NodeConfig,
    dcs: Arc<dyn Dcs>,
    pg: LocalPostgres,
    http: reqwest::Client,
    publisher: StatusPublisher,
    wake: Arc<Notify>,
    /// The last cluster view and when it was read.
    cluster: Option<Arc<Cluster>>,
    cluster_valid: bool,
    dcs_last_seen: i64,
    /// We hold the leader key (as of the last cycle).
    is_leader: bool,
    /// The watchdog device, armed while this node acts as primary.
    watchdog: watchdog::Watchdog,
    /// When the leader key we last refreshed expires unrefreshed: the
    /// refresh's start plus ttl (Patroni's `_leader_expiry`).
    leader_expiry: Option<std::time::Instant>,
    /// The system identifier, once the data directory has one.
    sysid: Option<String>,
    /// Seconds since the epoch when the next cycle is due.
    next_run: f64,
    /// Set when the node cannot go on (a failed bootstrap): the daemon
    /// stops with this message.
    fatal: Option<String>,
    /// The daemon is stopping: nothing is started again.
    stopping: bool,
    /// `POST /restart` with a `schedule`: the request, plus the
    /// postmaster start time it was accepted at.
    scheduled_restart: Option<serde_json::Map<String, serde_json::Value>>,
    /// Stops PostgreSQL if the leader key may have expired unrefreshed.
    fence: fence::Fence,
    /// The CHECKPOINT after our last promotion (or bootstrap) finished.
    checkpoint_done: Arc<std::sync::atomic::AtomicBool>,
    /// What the primary remembers about `synchronous_standby_names`.
    sync_tracker: crate::ha::sync::SyncTracker,
    /// Asking the primary not to pick us as a synchronous standby (our
    /// member key says `nosync` while a restart or stop is under way).
    disable_sync: bool,
    /// Member slots the leader keeps after their member left.
    retain_slots: slots::RetainSlots,
    /// Refreshes the REST status's PostgreSQL part between cycles.
    probe: probe::Probe,
    /// DCS failsafe mode, shared with the REST API's `POST /failsafe`.
    failsafe: Arc<failsafe::FailsafeState>,
    /// When this cycle started asking the members to accept us (failsafe).
    failsafe_asked_at: Option<tokio::time::Instant>,
    /// The WAL positions the members reported when they accepted us.
    failsafe_positions: Vec<(String, i64)>,
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Dcs(String),
    #[error("cannot listen on {listen}: {source}")]
    Listen {
        listen: String,
        #[source]
        source: std::io::Error,
    },
}

fn epoch_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Log what the configuration layer reported, at Patroni's levels.
fn log_config_events(config: &mut Config) {
    for event in config.take_events() {
        let ConfigEvent { level, message } = event;
        match level {
            EventLevel::Info => log::info!(target: "patroni.config", "{message}"),
            EventLevel::Warning => log::warn!(target: "patroni.config", "{message}"),
            EventLevel::Error => log::error!(target: "patroni.config", "{message}"),
        }
    }
}

/// systemd readiness notification (`READY=1`, `RELOADING=1`,
/// `STOPPING=1`) when started with `Type=notify`; a no-op otherwise.
fn sd_notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(socket) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let path = path.to_string_lossy().into_owned();
    let result = if let Some(abstract_name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes())
            .and_then(|addr| socket.send_to_addr(state.as_bytes(), &addr))
    } else {
        socket.send_to(state.as_bytes(), &path)
    };
    if let Err(e) = result {
        log::debug!(target: "patroni.daemon", "sd_notify {state}: {e}");
    }
}

/// The watchdog settings under the current configuration and timing.
fn watchdog_config(cfg: &NodeConfig) -> watchdog::WatchdogConfig {
    let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    watchdog::WatchdogConfig::read(
        &cfg.effective,
        secs(cfg.timing.ttl),
        secs(cfg.timing.loop_wait),
    )
}

impl Daemon {
    fn watchdog_config(&self) -> watchdog::WatchdogConfig {
        watchdog_config(&self.cfg)
    }

    fn status_base(&self) -> NodeStatus {
        let mut s = NodeStatus::new(&self.cfg.scope, &self.cfg.name);
        s.tags = self.cfg.tags.clone();
        s.effective_tags = self.cfg.tags.clone();
        s.ttl = self.cfg.timing.ttl.as_secs();
        s
    }

    /// Publish what the REST API shows.
    fn publish(&self) {
        let mut s = self.status_base();
        s.postgres = PostgresView {
            state: self.pg.state.clone(),
            role: self.pg.role.clone(),
            query: self.pg.pg_query(),
        };
        s.is_leader = self.is_leader;
        s.watchdog_failed = !self.watchdog.is_healthy();
        s.leader_expiry = self.is_leader.then_some(self.leader_expiry).flatten();
        // The API checks this pid on every request, so a postmaster that
        // died since the last cycle is reported at once.
        s.postmaster_pid = self.pg.postmaster_pid().and_then(|p| u32::try_from(p).ok());
        s.pg_confirmed_at = self.pg.last_info_at;
        self.probe.follow(self.pg.monitor.params());
        s.cluster = self.cluster.clone();
        s.cluster_valid = self.cluster_valid;
        s.dcs_last_seen = self.dcs_last_seen;
        s.failsafe_mode = self.cfg.ha.failsafe_mode;
        s.failsafe_active = self.failsafe.is_active();
        s.database_system_identifier = self.sysid.clone();
        s.next_run = self.next_run;
        s.scheduled_restart = self.scheduled_restart_view();
        s.pending_restart_reason = self.pg.pending_restart_reason.clone();
        s.global_config = self
            .cluster
            .as_ref()
            .and_then(|c| c.config.as_ref())
            .map(|c| Arc::new(c.data.clone()));
        self.publisher.publish(s);
    }
}

/// How often a freshly started replica re-checks whether it streams.
const STREAMING_POLL: Duration = Duration::from_secs(1);

/// How long after a start the replica keeps checking that often.
const STREAMING_WINDOW: Duration = Duration::from_secs(30);

impl Daemon {
    /// A refresh (or acquisition) of the leader key that started at
    /// `started` succeeded: move the fence's deadline.
    fn lease_renewed(&mut self, started: tokio::time::Instant) {
        self.leader_expiry = Some(started.into_std() + self.cfg.timing.ttl);
        if self.cfg.ha.paused {
            self.fence.disarm();
            return;
        }
        let margin = fence::safety_margin(
            self.cfg
                .effective
                .get("watchdog")
                .and_then(crate::config::Value::as_map)
                .and_then(|w| w.get("safety_margin"))
                .and_then(|v| crate::config::units::parse_int(v, Some("s"))),
            self.cfg.timing.ttl,
        );
        self.fence.renewed(started, self.cfg.timing.ttl, margin);
    }

    /// PostgreSQL runs as a replica of someone, was started less than
    /// [`STREAMING_WINDOW`] ago, and its WAL receiver does not stream yet.
    fn awaiting_streaming(&self) -> bool {
        let recent = self
            .pg
            .started_at
            .is_some_and(|t| t.elapsed() < STREAMING_WINDOW);
        recent
            && self.pg.following.is_some()
            && self.pg.last_info.as_ref().is_some_and(|i| {
                i.is_in_recovery && i.receiver_status.as_deref() != Some("streaming")
            })
    }

    /// The scheduled restart as shown in the member key and REST status:
    /// everything but the start time it was accepted at.
    fn scheduled_restart_view(&self) -> Option<serde_json::Map<String, serde_json::Value>> {
        let mut view = self.scheduled_restart.clone()?;
        view.remove("postmaster_start_time");
        Some(view)
    }
}

/// `http://h:p/patroni` -> `http://h:p/liveness` (Patroni builds member
/// URLs from the scheme and address of `api_url`).
fn liveness_url(api_url: &str) -> String {
    let (scheme, rest) = api_url.split_once("://").unwrap_or(("http", api_url));
    let authority = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{authority}/liveness")
}

/// Start the REST API on `restapi.listen`.
async fn start_api(
    effective: &Map,
    publisher: &StatusPublisher,
    commands: Arc<commands::DaemonCommands>,
) -> Result<(), StartupError> {
    let restapi = effective
        .get("restapi")
        .and_then(crate::config::Value::as_map)
        .cloned()
        .unwrap_or_default();
    let listen = match restapi.get("listen") {
        Some(crate::config::Value::Str(s)) => s.clone(),
        _ => return Err(StartupError::Config("restapi.listen is not defined".into())),
    };
    let settings = ApiSettings::from_restapi(&restapi);
    let listener = bind_listen(&listen, settings.request_queue_size)
        .await
        .map_err(|source| StartupError::Listen {
            listen: listen.clone(),
            source,
        })?;
    let server = Arc::new(ApiServer {
        settings,
        status: publisher.reader(),
        commands,
    });
    server
        .serve_on_own_thread(listener)
        .map_err(|source| StartupError::Listen { listen, source })
}

/// Run the daemon until a stop signal; returns the process exit status.
pub fn run(config: Config) -> u8 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::error!(target: "patroni.daemon", "cannot start the runtime: {e}");
            return 1;
        }
    };
    runtime.block_on(async move {
        match run_async(config).await {
            Ok(()) => 0,
            Err(e) => {
                log::error!(target: "patroni.daemon", "{e}");
                1
            }
        }
    })
}

async fn run_async(mut config: Config) -> Result<(), StartupError> {
    log_config_events(&mut config);
    let cfg = NodeConfig::from_effective(&config.effective()).map_err(StartupError::Config)?;
    let dcs: Arc<dyn Dcs> = Arc::from(
        crate::dcs::from_config(&config.effective(), cfg.timing)
            .map_err(|e| StartupError::Dcs(e.to_string()))?,
    );
    let pg = LocalPostgres::new(cfg.clone()).map_err(|e| StartupError::Config(e.to_string()))?;
    let http = peers::client(&config.effective());
    let (publisher, _) = StatusPublisher::new(NodeStatus::new(&cfg.scope, &cfg.name));
    let wake = Arc::new(Notify::new());
    let (requests_tx, mut requests) = mpsc::unbounded_channel();
    let failsafe = Arc::new(failsafe::FailsafeState::default());
    let commands = Arc::new(commands::DaemonCommands {
        failsafe: failsafe.clone(),
        dcs: dcs.clone(),
        http: http.clone(),
        wake: wake.clone(),
        requests: requests_tx,
    });
    let cfg_data_dir = cfg.data_dir.clone();
    let watchdog = watchdog::Watchdog::new(watchdog_config(&cfg)).map_err(StartupError::Config)?;
    let (probe_params, probe_publisher) = (pg.monitor.params().clone(), publisher.clone());
    let mut daemon = Daemon {
        config,
        cfg,
        dcs,
        pg,
        http,
        publisher,
        wake,
        cluster: None,
        cluster_valid: false,
        dcs_last_seen: 0,
        is_leader: false,
        watchdog,
        leader_expiry: None,
        sysid: None,
        next_run: 0.0,
        fatal: None,
        stopping: false,
        scheduled_restart: None,
        fence: fence::Fence::start(cfg_data_dir),
        checkpoint_done: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        sync_tracker: Default::default(),
        disable_sync: false,
        retain_slots: Default::default(),
        probe: probe::Probe::start(&probe_params, probe_publisher),
        failsafe,
        failsafe_asked_at: None,
        failsafe_positions: Vec::new(),
    };
    daemon.load_dynamic_configuration().await;
    daemon.ensure_unique_name().await?;
    daemon.publish();
    start_api(&daemon.config.effective(), &daemon.publisher, commands).await?;
    let mut sigterm =
        signal(SignalKind::terminate()).map_err(|e| StartupError::Config(e.to_string()))?;
    let mut sigint =
        signal(SignalKind::interrupt()).map_err(|e| StartupError::Config(e.to_string()))?;
    let mut sighup =
        signal(SignalKind::hangup()).map_err(|e| StartupError::Config(e.to_string()))?;
    sd_notify("READY=1");
    loop {
        let started = Instant::now();
        let message = daemon.run_cycle().await;
        if !message.is_empty() {
            log::info!(target: "patroni.ha", "{message}");
        }
        if let Some(reason) = daemon.fatal.take() {
            // PostgreSQL is left as it is, as Patroni's exit does.
            return Err(StartupError::Config(reason));
        }
        let loop_wait = daemon.cfg.timing.loop_wait;
        let mut wait = loop_wait.saturating_sub(started.elapsed());
        if daemon.awaiting_streaming() {
            // A replica that was just (re)started: publish `streaming` as
            // soon as its WAL receiver gets there, not a whole loop later.
            wait = wait.min(STREAMING_POLL);
        }
        daemon.next_run = epoch_now() + wait.as_secs_f64();
        daemon.publish();
        // Only a member that follows someone watches the leader key: the
        // holder's own refresh would wake it at once (Patroni's `Ha.watch`).
        let leader_version = daemon
            .cluster
            .as_ref()
            .and_then(|c| c.leader.as_ref())
            .filter(|l| l.name != daemon.cfg.name && !daemon.is_leader)
            .and_then(|l| l.version);
        let dcs = daemon.dcs.clone();
        let wake = daemon.wake.clone();
        tokio::select! {
            _ = dcs.watch(leader_version, wait) => {}
            _ = wake.notified() => {}
            _ = sighup.recv() => daemon.reload().await,
            Some(request) = requests.recv() => daemon.handle_request(request).await,
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }
    sd_notify("STOPPING=1");
    daemon.shutdown().await;
    Ok(())
}

impl Daemon {
    /// Before the first cycle: adopt `/config` from the DCS, or when there
    /// is none and no cached one, `bootstrap.dcs` (Patroni's
    /// `load_dynamic_configuration`). Retries every 5 s while the DCS is
    /// unreachable.
    async fn load_dynamic_configuration(&mut self) {
        loop {
            match self.dcs.get_cluster().await {
                Ok(cluster) => {
                    let from_dcs = cluster.config.as_ref().filter(|c| !c.data.is_empty());
                    let changed = if let Some(config) = from_dcs {
                        let value = crate::config::Value::from_json(&serde_json::Value::Object(
                            config.data.clone(),
                        ));
                        value
                            .as_map()
                            .is_some_and(|m| self.config.set_dynamic_configuration(m))
                    } else if self.config.dynamic_configuration().is_empty() {
                        let dcs = self
                            .config
                            .get("bootstrap")
                            .and_then(crate::config::Value::as_map)
                            .and_then(|b| b.get("dcs"))
                            .and_then(crate::config::Value::as_map)
                            .cloned();
                        dcs.is_some_and(|d| self.config.set_dynamic_configuration(&d))
                    } else {
                        false
                    };
                    if changed {
                        log_config_events(&mut self.config);
                        self.apply_config().await;
                    }
                    return;
                }
                Err(e) => {
                    log::warn!(target: "patroni", "Can not get cluster from dcs: {e}");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
        }
    }

    /// Refuse to start when a running member already uses our name: its
    /// REST API answers (any status) on `/liveness` (Patroni's
    /// `ensure_unique_name`).
    async fn ensure_unique_name(&self) -> Result<(), StartupError> {
        let Ok(cluster) = self.dcs.get_cluster().await else {
            return Ok(());
        };
        let Some(url) = cluster
            .member(&self.cfg.name)
            .and_then(|m| m.api_url())
            .map(liveness_url)
        else {
            return Ok(());
        };
        let answered = self
            .http
            .get(&url)
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .is_ok();
        if answered {
            let message = format!(
                "Can't start; there is already a node named '{}' running",
                self.cfg.name
            );
            crate::logging::critical("patroni.__main__", &message);
            return Err(StartupError::Config(message));
        }
        Ok(())
    }

    /// SIGHUP or `POST /reload`: re-read the configuration file.
    async fn reload(&mut self) {
        sd_notify("RELOADING=1");
        match self.config.reload_local_configuration() {
            Ok(Some(_)) => {
                log_config_events(&mut self.config);
                self.apply_config().await;
                log::info!(target: "patroni.config", "Reloaded configuration");
            }
            Ok(None) => {
                log::info!(target: "patroni.config", "No local configuration items changed.")
            }
            Err(e) => {
                log::error!(target: "patroni.config", "Failed to reload the configuration: {e}")
            }
        }
        sd_notify("READY=1");
    }

    /// Adopt the current effective configuration.
    async fn apply_config(&mut self) {
        match NodeConfig::from_effective(&self.config.effective()) {
            Ok(cfg) => {
                self.dcs.set_timing(cfg.timing);
                let params_changed = cfg.postgresql != self.cfg.postgresql;
                if let Err(e) = self.pg.set_config(cfg.clone()).await {
                    log::error!(target: "patroni.config", "{e}");
                    return;
                }
                self.cfg = cfg;
                if params_changed && self.pg.is_running() {
                    if let Err(e) = self.rewrite_and_reload().await {
                        log::error!(target: "patroni.postgresql", "cannot apply the new configuration: {e}");
                    }
                }
            }
            Err(e) => log::error!(target: "patroni.config", "invalid configuration: {e}"),
        }
    }
}

/// The leader's pause between the shutdown checkpoint and the release of
/// the key, bounded so that a dead replica cannot hold the stop.
pub(crate) const SHUTDOWN_REPLICA_WAIT: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    #[test]
    fn liveness_url_keeps_scheme_and_address() {
        assert_eq!(
            super::liveness_url("https://10.0.0.1:8008/patroni"),
            "https://10.0.0.1:8008/liveness"
        );
        assert_eq!(
            super::liveness_url("127.0.0.1:8008"),
            "http://127.0.0.1:8008/liveness"
        );
    }
}
