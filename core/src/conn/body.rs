//! Response bodies of a connection: a file's page or a directory's index,
//! measured in one pass and streamed in a second, through fixed buffers.
//!
//! Both passes do bounded work per call (at most [`STEP_BYTES`] file bytes
//! or [`STEP_ENTRIES`] directory entries), so a huge file never stalls the
//! caller's event loop. The stream never yields more bytes than the
//! measured length: if the file changed in between, it stops at that
//! length, or reports [`Fault::Short`] so the connection closes.

use crate::html::{self, Escaper};
use crate::site::{Kind, Site};

/// File bytes one call of [`Measure::step`] or [`Stream::fill`] may read.
pub(crate) const STEP_BYTES: u64 = 256 * 1024;
/// Directory entries one call may visit.
pub(crate) const STEP_ENTRIES: usize = 4096;

/// Why a body cannot be produced any further.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub(crate) enum Fault {
    /// The site failed to read.
    Io,
    /// The file or listing yielded fewer bytes than measured.
    Short,
    /// There is no room at all to render into.
    TooLarge,
}

/// What a page is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// A text file of this many bytes (the length looked up; never read past).
    File { len: u64 },
    /// A directory listing.
    Index,
}

/// Whether a listed name is shown: dotfiles are hidden.
fn is_listed(name: &[u8]) -> bool {
    name.first() != Some(&b'.')
}

/// The fixed parts of a page: prologue length for `path`, epilogue.
pub(crate) fn frame_len(source: Source, path: &[u8]) -> u64 {
    let (prologue, epilogue) = match source {
        Source::File { .. } => (
            html::page_prologue_len(html::file_name(path)),
            html::PAGE_EPILOGUE.len(),
        ),
        Source::Index => (html::index_prologue_len(path), html::INDEX_EPILOGUE.len()),
    };
    (prologue as u64).saturating_add(epilogue as u64)
}

/// The length pass.
pub(crate) struct Measure {
    pos: u64,
    /// Where the file text ended, once known (short of the looked-up
    /// length if the file shrank).
    end: Option<u64>,
    total: u64,
    entry: usize,
    escaper: Escaper,
}

impl Measure {
    /// A pass that starts from the frame's length.
    pub(crate) fn new(source: Source, path: &[u8]) -> Self {
        Self {
            pos: 0,
            end: None,
            total: frame_len(source, path),
            entry: 0,
            escaper: Escaper::new(),
        }
    }

    /// The source to stream what was measured: a file's length as read.
    pub(crate) fn measured(&self, source: Source) -> Source {
        match (source, self.end) {
            (Source::File { .. }, Some(end)) => Source::File { len: end },
            _ => source,
        }
    }

