//! The error log: one line per event, `TIMESTAMP [LEVEL] PID: message`, to
//! stderr or a file opened for appending. Each line is one `write` call, so
//! lines from the master and the workers never interleave.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use crate::sys;

/// The log file and its path, or `None` for stderr. The processes are
/// single-threaded; the lock only satisfies `static`.
static FILE: Mutex<Option<(PathBuf, File)>> = Mutex::new(None);

/// Sends later lines to `path` instead of stderr.
///
/// # Errors
///
/// The file cannot be opened for appending.
pub fn open(path: &Path) -> std::io::Result<()> {
    let file = File::options().create(true).append(true).open(path)?;
    if let Ok(mut slot) = FILE.lock() {
        *slot = Some((path.to_owned(), file));
    }
    Ok(())
}

/// Opens the log file again by its path (SIGUSR1, after log rotation).
///
/// # Errors
///
/// The file cannot be opened; the old one stays in use.
pub fn reopen() -> std::io::Result<()> {
    let path = match FILE.lock() {
        Ok(slot) => slot.as_ref().map(|(path, _)| path.clone()),
        Err(_) => None,
    };
    match path {
        Some(path) => open(&path),
        None => Ok(()),
    }
}

/// The buffer every line is formed in: once it has grown to a line's
/// size, logging allocates nothing (a worker logs each refused request).
static LINE: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Writes one line at `level`.
pub fn write(level: &str, message: std::fmt::Arguments<'_>) {
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now());
    // A log that cannot be written has nowhere to report to: drop the line.
    let Ok(mut line) = LINE.lock() else {
        return;
    };
    line.clear();
    let _ = writeln!(line, "{stamp} [{level}] {}: {message}", sys::getpid());
    let mut slot = FILE.lock().ok();
    let _ = match slot.as_mut().and_then(|s| s.as_mut()) {
        Some((_, file)) => file.write_all(&line),
        None => std::io::stderr().lock().write_all(&line),
    };
}

/// Logs at `info`.
macro_rules! log_info {
    ($($arg:tt)*) => { $crate::error_log::write("info", format_args!($($arg)*)) };
}

/// Logs at `warn`.
macro_rules! log_warn {
    ($($arg:tt)*) => { $crate::error_log::write("warn", format_args!($($arg)*)) };
}

/// Logs at `error`.
macro_rules! log_error {
    ($($arg:tt)*) => { $crate::error_log::write("error", format_args!($($arg)*)) };
}
