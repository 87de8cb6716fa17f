//! Request smuggling: a head whose body framing is in doubt (CL.TE, TE.CL,
//! duplicate or conflicting `Content-Length`, obfuscated
//! `Transfer-Encoding`) is refused and its connection closed, so the bytes
//! after it are never read as a request (RFC 9112 §6.1, §6.3, §11.2).

use crate::common::*;

/// The request hidden after each attack head: never answered.
const SMUGGLED: &str = "GET /smuggled.txt HTTP/1.1\r\nHost: t\r\n\r\n";

/// Sends `head`, a body-like `0\r\n\r\n` or `hello`, then [`SMUGGLED`];
/// checks the answer is one `status` with `Connection: close` and that the
/// server closed the connection after it.
fn refused_and_closed(server: &Server, head: &str, status: u16) {
    let raw = format!("{head}0\r\n\r\n{SMUGGLED}");
    // raw() reads until the server closes (bounded by the read timeout).
    let out = server.raw(raw.as_bytes());
    let (r, rest) = Response::parse(&out, false);
    assert_eq!(r.status, status, "{head:?}");
    assert_eq!(r.header("connection"), Some("close"), "{head:?}");
    assert!(
        rest.is_empty(),
        "{head:?}: bytes after the refusal: {:?}",
        String::from_utf8_lossy(rest)
    );
}

#[test]
fn cl_te_content_length_before_transfer_encoding_is_refused_and_closed() {
    let server = Server::start(&sample_site(), &[]);
    refused_and_closed(
        &server,
        "GET /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        400,
    );
    refused_and_closed(
        &server,
        "POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        400,
    );
}

#[test]
fn te_cl_transfer_encoding_before_content_length_is_refused_and_closed() {
    let server = Server::start(&sample_site(), &[]);
    refused_and_closed(
        &server,
        "GET /hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        400,
    );
}

#[test]
fn duplicate_or_conflicting_content_lengths_are_refused_and_closed() {
    let server = Server::start(&sample_site(), &[]);
    for (fields, status) in [
        // The same value twice is one length (RFC 9110 §8.6): a body, 413.
        ("Content-Length: 5\r\nContent-Length: 5\r\n", 413),
        ("Content-Length: 5\r\nContent-Length: 6\r\n", 400),
        ("Content-Length: 5, 6\r\n", 400),
        ("Content-Length: 0\r\nContent-Length: 5\r\n", 400),
        ("Content-Length: +5\r\n", 400),
        ("Content-Length: -1\r\n", 400),
        ("Content-Length: 0x5\r\n", 400),
        ("Content-Length: 99999999999999999999999\r\n", 400),
        ("Content-Length: 5\r\n", 413),
    ] {
        let head = format!("GET /hello.txt HTTP/1.1\r\nHost: t\r\n{fields}\r\n");
        refused_and_closed(&server, &head, status);
    }
}

#[test]
fn obfuscated_transfer_encoding_is_refused_and_closed() {
    let server = Server::start(&sample_site(), &[]);
    for (fields, status) in [
        ("Transfer-Encoding: xchunked\r\n", 400),
        ("Transfer-Encoding: chunked, identity\r\n", 400),
        (
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n",
            400,
        ),
        ("Transfer-Encoding: \x0bchunked\r\n", 400),
        ("Transfer-Encoding : chunked\r\n", 400),
        ("X: y\r\n Transfer-Encoding: chunked\r\n", 400),
        ("X: y\r\n\tTransfer-Encoding: chunked\r\n", 400),
        ("Transfer-Encoding: \"chunked\"\r\n", 400),
        // Spelled in any case, or after a tab, it is chunked: a body, 413.
        ("Transfer-encoding: CHUNKED\r\n", 413),
        ("Transfer-Encoding:\tchunked\r\n", 413),
        ("Transfer-Encoding: gzip, chunked\r\n", 413),
    ] {
        let head = format!("GET /hello.txt HTTP/1.1\r\nHost: t\r\n{fields}\r\n");
        refused_and_closed(&server, &head, status);
    }
    // A field line that starts with whitespace right after the request line.
    refused_and_closed(
        &server,
        "GET /hello.txt HTTP/1.1\r\n Transfer-Encoding: chunked\r\nHost: t\r\n\r\n",
        400,
    );
    // HTTP/1.0 has no chunked coding: faulty framing.
    refused_and_closed(
        &server,
        "GET /hello.txt HTTP/1.0\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
        400,
    );
}

#[test]
fn a_request_without_a_body_keeps_its_connection_for_the_next_one() {
    // The control case: with Content-Length: 0 the next bytes are a request.
    let server = Server::start(&sample_site(), &[]);
    let raw = b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n\
         GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    let out = server.raw(raw);
    let (first, rest) = Response::parse(&out, false);
    let (second, rest) = Response::parse(rest, false);
    assert_eq!((first.status, second.status), (200, 200));
    assert!(rest.is_empty());
}
