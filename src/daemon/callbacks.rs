//! `postgresql.callbacks`: user commands run when PostgreSQL starts, stops,
//! restarts, reloads or changes role, with Patroni's arguments
//! (`<command words...> <action> <role> <scope>`).
//!
//! As in Patroni, one callback runs at a time: a new one kills the one
//! still running (with everything it started, through its process group);
//! `on_reload` has a slot of its own. The daemon never waits for them.

use std::process::Stdio;

use tokio::process::Child;

use crate::config::{Map, Value};
use crate::postgres::bootstrap::shlex_split;

/// The callback names Patroni knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackAction {
    OnStart,
    OnStop,
    OnRestart,
    OnReload,
    OnRoleChange,
}

impl CallbackAction {
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackAction::OnStart => "on_start",
            CallbackAction::OnStop => "on_stop",
            CallbackAction::OnRestart => "on_restart",
            CallbackAction::OnReload => "on_reload",
            CallbackAction::OnRoleChange => "on_role_change",
        }
    }
}

/// The running callbacks.
#[derive(Default)]
pub struct Callbacks {
    current: Option<Child>,
    reload: Option<Child>,
}

/// The argv for `action`, or `None` when no such callback is configured.
pub fn callback_argv(
    callbacks: Option<&Map>,
    action: CallbackAction,
    role: &str,
    scope: &str,
) -> Result<Option<Vec<String>>, String> {
    let Some(command) = callbacks
        .and_then(|c| c.get(action.as_str()))
        .filter(|v| v.truthy())
    else {
        return Ok(None);
    };
    let text = match command {
        Value::Str(s) => s.clone(),
        other => crate::postgres::pystr::py_str(other),
    };
    let mut argv = shlex_split(&text)?;
    if argv.is_empty() {
        return Ok(None);
    }
    argv.extend([
        action.as_str().to_owned(),
        role.to_owned(),
        scope.to_owned(),
    ]);
    Ok(Some(argv))
}

/// Kill a callback and its process group.
fn kill(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        if c.try_wait().ok().flatten().is_none() {
            if let Some(pid) = c.id() {
                // SAFETY: plain kill(2) on the group this child leads.
                unsafe {
                    libc::kill(-(pid as i32), libc::SIGKILL);
                }
            }
            let _ = c.start_kill();
            tokio::spawn(async move {
                let _ = c.wait().await;
            });
        }
    }
}

impl Callbacks {
    /// Run `action` for `role` if configured, killing the callback still
    /// running in the same slot.
    pub fn call(
        &mut self,
        callbacks: Option<&Map>,
        action: CallbackAction,
        role: &str,
        scope: &str,
    ) {
        let role = if role == "promoted" { "primary" } else { role };
        let argv = match callback_argv(callbacks, action, role, scope) {
            Ok(Some(argv)) => argv,
            Ok(None) => return,
            Err(e) => {
                log::error!(target: "patroni.postgresql.callback_executor",
                    "callback {} {role} {scope} failed: {e}", action.as_str());
                return;
            }
        };
        let slot = if action == CallbackAction::OnReload {
            &mut self.reload
        } else {
            &mut self.current
        };
        kill(slot);
        let mut command = tokio::process::Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .stdin(Stdio::null())
            .process_group(0);
        match command.spawn() {
            Ok(child) => {
                let pid = child.id().unwrap_or(0);
                log::debug!(target: "patroni.postgresql.callback_executor",
                    "CallbackExecutor.call({argv:?}) pid {pid}");
                *slot = Some(child);
            }
            Err(e) => log::error!(target: "patroni.postgresql.callback_executor",
                "callback {argv:?} failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml;

    fn callbacks(text: &str) -> Map {
        match yaml::load(text) {
            Ok(Value::Map(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn argv_has_action_role_scope() {
        let c = callbacks("{on_role_change: \"/bin/cb.sh --x 'a b'\", on_start: ''}");
        assert_eq!(
            callback_argv(Some(&c), CallbackAction::OnRoleChange, "primary", "demo")
                .expect("valid"),
            Some(vec![
                "/bin/cb.sh".into(),
                "--x".into(),
                "a b".into(),
                "on_role_change".into(),
                "primary".into(),
                "demo".into()
            ])
        );
        assert_eq!(
            callback_argv(Some(&c), CallbackAction::OnStart, "replica", "demo").expect("valid"),
            None
        );
        assert_eq!(
            callback_argv(None, CallbackAction::OnStop, "replica", "demo").expect("valid"),
            None
        );
        let bad = callbacks("{on_stop: \"unterminated 'quote\"}");
        assert!(callback_argv(Some(&bad), CallbackAction::OnStop, "replica", "demo").is_err());
    }

    #[tokio::test]
    async fn callback_runs_with_arguments() {
        let dir = std::env::temp_dir().join(format!("patroni-rs-cb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let out = dir.join("args");
        let c = callbacks(&format!(
            "{{on_start: \"sh -c 'echo \\\"$@\\\" > {}' cb\"}}",
            out.display()
        ));
        let mut cbs = Callbacks::default();
        cbs.call(Some(&c), CallbackAction::OnStart, "promoted", "demo");
        let mut text = String::new();
        for _ in 0..50 {
            text = std::fs::read_to_string(&out).unwrap_or_default();
            if !text.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(text.trim(), "on_start primary demo");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
