//! `parse_target` on arbitrary bytes and output sizes: never panics, and an
//! accepted path fits its buffer, is root-relative and has no dot segments.
#![no_main]

use libfuzzer_sys::fuzz_target;
use txtd_core::target::parse_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, request_target)) = data.split_first() else {
        return;
    };
    let is_options = flags & 1 == 1;
    let mut out = vec![0u8; usize::from(flags >> 1) * 4];
    let out_len = out.len();
    if let Ok(target) = parse_target(request_target, is_options, &mut out) {
        assert!(target.path.len() <= out_len);
        assert!(!target.path.starts_with(b"/"));
        for segment in target.path.split(|&b| b == b'/') {
            assert!(
                segment != b".." && segment != b".",
                "dot segment in {:?}",
                target.path
            );
        }
    }
});
