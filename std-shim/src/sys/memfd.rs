//! Pages kept in memory files: a sealed `memfd` per page, mapped read-only
//! for its bytes, and `sendfile` from it to a socket, so a cached page goes
//! out without being copied through user space (what nginx and lighttpd do
//! with the files they serve). Nobody else holds the file, and once sealed
//! it cannot change or shrink: its mapping never faults or races.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;

use super::{check, check_size, owned};

/// A shared mapping of the first `len` bytes of a file, unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    /// Maps the first `len` (> 0) bytes of `fd`, shared, with `prot`.
    fn new(fd: BorrowedFd<'_>, len: usize, prot: libc::c_int) -> io::Result<Self> {
        // SAFETY: a new mapping at an address the kernel picks; no existing
        // memory is touched.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(io::Error::last_os_error)?;
        Ok(Self { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr and len are exactly what mmap returned and took; no
        // reference into the mapping outlives `self`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// A page of bytes in a sealed memory file of its own, and a read-only
/// mapping of it. Its pages are in memory (tmpfs), but count in the
/// process's resident set only where the mapping is read.
pub struct PageFile {
    fd: OwnedFd,
    map: Mapping,
}

impl PageFile {
    /// A file of `len` (> 0) bytes that `fill` writes; `fill` returns
    /// whether it wrote them all.
    ///
    /// # Errors
    ///
    /// errno of `memfd_create`, `ftruncate`, `mmap` or `fcntl` (EMFILE,
    /// ENOMEM, ...); EINVAL for `len == 0` or when `fill` fails.
    pub fn new(len: usize, fill: impl FnOnce(&mut [u8]) -> bool) -> io::Result<Self> {
        let size =
            libc::off_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
        if len == 0 {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        // SAFETY: the name is NUL-terminated; the flags are valid.
        let fd = owned(unsafe {
            libc::memfd_create(
                c"txtd-page".as_ptr(),
                libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
            )
        })?;
        // SAFETY: plain syscall on a descriptor we own.
        check(unsafe { libc::ftruncate(fd.as_raw_fd(), size) })?;
        let writable = Mapping::new(fd.as_fd(), len, libc::PROT_READ | libc::PROT_WRITE)?;
        // SAFETY: the mapping is `len` writable bytes of a file sized to
        // `len` that only this function holds; the slice ends with it.
        let bytes = unsafe { std::slice::from_raw_parts_mut(writable.ptr.as_ptr(), len) };
        let filled = fill(bytes);
        // Sealing against writes needs the writable mapping gone.
        drop(writable);
        if !filled {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let seals =
            libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE | libc::F_SEAL_SEAL;
        // SAFETY: plain syscall on a descriptor we own.
        check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) })?;
        let map = Mapping::new(fd.as_fd(), len, libc::PROT_READ)?;
        Ok(Self { fd, map })
    }

    /// The page's bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is `len` readable bytes and lives as long as
        // `self`; the file is sealed against writes and shrinking, so the
        // bytes never change and no page of them can vanish.
        unsafe { std::slice::from_raw_parts(self.map.ptr.as_ptr().cast_const(), self.map.len) }
    }

    /// The file, to `sendfile` from.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Sends up to `len` bytes of `file` from `offset` to a socket, without
/// copying them through user space. Returns how many were queued; `0`
/// only at the end of the file (or for `len == 0`).
///
/// # Errors
///
/// errno of `sendfile`; `WouldBlock` when the socket buffer is full.
pub fn sendfile(
    socket: BorrowedFd<'_>,
    file: BorrowedFd<'_>,
    offset: usize,
    len: usize,
) -> io::Result<usize> {
    let mut offset =
        libc::off_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: offset is valid for reading and writing; the descriptors live.
    check_size(unsafe {
        libc::sendfile(socket.as_raw_fd(), file.as_raw_fd(), &raw mut offset, len)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_file_holds_what_was_filled_in_and_is_sealed() {
        let page = PageFile::new(10_000, |bytes| {
            bytes.fill(b'x');
            true
        })
        .unwrap();
        assert_eq!(page.bytes().len(), 10_000);
        assert!(page.bytes().iter().all(|&b| b == b'x'));
        // SAFETY: plain syscall on a descriptor the page owns.
        let seals = unsafe { libc::fcntl(page.fd().as_raw_fd(), libc::F_GET_SEALS) };
        let all = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE | libc::F_SEAL_SEAL;
        assert_eq!(seals & all, all);
        assert!(PageFile::new(0, |_| true).is_err());
        assert!(PageFile::new(10, |_| false).is_err());
    }
}
