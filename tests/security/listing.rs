//! Listing injection: a directory index shows every name escaped and links
//! it percent-encoded, whatever bytes the name holds, so no name can add
//! markup, an attribute, a scheme or a line to the page, and every link
//! leads back to its own file (RFC 3986 §2.1, §4.2).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use crate::common::*;

/// Names that break naive listings. The directory is made by the test at
/// run time: names with a newline or invalid UTF-8 do not survive every
/// git checkout, file system or editor, so they are not committed.
const NAMES: &[&[u8]] = &[
    b"a<b>c.txt",
    b"<img src=x onerror=alert(1)>",
    b"tom & jerry.txt",
    b"&amp;.txt",
    b"say \"hi\".txt",
    b"it's.txt",
    b"#hash.txt",
    b"what?.txt",
    b"colon:name.txt",
    b"javascript:alert(1)",
    b"100%.txt",
    b"%41%2e%2e.txt",
    b" with  spaces .txt",
    b"new\nline.txt",
    b"cr\rlf\n.txt",
    b"tab\there.txt",
    b"bad\xff\xfe.txt",
    b"caf\xc3\xa9.txt",
    b"\xe2\x80\xaereversed.txt",
];

/// A directory name just as hostile, with a file inside.
const DIR: &[u8] = b"dir <&>\"' #?:%";

/// Decodes `%XX` escapes.
fn percent_decode(encoded: &str) -> Vec<u8> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// Undoes the five escapes the pages use.
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The name as an index shows it: lossy UTF-8, every control U+FFFD.
fn shown(name: &[u8]) -> String {
    String::from_utf8_lossy(name)
        .chars()
        .map(|c| {
            if c.is_control() && (c as u32) < 0x80 {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

/// One index line: `<li><a href="HREF">TEXT</a></li>`.
struct Entry {
    href: String,
    text: String,
}

/// Parses an index page strictly: every line between `<ul>` and `</ul>`
/// must be one entry, and markup appears nowhere else in them.
fn entries(page: &str) -> Vec<Entry> {
    let list = page
        .split_once("<ul>\n")
        .and_then(|(_, rest)| rest.split_once("</ul>\n"))
        .map(|(list, _)| list)
        .unwrap_or_else(|| panic!("no list in {page}"));
    list.lines()
        .map(|line| {
            let inner = line
                .strip_prefix("<li><a href=\"")
                .and_then(|l| l.strip_suffix("</a></li>"))
                .unwrap_or_else(|| panic!("not one entry: {line:?}"));
            let (href, text) = inner
                .split_once("\">")
                .unwrap_or_else(|| panic!("no end of href: {line:?}"));
            Entry {
                href: href.to_owned(),
                text: text.to_owned(),
            }
        })
        .collect()
}

/// Checks one entry: text with no raw markup bytes, an href of only
/// unreserved bytes and `%XX` (so no scheme, query, fragment or quote).
fn check_entry(entry: &Entry) {
    for bad in ['<', '>', '"', '\'', '\n', '\r', '\t'] {
        assert!(!entry.text.contains(bad), "raw {bad:?} in {:?}", entry.text);
    }
    // Every & starts one of the escapes.
    let amps = entry.text.matches('&').count();
    let escapes = ["&lt;", "&gt;", "&quot;", "&#39;", "&amp;"]
        .iter()
        .map(|e| entry.text.matches(e).count())
        .sum::<usize>();
    assert_eq!(amps, escapes, "a bare & in {:?}", entry.text);
    assert!(
        entry
            .href
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~%/".contains(&b)),
        "unsafe byte in href {:?}",
        entry.href
    );
    assert!(!entry.href.contains(':'), "a scheme in {:?}", entry.href);
}

#[test]
fn hostile_names_are_escaped_in_listings_and_their_links_lead_back_to_them() {
    let scratch = Scratch::new("listing");
    let root = &scratch.0;
    for (i, name) in NAMES.iter().enumerate() {
        std::fs::write(
            root.join(OsStr::from_bytes(name)),
            format!("file number {i}\n"),
        )
        .unwrap();
    }
    let dir = root.join(OsStr::from_bytes(DIR));
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join(OsStr::from_bytes(b"in <dir>\n.txt")),
        "inside the dir\n",
    )
    .unwrap();
    let server = Server::start(root, &[]);

    let index = server.request("GET", "/");
    assert_eq!(index.status, 200);
    let page = index.text();
    // Outside the list too, the page is only its fixed markup.
    assert!(
        !page.contains("<script") && !page.contains("<img"),
        "{page}"
    );
    let listed = entries(&page);
    assert_eq!(listed.len(), NAMES.len() + 1, "{page}");
    let mut expected: Vec<(Vec<u8>, bool)> = NAMES.iter().map(|n| (n.to_vec(), false)).collect();
    expected.push((DIR.to_vec(), true));
    for (name, is_dir) in &expected {
        let slash = if *is_dir { "/" } else { "" };
        let entry = listed
            .iter()
            .find(|e| percent_decode(&e.href) == [name.as_slice(), slash.as_bytes()].concat())
            .unwrap_or_else(|| panic!("no link to {:?} in {page}", String::from_utf8_lossy(name)));
        check_entry(entry);
        assert_eq!(unescape(&entry.text), format!("{}{slash}", shown(name)));
        // Following the link, as a browser would from `/`, gives the file's page.
        let r = server.request("GET", &format!("/{}", entry.href));
        assert_eq!(r.status, 200, "{:?}", entry.href);
        if let Some(i) = NAMES.iter().position(|n| n == name) {
            assert!(
                r.text().contains(&format!("file number {i}\n")),
                "{:?}",
                entry.href
            );
            let title = r
                .text()
                .split_once("<title>")
                .unwrap()
                .1
                .split_once("</title>")
                .unwrap()
                .0
                .to_owned();
            assert_eq!(unescape(&title), shown(name), "title of {:?}", entry.href);
            assert!(!title.contains(['<', '>', '"', '\'', '\n']), "{title:?}");
        } else {
            // The hostile directory's own index, and its entry.
            let sub = r.text();
            let inner = entries(&sub);
            assert_eq!(inner.len(), 2, "{sub}");
            for entry in &inner {
                check_entry(entry);
            }
            let heading = sub
                .split_once("<h1>")
                .unwrap()
                .1
                .split_once("</h1>")
                .unwrap()
                .0;
            assert!(
                !heading.contains(['<', '>', '"', '\'', '\n']),
                "{heading:?}"
            );
            let file = &inner[1];
            let inside = server.request("GET", &format!("/{}{}", entry.href, file.href));
            assert_eq!(inside.status, 200);
            assert!(inside.text().contains("inside the dir"));
        }
    }
}
