#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| clearance_fuzz::search_fields(data));
