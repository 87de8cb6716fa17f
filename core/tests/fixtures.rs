//! The request fixtures in `fixtures/requests/`: every `NAME.http` is parsed
//! by `parse_request`, checked by `Message::from_request` and normalised by
//! `parse_target`, and every key of `NAME.expect` must match (RFC 9112 §2–§6,
//! RFC 9110 §7–§9). Every prefix of each input must give the same answer as
//! the whole: partial until the head is complete, or the same error.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use txtd_core::message::Message;
use txtd_core::request::{Field, Limits, Parsed, parse_request};
use txtd_core::status::Refusal;
use txtd_core::target::parse_target;

/// Fewer fixtures than this means some were lost.
const MIN_FIXTURES: usize = 150;

/// Keys an `.expect` file may use.
const KEYS: [&str; 13] = [
    "outcome", "error", "status", "method", "target", "version", "consumed", "fields", "field",
    "refusal", "path", "query", "#",
];

/// Renders bytes the way `.expect` files write them: printable ASCII as is,
/// everything else (and the backslash) as `\xHH`.
fn escape(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        if (0x20..0x7f).contains(&b) && b != b'\\' {
            out.push(char::from(b));
        } else {
            write!(out, "\\x{b:02x}").unwrap();
        }
    }
    out
}

/// Normalises an expected value to [`escape`]'s spelling (`\xHH` in any case).
fn normalise_escapes(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut raw = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && bytes.get(i + 1) == Some(&b'x')
            && let Some(hex) = value.get(i + 2..i + 4)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            raw.push(b);
            i += 4;
        } else {
            raw.push(bytes[i]);
            i += 1;
        }
    }
    escape(&raw)
}

/// The parser's answer in a comparable form.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Complete {
        method: Vec<u8>,
        target: Vec<u8>,
        version: (u8, u8),
        fields: Vec<(Vec<u8>, Vec<u8>)>,
        head_len: usize,
    },
    Partial,
    Error(txtd_core::request::Error),
}

fn parse(input: &[u8]) -> Answer {
    let mut fields = [Field::default(); 256];
    match parse_request(input, &mut fields, &Limits::DEFAULT) {
        Ok(Parsed::Complete(r)) => Answer::Complete {
            method: r.method.to_vec(),
            target: r.request_target.to_vec(),
            version: (r.version.major, r.version.minor),
            fields: r
                .fields
                .iter()
                .map(|f| (f.name.to_vec(), f.value.to_vec()))
                .collect(),
            head_len: r.head_len,
        },
        Ok(Parsed::Partial) => Answer::Partial,
        Err(e) => Answer::Error(e),
    }
}

/// Every key the parser, the message rules and the target rules give for
/// `input`, each with its values in order.
fn actual(input: &[u8]) -> BTreeMap<&'static str, Vec<String>> {
    let mut out: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let mut put = |key: &'static str, value: String| out.entry(key).or_default().push(value);
    let mut fields = [Field::default(); 256];
    let request = match parse_request(input, &mut fields, &Limits::DEFAULT) {
        Ok(Parsed::Complete(request)) => request,
        Ok(Parsed::Partial) => {
            put("outcome", "partial".into());
            return out;
        }
        Err(e) => {
            put("outcome", "error".into());
            put("error", format!("{e:?}"));
            put("status", Refusal::from(e).status().code().to_string());
            return out;
        }
    };
    put("outcome", "complete".into());
    put("method", escape(request.method));
    put("target", escape(request.request_target));
    put(
        "version",
        format!("{}.{}", request.version.major, request.version.minor),
    );
    put("consumed", request.head_len.to_string());
    put("fields", request.fields.len().to_string());
    for field in request.fields {
        let value = if field.value.is_empty() {
            String::new()
        } else {
            format!(" {}", escape(field.value))
        };
        put("field", format!("{}:{value}", escape(field.name)));
    }
    // The order `Conn` uses: message rules first, then the target.
    let mut buf = [0u8; 16 * 1024];
    let refusal = match Message::from_request(&request) {
        Err(e) => Some((format!("{e:?}"), Refusal::from(e))),
        Ok(_) => match parse_target(
            request.request_target,
            request.method == b"OPTIONS",
            &mut buf,
        ) {
            Err(e) => Some((format!("{e:?}"), Refusal::from(e))),
            Ok(target) => {
                put("path", escape(target.path));
                if let Some(query) = target.query {
                    put("query", escape(query));
                }
                None
            }
        },
    };
    match refusal {
        Some((name, refusal)) => {
            put("refusal", name);
            put("status", refusal.status().code().to_string());
        }
        None => put("refusal", "none".into()),
    }
    out
}

