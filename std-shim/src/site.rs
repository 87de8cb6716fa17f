//! The file-system [`Site`]: the root is opened once as a directory, and
//! every path is opened beneath it without following symlinks.
//!
//! A path is first opened with `O_PATH` and checked with `fstat`: only a
//! regular file or a directory is then opened for reading (a FIFO, socket
//! or device never is), and the second open must name the same inode.
//! File bytes are read with `pread` from that one descriptor.
//!
//! Pages of files up to [`MAX_CACHED_FILE`] are rendered once into a
//! bounded per-worker cache keyed by path and checked against the file's
//! (device, inode, size, mtime): a changed file has a new key and is
//! rendered again. A check is an `O_PATH` open and an `fstat`, made at most
//! once per [`FsSite::revalidate_every`] interval (nginx's
//! `open_file_cache_valid`), so a hit within it costs no system call. Pages
//! above [`MIN_FILE_PAGE`] live in sealed memory files, for `sendfile`
//! ([`FsSite::page_file`]). The cached bytes are core's own rendering
//! ([`txtd_core::html::write_page`]), so they equal what core would stream.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use txtd_core::html;
use txtd_core::site::{DirEntry, Entry, Error, Kind, Site};

use crate::sys;

/// Largest file whose rendered page is cached.
pub const MAX_CACHED_FILE: u64 = 1024 * 1024;
/// Rendered-page bytes a worker keeps at most.
pub const CACHE_BYTES: usize = 32 * 1024 * 1024;
/// Smallest page kept in a memory file and sent with `sendfile`: below it,
/// copying the page with its head in one `sendmsg` costs less than a second
/// system call.
pub const MIN_FILE_PAGE: usize = 16 * 1024;
/// Most pages in memory files at once: each holds a descriptor.
pub const MAX_FILE_PAGES: usize = 256;

/// What identifies one version of a file's content.
type Key = (u64, u64, u64, i64, i64);

/// A rendered page's bytes: on the heap, or in a sealed memory file.
pub enum Page {
    /// A small page, sent by copying.
    Heap(Box<[u8]>),
    /// A page in a memory file of its own, sent with `sendfile`.
    File(sys::PageFile),
}

impl Page {
    fn bytes(&self) -> &[u8] {
        match self {
            Self::Heap(bytes) => bytes,
            Self::File(file) => file.bytes(),
        }
    }
}

/// One cached page: the file version it was rendered from, when that was
/// last checked, and the entry core sees.
struct Cached {
    key: Key,
    entry: Entry,
    page: Rc<Page>,
    checked_ms: u64,
}

/// Rendered pages by path, evicted oldest first past [`CACHE_BYTES`] or
/// [`MAX_FILE_PAGES`].
#[derive(Default)]
struct PageCache {
    pages: HashMap<Box<[u8]>, Cached>,
    /// Paths in the order they were first cached.
    order: VecDeque<Box<[u8]>>,
    bytes: usize,
    files: usize,
}

impl PageCache {
    /// Accounts for a page leaving the cache.
    fn forget(&mut self, page: &Page) {
        self.bytes = self.bytes.saturating_sub(page.bytes().len());
        if matches!(page, Page::File(_)) {
            self.files = self.files.saturating_sub(1);
        }
    }

    fn insert(&mut self, path: &[u8], cached: Cached) {
        let len = cached.page.bytes().len();
        let file = usize::from(matches!(*cached.page, Page::File(_)));
        if let Some(old) = self.pages.remove(path) {
            // Replaced in place: the path keeps its place in `order`.
            self.forget(&old.page);
        } else {
            self.order.push_back(path.into());
        }
        // Bounded: each round evicts a page or passes over `path` once.
        for _ in 0..=self.order.len() {
            if self.bytes.saturating_add(len) <= CACHE_BYTES
                && self.files.saturating_add(file) <= MAX_FILE_PAGES
            {
                break;
            }
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if &*old == path {
                // Not in `pages` now; it goes to the back once more.
                self.order.push_back(old);
                continue;
            }
            if let Some(evicted) = self.pages.remove(&old) {
                self.forget(&evicted.page);
            }
        }
        self.bytes = self.bytes.saturating_add(len);
        self.files = self.files.saturating_add(file);
        self.pages.insert(path.into(), cached);
    }
}

