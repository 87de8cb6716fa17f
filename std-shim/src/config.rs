//! Command line and configuration file: clap flags, a TOML file with the
//! same keys, flags winning; validated into one [`Config`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use crate::access_log::Format;

/// The defaults, shared by `--help` and the code.
mod default {
    pub const LISTEN: &str = "127.0.0.1:8080";
    pub const MAX_CONNS: usize = 512;
    // Linux's own somaxconn default since 5.4. Connections beyond the slots
    // wait in this queue; once it is full the kernel drops SYNs and a new
    // client retries only after 1 s, then 3 s, so it must outsize a flood
    // of slow connections (2,000 drippers against 2 x 512 slots, say).
    pub const BACKLOG: i32 = 4096;
    pub const MAX_REQUEST_LINE: usize = 8190;
    pub const MAX_HEADER_BYTES: usize = 32 * 1024;
    pub const MAX_HEADERS: usize = 128;
    pub const WATCHDOG_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
    /// lighttpd's stat cache keeps an entry for a second too.
    pub const PAGE_CACHE_VALID: std::time::Duration = std::time::Duration::from_secs(1);
}

/// The shortest watchdog timeout: workers beat once a second, so anything
/// shorter would kill healthy workers between two beats.
const MIN_WATCHDOG_TIMEOUT: Duration = Duration::from_secs(2);

/// A duration flag or key: `5s`, `250ms`, `1m`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("invalid duration {text:?}: {e}"))
}

