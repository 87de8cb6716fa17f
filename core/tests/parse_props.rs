//! Property tests of the request parser and the target normaliser: no
//! panic on any bytes, the same answer however the bytes are split, and
//! the normaliser's invariants (a relative path inside the root, no dot or
//! empty segment, no NUL, stable when normalised again).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use proptest::prelude::*;
use txtd_core::request::Error;
use txtd_core::target::parse_target;
use txtd_core::{Field, Limits, Parsed, parse_request};

/// What a parse came to, without borrows, for comparing runs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Complete {
        head_len: usize,
        method: Vec<u8>,
        target: Vec<u8>,
        fields: Vec<(Vec<u8>, Vec<u8>)>,
    },
    Partial,
    Error(Error),
}

fn outcome(input: &[u8], limits: &Limits) -> Outcome {
    let mut fields = [Field::default(); 160];
    match parse_request(input, &mut fields, limits) {
        Ok(Parsed::Complete(r)) => {
            assert!(r.head_len <= input.len());
            Outcome::Complete {
                head_len: r.head_len,
                method: r.method.to_vec(),
                target: r.request_target.to_vec(),
                fields: r
                    .fields
                    .iter()
                    .map(|f| (f.name.to_vec(), f.value.to_vec()))
                    .collect(),
            }
        }
        Ok(Parsed::Partial) => Outcome::Partial,
        Err(e) => Outcome::Error(e),
    }
}

/// Request-like heads: mostly valid pieces with a few hostile bytes mixed in.
fn head() -> impl Strategy<Value = Vec<u8>> {
    let method = prop::sample::select(vec!["GET", "HEAD", "POST", "OPTIONS", "G\x00T", "", "get"]);
    let target = prop::sample::select(vec![
        "/",
        "/a/b?c=d",
        "*",
        "http://h/x",
        "/%2e%2e/",
        "/a b",
        "/\x7f",
    ]);
    let version = prop::sample::select(vec![
        "HTTP/1.1",
        "HTTP/1.0",
        "HTTP/2.0",
        "HTTP/1.10",
        "http/1.1",
        "",
    ]);
    let name = prop::sample::select(vec![
        "Host",
        "Content-Length",
        "X-A",
        "Bad Name",
        "",
        "Transfer-Encoding",
    ]);
    let value = prop::collection::vec(
        prop::sample::select(b" \ta0:\x00\r\x80\xff,/".to_vec()),
        0..12,
    );
    let eol = prop::sample::select(vec!["\r\n", "\n", "\r", "\r\n "]);
    let field = (name, value, eol.clone()).prop_map(|(n, v, e)| {
        let mut line = n.as_bytes().to_vec();
        line.extend_from_slice(b": ");
        line.extend(v);
        line.extend_from_slice(e.as_bytes());
        line
    });
    (
        method,
        target,
        version,
        eol,
        prop::collection::vec(field, 0..8),
        any::<bool>(),
    )
        .prop_map(|(m, t, v, e, fields, end)| {
            let mut head = format!("{m} {t} {v}{e}").into_bytes();
            for f in fields {
                head.extend(f);
            }
            if end {
                head.extend_from_slice(b"\r\n");
            }
            head
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn parsing_never_panics_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = outcome(&bytes, &Limits::DEFAULT);
    }

    #[test]
    fn every_split_gives_the_same_answer(head in head()) {
        let whole = outcome(&head, &Limits::DEFAULT);
        // Each proper prefix is partial, or already the same error.
        let mut checked = 0;
        for end in 0..head.len() {
            let prefix = outcome(&head[..end], &Limits::DEFAULT);
            match (&whole, &prefix) {
                (_, Outcome::Partial) => {}
                (Outcome::Error(a), Outcome::Error(b)) => prop_assert_eq!(a, b, "prefix of {} bytes", end),
                (Outcome::Complete { head_len, .. }, Outcome::Complete { .. }) => {
                    prop_assert!(end >= *head_len, "complete before the head's end");
                    prop_assert_eq!(&prefix, &whole);
                }
                _ => prop_assert!(false, "prefix of {} bytes: {:?}, whole: {:?}", end, prefix, whole),
            }
            checked += 1;
        }
        prop_assert_eq!(checked, head.len());
        // Trailing bytes after a complete head change nothing.
        if let Outcome::Complete { .. } = whole {
            let mut longer = head.clone();
            longer.extend_from_slice(b"GET /next HTTP/1.1\r\n");
            prop_assert_eq!(outcome(&longer, &Limits::DEFAULT), whole.clone());
        }
    }

    #[test]
    fn limits_are_caught_as_soon_as_they_are_crossed(extra in 1usize..64) {
        let limits = Limits::DEFAULT;
        let line = format!("GET /{} HTTP/1.1", "a".repeat(limits.max_request_line + extra));
        // No line end yet: the limit alone must decide.
        prop_assert_eq!(outcome(line.as_bytes(), &limits), Outcome::Error(Error::RequestLineTooLong));
    }

    #[test]
    fn normalised_paths_stay_inside_the_root(target in prop::collection::vec(
        prop::sample::select(b"/./.%2e%2E%2fab%00%5c%c0%ae?#\\%25".to_vec()), 0..40)
    ) {
        let mut target = target;
        target.insert(0, b'/');
        let mut out = [0u8; 256];
        if let Ok(t) = parse_target(&target, false, &mut out) {
            let path = t.path.to_vec();
            prop_assert!(!path.starts_with(b"/"));
            prop_assert!(!path.contains(&0));
            if !path.is_empty() {
                for segment in path.split(|&b| b == b'/') {
                    prop_assert!(!segment.is_empty(), "empty segment in {:?}", path);
                    prop_assert!(segment != b"." && segment != b"..", "dot segment in {:?}", path);
                }
            }
            // Normalising the result again (re-encoding `%`) changes nothing.
            let mut again = b"/".to_vec();
            for &b in &path {
                match b {
                    b'%' | b'?' | b'#' => again.extend_from_slice(format!("%{b:02X}").as_bytes()),
                    _ => again.push(b),
                }
            }
            let mut out2 = [0u8; 512];
            let t2 = parse_target(&again, false, &mut out2).unwrap();
            prop_assert_eq!(t2.path, &path[..]);
        }
    }
}

#[test]
fn a_valid_head_split_byte_by_byte_parses_like_the_whole() {
    let head = b"GET /a?b HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n";
    let whole = outcome(head, &Limits::DEFAULT);
    assert!(
        matches!(whole, Outcome::Complete { head_len: 45, .. }),
        "{whole:?}"
    );
    for end in 0..head.len() {
        assert_eq!(
            outcome(&head[..end], &Limits::DEFAULT),
            Outcome::Partial,
            "{end}"
        );
    }
}
