//! Request-head parsing: txtd's nom parser against httparse, side by side
//! over the same heads, so the ratio holds on a noisy machine.
//!
//! Run: `cargo bench -p txtd-core --bench parse`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_main};
use std::hint::black_box;
use txtd_core::{Field, Limits, Parsed, parse_request};

/// Heads of the sizes a server sees: a bare one, curl's, a browser's.
const HEADS: [(&str, &[u8]); 3] = [
    ("minimal", b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    (
        "curl",
        b"GET /docs/readme.txt HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n",
    ),
    (
        "browser",
        b"GET /notes/2026/november/meeting-minutes.txt HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Referer: https://www.example.com/notes/2026/\r\n\
Connection: keep-alive\r\n\
Cookie: session=0123456789abcdef0123456789abcdef; theme=dark; lang=en\r\n\
Upgrade-Insecure-Requests: 1\r\n\
Sec-Fetch-Dest: document\r\n\
Sec-Fetch-Mode: navigate\r\n\
Sec-Fetch-Site: same-origin\r\n\
If-None-Match: \"0123456789abcdef\"\r\n\
Priority: u=0, i\r\n\r\n",
    ),
];

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    for (name, head) in HEADS {
        group.throughput(Throughput::Bytes(head.len() as u64));
        group.bench_with_input(BenchmarkId::new("txtd", name), head, |b, head| {
            let mut fields = [Field::default(); 32];
            b.iter(|| {
                match parse_request(black_box(head), &mut fields, &Limits::DEFAULT) {
                    // The whole request is handed on: method, target,
                    // version, every field's name and value, the head length.
                    Ok(Parsed::Complete(request)) => {
                        black_box(&request);
                        request.fields.len()
                    }
                    _ => 0,
                }
            });
        });
        group.bench_with_input(BenchmarkId::new("httparse", name), head, |b, head| {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            b.iter(|| {
                let mut request = httparse::Request::new(&mut headers);
                match request.parse(black_box(head)) {
                    // The same: the request with its headers, and the length.
                    Ok(httparse::Status::Complete(head_len)) => {
                        black_box((&request, head_len));
                        request.headers.len()
                    }
                    _ => 0,
                }
            });
        });
    }
    group.finish();
}

/// The benchmark group criterion runs.
mod group {
    #![allow(missing_docs, reason = "criterion_group! generates an undocumented fn")]
    criterion::criterion_group!(benches, super::parse);
}
use group::benches;
criterion_main!(benches);
