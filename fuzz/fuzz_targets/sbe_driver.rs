//! Every decoder of the driver schema (901) over arbitrary bytes, as a message and as a
//! headerless body: no panic, every accessor callable, whatever decodes re-encodes to the
//! same values (tests/common/decoder_checks.rs, shared with the property tests).
#![no_main]

#[path = "../../tests/common/decoder_checks.rs"]
mod decoder_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    decoder_checks::exercise_driver(data);
    if let Some((&[block, version], body)) = data.split_first_chunk::<2>() {
        decoder_checks::exercise_bodies(body, usize::from(block), u16::from(version));
    }
});
