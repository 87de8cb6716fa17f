//! Property tests of `txtd_core::html` against simple std references: the
//! streaming escaper gives `String::from_utf8_lossy`'s text, escaped, for
//! any input pieces and any output buffer sizes; every `write_*` agrees
//! with its `*_len` and with a `format!`-built page.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers fail loudly"
)]

use proptest::prelude::*;
use txtd_core::html::{
    Error, Escaper, error_page_len, index_entry_len, index_prologue_len, page_prologue_len,
    percent_encoded_len, write_error_page, write_index_entry, write_index_prologue,
    write_page_prologue, write_percent_encoded,
};

/// The escaping rules, written the obvious way over a lossy `String`.
fn escape_ref(bytes: &[u8]) -> String {
    let mut out = String::new();
    for c in String::from_utf8_lossy(bytes).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\x0c' | '\r' => out.push(c),
            '\0'..='\x1f' | '\x7f' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// A name (title, link text) escaped: as [`escape_ref`], but a name has no
/// lines, so HTAB, LF, FF and CR are U+FFFD like every other control.
fn name_ref(bytes: &[u8]) -> String {
    escape_ref(bytes).replace(['\t', '\n', '\x0c', '\r'], "\u{FFFD}")
}

/// Percent-encoding the obvious way; `/` kept only when `keep_slash`.
fn percent_ref(bytes: &[u8], keep_slash: bool) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (keep_slash && b == b'/') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn percent_decode(encoded: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < encoded.len() {
        if encoded[i] == b'%' {
            let hex = std::str::from_utf8(&encoded[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(encoded[i]);
            i += 1;
        }
    }
    out
}

/// Splits `bytes` into pieces of the given sizes, cycled; the last piece
/// runs to the end, and pieces may be empty.
fn pieces<'a>(bytes: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    let mut rest = bytes;
    // Only zero sizes would never get through the input.
    let sizes = if sizes.iter().all(|&size| size == 0) {
        &[1]
    } else {
        sizes
    };
    for &size in sizes.iter().cycle() {
        if rest.len() <= size {
            break;
        }
        let (piece, after) = rest.split_at(size);
        pieces.push(piece);
        rest = after;
    }
    pieces.push(rest);
    pieces
}

/// Streams `bytes` through an [`Escaper`] in the given input pieces, into
/// output buffers of the given sizes (cycled), and concatenates the output.
fn stream(bytes: &[u8], input_sizes: &[usize], out_sizes: &[usize]) -> Vec<u8> {
    let pieces = pieces(bytes, input_sizes);
    let mut out_sizes = out_sizes.iter().cycle();
    let mut escaper = Escaper::new();
    let mut result = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        let last = i + 1 == pieces.len();
        let mut rest: &[u8] = piece;
        loop {
            let mut out = vec![0u8; *out_sizes.next().unwrap()];
            let (consumed, written) = escaper.escape(rest, &mut out, last);
            assert!(consumed <= rest.len() && written <= out.len());
            result.extend_from_slice(&out[..written]);
            rest = &rest[consumed..];
            let done = rest.is_empty() && (!last || escaper.is_empty());
            if done {
                break;
            }
            // A buffer of 8 bytes always holds the next unit.
            assert!(consumed > 0 || written > 0, "no progress");
        }
    }
    assert!(escaper.is_empty(), "held bytes after the last piece");
    result
}

/// The length that [`Escaper::measure`] gives over the given pieces.
fn measure(bytes: &[u8], input_sizes: &[usize]) -> u64 {
    let pieces = pieces(bytes, input_sizes);
    let mut escaper = Escaper::new();
    let len = pieces
        .iter()
        .enumerate()
        .map(|(i, piece)| escaper.measure(piece, i + 1 == pieces.len()))
        .sum();
    assert!(escaper.is_empty());
    len
}

/// A few bytes chosen to hit the escaper's edges: specials, controls,
/// valid and cut multi-byte characters, and classic invalid sequences.
fn atom() -> impl Strategy<Value = Vec<u8>> {
    const TRICKY: &[&[u8]] = &[
        b"\xc0\xae",
        b"\xc1\xbf",
        b"\xed\xa0\x80",
        b"\xed\xbf\xbf",
        b"\xe0\x80",
        b"\xe0\x9f\xbf",
        b"\xf0\x80\x80",
        b"\xf0\x8f\xbf\xbf",
        b"\xf4\x90\x80\x80",
        b"\xf5\x80",
        b"\xef\xbf\xbd",
        b"\xc2",
        b"\xe0\xa0",
        b"\xf0\x9f\x98",
        b"\xff",
        b"\xfe",
        b"\x80",
        b"\xbf",
    ];
    prop_oneof![
        2 => any::<u8>().prop_map(|b| vec![b]),
        2 => (0x20u8..0x7f).prop_map(|b| vec![b]),
        2 => prop::sample::select(b"&<>\"'\t\n\x0c\r\x00\x01\x1b\x1f\x7f".as_slice())
            .prop_map(|b| vec![b]),
        3 => any::<char>().prop_map(|c| c.to_string().into_bytes()),
        1 => prop::sample::select(&['\u{e9}', '\u{20ac}', '\u{65e5}', '\u{1f600}', '\u{10ffff}'][..])
            .prop_map(|c| c.to_string().into_bytes()),
        2 => (any::<char>(), 1usize..4).prop_map(|(c, cut)| {
            let bytes = c.to_string().into_bytes();
            let cut = cut.min(bytes.len().saturating_sub(1)).max(1);
            bytes[..cut.min(bytes.len())].to_vec()
        }),
        2 => (0x80u8..=0xff).prop_map(|b| vec![b]),
        2 => prop::sample::select(TRICKY).prop_map(<[u8]>::to_vec),
    ]
}

fn text() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => prop::collection::vec(atom(), 0..80).prop_map(|atoms| atoms.concat()),
        1 => prop::collection::vec(any::<u8>(), 0..300),
        1 => ".{0,100}".prop_map(String::into_bytes),
    ]
}

