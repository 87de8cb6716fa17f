//! A heap-free loopback device: every frame sent comes back, in order, from
//! a ring of `FRAMES` frames of up to `MTU` bytes. smoltcp 0.12 answers from
//! inside the receive callback, so the receive path hands out a transmit
//! slot distinct from the frame being read; a frame sent with the ring full
//! is dropped, as a real link drops it. No allocation, no panic.

use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// A loopback link for the IP medium (no link-layer header).
#[derive(Debug)]
pub struct Loopback<const FRAMES: usize, const MTU: usize> {
    frames: [[u8; MTU]; FRAMES],
    lens: [usize; FRAMES],
    /// The oldest queued frame.
    head: usize,
    /// Frames queued.
    queued: usize,
    /// Where a frame sent with no free slot goes, to be dropped.
    spill: [u8; MTU],
    /// Frames dropped because the ring was full.
    dropped: u32,
}

impl<const FRAMES: usize, const MTU: usize> Loopback<FRAMES, MTU> {
    /// An empty ring.
    pub const fn new() -> Self {
        Self {
            frames: [[0; MTU]; FRAMES],
            lens: [0; FRAMES],
            head: 0,
            queued: 0,
            spill: [0; MTU],
            dropped: 0,
        }
    }

    /// Frames dropped so far because the ring was full.
    pub fn dropped(&self) -> u32 {
        self.dropped
    }

    /// A transmit token for the slot after the last queued frame, or one
    /// that drops the frame if the ring is full.
    fn tx_token(&mut self) -> TxToken<'_> {
        let tail = (self.head + self.queued) % FRAMES.max(1);
        let full = self.queued >= FRAMES;
        let Self {
            frames,
            lens,
            queued,
            spill,
            dropped,
            ..
        } = self;
        let slot = if full {
            None
        } else {
            frames.get_mut(tail).zip(lens.get_mut(tail))
        };
        match slot {
            Some((frame, len)) => TxToken {
                frame,
                target: Target::Queue { len, queued },
            },
            None => TxToken {
                frame: spill,
                target: Target::Drop { dropped },
            },
        }
    }
}

impl<const FRAMES: usize, const MTU: usize> Default for Loopback<FRAMES, MTU> {
    fn default() -> Self {
        Self::new()
    }
}

/// A received frame, borrowed from the ring.
#[derive(Debug)]
pub struct RxToken<'a> {
    frame: &'a [u8],
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.frame)
    }
}

/// Where a sent frame ends up.
#[derive(Debug)]
enum Target<'a> {
    /// Queued: set its length and count it.
    Queue {
        len: &'a mut usize,
        queued: &'a mut usize,
    },
    /// Dropped: count the loss.
    Drop { dropped: &'a mut u32 },
}

/// A slot to send one frame into.
#[derive(Debug)]
pub struct TxToken<'a> {
    frame: &'a mut [u8],
    target: Target<'a>,
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        // smoltcp never asks for more than the MTU it was told.
        let len = len.min(self.frame.len());
        let result = f(self.frame.get_mut(..len).unwrap_or_default());
        match self.target {
            Target::Queue { len: slot, queued } => {
                *slot = len;
                *queued += 1;
            }
            Target::Drop { dropped } => *dropped = dropped.saturating_add(1),
        }
        result
    }
}

impl<const FRAMES: usize, const MTU: usize> Device for Loopback<FRAMES, MTU> {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _timestamp: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        if self.queued == 0 {
            return None;
        }
        // Dequeue first; the frame's slot stays borrowed by the RxToken,
        // so the TxToken must not get it.
        let rx = self.head;
        self.head = (self.head + 1) % FRAMES.max(1);
        self.queued -= 1;
        let rx_len = self.lens.get(rx).copied().unwrap_or(0);
        let tail = (self.head + self.queued) % FRAMES.max(1);
        let full = self.queued >= FRAMES || tail == rx;
        let Self {
            frames,
            lens,
            queued,
            spill,
            dropped,
            ..
        } = self;
        let (rx_frame, tx) = if full {
            let rx_frame = frames.get(rx).map_or(&[][..], |f| f.as_slice());
            let tx = TxToken {
                frame: spill,
                target: Target::Drop { dropped },
            };
            (rx_frame, tx)
        } else {
            let [rx_frame, tx_frame] = frames.get_disjoint_mut([rx, tail]).ok()?;
            let tx = TxToken {
                frame: tx_frame,
                target: Target::Queue {
                    len: lens.get_mut(tail)?,
                    queued,
                },
            };
            (rx_frame.as_slice(), tx)
        };
        let rx = RxToken {
            frame: rx_frame.get(..rx_len).unwrap_or_default(),
        };
        Some((rx, tx))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<TxToken<'_>> {
        (self.queued < FRAMES).then(|| self.tx_token())
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = MTU;
        // Bytes that never leave memory cannot be corrupted on the way.
        caps.checksum = ChecksumCapabilities::ignored();
        caps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::phy::{RxToken as _, TxToken as _};

    fn send(dev: &mut Loopback<2, 8>, byte: u8) {
        let tx = dev.transmit(Instant::ZERO).unwrap();
        tx.consume(3, |buf| buf.fill(byte));
    }

    #[test]
    fn frames_come_back_in_order() {
        let mut dev = Loopback::<2, 8>::new();
        send(&mut dev, 1);
        send(&mut dev, 2);
        assert!(dev.transmit(Instant::ZERO).is_none(), "the ring is full");
        let (rx, _) = dev.receive(Instant::ZERO).unwrap();
        assert_eq!(rx.consume(|f| f.to_vec()), [1, 1, 1]);
        let (rx, _) = dev.receive(Instant::ZERO).unwrap();
        assert_eq!(rx.consume(|f| f.to_vec()), [2, 2, 2]);
        assert!(dev.receive(Instant::ZERO).is_none());
    }

    #[test]
    fn an_answer_sent_while_receiving_goes_to_another_slot() {
        let mut dev = Loopback::<2, 8>::new();
        send(&mut dev, 1);
        let (rx, tx) = dev.receive(Instant::ZERO).unwrap();
        let got = rx.consume(|f| f.to_vec());
        tx.consume(2, |buf| buf.fill(9));
        assert_eq!(got, [1, 1, 1]);
        let (rx, _) = dev.receive(Instant::ZERO).unwrap();
        assert_eq!(rx.consume(|f| f.to_vec()), [9, 9]);
        assert_eq!(dev.dropped(), 0);
    }

    #[test]
    fn an_answer_with_no_free_slot_is_dropped() {
        let mut dev = Loopback::<2, 8>::new();
        send(&mut dev, 1);
        send(&mut dev, 2);
        let (rx, tx) = dev.receive(Instant::ZERO).unwrap();
        // One frame still queued and the other slot being read: no room.
        tx.consume(3, |buf| buf.fill(7));
        assert_eq!(rx.consume(|f| f.to_vec()), [1, 1, 1]);
        assert_eq!(dev.dropped(), 1);
        let (rx, _) = dev.receive(Instant::ZERO).unwrap();
        assert_eq!(rx.consume(|f| f.to_vec()), [2, 2, 2]);
        assert!(dev.receive(Instant::ZERO).is_none());
    }
}
