//! Command-line arguments, parsed the way Patroni's argparse parser does:
//! the same options, the same mutually exclusive group, the same usage text
//! and exit statuses (0 for `--help`/`--version`, 2 for a usage error).

use std::fmt;

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Args {
    /// The positional `configfile` (a YAML file or a directory of them);
    /// empty when not given, as in Patroni.
    pub configfile: String,
    pub mode: Mode,
    pub dsn: Option<String>,
    pub ignore_listen_port: bool,
    pub print: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Run,
    ValidateConfig,
    GenerateSampleConfig,
    GenerateConfig,
}

/// Parsing stopped: print `output` (stdout for help/version, stderr for
/// errors) and exit with `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub status: i32,
    pub output: String,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.output)
    }
}

pub const USAGE: &str = "usage: patroni [-h] [--version]
               [--validate-config | --generate-sample-config | --generate-config]
               [--dsn DSN] [--ignore-listen-port] [--print]
               [configfile]
";

const HELP_BODY: &str = "
positional arguments:
  configfile            Patroni may also read the configuration from the
                        PATRONI_CONFIGURATION environment variable

options:
  -h, --help            show this help message and exit
  --version             show program's version number and exit
  --validate-config     Run config validator and exit
  --generate-sample-config
                        Generate a sample Patroni yaml configuration file
  --generate-config     Generate a Patroni yaml configuration file for a
                        running instance
  --dsn DSN             Optional DSN string of the instance to be used as a
                        source for config generation. Superuser connection is
                        required.
  --ignore-listen-port, -i
                        Ignore `listen` ports already in use. Can only be used
                        with --validate-config
  --print, -p           Print out local configuration (incl. environment
                        configuration overrides). Can only be used with
                        --validate-config
";

fn usage_error(message: &str) -> Exit {
    Exit {
        status: 2,
        output: format!("{USAGE}patroni: error: {message}\n"),
    }
}

const LONG_OPTIONS: &[&str] = &[
    "--help",
    "--version",
    "--validate-config",
    "--generate-sample-config",
    "--generate-config",
    "--dsn",
    "--ignore-listen-port",
    "--print",
];

/// Resolve an argparse-style unambiguous prefix (`--valid` for
/// `--validate-config`).
fn resolve_long(opt: &str) -> Result<&'static str, Exit> {
    if let Some(exact) = LONG_OPTIONS.iter().find(|o| **o == opt) {
        return Ok(exact);
    }
    let matches: Vec<&&str> = LONG_OPTIONS.iter().filter(|o| o.starts_with(opt)).collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(usage_error(&format!("unrecognized arguments: {opt}"))),
        many => {
            let names: Vec<&str> = many.iter().map(|s| **s).collect();
            Err(usage_error(&format!(
                "ambiguous option: {opt} could match {}",
                names.join(", ")
            )))
        }
    }
}

