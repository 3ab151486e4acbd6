//! The tensorpool side of the frame scenarios: client settings for a benchmark driver
//! ([`crate::driver_host`]), attaching a producer and a consumer, and the self-checking
//! payload every frame scenario writes and verifies.
//!
//! **Payload.** A frame of `len` bytes is the scenario's source buffer copied in, except
//! for the words the consumer checks: the first 8 bytes of every 64 KiB hold a stamp
//! derived from the frame's sequence number (the first stamp *is* the sequence number),
//! and the last 8 bytes hold a checksum of the stamps and the length. The producer copies
//! the source 64 KiB at a time and writes that chunk's stamp while its lines are still in
//! the core's cache, so filling a frame costs one copy of it. The consumer reads and checks
//! the stamps and the checksum: for a 64 KiB frame, the first and the last 8 bytes; for
//! 4 MiB, 65 words. That proves the frame is the one the descriptor named, whole, and
//! from this frame throughout (a stale or torn chunk fails), without reading the payload's
//! other bytes: what an application then reads is its own cost, not the transport's.

use std::path::Path;
use std::time::{Duration, Instant};

use tensorpool::client::consumer::{monotonic_now_ns, Consumer, ConsumerConfig};
use tensorpool::client::producer::{Producer, ProducerConfig};
use tensorpool::client::ClientStreams;

use crate::aeron_host::{CLIENT_PUMP_PERIOD, DATA_CHANNEL, SETUP_TIMEOUT};
use crate::driver_host::{CONTROL_CHANNEL, CONTROL_STREAM};
use crate::error::{BenchError, Context as _};
use crate::sys::check_interrupted;

/// Channel of the descriptor streams: the channel `aeron-rate` measures raw Aeron on.
pub const DESCRIPTOR_CHANNEL: &str = DATA_CHANNEL;
/// Distance between stamped words in a payload.
pub const STAMP_STRIDE: usize = 64 << 10;
/// Bytes copied at a time when filling a frame: large enough for `memcpy` to run at full
/// speed, small enough that the stamp written after each chunk finds its line in the
/// core's cache.
const FILL_CHUNK: usize = STAMP_STRIDE;

/// The streams of a client of a benchmark driver whose Aeron directory is `aeron_dir`,
/// with descriptors on `descriptor_stream_id` of [`DESCRIPTOR_CHANNEL`].
pub fn client_streams(aeron_dir: &Path, descriptor_stream_id: u32) -> ClientStreams {
    let control_stream_id = CONTROL_STREAM as u32;
    ClientStreams {
        aeron_dir: Some(aeron_dir.to_owned()),
        control_channel: CONTROL_CHANNEL.into(),
        control_stream_id,
        // The benchmark driver announces on its control stream (the configuration default).
        announce_channel: CONTROL_CHANNEL.into(),
        announce_stream_id: control_stream_id,
        descriptor_channel: DESCRIPTOR_CHANNEL.into(),
        descriptor_stream_id,
        connect_timeout: SETUP_TIMEOUT,
        ..ClientStreams::default()
    }
}

/// A producer of `stream_id` on a benchmark driver with SHM base directory `shm_dir` and
/// Aeron directory `aeron_dir`.
pub fn producer_config(
    shm_dir: &Path,
    aeron_dir: &Path,
    stream_id: u32,
    descriptor_stream_id: u32,
) -> ProducerConfig {
    ProducerConfig::new(stream_id)
        .streams(client_streams(aeron_dir, descriptor_stream_id))
        .allowed_base_dirs([shm_dir])
}

/// A consumer of `stream_id` on a benchmark driver (as [`producer_config`]). It never
/// skips ahead: every frame scenario keeps its producer within reach of its consumer.
pub fn consumer_config(
    shm_dir: &Path,
    aeron_dir: &Path,
    stream_id: u32,
    descriptor_stream_id: u32,
) -> ConsumerConfig {
    ConsumerConfig {
        allowed_base_dirs: vec![shm_dir.to_owned()],
        max_outstanding_seq_gap: None,
        client_name: "tp-bench-consumer".into(),
        ..ConsumerConfig::new(client_streams(aeron_dir, descriptor_stream_id), stream_id)
    }
}

/// Connects a producer and runs its duty cycle until it has mapped an epoch.
pub fn attach_producer(config: ProducerConfig) -> Result<Producer, BenchError> {
    let stream_id = config.stream_id;
    let mut producer = Producer::new(config).setup("connecting a producer")?;
    pump_until(
        &format!("the producer of stream {stream_id} to attach"),
        || {
            producer
                .do_work(monotonic_now_ns())
                .map_err(|e| e.to_string())?;
            Ok(producer.is_attached())
        },
    )?;
    Ok(producer)
}

/// Connects a consumer (it attaches on its first duty cycles).
pub fn connect_consumer(config: ConsumerConfig) -> Result<Consumer, BenchError> {
    Consumer::connect(config).setup("connecting a consumer")
}

/// Runs `consumer`'s duty cycle until it reads frames of epoch `epoch` (or a later one).
pub fn await_consumer_ready(consumer: &mut Consumer, epoch: u64) -> Result<(), BenchError> {
    let what = format!(
        "the consumer of stream {} to map epoch {epoch}",
        consumer.stream_id()
    );
    pump_until(&what, || {
        consumer
            .do_work(monotonic_now_ns())
            .map_err(|e| e.to_string())?;
        Ok(consumer.is_ready() && consumer.mapped_epoch().is_some_and(|e| e >= epoch))
    })
}

