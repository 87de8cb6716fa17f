//! A [`Site`] over a `&'static` table of files and directories: for tests,
//! and for microcontrollers that serve pages from flash.
//!
//! Each [`TableEntry`] names a normalised path (`""` for the root, no
//! leading or trailing `/`). Directories must be listed explicitly; a
//! directory's listing is every entry whose parent path is the directory.
//! The table need not be sorted: listings are produced in name order by a
//! cursor over the table, O(n) per entry for entries asked in sequence.

use crate::site::{DirEntry, Entry, Error, Kind, Site};

/// One file or directory of a [`Table`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TableEntry {
    /// Normalised path: `""` for the root, else segments joined by `/`.
    pub path: &'static [u8],
    /// File or directory.
    pub kind: Kind,
    /// A file's text (empty for a directory).
    pub contents: &'static [u8],
    /// Last modification, seconds since the Unix epoch.
    pub modified: u64,
}

impl TableEntry {
    /// A directory at `path`, modified at the epoch.
    pub const fn dir(path: &'static [u8]) -> Self {
        Self {
            path,
            kind: Kind::Directory,
            contents: &[],
            modified: 0,
        }
    }

    /// A file at `path` holding `contents`, modified at the epoch.
    pub const fn file(path: &'static [u8], contents: &'static [u8]) -> Self {
        Self {
            path,
            kind: Kind::File,
            contents,
            modified: 0,
        }
    }

    /// The same entry with its modification time set.
    #[must_use]
    pub const fn modified(self, unix_secs: u64) -> Self {
        Self {
            modified: unix_secs,
            ..self
        }
    }

    /// The last segment of the path.
    fn name(&self) -> &'static [u8] {
        match self.path.iter().rposition(|&b| b == b'/') {
            Some(slash) => self.path.get(slash + 1..).unwrap_or_default(),
            None => self.path,
        }
    }

    /// Whether this entry sits directly in the directory `dir`.
    fn is_child_of(&self, dir: &[u8]) -> bool {
        if self.path.is_empty() {
            return false;
        }
        let rest = if dir.is_empty() {
            self.path
        } else {
            match self
                .path
                .strip_prefix(dir)
                .and_then(|r| r.strip_prefix(b"/"))
            {
                Some(rest) => rest,
                None => return false,
            }
        };
        !rest.is_empty() && !rest.contains(&b'/')
    }
}

/// A site served from a static table.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    entries: &'static [TableEntry],
}

/// An open entry of a [`Table`]: its position, and a listing cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableHandle {
    entry: usize,
    /// The last listed entry: (listing index, table position).
    cursor: Option<(usize, usize)>,
}

impl Table {
    /// A site over `entries`.
    pub const fn new(entries: &'static [TableEntry]) -> Self {
        Self { entries }
    }

    /// The child of directory `dir` with the least name greater than
    /// `after` (or the least name at all), as a table position.
    fn next_child(&self, dir: &[u8], after: Option<&[u8]>) -> Option<usize> {
        let mut best: Option<(usize, &[u8])> = None;
        for (pos, e) in self.entries.iter().enumerate() {
            if !e.is_child_of(dir) {
                continue;
            }
            let name = e.name();
            if after.is_some_and(|a| name <= a) {
                continue;
            }
            if best.is_none_or(|(_, b)| name < b) {
                best = Some((pos, name));
            }
        }
        best.map(|(pos, _)| pos)
    }
}

impl Site for Table {
    type Handle = TableHandle;

    fn open(&mut self, path: &[u8]) -> Result<(TableHandle, Entry), Error> {
        let (pos, e) = self
            .entries
            .iter()
            .enumerate()
            .find(|(_, e)| e.path == path)
            .ok_or(Error::NotFound)?;
        let entry = Entry {
            kind: e.kind,
            len: e.contents.len() as u64,
            modified: e.modified,
            modified_nanos: 0,
            identity: pos as u64,
        };
        Ok((
            TableHandle {
                entry: pos,
                cursor: None,
            },
            entry,
        ))
    }