/// Parse `argv` without the program name.
pub fn parse<I, S>(argv: I) -> Result<Args, Exit>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let argv: Vec<String> = argv.into_iter().map(Into::into).collect();
    let mut args = Args::default();
    let mut positional: Vec<String> = Vec::new();
    let mut exclusive: Option<&'static str> = None;
    let mut only_positional = false;
    let mut i = 0;
    while i < argv.len() {
        let raw = argv[i].clone();
        i += 1;
        if only_positional || raw == "-" || !raw.starts_with('-') {
            positional.push(raw);
            continue;
        }
        if raw == "--" {
            only_positional = true;
            continue;
        }
        let (name, inline_value) = match raw.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (raw.clone(), None),
        };
        let option: &str = match name.as_str() {
            "-h" => "--help",
            "-i" => "--ignore-listen-port",
            "-p" => "--print",
            long if long.starts_with("--") => resolve_long(long)?,
            short => {
                // Combined short flags such as `-ip`.
                let flags = &short[1..];
                if !flags.is_empty() && flags.chars().all(|c| matches!(c, 'i' | 'p' | 'h')) {
                    for c in flags.chars() {
                        match c {
                            'i' => args.ignore_listen_port = true,
                            'p' => args.print = true,
                            _ => return Err(help()),
                        }
                    }
                    continue;
                }
                return Err(usage_error(&format!("unrecognized arguments: {short}")));
            }
        };
        if inline_value.is_some() && option != "--dsn" {
            return Err(usage_error(&format!(
                "argument {option}: ignored explicit argument '{}'",
                inline_value.unwrap_or_default()
            )));
        }
        match option {
            "--help" => return Err(help()),
            "--version" => {
                return Err(Exit {
                    status: 0,
                    output: format!("patroni {}\n", crate::PATRONI_VERSION),
                })
            }
            "--validate-config" | "--generate-sample-config" | "--generate-config" => {
                if let Some(previous) = exclusive.filter(|p| *p != option) {
                    return Err(usage_error(&format!(
                        "argument {option}: not allowed with argument {previous}"
                    )));
                }
                exclusive = Some(option);
                args.mode = match option {
                    "--validate-config" => Mode::ValidateConfig,
                    "--generate-sample-config" => Mode::GenerateSampleConfig,
                    _ => Mode::GenerateConfig,
                };
            }
            "--dsn" => {
                let value = match inline_value {
                    Some(v) => v,
                    None => match argv.get(i) {
                        Some(v) if !v.starts_with('-') || v == "-" => {
                            i += 1;
                            v.clone()
                        }
                        _ => return Err(usage_error("argument --dsn: expected one argument")),
                    },
                };
                args.dsn = Some(value);
            }
            "--ignore-listen-port" => args.ignore_listen_port = true,
            "--print" => args.print = true,
            _ => unreachable!("every long option is handled"),
        }
    }
    match positional.len() {
        0 => {}
        1 => args.configfile = positional.remove(0),
        _ => {
            return Err(usage_error(&format!(
                "unrecognized arguments: {}",
                positional[1..].join(" ")
            )))
        }
    }
    Ok(args)
}

fn help() -> Exit {
    Exit {
        status: 0,
        output: format!("{USAGE}{HELP_BODY}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_run() {
        let a = parse(["postgres0.yml"]).expect("parses");
        assert_eq!(a.mode, Mode::Run);
        assert_eq!(a.configfile, "postgres0.yml");
        assert_eq!(parse(Vec::<String>::new()).expect("parses").configfile, "");
    }

    #[test]
    fn validate_with_flags() {
        let a = parse(["--validate-config", "-ip", "x.yml"]).expect("parses");
        assert_eq!(a.mode, Mode::ValidateConfig);
        assert!(a.ignore_listen_port && a.print);
        let b = parse(["--valid", "--print", "x.yml"]).expect("prefix");
        assert_eq!(b.mode, Mode::ValidateConfig);
    }

    #[test]
    fn exclusive_group() {
        let e = parse(["--validate-config", "--generate-sample-config"]).unwrap_err();
        assert_eq!(e.status, 2);
        assert!(e.output.ends_with(
            "patroni: error: argument --generate-sample-config: not allowed with argument --validate-config\n"
        ));
    }

    #[test]
    fn errors_and_exits() {
        assert_eq!(
            parse(["a", "b"]).unwrap_err().output.lines().last(),
            Some("patroni: error: unrecognized arguments: b")
        );
        assert_eq!(parse(["--version"]).unwrap_err().output, "patroni 4.1.5\n");
        assert_eq!(parse(["-h"]).unwrap_err().status, 0);
        assert_eq!(parse(["--bogus"]).unwrap_err().status, 2);
        assert_eq!(parse(["--dsn"]).unwrap_err().status, 2);
        assert_eq!(
            parse(["--dsn", "host=x", "--generate-config"])
                .expect("ok")
                .dsn
                .as_deref(),
            Some("host=x")
        );
        assert_eq!(
            parse(["--dsn=host=y"]).expect("ok").dsn.as_deref(),
            Some("host=y")
        );
    }
}
