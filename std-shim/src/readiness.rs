//! Worker start reports: each worker writes its pid into a pipe the master
//! made once it is set up and its listeners are in its epoll set, so the
//! master knows which workers are serving (for `READY=1` and the binary
//! upgrade's handover) without guessing from time.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};

use crate::sys::{self, Pid};

/// The master's end: which workers reported that they serve.
pub struct Reports {
    read: File,
    write: Option<File>,
    started: HashSet<Pid>,
}

impl Reports {
    /// A new pipe; make it before the first fork.
    ///
    /// # Errors
    ///
    /// errno of `pipe2`.
    pub fn new() -> io::Result<Self> {
        let (read, write) = sys::pipe()?;
        Ok(Self {
            read: File::from(read),
            write: Some(File::from(write)),
            started: HashSet::new(),
        })
    }

    /// The read end, for the master's poll.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// Reads every report waiting in the pipe.
    pub fn collect(&mut self) {
        let mut buf = [0u8; 4 * 64];
        loop {
            match self.read.read(&mut buf) {
                // A pid is 4 bytes, one write each, under PIPE_BUF: reads
                // never split one.
                Ok(n) if n > 0 => {
                    for chunk in buf.get(..n).unwrap_or_default().chunks_exact(4) {
                        if let Ok(bytes) = <[u8; 4]>::try_from(chunk) {
                            self.started.insert(Pid::from_ne_bytes(bytes));
                        }
                    }
                }
                Ok(_) => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    /// Whether worker `pid` reported that it serves.
    pub fn has_started(&self, pid: Pid) -> bool {
        self.started.contains(&pid)
    }

    /// Forgets an ended worker (pids are reused).
    pub fn forget(&mut self, pid: Pid) {
        self.started.remove(&pid);
    }

    /// In a new worker: the write end, to report with (the read end is
    /// closed in the worker when `self` is dropped).
    pub fn take_reporter(&mut self) -> Option<Reporter> {
        self.write.take().map(Reporter)
    }
}

/// A worker's end of the pipe.
pub struct Reporter(File);

impl Reporter {
    /// Tells the master this worker serves.
    pub fn started(mut self) {
        if let Err(e) = self.0.write_all(&sys::getpid().to_ne_bytes()) {
            log_warn!("reporting start to the master: {e}");
        }
    }
}
