//! The `patroni` executable: argv, configuration, logging, then the daemon.
//! Everything of substance lives in the library; this file only wires.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use patroni::cli::{self, Args, Mode};
use patroni::config::effective::{default_validator, Config, ConfigError};
use patroni::config::validate::{apply_validator_defaults, validate, ValidateParams};
use patroni::config::{sample, yaml, Value};

/// The process environment as (name, value) pairs; variables whose name or
/// value is not UTF-8 cannot be Patroni settings and are skipped.
fn environment() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

fn config_path(args: &Args) -> Option<&Path> {
    (!args.configfile.is_empty()).then(|| Path::new(&args.configfile))
}

/// Print Python Patroni's `sys.exit(message)`: the text on stderr, status 1.
fn fail(message: impl std::fmt::Display) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "{message}");
    ExitCode::from(1)
}

fn validate_config(args: &Args) -> ExitCode {
    let params = ValidateParams {
        ignore_listen_port: args.ignore_listen_port,
    };
    let schema = |v: &Value| validate(v, &params);
    let config = match Config::load(config_path(args), &environment(), Some(&schema)) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    if args.print {
        // Patroni's schema fills in defaults while validating, and --print
        // shows the configuration after that.
        let mut local = Value::Map(config.local_configuration().clone());
        apply_validator_defaults(&mut local);
        print!("{}", yaml::dump(&local));
    }
    ExitCode::SUCCESS
}

fn generate_sample_config(args: &Args) -> ExitCode {
    write_generated(args, sample::generate(&environment()))
}

fn generate_config(args: &Args) -> ExitCode {
    write_generated(
        args,
        patroni::config::generate::generate(&environment(), args.dsn.as_deref()),
    )
}

/// Print a generated configuration, or write it to the file named.
fn write_generated(args: &Args, text: Result<String, sample::SampleError>) -> ExitCode {
    let text = match text {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    match config_path(args) {
        None => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                if let Err(e) = std::fs::create_dir_all(dir) {
                    return fail(format!("cannot create {}: {e}", dir.display()));
                }
            }
            match std::fs::write(path, text) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(format!("cannot write {}: {e}", path.display())),
            }
        }
    }
}

fn run(args: &Args) -> ExitCode {
    let env = environment();
    let config = match Config::load(config_path(args), &env, Some(&default_validator)) {
        Ok(c) => c,
        Err(e @ ConfigError::Parse(_)) => return fail(e),
        Err(e) => return fail(format!("patroni: {e}")),
    };
    // Python Patroni removes the variables it read from its environment so
    // that child processes (PostgreSQL, callbacks) do not inherit secrets.
    // Still single-threaded here, so changing the environment is sound.
    for name in config.consumed_env() {
        std::env::remove_var(name);
    }
    let log_section = config
        .get("log")
        .cloned()
        .unwrap_or(Value::Map(Default::default()));
    let settings = match patroni::logging::LogSettings::from_value(&log_section) {
        Ok(s) => s,
        Err(e) => return fail(format!("patroni: invalid log section: {e}")),
    };
    let _logger = match patroni::logging::init(&settings) {
        Ok(h) => h,
        Err(e) => return fail(format!("patroni: cannot start logging: {e}")),
    };
    let status = patroni::daemon::run(config);
    log::logger().flush();
    ExitCode::from(status)
}

fn main() -> ExitCode {
    let args = match cli::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(exit) => {
            if exit.status == 0 {
                print!("{exit}");
            } else {
                eprint!("{exit}");
            }
            return ExitCode::from(exit.status as u8);
        }
    };
    match args.mode {
        Mode::ValidateConfig => validate_config(&args),
        Mode::GenerateSampleConfig => generate_sample_config(&args),
        Mode::GenerateConfig => generate_config(&args),
        Mode::Run => run(&args),
    }
}
