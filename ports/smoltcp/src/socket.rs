//! `embedded-io` over one smoltcp TCP socket, without blocking: smoltcp moves
//! bytes only when the interface is polled, so reads and writes take what
//! the socket's buffers hold now. [`ReadReady`] and [`WriteReady`] say
//! whether a call will make progress; otherwise [`Read::read`] and
//! [`Write::write`] answer [`Error::WouldBlock`]. No allocation, no panic.

use core::fmt;

use embedded_io::{ErrorKind, ErrorType, Read, ReadReady, Write, WriteReady};
use smoltcp::socket::tcp;

/// Why a read or write over a [`SocketIo`] made no progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    /// Nothing to read or no room to write yet: poll the interface, retry.
    WouldBlock,
    /// The connection cannot carry bytes this way (closed, reset, or its
    /// sending side shut down).
    NotConnected,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::WouldBlock => "would block",
            Self::NotConnected => "not connected",
        })
    }
}

impl core::error::Error for Error {}

impl embedded_io::Error for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            // embedded-io has no WouldBlock kind: a blocking caller would
            // have waited, so for it this is an interrupted call.
            Self::WouldBlock => ErrorKind::Interrupted,
            Self::NotConnected => ErrorKind::NotConnected,
        }
    }
}

/// A smoltcp TCP socket as an `embedded_io` stream.
///
/// Reading answers `Ok(0)` once the peer has closed its side and every
/// byte it sent has been read.
#[derive(Debug)]
pub struct SocketIo<'s, 'a> {
    socket: &'s mut tcp::Socket<'a>,
}

impl<'s, 'a> SocketIo<'s, 'a> {
    /// The stream over `socket`.
    pub fn new(socket: &'s mut tcp::Socket<'a>) -> Self {
        Self { socket }
    }

    /// Whether the handshake is still under way (or never began), so no
    /// byte can move yet but the connection is not over.
    fn is_opening(&self) -> bool {
        matches!(
            self.socket.state(),
            tcp::State::Listen | tcp::State::SynSent | tcp::State::SynReceived
        )
    }

    /// Whether every byte the peer will send has been read: it closed its
    /// side (or the connection is gone) and the receive buffer is empty.
    fn is_at_end(&self) -> bool {
        !self.socket.may_recv() && !self.is_opening()
    }
}

impl ErrorType for SocketIo<'_, '_> {
    type Error = Error;
}

impl ReadReady for SocketIo<'_, '_> {
    /// Whether [`Read::read`] gives bytes or the end of the stream now.
    fn read_ready(&mut self) -> Result<bool, Error> {
        Ok(self.socket.can_recv() || self.is_at_end())
    }
}

impl Read for SocketIo<'_, '_> {
    /// Reads what the socket holds into `buf`; `Ok(0)` at the end of the
    /// stream (or for an empty `buf`).
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when the connection is open but has no bytes.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        if buf.is_empty() || self.is_at_end() {
            return Ok(0);
        }
        match self.socket.recv_slice(buf) {
            Ok(0) => Err(Error::WouldBlock),
            // A socket still opening has no bytes yet.
            Err(tcp::RecvError::InvalidState) if self.is_opening() => Err(Error::WouldBlock),
            Ok(n) => Ok(n),
            // Finished: the peer closed and the buffer is drained.
            Err(tcp::RecvError::Finished) => Ok(0),
            Err(tcp::RecvError::InvalidState) => Err(Error::NotConnected),
        }
    }
}

impl WriteReady for SocketIo<'_, '_> {
    /// Whether [`Write::write`] takes at least one byte now.
    fn write_ready(&mut self) -> Result<bool, Error> {
        if self.socket.may_send() {
            Ok(self.socket.can_send())
        } else if self.is_opening() {
            Ok(false)
        } else {
            Err(Error::NotConnected)
        }
    }
}

impl Write for SocketIo<'_, '_> {
    /// Queues what fits of `buf` in the socket's send buffer.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when the send buffer is full,
    /// [`Error::NotConnected`] when the connection cannot send.
    fn write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self.socket.send_slice(buf) {
            Ok(0) => Err(Error::WouldBlock),
            Ok(n) => Ok(n),
            Err(tcp::SendError::InvalidState) if self.is_opening() => Err(Error::WouldBlock),
            Err(tcp::SendError::InvalidState) => Err(Error::NotConnected),
        }
    }

    /// Nothing to do: smoltcp sends queued bytes at the next interface poll.
    fn flush(&mut self) -> Result<(), Error> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket<'a>(rx: &'a mut [u8], tx: &'a mut [u8]) -> tcp::Socket<'a> {
        tcp::Socket::new(tcp::SocketBuffer::new(rx), tcp::SocketBuffer::new(tx))
    }

    #[test]
    fn a_listening_socket_would_block_both_ways() {
        let (mut rx, mut tx) = ([0; 16], [0; 16]);
        let mut s = socket(&mut rx, &mut tx);
        s.listen(80).unwrap();
        let mut io = SocketIo::new(&mut s);
        assert_eq!(io.read_ready(), Ok(false));
        assert_eq!(io.write_ready(), Ok(false));
        assert_eq!(io.read(&mut [0; 4]), Err(Error::WouldBlock));
        assert_eq!(io.write(b"x"), Err(Error::WouldBlock));
    }

    #[test]
    fn a_closed_socket_reads_the_end_and_cannot_write() {
        let (mut rx, mut tx) = ([0; 16], [0; 16]);
        let mut s = socket(&mut rx, &mut tx);
        let mut io = SocketIo::new(&mut s);
        assert_eq!(io.read_ready(), Ok(true));
        assert_eq!(io.read(&mut [0; 4]), Ok(0));
        assert_eq!(io.write_ready(), Err(Error::NotConnected));
        assert_eq!(io.write(b"x"), Err(Error::NotConnected));
        assert_eq!(io.write(b""), Ok(0));
        assert_eq!(io.flush(), Ok(()));
    }

    #[test]
    fn errors_map_to_embedded_io_kinds() {
        use embedded_io::Error as _;
        assert_eq!(Error::NotConnected.kind(), ErrorKind::NotConnected);
        assert_eq!(Error::WouldBlock.kind(), ErrorKind::Interrupted);
    }
}
