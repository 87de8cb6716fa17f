//! Redirects and CRLF in `Location`: the 301 that adds a directory's
//! trailing slash names only the normalised path, percent-encoded, so no
//! byte of the request (CR, LF, query, host, scheme) reaches the head
//! (RFC 9110 §10.2.2, RFC 9112 §2.2).

use crate::common::*;

/// Sends `target` with `Host: host`; returns the response.
fn get(server: &Server, target: &str, host: &str) -> Response {
    let raw = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    Response::parse(&server.raw(raw.as_bytes()), false).0
}

#[test]
fn crlf_in_a_redirected_target_never_reaches_the_location_field() {
    let server = Server::start(&sample_site(), &[]);
    for sneaky in [
        "/%0d%0aSet-Cookie:%20x/../notes",
        "/%0aSet-Cookie:%20x/../notes",
        "/%0dSet-Cookie:%20x/../notes",
        "/notes?%0d%0aSet-Cookie:%20x",
        "/notes?x=%0d%0a%0d%0a<script>",
    ] {
        let r = get(&server, sneaky, "test");
        assert_eq!(r.status, 301, "{sneaky}");
        assert_eq!(r.header("location"), Some("/notes/"), "{sneaky}");
        assert!(
            !r.head.to_ascii_lowercase().contains("set-cookie"),
            "{sneaky}"
        );
        assert!(!r.head.contains("<script>"), "{sneaky}");
    }
    // Decoded CR or LF in a path segment: that file does not exist, and
    // nothing is echoed into the head.
    let r = get(&server, "/notes%0d%0aSet-Cookie:%20x", "test");
    assert_eq!(r.status, 404);
    assert!(!r.head.to_ascii_lowercase().contains("set-cookie"));
}

#[test]
fn a_redirect_never_points_off_site() {
    let server = Server::start(&sample_site(), &[]);
    for (sneaky, host) in [
        ("//evil.example/../notes", "test"),
        ("/\\evil.example/../notes", "test"),
        ("http://evil.example/notes", "test"),
        ("/notes", "evil.example"),
        ("/./notes", "evil.example:80"),
    ] {
        let r = get(&server, sneaky, host);
        assert_eq!(r.status, 301, "{sneaky} Host: {host}");
        // A path on this site, never `//host` or a scheme.
        assert_eq!(r.header("location"), Some("/notes/"), "{sneaky}");
    }
}

#[test]
fn a_redirect_takes_only_the_normalised_path_from_the_request() {
    let scratch = Scratch::new("redirect");
    let dir = "a dir <&> \"q\" 'x' #?";
    std::fs::create_dir_all(scratch.0.join(dir).join("sub")).unwrap();
    let server = Server::start(&scratch.0, &[]);
    let encoded = "/a%20dir%20%3C%26%3E%20%22q%22%20%27x%27%20%23%3F";
    for (target, location) in [
        (encoded.to_owned(), format!("{encoded}/")),
        // Dot segments and a query are gone; the encoding is the server's.
        (
            "/a%20dir%20%3c%26%3e%20%22q%22%20%27x%27%20%23%3f/./sub/../sub?x=%0d%0a".to_owned(),
            format!("{encoded}/sub/"),
        ),
    ] {
        let r = get(&server, &target, "test");
        assert_eq!(r.status, 301, "{target}");
        assert_eq!(r.header("location"), Some(location.as_str()), "{target}");
        // Following it gives the index.
        assert_eq!(server.request("GET", &location).status, 200, "{location}");
    }
}
