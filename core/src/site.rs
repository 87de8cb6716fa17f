//! The `Site` trait: how core reaches the files it serves, and the entry
//! types it sees.
//!
//! Core never touches a file system. A [`Site`] looks up a normalised,
//! root-relative path and hands back an open [`Site::Handle`] with its
//! [`Entry`]; core then reads file bytes at offsets or directory entries by
//! index through the same handle, so a file replaced while it is served is
//! still read from the one that was looked up. The Linux shim implements it
//! over `openat2` beneath the root; [`crate::table::Table`] over a
//! `&'static` table, for tests and microcontrollers.

use core::fmt;

/// What a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Kind {
    /// A regular file, served as an HTML page of its text.
    File,
    /// A directory, served as an index page.
    Directory,
}

/// The facts about a file or directory that a response head needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Entry {
    /// File or directory.
    pub kind: Kind,
    /// Length in bytes of a file's contents (not of its page).
    pub len: u64,
    /// Last modification, in seconds since the Unix epoch.
    pub modified: u64,
    /// Sub-second part of the modification time, in nanoseconds; 0 if unknown.
    pub modified_nanos: u32,
    /// What makes this file itself distinct from any other the site could
    /// serve at the same time (device and inode on Linux, an index in a table).
    pub identity: u64,
}

/// One entry of a directory listing, borrowed from the handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DirEntry<'h> {
    /// The name, any bytes but `/` and NUL.
    pub name: &'h [u8],
    /// File or directory.
    pub kind: Kind,
}

/// Why a site could not give what was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    /// Nothing servable at that path: missing, a symlink, a device, a FIFO,
    /// a socket, or beneath a file (404).
    NotFound,
    /// The entry exists but may not be read (403).
    Forbidden,
    /// Reading failed for another reason (500).
    Io,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotFound => "not found",
            Self::Forbidden => "forbidden",
            Self::Io => "i/o error",
        })
    }
}

impl core::error::Error for Error {}

/// A tree of text files and directories that core serves.
///
/// Paths are normalised by [`crate::target::parse_target`]: relative, `""`
/// for the root, segments separated by one `/`, never `.`, `..`, empty, or
/// holding NUL. Implementations must not follow anything out of their tree.
pub trait Site {
    /// An open file or directory. Dropping it releases it.
    type Handle;

    /// Opens the file or directory at `path`.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for anything that is not a regular file or a
    /// directory inside the site.
    fn open(&mut self, path: &[u8]) -> Result<(Self::Handle, Entry), Error>;

    /// Reads a file's bytes from `offset` into `buf`.
    ///
    /// Returns how many bytes were read; `0` means end of file (or an empty
    /// `buf`). Fewer than `buf.len()` is not an error: call again. A file
    /// that shrank since [`Site::open`] reads short; core notices and closes
    /// the connection rather than send fewer bytes than it announced.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the bytes cannot be read.
    fn read(
        &mut self,
        handle: &mut Self::Handle,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, Error>;

    /// The `index`-th entry of a directory, in ascending byte order of names.
    ///
    /// Returns `None` past the last entry. Only regular files and
    /// directories are listed; names starting with `.` may be included (core
    /// hides them). The order and the entries must stay the same for the
    /// life of the handle: core walks the list twice, once to measure the
    /// page and once to send it.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the directory cannot be read.
    fn dir_entry<'h>(
        &mut self,
        handle: &'h mut Self::Handle,
        index: usize,
    ) -> Result<Option<DirEntry<'h>>, Error>;

    /// The whole rendered page for this handle, if the site keeps one.
    ///
    /// A site may cache pages (rendered with [`crate::html`]) and offer them
    /// here; core then sends these bytes instead of rendering the file. The
    /// bytes must be exactly what core would render for the same entry and
    /// path. The default keeps none.
    fn page<'h>(&self, handle: &'h Self::Handle) -> Option<&'h [u8]> {
        let _ = handle;
        None
    }
}