/// Runs `step` (a duty cycle that says whether what we wait for has happened) until it
/// returns `true`, failing after [`SETUP_TIMEOUT`] with `what`.
fn pump_until(
    what: &str,
    mut step: impl FnMut() -> Result<bool, String>,
) -> Result<(), BenchError> {
    let deadline = Instant::now() + SETUP_TIMEOUT;
    loop {
        check_interrupted()?;
        if step().map_err(|e| BenchError::Setup(format!("waiting for {what}: {e}")))? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(BenchError::Setup(format!(
                "timed out after {SETUP_TIMEOUT:?} waiting for {what}"
            )));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Runs a client's duty cycle about every [`CLIENT_PUMP_PERIOD`] from a measuring loop.
pub struct DutyPump {
    next: Instant,
}

impl DutyPump {
    /// A pump due at once.
    pub fn new() -> Self {
        Self {
            next: Instant::now(),
        }
    }

    /// Whether a period has passed since the last time this returned `true`.
    pub fn due(&mut self, now: Instant) -> bool {
        if now >= self.next {
            self.next = now + CLIENT_PUMP_PERIOD;
            true
        } else {
            false
        }
    }
}

/// The source buffer frames of `len` bytes are copied from (the memcpy scenario's pattern).
pub fn source(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 7) as u8).collect()
}

/// The stamp of page `page` of frame `seq` (page 0's is `seq` itself).
fn stamp(seq: u64, page: usize) -> u64 {
    seq ^ (page as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The checksum in the last 8 bytes of a frame of `len` bytes whose stamps are `stamps`.
fn checksum(len: usize, stamps: impl Iterator<Item = u64>) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    stamps.fold(FNV_OFFSET ^ len as u64, |hash, word| {
        (hash ^ word).wrapping_mul(FNV_PRIME)
    })
}

/// Offsets of the stamped words of a frame of `len` bytes (clear of the checksum).
fn stamp_offsets(len: usize) -> impl Iterator<Item = usize> {
    (0..len.saturating_sub(8))
        .step_by(STAMP_STRIDE)
        .take_while(move |off| off + 16 <= len)
}

/// Words of a frame of `len` bytes the consumer checks (stamps and checksum).
pub fn words_checked(len: usize) -> usize {
    stamp_offsets(len).count() + 1
}

/// Writes frame `seq` into `dst` (at least 16 bytes): the bytes of `src` (as long as
/// `dst`) a chunk at a time, each chunk's stamp, then the checksum (see the module docs).
pub fn fill(dst: &mut [u8], src: &[u8], seq: u64) {
    let len = dst.len();
    let body_end = len - 8;
    let mut pages = stamp_offsets(len).enumerate().peekable();
    for start in (0..body_end).step_by(FILL_CHUNK) {
        let end = (start + FILL_CHUNK).min(body_end);
        dst[start..end].copy_from_slice(&src[start..end]);
        while let Some((page, off)) = pages.next_if(|(_, off)| *off < end) {
            dst[off..off + 8].copy_from_slice(&stamp(seq, page).to_le_bytes());
        }
    }
    let sum = checksum(
        len,
        (0..words_checked(len) - 1).map(|page| stamp(seq, page)),
    );
    dst[body_end..].copy_from_slice(&sum.to_le_bytes());
}

/// Whether `payload` carries the stamps and checksum of frame `seq` (see the module docs).
pub fn verify(payload: &[u8], seq: u64) -> bool {
    let len = payload.len();
    if len < 16 {
        return false;
    }
    let word = |off: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&payload[off..off + 8]);
        u64::from_le_bytes(bytes)
    };
    let mut stamps_ok = true;
    let sum = checksum(
        len,
        stamp_offsets(len).enumerate().map(|(page, off)| {
            let found = word(off);
            stamps_ok &= found == stamp(seq, page);
            found
        }),
    );
    stamps_ok && word(len - 8) == sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filled_frames_verify_and_damage_is_caught() {
        for len in [16, 64, 4096, 4104, 4110, 64 << 10, 640 << 10] {
            let src = source(len);
            let mut frame = vec![0u8; len];
            fill(&mut frame, &src, 77);
            assert!(verify(&frame, 77), "{len}");
            assert!(!verify(&frame, 78), "another sequence, {len}");
            assert_eq!(&frame[..8], &77u64.to_le_bytes(), "page 0 holds the seq");
            // A page left over from another frame is caught.
            let mut other = vec![0u8; len];
            fill(&mut other, &src, 78);
            let last_page = stamp_offsets(len).last().expect("at least one stamp");
            frame[last_page..last_page + 8].copy_from_slice(&other[last_page..last_page + 8]);
            assert!(!verify(&frame, 77), "stale page, {len}");
            // So is a torn tail.
            let mut frame = vec![0u8; len];
            fill(&mut frame, &src, 77);
            frame[len - 1] ^= 1;
            assert!(!verify(&frame, 77), "tail, {len}");
        }
        assert!(!verify(&[0u8; 8], 0), "too short to carry a frame");
    }

    #[test]
    fn fill_copies_the_source_around_the_checked_words() {
        for len in [3 * STAMP_STRIDE, 4110] {
            let src = source(len);
            let mut frame = vec![0xeeu8; len];
            fill(&mut frame, &src, 5);
            let checked: Vec<usize> = stamp_offsets(len).collect();
            assert_eq!(words_checked(len), checked.len() + 1);
            for off in 0..len - 8 {
                if !checked.iter().any(|c| (*c..c + 8).contains(&off)) {
                    assert_eq!(frame[off], src[off], "byte {off} of {len}");
                }
            }
        }
    }
}
