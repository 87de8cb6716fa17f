//! The file-system [`Site`]: the root is opened once as a directory, and
//! every path is opened beneath it without following symlinks.
//!
//! A path is first opened with `O_PATH` and checked with `fstat`: only a
//! regular file or a directory is then opened for reading (a FIFO, socket
//! or device never is), and the second open must name the same inode.
//! File bytes are read with `pread` from that one descriptor.
//!
//! Pages of files up to [`MAX_CACHED_FILE`] are rendered once and kept in a
//! bounded per-worker cache keyed by (device, inode, size, mtime, path), so
//! a hit costs one `O_PATH` open and one `fstat`; a changed file has a new
//! key and is rendered again. The cached bytes are core's own rendering
//! ([`txtd_core::html::write_page`]), so they equal what core would stream.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;

use txtd_core::html;
use txtd_core::site::{DirEntry, Entry, Error, Kind, Site};

use crate::sys;

/// Largest file whose rendered page is cached.
pub const MAX_CACHED_FILE: u64 = 1024 * 1024;
/// Rendered-page bytes a worker keeps at most.
pub const CACHE_BYTES: usize = 32 * 1024 * 1024;

/// What identifies one version of a file's content.
type Key = (u64, u64, u64, i64, i64);
/// A cached page and the path it was rendered for (its last segment is
/// the title).
type Cached = (Box<[u8]>, Rc<[u8]>);

/// Rendered pages, evicted oldest first past [`CACHE_BYTES`].
#[derive(Default)]
struct PageCache {
    pages: HashMap<Key, Cached>,
    order: VecDeque<Key>,
    bytes: usize,
}

impl PageCache {
    fn get(&self, key: &Key, path: &[u8]) -> Option<Rc<[u8]>> {
        self.pages
            .get(key)
            .filter(|(p, _)| &**p == path)
            .map(|(_, page)| Rc::clone(page))
    }

    fn insert(&mut self, key: Key, path: &[u8], page: Rc<[u8]>) {
        while self.bytes.saturating_add(page.len()) > CACHE_BYTES {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some((_, evicted)) = self.pages.remove(&old) {
                self.bytes = self.bytes.saturating_sub(evicted.len());
            }
        }
        self.bytes = self.bytes.saturating_add(page.len());
        if let Some((_, replaced)) = self.pages.insert(key, (path.into(), page)) {
            self.bytes = self.bytes.saturating_sub(replaced.len());
        } else {
            self.order.push_back(key);
        }
    }
}

/// A directory tree served beneath its root descriptor.
pub struct FsSite {
    root: OwnedFd,
    cache: PageCache,
}

/// An open file or directory.
pub enum Handle {
    /// A regular file, read with `pread`.
    File(OwnedFd),
    /// A regular file whose whole page is rendered.
    Page(Rc<[u8]>),
    /// A directory's regular files and subdirectories, sorted by name,
    /// read when it was opened.
    Dir(Vec<(Vec<u8>, Kind)>),
}

impl FsSite {
    /// Opens the root directory.
    ///
    /// # Errors
    ///
    /// The root cannot be opened as a directory.
    pub fn open(root: &Path) -> io::Result<Self> {
        let root = sys::open_dir(root)?;
        // The root must be listable: fail at start, not on the first request.
        sys::list_dir(root.as_fd())?;
        Ok(Self {
            root,
            cache: PageCache::default(),
        })
    }
}

/// Reads all `size` bytes of a file, or `None` if it reads short or long.
fn read_whole(fd: BorrowedFd<'_>, size: u64) -> Option<Vec<u8>> {
    let mut text = vec![0u8; usize::try_from(size).ok()?];
    let mut at = 0;
    while at < text.len() {
        let n = sys::pread(fd, text.get_mut(at..)?, at as u64).ok()?;
        if n == 0 {
            return None;
        }
        at += n;
    }
    Some(text)
}

/// The page of the file at `path` holding `text`, as core renders it.
fn render(path: &[u8], text: &[u8]) -> Option<Rc<[u8]>> {
    let len = usize::try_from(html::page_len(path, text)).ok()?;
    let mut page = vec![0u8; len];
    let written = html::write_page(path, text, &mut page).ok()?;
    (written == len).then(|| page.into())
}

/// The facts core needs about a file or directory.
fn entry_of(stat: &sys::Stat) -> Entry {
    Entry {
        kind: if stat.is_dir {
            Kind::Directory
        } else {
            Kind::File
        },
        len: if stat.is_dir { 0 } else { stat.size },
        modified: u64::try_from(stat.mtime).unwrap_or(0),
        modified_nanos: u32::try_from(stat.mtime_nsec).unwrap_or(0),
        identity: stat.ino ^ stat.dev.rotate_left(48),
    }
}

/// The core error for an errno from opening a path.
fn site_error(e: &io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::EACCES | libc::EPERM) => Error::Forbidden,
        Some(
            libc::ENOENT
            | libc::ENOTDIR
            | libc::ELOOP
            | libc::EXDEV
            | libc::ENXIO
            | libc::ENAMETOOLONG
            | libc::ENODEV,
        ) => Error::NotFound,
        _ => Error::Io,
    }
}

