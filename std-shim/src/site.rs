//! The file-system [`Site`]: the root is opened once as a directory, and
//! every path is opened beneath it without following symlinks.
//!
//! A path is first opened with `O_PATH` and checked with `fstat`: only a
//! regular file or a directory is then opened for reading (a FIFO, socket
//! or device never is), and the second open must name the same inode.
//! File bytes are read with `pread` from that one descriptor.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use txtd_core::site::{DirEntry, Entry, Error, Kind, Site};

use crate::sys;

/// A directory tree served beneath its root descriptor.
pub struct FsSite {
    root: OwnedFd,
}

/// An open file or directory.
pub enum Handle {
    /// A regular file, read with `pread`.
    File(OwnedFd),
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
        Ok(Self { root })
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
        let fd = sys::open_beneath(self.root.as_fd(), path, false).map_err(|e| site_error(&e))?;
        let stat = sys::fstat(fd.as_fd()).map_err(|e| site_error(&e))?;
        // Replaced between the two opens: serve nothing rather than guess.
        if (stat.dev, stat.ino) != (seen.dev, seen.ino) || (!stat.is_file && !stat.is_dir) {
            return Err(Error::NotFound);
        }
        let entry = Entry {
            kind: if stat.is_dir {
                Kind::Directory
            } else {
                Kind::File
            },
            len: if stat.is_dir { 0 } else { stat.size },
            modified: u64::try_from(stat.mtime).unwrap_or(0),
            modified_nanos: u32::try_from(stat.mtime_nsec).unwrap_or(0),
            identity: stat.ino ^ stat.dev.rotate_left(48),
        };
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
            Handle::Dir(_) => Err(Error::Io),
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
            Handle::File(_) => Err(Error::Io),
        }
    }
}
