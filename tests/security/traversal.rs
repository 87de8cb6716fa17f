//! Path traversal: no request target, in any encoding, reads a file
//! outside the site root (RFC 3986 §5.2.4 dot segments, RFC 9112 §3.2).

use crate::common::*;

#[test]
fn traversal_in_any_encoding_never_leaves_the_root() {
    let server = Server::start(&sample_site(), &[]);
    for target in [
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/..%2f..%2fetc%2fpasswd",
        "/notes/../../etc/passwd",
        "/%2E%2E/%2E%2E/etc/passwd",
        "/..%5c..%5cetc/passwd",
        "/notes/%2e%2e/%2e%2e/etc/passwd",
        "http://test/../../etc/passwd",
        "/etc/passwd%00.txt",
        "/%252e%252e/%252e%252e/etc/passwd",
        "/.%2e/.%2e/etc/passwd",
        "/..;/..;/etc/passwd",
        "/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
        "/notes/./../.././../etc/passwd",
        "//etc/passwd",
    ] {
        let raw = format!("GET {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        let out = server.raw(raw.as_bytes());
        let text = String::from_utf8_lossy(&out);
        assert!(!text.contains("root:"), "{target} leaked: {text}");
        let (r, _) = Response::parse(&out, false);
        assert!(r.status == 400 || r.status == 404, "{target}: {}", r.status);
    }
}

#[test]
fn an_absolute_file_path_as_target_is_refused() {
    let server = Server::start(&sample_site(), &[]);
    for target in ["/etc/passwd", "file:///etc/passwd", "/proc/self/environ"] {
        let r = server.request("GET", target);
        assert!(r.status == 400 || r.status == 404, "{target}: {}", r.status);
        assert!(!r.text().contains("root:"), "{target}");
    }
}