/// A directory tree served beneath its root descriptor.
pub struct FsSite {
    root: OwnedFd,
    cache: PageCache,
    /// How long a cached page is served without checking its file.
    valid_ms: u64,
    /// The monotonic time of the request being opened.
    now_ms: u64,
}

/// An open file or directory.
pub enum Handle {
    /// A regular file, read with `pread`.
    File(OwnedFd),
    /// A regular file whose whole page is rendered.
    Page(Rc<Page>),
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
            valid_ms: 0,
            now_ms: 0,
        })
    }

    /// Checks a cached page's file at most once per `interval` (measured
    /// with the times [`FsSite::set_now_ms`] gives), instead of on every
    /// request; zero, the default, checks every time. Within the interval a
    /// changed or removed file is still served as it was.
    #[must_use]
    pub fn revalidate_every(mut self, interval: Duration) -> Self {
        self.valid_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// Sets the monotonic time, in milliseconds, of the requests opened next.
    pub fn set_now_ms(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }

    /// The memory file holding a handle's page, if it is in one: its bytes
    /// are those of [`Site::page`], to `sendfile` from.
    pub fn page_file<'h>(&self, handle: &'h Handle) -> Option<BorrowedFd<'h>> {
        match handle {
            Handle::Page(page) => match &**page {
                Page::File(file) => Some(file.fd()),
                Page::Heap(_) => None,
            },
            Handle::File(_) | Handle::Dir(_) => None,
        }
    }

    /// The cached page at `path` rendered from the file version `key`.
    fn cached(&mut self, path: &[u8], key: Option<&Key>) -> Option<(Handle, Entry)> {
        let now_ms = self.now_ms;
        let cached = self.cache.pages.get_mut(path)?;
        match key {
            Some(key) if *key != cached.key => return None,
            Some(_) => cached.checked_ms = now_ms,
            None if now_ms.saturating_sub(cached.checked_ms) >= self.valid_ms => return None,
            None => {}
        }
        Some((Handle::Page(Rc::clone(&cached.page)), cached.entry))
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

/// The page of the file at `path` holding `text`, as core renders it:
/// in a memory file from [`MIN_FILE_PAGE`] on (on the heap if one cannot
/// be made).
fn render(path: &[u8], text: &[u8]) -> Option<Page> {
    let len = usize::try_from(html::page_len(path, text)).ok()?;
    let fill = |page: &mut [u8]| html::write_page(path, text, page).ok() == Some(len);
    if len >= MIN_FILE_PAGE
        && let Ok(file) = sys::PageFile::new(len, fill)
    {
        return Some(Page::File(file));
    }
    let mut page = vec![0u8; len];
    fill(&mut page).then(|| Page::Heap(page.into()))
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
        if let Some(hit) = self.cached(path, None) {
            return Ok(hit);
        }
        let probe = sys::open_beneath(self.root.as_fd(), path, true).map_err(|e| site_error(&e))?;
        let seen = sys::fstat(probe.as_fd()).map_err(|e| site_error(&e))?;
        if !seen.is_file && !seen.is_dir {
            return Err(Error::NotFound);
        }
        let key: Key = (seen.dev, seen.ino, seen.size, seen.mtime, seen.mtime_nsec);
        if seen.is_file
            && let Some(hit) = self.cached(path, Some(&key))
        {
            return Ok(hit);
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
                let page = Rc::new(page);
                let cached = Cached {
                    key,
                    entry,
                    page: Rc::clone(&page),
                    checked_ms: self.now_ms,
                };
                self.cache.insert(path, cached);
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
            Handle::Page(page) => Some(page.bytes()),
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
                page.bytes(),
                &streamed(name, text)[..],
                "{}",
                String::from_utf8_lossy(name)
            );
        }
    }
}