fn input_sizes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0usize..=40, 1..12)
}

fn out_sizes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(8usize..=200, 1..12)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn streamed_escaping_matches_lossy_decoding_for_any_pieces(
        bytes in text(),
        input_sizes in input_sizes(),
        out_sizes in out_sizes(),
    ) {
        let expected = escape_ref(&bytes);
        let streamed = stream(&bytes, &input_sizes, &out_sizes);
        prop_assert_eq!(String::from_utf8_lossy(&streamed), expected.as_str());
        prop_assert_eq!(measure(&bytes, &input_sizes), expected.len() as u64);
    }

    #[test]
    fn measure_over_any_pieces_is_the_escaped_length(
        bytes in text(),
        input_sizes in input_sizes(),
    ) {
        prop_assert_eq!(measure(&bytes, &input_sizes), escape_ref(&bytes).len() as u64);
        prop_assert_eq!(txtd_core::html::escaped_len(&bytes), escape_ref(&bytes).len());
    }

    #[test]
    fn page_prologue_matches_its_length_and_the_format(name in text()) {
        let expected = format!(
            "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{}</title>\n</head>\n<body>\n<pre>\n",
            name_ref(&name)
        );
        let len = page_prologue_len(&name);
        let mut out = vec![0u8; len];
        prop_assert_eq!(write_page_prologue(&name, &mut out), Ok(len));
        prop_assert_eq!(out, expected.into_bytes());
        let mut short = vec![0u8; len - 1];
        prop_assert_eq!(write_page_prologue(&name, &mut short), Err(Error::BufferTooSmall));
    }

    #[test]
    fn index_prologue_matches_its_length_and_the_format(dir in text()) {
        let shown = if dir.is_empty() {
            "/".to_string()
        } else {
            format!("/{}/", name_ref(&dir))
        };
        let parent = if dir.is_empty() { "" } else { "<li><a href=\"../\">../</a></li>\n" };
        let expected = format!(
            "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>Index of {shown}</title>\n</head>\n<body>\n\
             <h1>Index of {shown}</h1>\n<ul>\n{parent}"
        );
        let len = index_prologue_len(&dir);
        let mut out = vec![0u8; len];
        prop_assert_eq!(write_index_prologue(&dir, &mut out), Ok(len));
        prop_assert_eq!(out, expected.into_bytes());
        let mut short = vec![0u8; len - 1];
        prop_assert_eq!(write_index_prologue(&dir, &mut short), Err(Error::BufferTooSmall));
    }

    #[test]
    fn index_entry_matches_its_length_and_the_format(name in text(), is_dir in any::<bool>()) {
        let slash = if is_dir { "/" } else { "" };
        let expected = format!(
            "<li><a href=\"{}{slash}\">{}{slash}</a></li>\n",
            percent_ref(&name, false),
            name_ref(&name)
        );
        let len = index_entry_len(&name, is_dir);
        let mut out = vec![0u8; len];
        prop_assert_eq!(write_index_entry(&name, is_dir, &mut out), Ok(len));
        prop_assert_eq!(out, expected.into_bytes());
        let mut short = vec![b'x'; len - 1];
        prop_assert_eq!(write_index_entry(&name, is_dir, &mut short), Err(Error::BufferTooSmall));
        prop_assert!(short.iter().all(|&b| b == b'x'), "a refused write touched the buffer");
    }

    #[test]
    fn percent_encoding_round_trips_and_emits_only_safe_bytes(bytes in text()) {
        let len = percent_encoded_len(&bytes);
        let mut out = vec![0u8; len];
        prop_assert_eq!(write_percent_encoded(&bytes, &mut out), Ok(len));
        prop_assert!(
            out.iter().all(|&b| b.is_ascii_alphanumeric() || b"-._~/%".contains(&b)),
            "unsafe byte in {:?}", String::from_utf8_lossy(&out)
        );
        prop_assert_eq!(String::from_utf8_lossy(&out), percent_ref(&bytes, true));
        prop_assert_eq!(&percent_decode(&out), &bytes);
        if len > 0 {
            let mut short = vec![0u8; len - 1];
            prop_assert_eq!(write_percent_encoded(&bytes, &mut short), Err(Error::BufferTooSmall));
        }
    }

    #[test]
    fn error_page_matches_its_length_and_the_format(
        status_code in any::<u16>(),
        reason_phrase in text(),
    ) {
        let shown = format!("{status_code} {}", escape_ref(&reason_phrase));
        let expected = format!(
            "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n\
             <title>{shown}</title>\n</head>\n<body>\n<h1>{shown}</h1>\n</body>\n</html>\n"
        );
        let len = error_page_len(status_code, &reason_phrase);
        let mut out = vec![0u8; len];
        prop_assert_eq!(write_error_page(status_code, &reason_phrase, &mut out), Ok(len));
        prop_assert_eq!(out, expected.into_bytes());
    }
}

#[test]
fn a_large_mixed_text_streams_through_small_buffers() {
    let mut bytes = Vec::new();
    for i in 0..20_000u32 {
        bytes.extend_from_slice(b"line <");
        bytes.extend_from_slice(i.to_string().as_bytes());
        bytes.extend_from_slice("> caf\u{e9} \u{65e5}\u{672c}\u{8a9e}\u{1f600} & '".as_bytes());
        if i % 7 == 0 {
            bytes.extend_from_slice(b"\xff\xed\xa0\x80\xf0\x9f\x98\x01");
        }
        bytes.push(b'\n');
    }
    let expected = escape_ref(&bytes);
    for (input_size, out_size) in [
        (4096, 64),
        (65_536, 64),
        (1, 8),
        (7, 4096),
        (1 << 20, 1 << 20),
    ] {
        let streamed = stream(&bytes, &[input_size], &[out_size]);
        assert!(
            streamed == expected.as_bytes(),
            "input {input_size}, output {out_size}"
        );
        assert_eq!(measure(&bytes, &[input_size]), expected.len() as u64);
    }
}
