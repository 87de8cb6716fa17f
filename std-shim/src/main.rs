//! txtd binary.
fn main() {}
