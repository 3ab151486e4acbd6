//! Every decoder of the control schema (900) over arbitrary bytes, as a message and as a
//! headerless body (the SHM-resident superblock, slot and tensor headers): no panic, every
//! accessor callable, whatever decodes re-encodes to the same values.
#![no_main]

#[path = "../../tests/common/decoder_checks.rs"]
mod decoder_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    decoder_checks::exercise_control(data);
    if let Some((&[block, version], body)) = data.split_first_chunk::<2>() {
        decoder_checks::exercise_bodies(body, usize::from(block), u16::from(version));
    }
});