    fn read(
        &mut self,
        handle: &mut TableHandle,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, Error> {
        let e = self.entries.get(handle.entry).ok_or(Error::Io)?;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(e.contents.len());
        let rest = e.contents.get(start..).unwrap_or_default();
        let n = rest.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), rest.get(..n)) {
            dst.copy_from_slice(src);
        }
        Ok(n)
    }

    fn dir_entry<'h>(
        &mut self,
        handle: &'h mut TableHandle,
        index: usize,
    ) -> Result<Option<DirEntry<'h>>, Error> {
        let dir = self.entries.get(handle.entry).ok_or(Error::Io)?;
        if dir.kind != Kind::Directory {
            return Err(Error::Io);
        }
        // Continue from the cursor when the listing is walked in order;
        // start over otherwise.
        let (mut at, mut pos) = match handle.cursor {
            Some((i, p)) if i <= index => (i, Some(p)),
            _ => (0, None),
        };
        if pos.is_none() {
            pos = self.next_child(dir.path, None);
        }
        while at < index {
            let Some(p) = pos else { break };
            let after = self.entries.get(p).map(TableEntry::name);
            pos = self.next_child(dir.path, after);
            at += 1;
        }
        let Some(p) = pos else {
            return Ok(None);
        };
        handle.cursor = Some((index, p));
        Ok(self.entries.get(p).map(|e| DirEntry {
            name: e.name(),
            kind: e.kind,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static ENTRIES: [TableEntry; 7] = [
        TableEntry::file(b"b.txt", b"bee"),
        TableEntry::dir(b""),
        TableEntry::dir(b"sub"),
        TableEntry::file(b"sub/inner.txt", b"inner"),
        TableEntry::file(b"a.txt", b"hello world"),
        TableEntry::file(b"sub-file", b"x"),
        TableEntry::file(b".hidden", b"secret"),
    ];

    fn listing(site: &mut Table, path: &[u8]) -> [Option<(&'static [u8], Kind)>; 8] {
        let (mut h, _) = site.open(path).unwrap();
        let mut out = [None; 8];
        for (i, slot) in out.iter_mut().enumerate() {
            let Some(e) = site.dir_entry(&mut h, i).unwrap() else {
                break;
            };
            // Names come from the static table; look the entry up again to
            // get a 'static borrow for the test's array.
            let name = ENTRIES.iter().find(|t| t.name() == e.name).unwrap().name();
            *slot = Some((name, e.kind));
        }
        out
    }

    #[test]
    fn open_finds_files_and_dirs_and_misses_the_rest() {
        let mut site = Table::new(&ENTRIES);
        let (_, e) = site.open(b"a.txt").unwrap();
        assert_eq!((e.kind, e.len, e.identity), (Kind::File, 11, 4));
        assert_eq!(site.open(b"sub").unwrap().1.kind, Kind::Directory);
        assert_eq!(site.open(b"nope"), Err(Error::NotFound));
        assert_eq!(site.open(b"sub/"), Err(Error::NotFound));
    }

    #[test]
    fn read_at_offsets_and_past_the_end() {
        let mut site = Table::new(&ENTRIES);
        let (mut h, _) = site.open(b"a.txt").unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(site.read(&mut h, 6, &mut buf), Ok(4));
        assert_eq!(&buf, b"worl");
        assert_eq!(site.read(&mut h, 10, &mut buf), Ok(1));
        assert_eq!(site.read(&mut h, 11, &mut buf), Ok(0));
        assert_eq!(site.read(&mut h, u64::MAX, &mut buf), Ok(0));
    }

    #[test]
    fn listings_are_sorted_by_name_and_direct_children_only() {
        let mut site = Table::new(&ENTRIES);
        let root = listing(&mut site, b"");
        let expected: [Option<(&[u8], Kind)>; 6] = [
            Some((b".hidden", Kind::File)),
            Some((b"a.txt", Kind::File)),
            Some((b"b.txt", Kind::File)),
            Some((b"sub", Kind::Directory)),
            Some((b"sub-file", Kind::File)),
            None,
        ];
        assert_eq!(&root[..6], &expected);
        let sub = listing(&mut site, b"sub");
        assert_eq!(sub[0], Some((&b"inner.txt"[..], Kind::File)));
        assert_eq!(sub[1], None);
    }

    #[test]
    fn listing_out_of_order_and_again_gives_the_same_entries() {
        let mut site = Table::new(&ENTRIES);
        let (mut h, _) = site.open(b"").unwrap();
        let third = site.dir_entry(&mut h, 2).unwrap().unwrap().name;
        assert_eq!(third, b"b.txt");
        assert_eq!(site.dir_entry(&mut h, 0).unwrap().unwrap().name, b".hidden");
        assert_eq!(
            site.dir_entry(&mut h, 4).unwrap().unwrap().name,
            b"sub-file"
        );
        assert_eq!(site.dir_entry(&mut h, 5).unwrap(), None);
        assert_eq!(site.dir_entry(&mut h, 1).unwrap().unwrap().name, b"a.txt");
    }

    #[test]
    fn a_file_cannot_be_listed() {
        let mut site = Table::new(&ENTRIES);
        let (mut h, _) = site.open(b"a.txt").unwrap();
        assert_eq!(site.dir_entry(&mut h, 0), Err(Error::Io));
    }
}