impl Site for FsSite {
    type Handle = Handle;

    fn open(&mut self, path: &[u8]) -> Result<(Handle, Entry), Error> {
        let probe = sys::open_beneath(self.root.as_fd(), path, true).map_err(|e| site_error(&e))?;
        let seen = sys::fstat(probe.as_fd()).map_err(|e| site_error(&e))?;
        if !seen.is_file && !seen.is_dir {
            return Err(Error::NotFound);
        }
        let key: Key = (seen.dev, seen.ino, seen.size, seen.mtime, seen.mtime_nsec);
        if seen.is_file
            && let Some(page) = self.cache.get(&key, path)
        {
            return Ok((Handle::Page(page), entry_of(&seen)));
        }
        let fd = sys::open_beneath(self.root.as_fd(), path, false).map_err(|e| site_error(&e))?;
        let stat = sys::fstat(fd.as_fd()).map_err(|e| site_error(&e))?;
        // Replaced between the two opens: serve nothing rather than guess.
        if (stat.dev, stat.ino) != (seen.dev, seen.ino) || (!stat.is_file && !stat.is_dir) {
            return Err(Error::NotFound);
        }
        let entry = entry_of(&stat);
        if stat.is_file && stat.size <= MAX_CACHED_FILE {
            let key: Key = (stat.dev, stat.ino, stat.size, stat.mtime, stat.mtime_nsec);
            // A file that changes while read is streamed as it is instead.
            if let Some(page) =
                read_whole(fd.as_fd(), stat.size).and_then(|text| render(path, &text))
            {
                self.cache.insert(key, path, Rc::clone(&page));
                return Ok((Handle::Page(page), entry));
            }
        }
        if stat.is_dir {
            let mut entries: Vec<(Vec<u8>, Kind)> = sys::list_dir(fd.as_fd())
                .map_err(|e| site_error(&e))?
                .into_iter()
                .map(|(name, is_dir)| (name, if is_dir { Kind::Directory } else { Kind::File }))
                .collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            Ok((Handle::Dir(entries), entry))
        } else {
            Ok((Handle::File(fd), entry))
        }
    }

    fn read(&mut self, handle: &mut Handle, offset: u64, buf: &mut [u8]) -> Result<usize, Error> {
        match handle {
            Handle::File(fd) => sys::pread(fd.as_fd(), buf, offset).map_err(|_| Error::Io),
            Handle::Page(_) | Handle::Dir(_) => Err(Error::Io),
        }
    }

    fn dir_entry<'h>(
        &mut self,
        handle: &'h mut Handle,
        index: usize,
    ) -> Result<Option<DirEntry<'h>>, Error> {
        match handle {
            Handle::Dir(entries) => Ok(entries.get(index).map(|(name, kind)| DirEntry {
                name: name.as_slice(),
                kind: *kind,
            })),
            Handle::File(_) | Handle::Page(_) => Err(Error::Io),
        }
    }

    fn page<'h>(&self, handle: &'h Handle) -> Option<&'h [u8]> {
        match handle {
            Handle::Page(page) => Some(page),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use txtd_core::conn::{Close, Config, Conn, Now};
    use txtd_core::table::{Table, TableEntry};

    /// The body core streams for a file named `name` holding `text`.
    fn streamed(name: &'static [u8], text: &'static [u8]) -> Vec<u8> {
        let entries: &'static [TableEntry] =
            Box::leak(vec![TableEntry::dir(b""), TableEntry::file(name, text)].into_boxed_slice());
        let mut site = Table::new(entries);
        let (mut input, mut output) = (vec![0u8; 16384], vec![0u8; 512]);
        let now = Now::default();
        let mut conn: Conn<'_, Table> = Conn::new(&mut input, &mut output, Config::DEFAULT, now);
        let request = format!(
            "GET /{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            String::from_utf8_lossy(name)
        );
        conn.read_buf()[..request.len()].copy_from_slice(request.as_bytes());
        conn.received(request.len(), now);
        let mut response = Vec::new();
        for _ in 0..100_000 {
            let interest = conn.poll(&mut site, &mut (), now);
            let [head, body] = conn.output(&site);
            let n = head.len() + body.len();
            response.extend_from_slice(head);
            response.extend_from_slice(body);
            conn.sent(n, now);
            if n == 0 && interest.close != Close::Keep {
                break;
            }
        }
        let end = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        response.split_off(end)
    }

    #[test]
    fn a_cached_page_is_the_page_core_streams() {
        let big: &'static [u8] = Box::leak(
            "caf\u{e9} <&> \"'\t\x01\x7f\n"
                .repeat(700)
                .into_bytes()
                .into_boxed_slice(),
        );
        for (name, text) in [
            (&b"a.txt"[..], &b"hello\n"[..]),
            (b"a&b<c>.txt", b"\xff\xfe cut \xe2\x82"),
            (b"empty.txt", b""),
            (b"big.txt", big),
        ] {
            let page = render(name, text).unwrap();
            assert_eq!(
                &*page,
                &streamed(name, text)[..],
                "{}",
                String::from_utf8_lossy(name)
            );
        }
    }
}