/// txtd serves the plain-text files of one directory as HTML pages, from a
/// master process and a fixed pool of pre-forked workers.
///
/// Signals: TERM or QUIT stop gracefully (in-flight requests finish, up to
/// --drain-timeout); INT stops at once; HUP reloads the configuration with
/// a new generation of workers; USR1 reopens the log files; USR2 upgrades
/// to the binary now on disk, handing it the listening sockets. Sockets
/// passed by socket activation (LISTEN_FDS) replace --listen; one named
/// `admin` (LISTEN_FDNAMES) replaces --admin-listen.
///
/// The admin interface (--admin-listen) answers GET /healthz, /metrics
/// (Prometheus text format) and /status (HTML; /status?auto for scripts).
#[derive(Parser, Debug, Default)]
#[command(name = "txtd", version, about, long_about)]
pub struct Cli {
    /// The directory to serve [default: .]
    pub root: Option<PathBuf>,
    /// Address to listen on, repeatable; `[::1]:8080` for IPv6, port 0
    /// picks a free port [default: 127.0.0.1:8080]
    #[arg(short, long = "listen", value_name = "ADDR")]
    pub listen: Vec<SocketAddr>,
    /// Number of worker processes [default: the number of CPUs]
    #[arg(short, long, value_name = "N")]
    pub workers: Option<usize>,
    /// TOML configuration file with the same keys as these flags; flags win
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Write the master's pid to this file
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Access log, written in 64 KiB blocks at least once a second; `-`
    /// for stdout [default: off]
    #[arg(long, value_name = "FILE")]
    pub access_log: Option<PathBuf>,
    /// Access log format: `combined` (Apache and nginx's Combined Log
    /// Format) or `json` (one JSON object per line) [default: combined]
    #[arg(long, value_name = "FORMAT", value_enum)]
    pub access_log_format: Option<Format>,
    /// Address of the admin interface (/healthz, /metrics, /status),
    /// answered by the workers; loopback only unless
    /// --admin-allow-remote [default: off]
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,
    /// Allow --admin-listen on an address that is not loopback (the admin
    /// interface has no authentication: firewall it)
    #[arg(long)]
    pub admin_allow_remote: bool,
    /// Error log [default: stderr]
    #[arg(long, value_name = "FILE")]
    pub error_log: Option<PathBuf>,
    /// How long a graceful stop waits for requests in flight [default: 30s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub drain_timeout: Option<Duration>,
    /// Time allowed to receive a request head [default: 10s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub header_timeout: Option<Duration>,
    /// Idle time allowed between requests on a connection [default: 5s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub keepalive_timeout: Option<Duration>,
    /// Time allowed without send progress [default: 30s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub send_timeout: Option<Duration>,
    /// A worker whose heartbeat (once a second) is older than this is
    /// killed and replaced; at least 2s [default: 10s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub watchdog_timeout: Option<Duration>,
    /// How long a cached page is served before its file is checked again
    /// (a changed file shows within this time); 0s checks on every
    /// request [default: 1s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub page_cache_valid: Option<Duration>,
    /// Connection slots per worker [default: 512]
    #[arg(long, value_name = "N")]
    pub max_conns: Option<usize>,
    /// Listen backlog, clamped by the kernel to net.core.somaxconn [default: 4096]
    #[arg(long, value_name = "N")]
    pub backlog: Option<i32>,
    /// Longest request line in bytes (longer: 414) [default: 8190]
    #[arg(long, value_name = "BYTES")]
    pub max_request_line: Option<usize>,
    /// Largest request head in bytes (larger: 431) [default: 32768]
    #[arg(long, value_name = "BYTES")]
    pub max_header_bytes: Option<usize>,
    /// Most header fields in a request (more: 431) [default: 128]
    #[arg(long, value_name = "N")]
    pub max_headers: Option<usize>,
    /// Run the workers as this user (needs root; the master stays root)
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Run the workers with this group [default: the user's primary group]
    #[arg(long, value_name = "NAME")]
    pub group: Option<String>,
    /// Validate the configuration and exit
    #[arg(long)]
    pub check_config: bool,
    /// Print the man page (roff, from these flags) and exit
    #[arg(long, exclusive = true)]
    pub print_man: bool,
    /// Print the completion script for SHELL and exit
    #[arg(long, value_name = "SHELL", value_enum, exclusive = true)]
    pub print_completions: Option<clap_complete::Shell>,
}

/// The configuration file: the flags' keys, kebab-case.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct File {
    root: Option<PathBuf>,
    listen: Option<Vec<SocketAddr>>,
    workers: Option<usize>,
    pid_file: Option<PathBuf>,
    access_log: Option<PathBuf>,
    access_log_format: Option<Format>,
    admin_listen: Option<SocketAddr>,
    admin_allow_remote: Option<bool>,
    error_log: Option<PathBuf>,
    drain_timeout: Option<String>,
    header_timeout: Option<String>,
    keepalive_timeout: Option<String>,
    send_timeout: Option<String>,
    watchdog_timeout: Option<String>,
    page_cache_valid: Option<String>,
    max_conns: Option<usize>,
    backlog: Option<i32>,
    max_request_line: Option<usize>,
    max_header_bytes: Option<usize>,
    max_headers: Option<usize>,
    user: Option<String>,
    group: Option<String>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Site root.
    pub root: PathBuf,
    /// Listening addresses.
    pub listen: Vec<SocketAddr>,
    /// Worker processes.
    pub workers: usize,
    /// Pid file.
    pub pid_file: Option<PathBuf>,
    /// Access log; `-` for stdout.
    pub access_log: Option<PathBuf>,
    /// Its line format.
    pub access_log_format: Format,
    /// The admin interface's address.
    pub admin_listen: Option<SocketAddr>,
    /// Whether the admin address may be other than loopback.
    pub admin_allow_remote: bool,
    /// Error log; `None` for stderr.
    pub error_log: Option<PathBuf>,
    /// Graceful stop limit.
    pub drain_timeout: Duration,
    /// Request head limit.
    pub header_timeout: Duration,
    /// Keep-alive idle limit.
    pub keepalive_timeout: Duration,
    /// Send progress limit.
    pub send_timeout: Duration,
    /// Age of a heartbeat past which the master kills the worker.
    pub watchdog_timeout: Duration,
    /// How long a cached page is served without checking its file.
    pub page_cache_valid: Duration,
    /// Connection slots per worker.
    pub max_conns: usize,
    /// Listen backlog asked for.
    pub backlog: i32,
    /// Request line limit.
    pub max_request_line: usize,
    /// Request head limit.
    pub max_header_bytes: usize,
    /// Field count limit.
    pub max_headers: usize,
    /// The account workers run as (`--user`, `--group`).
    pub account: Option<crate::privileges::Account>,
    /// Validate and exit.
    pub check_config: bool,
}

