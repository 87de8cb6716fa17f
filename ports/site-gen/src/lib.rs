//! For build scripts: turns a directory into the Rust source of a static
//! site table, `ENTRIES` for core's `Table` and `STAMPS` for
//! `txtd_smoltcp::StaticSite`, so a board serves the files from flash.
//!
//! Dotfiles and anything but regular files and directories are left out, as
//! the Linux shim answers 404 for them. File texts go in through
//! `include_bytes!`; modification seconds, and the identity and nanoseconds
//! the Linux shim derives from each file's `stat`, are recorded so that
//! `Last-Modified` and `ETag` equal the binary's for the same files.
//!
//! # Examples
//!
//! In `build.rs`:
//!
//! ```no_run
//! let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
//! txtd_site_gen::write_table("site".as_ref(), &out.join("site.rs")).unwrap();
//! ```
//!
//! and in the crate, which depends on `txtd-core` and `txtd-smoltcp`:
//!
//! ```text
//! mod site {
//!     include!(concat!(env!("OUT_DIR"), "/site.rs"));
//! }
//! let site = txtd_smoltcp::StaticSite::new(&site::ENTRIES, &site::STAMPS);
//! ```

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Writes the table of the tree at `root` to `out`, and tells Cargo to run
/// the build script again when anything under `root` changes (so the
/// recorded times stay those of the files).
///
/// # Errors
///
/// Any error reading the tree or writing `out`; a file path that is not
/// UTF-8 is [`io::ErrorKind::InvalidData`] (`include_bytes!` needs a string).
pub fn write_table(root: &Path, out: &Path) -> io::Result<()> {
    println!("cargo:rerun-if-changed={}", root.display());
    fs::write(out, site_table(root)?)
}

/// One file or directory found under the root.
struct Found {
    /// Root-relative, `/`-separated; empty for the root.
    path: Vec<u8>,
    file: Option<PathBuf>,
    meta: fs::Metadata,
}

/// The Rust source of `ENTRIES` and `STAMPS` for the tree at `root`.
///
/// # Errors
///
/// As [`write_table`].
pub fn site_table(root: &Path) -> io::Result<String> {
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
        "pub static ENTRIES: [::txtd_core::table::TableEntry; {n}] = ["
    );
    for f in &found {
        let path = f.path.escape_ascii().to_string();
        let secs = modified_secs(&f.meta);
        match &f.file {
            Some(file) => {
                let file = file.to_str().ok_or(io::ErrorKind::InvalidData)?;
                let _ = writeln!(
                    src,
                    "    ::txtd_core::table::TableEntry::file(b\"{path}\", include_bytes!({file:?})).modified({secs}),"
                );
            }
            None => {
                let _ = writeln!(
                    src,
                    "    ::txtd_core::table::TableEntry::dir(b\"{path}\").modified({secs}),"
                );
            }
        }
    }
    let _ = writeln!(src, "];");
    let _ = writeln!(
        src,
        "/// The stamp of each entry of [`ENTRIES`], at the same position."
    );
    let _ = writeln!(src, "pub static STAMPS: [::txtd_smoltcp::Stamp; {n}] = [");
    for (pos, f) in found.iter().enumerate() {
        let (identity, nanos) = stamp(&f.meta, pos);
        let _ = writeln!(
            src,
            "    ::txtd_smoltcp::Stamp {{ identity: {identity}, modified_nanos: {nanos} }},"
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch tree, removed on drop.
    struct Tree(PathBuf);

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// A tree for the test `name` (tests run in parallel).
    fn tree(name: &str) -> Tree {
        let root =
            std::env::temp_dir().join(format!("txtd-site-gen-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join("b.txt"), "bee").unwrap();
        fs::write(root.join("a \"q\".txt"), "quoted").unwrap();
        fs::write(root.join(".hidden"), "secret").unwrap();
        fs::write(root.join("sub/inner.txt"), "inner").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(root.join("b.txt"), root.join("link.txt")).unwrap();
        Tree(root)
    }

    #[test]
    fn the_table_lists_files_and_directories_in_walk_order_and_skips_the_rest() {
        let tree = tree("order");
        let src = site_table(&tree.0).unwrap();
        let at = |path: &str| {
            src.find(&format!("(b\"{path}\""))
                .unwrap_or_else(|| panic!("no {path:?} in {src}"))
        };
        let order = [
            at(""),
            at(r#"a \"q\".txt"#),
            at("b.txt"),
            at("sub"),
            at("sub/inner.txt"),
        ];
        assert!(order.is_sorted(), "{src}");
        assert!(src.contains("pub static ENTRIES: [::txtd_core::table::TableEntry; 5] = ["));
        assert!(src.contains("pub static STAMPS: [::txtd_smoltcp::Stamp; 5] = ["));
        assert!(
            !src.contains("hidden") && !src.contains("link.txt"),
            "{src}"
        );
    }

    #[test]
    fn names_are_escaped_and_texts_included_by_path() {
        let tree = tree("names");
        let src = site_table(&tree.0).unwrap();
        assert!(
            src.contains(r#"TableEntry::file(b"a \"q\".txt", include_bytes!("#),
            "{src}"
        );
        let inner = tree.0.join("sub/inner.txt");
        assert!(src.contains(&format!("include_bytes!({:?})", inner.to_str().unwrap())));
    }

    #[cfg(unix)]
    #[test]
    fn stamps_are_what_the_linux_shim_computes() {
        use std::os::unix::fs::MetadataExt;
        let tree = tree("stamps");
        let meta = fs::metadata(tree.0.join("b.txt")).unwrap();
        let src = site_table(&tree.0).unwrap();
        let identity = meta.ino() ^ meta.dev().rotate_left(48);
        let stamp = format!(
            "Stamp {{ identity: {identity}, modified_nanos: {} }}",
            meta.mtime_nsec()
        );
        assert!(src.contains(&stamp), "{src}");
        let modified = format!(
            "b.txt\", include_bytes!({:?})).modified({})",
            tree.0.join("b.txt").to_str().unwrap(),
            meta.mtime()
        );
        assert!(src.contains(&modified), "{src}");
    }
}
