//! Symlink escape: a link, whatever it points at, is never followed, and
//! FIFOs, sockets and devices are never opened (`openat2` with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, then an `fstat` check).

use std::process::Command;

use crate::common::*;

#[test]
fn symlinks_and_special_files_are_never_served() {
    let scratch = Scratch::new("symlink");
    let root = scratch.0.join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::create_dir(root.join("sub")).unwrap();
    std::fs::write(scratch.0.join("secret.txt"), "top secret").unwrap();
    std::fs::write(root.join("ok.txt"), "fine").unwrap();
    std::os::unix::fs::symlink(scratch.0.join("secret.txt"), root.join("link.txt")).unwrap();
    std::os::unix::fs::symlink(&scratch.0, root.join("up")).unwrap();
    std::os::unix::fs::symlink("ok.txt", root.join("inside-link.txt")).unwrap();
    // A relative link climbing out, from a subdirectory.
    std::os::unix::fs::symlink("../../secret.txt", root.join("sub/rel.txt")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("passwd.txt")).unwrap();
    let fifo = Command::new("mkfifo")
        .arg(root.join("fifo.txt"))
        .status()
        .unwrap();
    assert!(fifo.success());
    let server = Server::start(&root, &[]);
    assert_eq!(server.request("GET", "/ok.txt").status, 200);
    for target in [
        "/link.txt",
        "/up/secret.txt",
        "/up/",
        "/up",
        "/inside-link.txt",
        "/sub/rel.txt",
        "/passwd.txt",
        "/fifo.txt",
    ] {
        let r = server.request("GET", target);
        assert_eq!(r.status, 404, "{target}");
        assert!(!r.text().contains("top secret"), "{target}");
        assert!(!r.text().contains("root:"), "{target}");
    }
    let index = server.request("GET", "/").text();
    assert!(index.contains("ok.txt"));
    for hidden in ["link.txt", "up/", "fifo.txt", "passwd.txt"] {
        assert!(!index.contains(hidden), "{hidden} listed: {index}");
    }
}