impl Config {
    /// Merges the flags over the configuration file (if any) over the
    /// defaults, and checks every value.
    ///
    /// # Errors
    ///
    /// A message naming the bad file, key or value.
    pub fn resolve(cli: Cli) -> Result<Self, String> {
        let file = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("config {}: {e}", path.display()))?;
                toml::from_str::<File>(&text).map_err(|e| {
                    format!(
                        "config {}: {}",
                        path.display(),
                        e.message().replace('\n', " ")
                    )
                })?
            }
            None => File::default(),
        };
        let file_duration =
            |key: &str, value: Option<String>| -> Result<Option<Duration>, String> {
                value
                    .map(|v| parse_duration(&v).map_err(|e| format!("config key {key}: {e}")))
                    .transpose()
            };
        let listen = if cli.listen.is_empty() {
            file.listen.unwrap_or_default()
        } else {
            cli.listen
        };
        let listen = if listen.is_empty() {
            vec![
                default::LISTEN
                    .parse()
                    .map_err(|e| format!("default address: {e}"))?,
            ]
        } else {
            listen
        };
        let account = crate::privileges::resolve(
            cli.user.or(file.user).as_deref(),
            cli.group.or(file.group).as_deref(),
        )?;
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let config = Self {
            root: cli.root.or(file.root).unwrap_or_else(|| PathBuf::from(".")),
            listen,
            workers: cli.workers.or(file.workers).unwrap_or(cpus),
            pid_file: cli.pid_file.or(file.pid_file),
            access_log: cli.access_log.or(file.access_log),
            access_log_format: cli
                .access_log_format
                .or(file.access_log_format)
                .unwrap_or_default(),
            admin_listen: cli.admin_listen.or(file.admin_listen),
            admin_allow_remote: cli.admin_allow_remote || file.admin_allow_remote == Some(true),
            error_log: cli.error_log.or(file.error_log),
            drain_timeout: cli
                .drain_timeout
                .or(file_duration("drain-timeout", file.drain_timeout)?)
                .unwrap_or(Duration::from_secs(30)),
            header_timeout: cli
                .header_timeout
                .or(file_duration("header-timeout", file.header_timeout)?)
                .unwrap_or(Duration::from_secs(10)),
            keepalive_timeout: cli
                .keepalive_timeout
                .or(file_duration("keepalive-timeout", file.keepalive_timeout)?)
                .unwrap_or(Duration::from_secs(5)),
            send_timeout: cli
                .send_timeout
                .or(file_duration("send-timeout", file.send_timeout)?)
                .unwrap_or(Duration::from_secs(30)),
            watchdog_timeout: cli
                .watchdog_timeout
                .or(file_duration("watchdog-timeout", file.watchdog_timeout)?)
                .unwrap_or(default::WATCHDOG_TIMEOUT),
            page_cache_valid: cli
                .page_cache_valid
                .or(file_duration("page-cache-valid", file.page_cache_valid)?)
                .unwrap_or(default::PAGE_CACHE_VALID),
            max_conns: cli
                .max_conns
                .or(file.max_conns)
                .unwrap_or(default::MAX_CONNS),
            backlog: cli.backlog.or(file.backlog).unwrap_or(default::BACKLOG),
            max_request_line: cli
                .max_request_line
                .or(file.max_request_line)
                .unwrap_or(default::MAX_REQUEST_LINE),
            max_header_bytes: cli
                .max_header_bytes
                .or(file.max_header_bytes)
                .unwrap_or(default::MAX_HEADER_BYTES),
            max_headers: cli
                .max_headers
                .or(file.max_headers)
                .unwrap_or(default::MAX_HEADERS),
            account,
            check_config: cli.check_config,
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        let in_range = |name: &str, value: usize, low: usize, high: usize| {
            if (low..=high).contains(&value) {
                Ok(())
            } else {
                Err(format!(
                    "{name} must be between {low} and {high}, not {value}"
                ))
            }
        };
        in_range("workers", self.workers, 1, 1024)?;
        in_range("max-conns", self.max_conns, 1, 1 << 20)?;
        in_range("max-request-line", self.max_request_line, 64, 1 << 20)?;
        in_range("max-header-bytes", self.max_header_bytes, 256, 1 << 20)?;
        in_range(
            "max-headers",
            self.max_headers,
            1,
            crate::worker::MAX_FIELDS,
        )?;
        if !(1..=65535).contains(&self.backlog) {
            return Err(format!(
                "backlog must be between 1 and 65535, not {}",
                self.backlog
            ));
        }
        for (name, d) in [
            ("drain-timeout", self.drain_timeout),
            ("header-timeout", self.header_timeout),
            ("keepalive-timeout", self.keepalive_timeout),
            ("send-timeout", self.send_timeout),
        ] {
            if d.is_zero() {
                return Err(format!("{name} must be more than 0"));
            }
        }
        if let Some(addr) = self.admin_listen
            && !addr.ip().is_loopback()
            && !self.admin_allow_remote
        {
            return Err(format!(
                "admin-listen {addr} is not a loopback address; the admin interface has no authentication: add --admin-allow-remote to serve it there"
            ));
        }
        if self.watchdog_timeout < MIN_WATCHDOG_TIMEOUT {
            return Err(format!(
                "watchdog-timeout must be at least {MIN_WATCHDOG_TIMEOUT:?}, not {:?}",
                self.watchdog_timeout
            ));
        }
        let meta = std::fs::metadata(&self.root)
            .map_err(|e| format!("root {}: {e}", self.root.display()))?;
        if !meta.is_dir() {
            return Err(format!("root {}: not a directory", self.root.display()));
        }
        Ok(())
    }

    /// Reads the configuration again from the same command line and
    /// configuration file the process started with (HUP).
    ///
    /// # Errors
    ///
    /// One line naming the bad flag, file, key or value.
    pub fn reload() -> Result<Self, String> {
        let cli = Cli::try_parse_from(std::env::args_os()).map_err(|e| {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            first.trim_start_matches("error: ").to_owned()
        })?;
        Self::resolve(cli)
    }

    /// The connection settings core uses.
    pub fn conn(&self) -> txtd_core::Config {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let mut config = txtd_core::Config::DEFAULT;
        config.limits.max_request_line = self.max_request_line;
        config.limits.max_head = self.max_header_bytes;
        config.limits.max_fields = self.max_headers;
        config.head_timeout_ms = ms(self.header_timeout);
        config.keepalive_timeout_ms = ms(self.keepalive_timeout);
        config.pressure_keepalive_timeout_ms = config
            .pressure_keepalive_timeout_ms
            .min(ms(self.keepalive_timeout));
        config.send_timeout_ms = ms(self.send_timeout);
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> Option<PathBuf> {
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/site"))
    }

    #[test]
    fn the_watchdog_timeout_is_ten_seconds_unless_set() {
        let config = Config::resolve(Cli {
            root: site(),
            ..Cli::default()
        })
        .unwrap();
        assert_eq!(config.watchdog_timeout, Duration::from_secs(10));
        let cli = Cli::try_parse_from(["txtd", "--watchdog-timeout", "3s"]).unwrap();
        assert_eq!(cli.watchdog_timeout, Some(Duration::from_secs(3)));
    }

    #[test]
    fn a_watchdog_timeout_under_two_seconds_is_refused() {
        let e = Config::resolve(Cli {
            root: site(),
            watchdog_timeout: Some(Duration::from_millis(1500)),
            ..Cli::default()
        })
        .unwrap_err();
        assert!(e.starts_with("watchdog-timeout must be at least 2s"), "{e}");
    }

    #[test]
    fn a_cached_page_is_checked_again_after_a_second_unless_set() {
        let config = Config::resolve(Cli {
            root: site(),
            ..Cli::default()
        })
        .unwrap();
        assert_eq!(config.page_cache_valid, Duration::from_secs(1));
        let cli = Cli::try_parse_from(["txtd", "--page-cache-valid", "0s"]).unwrap();
        assert_eq!(cli.page_cache_valid, Some(Duration::ZERO));
        let dir = std::env::temp_dir().join(format!("txtd-config-pcv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("txtd.toml");
        std::fs::write(&file, "page-cache-valid = \"250ms\"\n").unwrap();
        let config = Config::resolve(Cli {
            root: site(),
            config: Some(file),
            ..Cli::default()
        })
        .unwrap();
        assert_eq!(config.page_cache_valid, Duration::from_millis(250));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_watchdog_timeout_is_a_config_file_key() {
        let dir = std::env::temp_dir().join(format!("txtd-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("txtd.toml");
        std::fs::write(&file, "watchdog-timeout = \"4s\"\n").unwrap();
        let config = Config::resolve(Cli {
            root: site(),
            config: Some(file.clone()),
            ..Cli::default()
        })
        .unwrap();
        assert_eq!(config.watchdog_timeout, Duration::from_secs(4));
        std::fs::write(&file, "watchdog-timeout = \"soon\"\n").unwrap();
        let e = Config::resolve(Cli {
            root: site(),
            config: Some(file),
            ..Cli::default()
        })
        .unwrap_err();
        assert!(e.starts_with("config key watchdog-timeout: "), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_admin_and_log_format_keys_are_config_file_keys_too() {
        let dir = std::env::temp_dir().join(format!("txtd-config-admin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("txtd.toml");
        std::fs::write(
            &file,
            "admin-listen = \"0.0.0.0:9080\"\nadmin-allow-remote = true\naccess-log-format = \"json\"\n",
        )
        .unwrap();
        let config = Config::resolve(Cli {
            root: site(),
            config: Some(file.clone()),
            ..Cli::default()
        })
        .unwrap();
        assert_eq!(config.admin_listen, Some("0.0.0.0:9080".parse().unwrap()));
        assert_eq!(config.access_log_format, Format::Json);
        std::fs::write(&file, "admin-listen = \"0.0.0.0:9080\"\n").unwrap();
        let e = Config::resolve(Cli {
            root: site(),
            config: Some(file),
            ..Cli::default()
        })
        .unwrap_err();
        assert!(e.contains("--admin-allow-remote"), "{e}");
        let defaults = Config::resolve(Cli {
            root: site(),
            ..Cli::default()
        })
        .unwrap();
        assert_eq!(
            (defaults.admin_listen, defaults.access_log_format),
            (None, Format::Combined)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
