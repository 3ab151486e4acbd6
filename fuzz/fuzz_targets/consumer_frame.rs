//! The consumer's frame acceptance over a fuzzed header slot and `FrameDescriptor`
//! (src/client/consumer/fuzz.rs has the harness and the properties).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tensorpool::client::consumer::fuzz::consumer_frame(data);
});