/// The `key: value` lines of an `.expect` file; the `#` comment line is kept
/// under the key `#`.
fn expected(text: &str) -> Result<BTreeMap<String, Vec<String>>, String> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix('#') {
            out.entry("#".into()).or_default().push(comment.into());
            continue;
        }
        let (key, value) = line
            .split_once(':')
            .ok_or_else(|| format!("line without a colon: {line:?}"))?;
        if !KEYS.contains(&key) {
            return Err(format!("unknown key {key:?}"));
        }
        let value = value.strip_prefix(' ').unwrap_or(value);
        out.entry(key.into())
            .or_default()
            .push(normalise_escapes(value));
    }
    Ok(out)
}

/// Compares one fixture; pushes one line per mismatch.
fn check(name: &str, input: &[u8], text: &str, failures: &mut Vec<String>) {
    let expect = match expected(text) {
        Ok(expect) => expect,
        Err(e) => {
            failures.push(format!("{name}: {e}"));
            return;
        }
    };
    if !text.starts_with('#') {
        failures.push(format!("{name}: the first line must be a # comment"));
    }
    let got = actual(input);
    let outcome = expect.get("outcome").and_then(|v| v.first());
    let Some(outcome) = outcome else {
        failures.push(format!("{name}: outcome: missing"));
        return;
    };
    for (key, values) in &expect {
        if key == "#" {
            continue;
        }
        let got_values = got.get(key.as_str()).cloned().unwrap_or_default();
        if *values != got_values {
            failures.push(format!(
                "{name}: {key}: expected {values:?}, got {got_values:?}"
            ));
        }
    }
    // Keys that must be compared even when the `.expect` leaves them out:
    // the field list of a complete head, its refusal, and the parse error.
    let implied: &[(&str, &[&str])] = match outcome.as_str() {
        "complete" => &[("field", &[]), ("refusal", &["none"])],
        "error" => &[("error", &[])],
        _ => &[],
    };
    for &(key, default) in implied {
        if expect.contains_key(key) {
            continue;
        }
        let want: Vec<String> = default.iter().map(|s| (*s).to_string()).collect();
        let got_values = got.get(key).cloned().unwrap_or_default();
        if want != got_values {
            failures.push(format!(
                "{name}: {key}: expected {want:?}, got {got_values:?}"
            ));
        }
    }
    check_prefixes(name, input, failures);
}

/// Every prefix agrees with the whole input: partial before a complete
/// head ends (the same head after), partial or the same error before an
/// error, and once an error shows it stays.
fn check_prefixes(name: &str, input: &[u8], failures: &mut Vec<String>) {
    let whole = parse(input);
    let mut seen_error = false;
    for len in 0..input.len() {
        let got = parse(&input[..len]);
        let fine = match &whole {
            Answer::Complete { head_len, .. } if len < *head_len => got == Answer::Partial,
            Answer::Complete { .. } => got == whole,
            Answer::Partial => got == Answer::Partial,
            Answer::Error(_) if got == whole => {
                seen_error = true;
                true
            }
            Answer::Error(_) => got == Answer::Partial && !seen_error,
        };
        if !fine {
            failures.push(format!(
                "{name}: prefix {len}: expected {whole:?} or partial, got {got:?}"
            ));
            return;
        }
    }
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/requests")
}

#[test]
fn every_request_fixture_matches_its_expectation() {
    let mut names: Vec<(String, String)> = fs::read_dir(fixture_dir())
        .expect("fixtures/requests exists")
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter_map(|file| {
            let (stem, ext) = file.rsplit_once('.')?;
            Some((stem.to_string(), ext.to_string()))
        })
        .collect();
    names.sort();
    let mut failures = Vec::new();
    let mut count = 0;
    for (stem, ext) in &names {
        let (twin, is_http) = match ext.as_str() {
            "http" => ("expect", true),
            "expect" => ("http", false),
            _ => continue,
        };
        if !names.contains(&(stem.clone(), twin.to_string())) {
            failures.push(format!("{stem}.{ext}: no {stem}.{twin} beside it"));
            continue;
        }
        if !is_http {
            continue;
        }
        count += 1;
        let input = fs::read(fixture_dir().join(format!("{stem}.http"))).unwrap();
        let text = fs::read_to_string(fixture_dir().join(format!("{stem}.expect"))).unwrap();
        check(stem, &input, &text, &mut failures);
    }
    if count < MIN_FIXTURES {
        failures.push(format!(
            "only {count} fixtures; at least {MIN_FIXTURES} are expected"
        ));
    }
    let mut failed: Vec<&str> = failures
        .iter()
        .map(|line| line.split(':').next().unwrap_or_default())
        .collect();
    failed.dedup();
    let summary = format!("{count} fixtures, {} failed", failed.len());
    let report = failures.join("\n");
    println!("{report}\n{summary}");
    assert!(failures.is_empty(), "{report}\n{summary}");
}
