//! `html::Escaper` over text cut into random pieces, written through
//! output buffers of random sizes (8 bytes or more): it never panics, always
//! makes progress, writes exactly what `measure` predicts, and matches a
//! reference built on `String::from_utf8_lossy`.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use txtd_core::html::{self, Escaper};

#[derive(Debug, Arbitrary)]
struct Input {
    /// The text, cut into pieces; the last one is marked `last`.
    pieces: Vec<Vec<u8>>,
    /// Output buffer sizes, used in turn: 8 + size.
    sizes: Vec<u8>,
}

/// The escaped form of `text`, the slow and obvious way.
fn reference(text: &[u8]) -> Vec<u8> {
    let mut out = String::new();
    for c in String::from_utf8_lossy(text).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\x0c' | '\r' => out.push(c),
            '\0'..='\x1f' | '\x7f' => out.push('\u{FFFD}'),
            _ => out.push(c),
        }
    }
    out.into_bytes()
}

fuzz_target!(|input: Input| {
    let mut pieces = input.pieces;
    if pieces.is_empty() {
        pieces.push(Vec::new());
    }
    let text: Vec<u8> = pieces.concat();
    let mut sizes = input.sizes.iter().map(|&s| 8 + usize::from(s)).cycle();
    let mut next_size = || sizes.next().unwrap_or(8);

    let mut measurer = Escaper::new();
    let mut escaper = Escaper::new();
    let mut measured = 0u64;
    let mut streamed = Vec::new();
    let count = pieces.len();
    for (i, piece) in pieces.iter().enumerate() {
        let last = i + 1 == count;
        measured += measurer.measure(piece, last);
        let mut rest = &piece[..];
        loop {
            let mut out = vec![0u8; next_size()];
            let (consumed, written) = escaper.escape(rest, &mut out, last);
            assert!(
                consumed <= rest.len(),
                "consumed {consumed} of {}",
                rest.len()
            );
            assert!(written <= out.len(), "wrote {written} into {}", out.len());
            streamed.extend_from_slice(&out[..written]);
            rest = &rest[consumed..];
            let done = rest.is_empty() && (!last || escaper.is_empty());
            if done {
                break;
            }
            // Six bytes hold any unit, so a buffer of 8 always moves on.
            assert!(
                consumed > 0 || written > 0,
                "no progress with {} bytes left",
                rest.len()
            );
        }
    }
    assert!(escaper.is_empty() && measurer.is_empty());
    let expected = reference(&text);
    assert_eq!(
        streamed.len() as u64,
        measured,
        "measure disagrees with escape"
    );
    assert_eq!(
        String::from_utf8_lossy(&streamed),
        String::from_utf8_lossy(&expected),
        "escaped text differs from the reference"
    );
    assert_eq!(html::escaped_len(&text), expected.len());
});
