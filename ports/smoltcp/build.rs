//! With the `demo` feature, turns `demo-site/` into the static table of a
//! [`StaticSite`]: `$OUT_DIR/demo_site.rs` holds `ENTRIES` (paths, texts
//! through `include_bytes!`, modification seconds) and `STAMPS` (identity and
//! nanoseconds, computed from each file's metadata as the Linux shim does).
//!
//! Dotfiles and anything but regular files and directories are left out,
//! as the Linux shim answers 404 for them. Cargo reruns this whenever
//! anything under the directory changes, so the recorded times stay those
//! of the files.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

fn main() -> io::Result<()> {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_DEMO").is_none() {
        return Ok(());
    }
    let manifest =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").ok_or(io::ErrorKind::NotFound)?);
    let out = PathBuf::from(std::env::var_os("OUT_DIR").ok_or(io::ErrorKind::NotFound)?);
    let root = manifest.join("demo-site");
    println!("cargo:rerun-if-changed={}", root.display());
    let table = site_table(&root)?;
    fs::write(out.join("demo_site.rs"), table)
}

/// One file or directory found under the root.
struct Found {
    /// Root-relative, `/`-separated; empty for the root.
    path: Vec<u8>,
    file: Option<PathBuf>,
    meta: fs::Metadata,
}

/// The Rust source of `ENTRIES` and `STAMPS` for the tree at `root`.
fn site_table(root: &Path) -> io::Result<String> {
    let mut found = Vec::new();
    walk(root, Vec::new(), &mut found)?;
    let mut src = String::new();
    let n = found.len();
    let _ = writeln!(
        src,
        "/// The files and directories of the site, in walk order."
    );
    let _ = writeln!(
        src,
        "pub static ENTRIES: [txtd_core::table::TableEntry; {n}] = ["
    );
    for f in &found {
        let path = f.path.escape_ascii().to_string();
        let secs = modified_secs(&f.meta);
        match &f.file {
            Some(file) => {
                let file = file.to_str().ok_or(io::ErrorKind::InvalidData)?;
                let _ = writeln!(
                    src,
                    "    txtd_core::table::TableEntry::file(b\"{path}\", include_bytes!({file:?})).modified({secs}),"
                );
            }
            None => {
                let _ = writeln!(
                    src,
                    "    txtd_core::table::TableEntry::dir(b\"{path}\").modified({secs}),"
                );
            }
        }
    }
    let _ = writeln!(src, "];");
    let _ = writeln!(
        src,
        "/// The stamp of each entry of [`ENTRIES`], at the same position."
    );
    let _ = writeln!(src, "pub static STAMPS: [crate::site::Stamp; {n}] = [");
    for (pos, f) in found.iter().enumerate() {
        let (identity, nanos) = stamp(&f.meta, pos);
        let _ = writeln!(
            src,
            "    crate::site::Stamp {{ identity: {identity}, modified_nanos: {nanos} }},"
        );
    }
    let _ = writeln!(src, "];");
    Ok(src)
}

/// Adds `dir` (at `path`) and everything servable beneath it, by name.
fn walk(dir: &Path, path: Vec<u8>, found: &mut Vec<Found>) -> io::Result<()> {
    found.push(Found {
        path: path.clone(),
        file: None,
        meta: fs::metadata(dir)?,
    });
    let mut names: Vec<_> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    names.sort();
    for name in names {
        let bytes = name.as_encoded_bytes();
        if bytes.starts_with(b".") {
            continue;
        }
        let full = dir.join(&name);
        let meta = fs::symlink_metadata(&full)?;
        let mut child = path.clone();
        if !child.is_empty() {
            child.push(b'/');
        }
        child.extend_from_slice(bytes);
        if meta.is_dir() {
            walk(&full, child, found)?;
        } else if meta.is_file() {
            found.push(Found {
                path: child,
                file: Some(full),
                meta,
            });
        }
    }
    Ok(())
}

fn modified_secs(meta: &fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

/// The identity and nanoseconds the Linux shim gives the same file.
#[cfg(unix)]
fn stamp(meta: &fs::Metadata, _pos: usize) -> (u64, u32) {
    use std::os::unix::fs::MetadataExt;
    let nanos = u32::try_from(meta.mtime_nsec()).unwrap_or(0);
    (meta.ino() ^ meta.dev().rotate_left(48), nanos)
}

/// Elsewhere, the table's own identity: the position.
#[cfg(not(unix))]
fn stamp(_meta: &fs::Metadata, pos: usize) -> (u64, u32) {
    (pos as u64, 0)
}
