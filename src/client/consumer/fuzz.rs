//! Entry point of the `consumer_frame` fuzz target (fuzz/, built only with `--cfg
//! fuzzing`): the consumer's frame acceptance ([`super::frame::read_frame`], Wire Spec
//! §8.2, §8.3, §10.2.1, §15.3) over a fuzzed header slot and `FrameDescriptor`, against
//! real files the driver's provisioner created and mapped as producer and consumer map
//! them. Whatever the bytes, acceptance must not panic, and a frame it accepts must be
//! exactly what the slot committed: its sequence, a payload inside the named pool's slot,
//! a tensor that fits the payload.

use std::cell::RefCell;
use std::path::PathBuf;

use super::counters::ConsumerCounters;
use super::frame::{decode_descriptor, read_frame, DescriptorMessage, SeqTracker, TensorCache};
use crate::client::grant::{LeaseGrant, PoolGrant};
use crate::client::mapping::MappedEpoch;
use crate::client::tensor::tensor_layout;
use crate::config::{DriverConfig, NoEnv};
use crate::driver::core::Provisioner;
use crate::driver::provision::ShmProvisioner;
use crate::shm::layout::{decode_slot_fields, header_index, HEADER_SLOT_BYTES, LAYOUT_VERSION};
use crate::shm::open::{Access, AllowedBaseDirs};
use crate::shm::seqlock::committed;
use crate::shm::uri::RegionUri;

/// Environment variable naming the directory the harness provisions its files under (the
/// fuzz script gives each run one and removes it); otherwise `tp-fuzz-frame-<pid>` in the
/// system's temporary directory, left behind (a few KiB).
pub const SHM_DIR_ENV: &str = "TP_FUZZ_SHM_DIR";

/// One epoch's files, mapped read-write (the fuzzer plays the producer) and read-only (the
/// consumer under test).
struct Harness {
    writer: MappedEpoch,
    reader: MappedEpoch,
}

impl Harness {
    fn new() -> Self {
        let dir = std::env::var_os(SHM_DIR_ENV).map_or_else(
            || std::env::temp_dir().join(format!("tp-fuzz-frame-{}", std::process::id())),
            PathBuf::from,
        );
        std::fs::create_dir_all(&dir).expect("the fuzz harness directory");
        let config = DriverConfig::from_toml_str(
            &format!(
                "[shm]\nbase_dir = \"{}\"\n[policies]\nprefault_shm = false\n\
                 [profiles.p]\nheader_nslots = 4\npayload_pools = [{{ pool_id = 1, \
                 stride_bytes = 64 }}, {{ pool_id = 2, stride_bytes = 4096 }}]\n",
                dir.display()
            ),
            &NoEnv,
        )
        .expect("the harness configuration is valid");
        let mut provisioner =
            ShmProvisioner::with_user(&config, "fuzz").expect("the harness provisioner");
        let profile = config.profile("p").expect("profile p").clone();
        let epoch = provisioner.highest_epoch(10000).expect("highest epoch") + 1;
        let layout = provisioner
            .provision(10000, epoch, LAYOUT_VERSION, &profile)
            .expect("the harness files");
        let grant = LeaseGrant {
            lease_id: 1,
            stream_id: layout.stream_id,
            epoch: layout.epoch,
            layout_version: layout.layout_version,
            header_nslots: layout.header_nslots,
            header_uri: RegionUri::parse(&layout.header_region_uri).expect("header uri"),
            pools: layout
                .pools
                .iter()
                .map(|p| PoolGrant {
                    pool_id: p.pool_id,
                    nslots: p.nslots,
                    stride_bytes: p.stride_bytes,
                    uri: RegionUri::parse(&p.region_uri).expect("pool uri"),
                })
                .collect(),
            lease_expiry_ns: None,
            node_id: None,
        };
        let allowed = AllowedBaseDirs::new([&dir]).expect("allowed base dir");
        Self {
            writer: MappedEpoch::map(&grant, &allowed, Access::ReadWrite).expect("writer map"),
            reader: MappedEpoch::map(&grant, &allowed, Access::ReadOnly).expect("reader map"),
        }
    }

    fn check(&self, data: &[u8]) {
        let Some((&flags, rest)) = data.split_first() else {
            return;
        };
        if rest.len() < HEADER_SLOT_BYTES {
            return;
        }
        let (slot, descriptor) = rest.split_at(HEADER_SLOT_BYTES);
        let mut image = [0u8; HEADER_SLOT_BYTES];
        image.copy_from_slice(slot);
        let DescriptorMessage::Descriptor(mut descriptor) = decode_descriptor(descriptor) else {
            return;
        };
        // Help the fuzzer past the checks it cannot guess cheaply.
        if flags & 1 != 0 {
            descriptor.epoch = self.reader.epoch();
        }
        let index = header_index(descriptor.seq, self.reader.header_nslots());
        self.writer.write_slot_body(index, &image);
        let word = if flags & 2 != 0 {
            u64::from_le_bytes(image[..8].try_into().expect("8 bytes"))
        } else {
            committed(descriptor.seq)
        };
        self.writer
            .seq_commit(index)
            .as_atomic()
            .store(word, std::sync::atomic::Ordering::Release);

        let mut seqs = SeqTracker::new(None);
        let mut tensors = TensorCache::default();
        let mut counters = ConsumerCounters::default();
        let accepted = read_frame(
            &self.reader,
            &descriptor,
            &mut seqs,
            &mut tensors,
            &mut counters,
            0,
            |frame| {
                assert_eq!(frame.seq(), descriptor.seq);
                assert_eq!(frame.epoch(), self.reader.epoch());
                let (_, fields) = decode_slot_fields(&image).expect("an accepted slot decodes");
                let payload = frame.payload();
                assert_eq!(payload.len(), fields.values_len_bytes as usize);
                let pool = self
                    .reader
                    .pool(frame.pool_id())
                    .expect("an accepted pool exists");
                let slot = pool
                    .slot_bytes(index, payload.len())
                    .expect("the payload lies in the pool");
                assert_eq!(
                    slot.as_ptr(),
                    payload.as_ptr(),
                    "payload is the slot's bytes"
                );
                let layout = tensor_layout(frame.tensor()).expect("an accepted tensor is valid");
                assert!(layout.extent_bytes <= payload.len() as u64);
            },
        );
        if accepted.is_ok() {
            assert_eq!(
                word,
                committed(descriptor.seq),
                "accepted a slot not committed for it"
            );
            assert_eq!(descriptor.epoch, self.reader.epoch());
        }
    }
}

thread_local! {
    static HARNESS: RefCell<Option<Harness>> = const { RefCell::new(None) };
}

/// Runs one fuzz input: a flags byte (bit 0: use the mapped epoch; bit 1: take the
/// `seq_commit` word from the slot bytes instead of committing the descriptor's sequence),
/// a 256-byte header slot, then `FrameDescriptor` bytes.
pub fn consumer_frame(data: &[u8]) {
    HARNESS.with(|harness| {
        harness
            .borrow_mut()
            .get_or_insert_with(Harness::new)
            .check(data)
    });
}
