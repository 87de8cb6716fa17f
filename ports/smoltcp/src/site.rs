//! A [`Site`] over a `&'static` table made at compile time, with the same
//! validators as the files it was made from: core's [`Table`] plus a
//! [`Stamp`] (identity, mtime nanoseconds) per entry, as `txtd-site-gen`
//! computes them like the Linux shim does, so a page has one ETag whichever
//! server sends it. No allocation, no panic.

use txtd_core::site::{DirEntry, Entry, Error, Site};
use txtd_core::table::{Table, TableEntry, TableHandle};

/// What a [`TableEntry`] lacks for an ETag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Stamp {
    /// What tells this file from any other the site serves: on Linux,
    /// `inode ^ device.rotate_left(48)` of the file it was built from.
    pub identity: u64,
    /// Sub-second part of the modification time, in nanoseconds.
    pub modified_nanos: u32,
}

/// A site served from a static table and its stamps.
#[derive(Debug, Clone, Copy)]
pub struct StaticSite {
    table: Table,
    stamps: &'static [Stamp],
}

impl StaticSite {
    /// The site over `entries`, where `stamps[i]` belongs to `entries[i]`.
    /// An entry without a stamp keeps the table's identity (its position).
    pub const fn new(entries: &'static [TableEntry], stamps: &'static [Stamp]) -> Self {
        Self {
            table: Table::new(entries),
            stamps,
        }
    }
}

impl Site for StaticSite {
    type Handle = TableHandle;

    fn open(&mut self, path: &[u8]) -> Result<(TableHandle, Entry), Error> {
        let (handle, mut entry) = self.table.open(path)?;
        // A table entry's identity is its position in the table.
        let stamp = usize::try_from(entry.identity)
            .ok()
            .and_then(|pos| self.stamps.get(pos));
        if let Some(stamp) = stamp {
            entry.identity = stamp.identity;
            entry.modified_nanos = stamp.modified_nanos;
        }
        Ok((handle, entry))
    }

    fn read(
        &mut self,
        handle: &mut TableHandle,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, Error> {
        self.table.read(handle, offset, buf)
    }

    fn dir_entry<'h>(
        &mut self,
        handle: &'h mut TableHandle,
        index: usize,
    ) -> Result<Option<DirEntry<'h>>, Error> {
        self.table.dir_entry(handle, index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use txtd_core::site::Kind;

    static ENTRIES: [TableEntry; 3] = [
        TableEntry::dir(b""),
        TableEntry::file(b"a.txt", b"alpha").modified(1_700_000_000),
        TableEntry::file(b"b.txt", b"beta"),
    ];
    static STAMPS: [Stamp; 2] = [
        Stamp {
            identity: 77,
            modified_nanos: 1,
        },
        Stamp {
            identity: 99,
            modified_nanos: 5,
        },
    ];

    #[test]
    fn open_gives_the_stamp_of_the_entry() {
        let mut site = StaticSite::new(&ENTRIES, &STAMPS);
        let (_, e) = site.open(b"a.txt").unwrap();
        assert_eq!(
            e,
            Entry {
                kind: Kind::File,
                len: 5,
                modified: 1_700_000_000,
                modified_nanos: 5,
                identity: 99,
            }
        );
    }

    #[test]
    fn an_entry_without_a_stamp_keeps_its_position() {
        let mut site = StaticSite::new(&ENTRIES, &STAMPS);
        let (mut h, e) = site.open(b"b.txt").unwrap();
        assert_eq!((e.identity, e.modified_nanos), (2, 0));
        let mut buf = [0; 8];
        assert_eq!(site.read(&mut h, 1, &mut buf), Ok(3));
        assert_eq!(&buf[..3], b"eta");
    }

    #[test]
    fn listings_come_from_the_table() {
        let mut site = StaticSite::new(&ENTRIES, &STAMPS);
        let (mut h, _) = site.open(b"").unwrap();
        assert_eq!(site.dir_entry(&mut h, 1).unwrap().unwrap().name, b"b.txt");
        assert_eq!(site.dir_entry(&mut h, 2).unwrap(), None);
    }
}