    /// Measures a bounded amount; `Ok(Some(len))` when the page length is known.
    pub(crate) fn step<S: Site>(
        &mut self,
        site: &mut S,
        handle: &mut S::Handle,
        source: Source,
        scratch: &mut [u8],
    ) -> Result<Option<u64>, Fault> {
        match source {
            Source::File { len } => {
                let stop = self.pos.saturating_add(STEP_BYTES).min(len);
                while self.pos < stop {
                    let want = usize::try_from(stop - self.pos)
                        .unwrap_or(usize::MAX)
                        .min(scratch.len());
                    let buf = scratch.get_mut(..want).ok_or(Fault::TooLarge)?;
                    let n = site.read(handle, self.pos, buf).map_err(|_| Fault::Io)?;
                    if n == 0 {
                        // The file shrank since it was looked up: the page
                        // is the text that is there.
                        self.end = Some(self.pos);
                        break;
                    }
                    let chunk = buf.get(..n).unwrap_or_default();
                    self.pos += n as u64;
                    let last = self.pos >= len;
                    self.total = self.total.saturating_add(self.escaper.measure(chunk, last));
                }
                if self.pos >= len || self.end.is_some() {
                    self.end = Some(self.pos);
                    // Anything held back waits for bytes that never come.
                    self.total = self.total.saturating_add(self.escaper.measure(&[], true));
                    return Ok(Some(self.total));
                }
                Ok(None)
            }
            Source::Index => {
                for _ in 0..STEP_ENTRIES {
                    match site.dir_entry(handle, self.entry).map_err(|_| Fault::Io)? {
                        Some(entry) => {
                            if is_listed(entry.name) {
                                let len = html::index_entry_len(
                                    entry.name,
                                    entry.kind == Kind::Directory,
                                );
                                self.total = self.total.saturating_add(len as u64);
                            }
                            self.entry += 1;
                        }
                        None => return Ok(Some(self.total)),
                    }
                }
                Ok(None)
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Prologue,
    Content,
    Epilogue,
    Done,
}

/// The streaming pass: renders the page in order into output windows.
pub(crate) struct Stream {
    part: Part,
    source: Source,
    /// File: next byte to read. Index: next entry.
    pos: u64,
    /// Raw file bytes read but not yet rendered, as a range of the scratch.
    raw: (usize, usize),
    escaper: Escaper,
    /// Page bytes still to drop before the range starts.
    skip: u64,
    /// Page bytes still to yield.
    remaining: u64,
    /// Bytes of the current unit (prologue, index entry, epilogue) already
    /// rendered: a unit longer than the window goes out in pieces.
    unit: usize,
}

impl Stream {
    /// A stream of page bytes `skip..skip + len`.
    pub(crate) fn new(source: Source, skip: u64, len: u64) -> Self {
        Self {
            part: Part::Prologue,
            source,
            pos: 0,
            raw: (0, 0),
            escaper: Escaper::new(),
            skip,
            remaining: len,
            unit: 0,
        }
    }

    /// Whether every byte has been yielded.
    pub(crate) fn is_done(&self) -> bool {
        self.remaining == 0
    }

    /// Renders the next bytes into `window`; returns `(start, end)` of the
    /// bytes to send within it (after dropping range-skipped bytes).
    ///
    /// `raw` is scratch for file bytes and must be kept intact between
    /// calls. `Ok` with an empty range and `!is_done()` means call again.
    /// Any non-empty window makes progress: a unit longer than it goes
    /// out in pieces. An empty window is [`Fault::TooLarge`].
    pub(crate) fn fill<S: Site>(
        &mut self,
        site: &mut S,
        handle: &mut S::Handle,
        path: &[u8],
        window: &mut [u8],
        raw: &mut [u8],
    ) -> Result<(usize, usize), Fault> {
        if window.is_empty() {
            return Err(Fault::TooLarge);
        }
        let mut written = 0usize;
        let mut budget = STEP_BYTES;
        while self.part != Part::Done && budget > 0 {
            let free = window.get_mut(written..).unwrap_or_default();
            let n = match self.part {
                Part::Prologue => {
                    let (n, len) = match self.source {
                        Source::File { .. } => {
                            let name = html::file_name(path);
                            (
                                html::write_page_prologue_from(name, self.unit, free),
                                html::page_prologue_len(name),
                            )
                        }
                        Source::Index => (
                            html::write_index_prologue_from(path, self.unit, free),
                            html::index_prologue_len(path),
                        ),
                    };
                    self.unit += n;
                    if self.unit < len {
                        // The window is full.
                        written += n;
                        break;
                    }
                    self.unit = 0;
                    self.part = Part::Content;
                    n
                }
                Part::Content => match self.source {
                    Source::File { len } => {
                        let (n, read) = self.fill_text(site, handle, len, free, raw)?;
                        budget = budget.saturating_sub(read);
                        if n == 0 && self.part == Part::Content {
                            // Output full, or waiting on a held-back sequence.
                            if read == 0 {
                                break;
                            }
                        }
                        n
                    }
                    Source::Index => {
                        let (n, visited) = self.fill_entries(site, handle, free)?;
                        budget = budget.saturating_sub(visited as u64 * 64);
                        if n == 0 && self.part == Part::Content {
                            break;
                        }
                        n
                    }
                },
                Part::Epilogue => {
                    let epilogue = match self.source {
                        Source::File { .. } => html::PAGE_EPILOGUE,
                        Source::Index => html::INDEX_EPILOGUE,
                    };
                    let rest = epilogue.get(self.unit..).unwrap_or_default();
                    let n = rest.len().min(free.len());
                    if let (Some(dst), Some(src)) = (free.get_mut(..n), rest.get(..n)) {
                        dst.copy_from_slice(src);
                    }
                    self.unit += n;
                    if self.unit < epilogue.len() {
                        written += n;
                        break;
                    }
                    self.unit = 0;
                    self.part = Part::Done;
                    n
                }
                Part::Done => 0,
            };
            written += n;
            if written >= window.len() {
                break;
            }
        }
        // Drop what precedes the range, cut what follows it.
        let skipped = usize::try_from(self.skip.min(written as u64)).unwrap_or(written);
        self.skip -= skipped as u64;
        let available = (written - skipped) as u64;
        let take = available.min(self.remaining);
        self.remaining -= take;
        if self.part == Part::Done && self.remaining > 0 && take == available {
            // The page came out shorter than measured: the file changed.
            return Err(Fault::Short);
        }
        Ok((skipped, skipped + take as usize))
    }

    /// Renders file text into `out`; returns (bytes written, file bytes read).
    fn fill_text<S: Site>(
        &mut self,
        site: &mut S,
        handle: &mut S::Handle,
        len: u64,
        out: &mut [u8],
        raw: &mut [u8],
    ) -> Result<(usize, u64), Fault> {
        let mut read = 0u64;
        if self.raw.0 >= self.raw.1 && self.pos < len {
            let want = usize::try_from(len - self.pos)
                .unwrap_or(usize::MAX)
                .min(raw.len());
            let buf = raw.get_mut(..want).ok_or(Fault::TooLarge)?;
            let n = site.read(handle, self.pos, buf).map_err(|_| Fault::Io)?;
            if n == 0 {
                // Truncated while being served: what was measured can no
                // longer be sent.
                return Err(Fault::Short);
            }
            self.pos += n as u64;
            self.raw = (0, n);
            read = n as u64;
        }
        let last = self.pos >= len;
        let pending = raw.get(self.raw.0..self.raw.1).unwrap_or_default();
        let (consumed, written) = self.escaper.escape(pending, out, last);
        self.raw.0 += consumed;
        if self.raw.0 >= self.raw.1 && last && self.escaper.is_empty() {
            self.part = Part::Epilogue;
        }
        Ok((written, read))
    }

    /// Renders index entries into `out`, the last one possibly in part;
    /// returns (bytes, entries visited).
    fn fill_entries<S: Site>(
        &mut self,
        site: &mut S,
        handle: &mut S::Handle,
        out: &mut [u8],
    ) -> Result<(usize, usize), Fault> {
        let mut written = 0usize;
        let mut visited = 0usize;
        while visited < STEP_ENTRIES {
            let index = usize::try_from(self.pos).unwrap_or(usize::MAX);
            let Some(entry) = site.dir_entry(handle, index).map_err(|_| Fault::Io)? else {
                self.part = Part::Epilogue;
                break;
            };
            if is_listed(entry.name) {
                let free = out.get_mut(written..).unwrap_or_default();
                let is_dir = entry.kind == Kind::Directory;
                let n = html::write_index_entry_from(entry.name, is_dir, self.unit, free);
                written += n;
                self.unit += n;
                if self.unit < html::index_entry_len(entry.name, is_dir) {
                    // The window is full; the entry goes on in the next.
                    break;
                }
                self.unit = 0;
            }
            self.pos += 1;
            visited += 1;
        }
        Ok((written, visited))
    }
}
