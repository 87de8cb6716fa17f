//! `parse_request` on arbitrary bytes: never panics, and a complete head
//! lies within the input and holds at most the fields it was given room for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use txtd_core::request::{Field, Limits, Parsed, parse_request};

fuzz_target!(|data: &[u8]| {
    let mut fields = [Field::default(); 32];
    if let Ok(Parsed::Complete(request)) = parse_request(data, &mut fields, &Limits::DEFAULT) {
        assert!(request.head_len <= data.len());
        assert!(request.fields.len() <= 32);
        assert!(request.request_line(data).len() <= request.head_len);
    }
    // A small field budget must refuse, not overrun.
    let mut few = [Field::default(); 2];
    let _ = parse_request(data, &mut few, &Limits::DEFAULT);
});
