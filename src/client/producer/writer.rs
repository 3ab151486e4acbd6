//! The producer's side of the seqlock protocol over one mapped epoch (Wire Spec §8.3,
//! §9, §15.18): choose the slot and pool, mark the slot IN-PROGRESS, let the payload be
//! written, write the full header, mark it COMMITTED. No allocation, no syscalls.
//!
//! A stream usually describes every frame alike, so the last tensor description that
//! passed the §8.2 checks is kept with its encoding: the same description again is neither
//! checked nor encoded again, only its fit in the payload is.

use super::error::PublishError;
use crate::client::mapping::MappedEpoch;
use crate::client::tensor::{check_extent, tensor_layout, zero_fill_beyond_ndims, TensorError};
use crate::protocol::control::TensorHeader;
use crate::shm::layout::{
    header_index, put_slot_fields, put_slot_tensor, SlotFields, HEADER_SLOT_BYTES,
};

/// A slot taken for one frame: its sequence is used, its `seq_commit` is IN-PROGRESS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SlotClaim {
    /// Logical sequence of the frame.
    pub(super) seq: u64,
    /// Header (and payload) slot index.
    pub(super) index: u32,
    /// Position of the chosen pool in [`MappedEpoch::pools`].
    pub(super) pool: usize,
    /// Payload length.
    pub(super) len: usize,
}

/// Writes frames into one epoch's header ring and pools; owns the mapping.
pub(super) struct EpochWriter {
    epoch: MappedEpoch,
    next_seq: u64,
    max_len: usize,
    tensor: Option<CheckedTensor>,
    /// The slot image the next commit stores: the tensor description of the last
    /// [`EpochWriter::check_tensor`] stays from frame to frame; the per-frame fields are
    /// written into it at each commit (a commit with no description yet stores zeros).
    image: [u8; HEADER_SLOT_BYTES],
    /// Changes each time the image's tensor description does.
    tensor_generation: u32,
    /// `meta_version` every commit stores (Wire Spec §10.3: the metadata in force).
    meta_version: u32,
    /// Per header slot, the `tensor_generation` whose description the slot holds (0:
    /// unknown). A slot that holds the current one only needs its first line written.
    slot_generations: Vec<u32>,
}

/// A tensor description that passed [`tensor_layout`] (its encoding is in the image).
struct CheckedTensor {
    header: TensorHeader,
    extent_bytes: u64,
}

impl EpochWriter {
    /// Takes over a read-write mapping; sequence numbers restart at 0 (Wire Spec §15.2).
    pub(super) fn new(epoch: MappedEpoch) -> Self {
        // Pools are sorted by stride when the grant is validated, so the last is the widest.
        let max_len = epoch
            .pools()
            .iter()
            .map(|p| p.grant.stride_bytes as usize)
            .max()
            .unwrap_or(0);
        let nslots = epoch.header_nslots() as usize;
        Self {
            epoch,
            next_seq: 0,
            max_len,
            tensor: None,
            image: [0; HEADER_SLOT_BYTES],
            tensor_generation: 0,
            meta_version: 0,
            slot_generations: vec![0; nslots],
        }
    }

    /// The Wire Spec §8.2 checks of `tensor` for a payload of `len` bytes (the ones a
    /// consumer applies); a description equal to the last one that passed is only checked
    /// for its fit.
    pub(super) fn check_tensor(
        &mut self,
        tensor: &TensorHeader,
        len: usize,
    ) -> Result<(), TensorError> {
        let extent_bytes = match &self.tensor {
            Some(checked) if checked.header == *tensor => checked.extent_bytes,
            _ => {
                let extent_bytes = tensor_layout(tensor)?.extent_bytes;
                // §8.2: entries beyond ndims go out as zeros whatever the caller left there.
                let mut written = *tensor;
                zero_fill_beyond_ndims(&mut written);
                put_slot_tensor(&mut self.image, &written);
                self.tensor = Some(CheckedTensor {
                    header: *tensor,
                    extent_bytes,
                });
                // Never 0 (unknown), even after wrapping.
                self.tensor_generation = self.tensor_generation.wrapping_add(1).max(1);
                extent_bytes
            }
        };
        check_extent(extent_bytes, len)
    }

    /// The `meta_version` frames committed from now on carry (0: no metadata).
    pub(super) fn set_meta_version(&mut self, meta_version: u32) {
        self.meta_version = meta_version;
    }

    /// The `meta_version` the next commit stores.
    #[inline]
    pub(super) fn meta_version(&self) -> u32 {
        self.meta_version
    }

    /// The mapping.
    #[inline]
    pub(super) fn epoch(&self) -> &MappedEpoch {
        &self.epoch
    }

    /// The sequence the next frame gets.
    pub(super) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Largest payload any pool holds.
    pub(super) fn max_len(&self) -> usize {
        self.max_len
    }

    /// Fails with [`PublishError::FrameTooLarge`] unless some pool fits `len`.
    #[inline]
    pub(super) fn pool_for(&self, len: usize) -> Result<usize, PublishError> {
        self.epoch
            .pools()
            .iter()
            .position(|p| p.grant.stride_bytes as usize >= len)
            .ok_or(PublishError::FrameTooLarge {
                len,
                max: self.max_len,
            })
    }

    /// Steps 1–3 of §15.18 for a frame of `len` bytes in pool `pool` (from
    /// [`EpochWriter::pool_for`]): takes the next sequence and stores IN-PROGRESS.
    #[inline]
    pub(super) fn begin(&mut self, len: usize, pool: usize) -> SlotClaim {
        let seq = self.next_seq;
        self.next_seq += 1;
        let index = header_index(seq, self.epoch.header_nslots());
        self.epoch.seq_commit(index).store_in_progress(seq);
        SlotClaim {
            seq,
            index,
            pool,
            len,
        }
    }

    /// The payload bytes of `claim` (step 4 writes them).
    #[inline]
    pub(super) fn payload_mut(&mut self, claim: &SlotClaim) -> &mut [u8] {
        let pool = &self.epoch.pools()[claim.pool];
        // SAFETY: this producer holds the stream's exclusive producer lease, so it is the
        // only writer of the slot, and `&mut self` keeps this the only view of it.
        let bytes = unsafe { pool.slot_bytes_mut(claim.index, claim.len) };
        bytes.expect("the slot is in range: pools have header_nslots slots (checked with the grant) and len fits the stride (checked by pool_for)")
    }

    /// Steps 5–7: writes the whole header for `claim`, then stores COMMITTED. The tensor
    /// description is the one that last passed [`EpochWriter::check_tensor`]: call that
    /// first for every frame (a slot committed without one describes the payload as it
    /// was checked last, or not at all).
    pub(super) fn commit(&mut self, claim: &SlotClaim, timestamp_ns: u64) {
        self.write_header(claim, timestamp_ns);
        self.epoch
            .seq_commit(claim.index)
            .store_committed(claim.seq);
    }

    /// Step 5 alone: writes the whole header for `claim` and leaves it IN-PROGRESS. A
    /// frame published with progress has its header written first, so consumers can
    /// judge the layout of the prefix (Wire Spec §10.2.2).
    pub(super) fn write_header(&mut self, claim: &SlotClaim, timestamp_ns: u64) {
        put_slot_fields(
            &mut self.image,
            &SlotFields {
                // Fits: len <= stride_bytes, a u32.
                values_len_bytes: claim.len as u32,
                payload_slot: claim.index,
                pool_id: self.epoch.pools()[claim.pool].grant.pool_id,
                payload_offset: 0,
                timestamp_ns,
                meta_version: self.meta_version,
            },
        );
        // seq_commit in the image is not written: only the seqlock stores touch it.
        let generation = &mut self.slot_generations[claim.index as usize];
        if *generation == self.tensor_generation && *generation != 0 {
            self.epoch.write_slot_head(claim.index, &self.image);
        } else {
            self.epoch.write_slot_body(claim.index, &self.image);
            *generation = self.tensor_generation;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::grant::{LeaseGrant, PoolGrant};
    use crate::client::tensor::bytes_header;
    use crate::config::{DriverConfig, NoEnv};
    use crate::driver::core::Provisioner;
    use crate::driver::provision::ShmProvisioner;
    use crate::shm::layout::{decode_slot, LAYOUT_VERSION};
    use crate::shm::open::{Access, AllowedBaseDirs};
    use crate::shm::seqlock::{committed, in_progress};
    use crate::shm::uri::RegionUri;

    fn base() -> tempfile::TempDir {
        let mut builder = tempfile::Builder::new();
        builder.prefix("tp-writer-");
        std::path::Path::new("/dev/shm")
            .is_dir()
            .then(|| builder.tempdir_in("/dev/shm").ok())
            .flatten()
            .unwrap_or_else(|| builder.tempdir().expect("temp dir"))
    }

    fn grant(dir: &std::path::Path) -> LeaseGrant {
        let config = DriverConfig::from_toml_str(
            &format!(
                "[shm]\nbase_dir = \"{}\"\n[policies]\nprefault_shm = false\n[profiles.p]\nheader_nslots = 4\npayload_pools = [{{ pool_id = 1, stride_bytes = 64 }}, {{ pool_id = 2, stride_bytes = 4096 }}]\n",
                dir.display()
            ),
            &NoEnv,
        )
        .expect("config");
        let mut prov = ShmProvisioner::with_user(&config, "tester").expect("provisioner");
        let profile = config.profile("p").expect("profile").clone();
        let layout = prov
            .provision(10000, 1, LAYOUT_VERSION, &profile)
            .expect("provision");
        LeaseGrant {
            lease_id: 1,
            stream_id: layout.stream_id,
            epoch: layout.epoch,
            layout_version: layout.layout_version,
            header_nslots: layout.header_nslots,
            header_uri: RegionUri::parse(&layout.header_region_uri).expect("uri"),
            pools: layout
                .pools
                .iter()
                .map(|p| PoolGrant {
                    pool_id: p.pool_id,
                    nslots: p.nslots,
                    stride_bytes: p.stride_bytes,
                    uri: RegionUri::parse(&p.region_uri).expect("uri"),
                })
                .collect(),
            lease_expiry_ns: None,
            node_id: None,
        }
    }

    #[test]
    fn frames_go_to_the_smallest_fitting_pool_under_the_seqlock() {
        let dir = base();
        let grant = grant(dir.path());
        let allowed = AllowedBaseDirs::new([dir.path()]).expect("allowed");
        let mapped = MappedEpoch::map(&grant, &allowed, Access::ReadWrite).expect("maps");
        let reader = MappedEpoch::map(&grant, &allowed, Access::ReadOnly).expect("maps");
        let mut writer = EpochWriter::new(mapped);
        assert_eq!(writer.max_len(), 4096);
        assert_eq!(
            writer.pool_for(4097),
            Err(PublishError::FrameTooLarge {
                len: 4097,
                max: 4096
            })
        );

        for (expected_seq, len) in [(0u64, 64usize), (1, 65), (2, 0), (3, 10), (4, 4096)] {
            let pool = writer.pool_for(len).expect("fits");
            let claim = writer.begin(len, pool);
            assert_eq!(claim.seq, expected_seq);
            assert_eq!(claim.index, (expected_seq % 4) as u32);
            assert_eq!(
                reader.seq_commit(claim.index).load(),
                in_progress(expected_seq)
            );
            writer
                .payload_mut(&claim)
                .iter_mut()
                .enumerate()
                .for_each(|(i, b)| *b = (i as u64 + expected_seq) as u8);
            let tensor = bytes_header(len).expect("tensor");
            writer.check_tensor(&tensor, len).expect("valid");
            writer.commit(&claim, 100 + expected_seq);

            let mut image = [0u8; 256];
            reader.read_slot(claim.index, &mut image);
            let (word, contents) = decode_slot(&image).expect("well-formed");
            assert_eq!(word, committed(expected_seq));
            assert_eq!(contents.values_len_bytes as usize, len);
            assert_eq!(contents.payload_slot, claim.index);
            assert_eq!(contents.pool_id, if len <= 64 { 1 } else { 2 });
            assert_eq!(contents.payload_offset, 0);
            assert_eq!(contents.timestamp_ns, 100 + expected_seq);
            assert_eq!(contents.tensor, tensor);
            let payload = reader
                .pool(contents.pool_id)
                .and_then(|p| p.slot_bytes(claim.index, len))
                .expect("payload");
            assert!(payload
                .iter()
                .enumerate()
                .all(|(i, b)| *b == (i as u64 + expected_seq) as u8));
        }
        assert_eq!(writer.next_seq(), 5);
        assert_eq!(writer.epoch().epoch(), 1);
    }

    #[test]
    fn each_commit_stores_the_meta_version_in_force() {
        let dir = base();
        let grant = grant(dir.path());
        let allowed = AllowedBaseDirs::new([dir.path()]).expect("allowed");
        let mapped = MappedEpoch::map(&grant, &allowed, Access::ReadWrite).expect("maps");
        let reader = MappedEpoch::map(&grant, &allowed, Access::ReadOnly).expect("maps");
        let mut writer = EpochWriter::new(mapped);
        let tensor = bytes_header(8).expect("tensor");
        // Same tensor every time: only the slot's first line is rewritten after the first
        // lap, and the version lives there.
        for (seq, version) in [(0u64, 0u32), (1, 3), (2, 3), (3, 4), (4, 0), (5, 9)] {
            writer.set_meta_version(version);
            writer.check_tensor(&tensor, 8).expect("valid");
            let claim = writer.begin(8, writer.pool_for(8).expect("fits"));
            assert_eq!(claim.seq, seq);
            writer.commit(&claim, 1);
            let mut image = [0u8; 256];
            reader.read_slot(claim.index, &mut image);
            assert_eq!(
                decode_slot(&image).expect("well-formed").1.meta_version,
                version
            );
        }
        assert_eq!(writer.meta_version(), 9);
    }

    #[test]
    fn a_repeated_tensor_description_is_checked_for_each_payload() {
        let dir = base();
        let grant = grant(dir.path());
        let allowed = AllowedBaseDirs::new([dir.path()]).expect("allowed");
        let mapped = MappedEpoch::map(&grant, &allowed, Access::ReadWrite).expect("maps");
        let mut writer = EpochWriter::new(mapped);
        let tensor = bytes_header(64).expect("tensor");
        assert_eq!(writer.check_tensor(&tensor, 64), Ok(()));
        assert_eq!(
            writer.check_tensor(&tensor, 63),
            Err(TensorError::ExceedsPayload {
                needed: 64,
                values_len: 63
            }),
            "the remembered description still has to fit"
        );
        let mut rank_zero = tensor;
        rank_zero.ndims = 0;
        assert_eq!(
            writer.check_tensor(&rank_zero, 64),
            Err(TensorError::Ndims(0))
        );
        assert_eq!(
            writer.check_tensor(&rank_zero, 64),
            Err(TensorError::Ndims(0))
        );
        assert_eq!(writer.check_tensor(&tensor, 64), Ok(()));
    }

    #[test]
    fn a_reused_slot_holds_exactly_the_new_frame() {
        let dir = base();
        let grant = grant(dir.path());
        let allowed = AllowedBaseDirs::new([dir.path()]).expect("allowed");
        let mapped = MappedEpoch::map(&grant, &allowed, Access::ReadWrite).expect("maps");
        let reader = MappedEpoch::map(&grant, &allowed, Access::ReadOnly).expect("maps");
        let mut writer = EpochWriter::new(mapped);
        let mut first = bytes_header(64).expect("tensor");
        first.pad = [0xA5; 109];
        let second = bytes_header(10).expect("tensor");
        // Ring of 4: sequences 0 and 4 share slot 0; 1 and 5 slot 1 (same description).
        for (seq, tensor, len, ts) in [
            (0u64, &first, 64usize, 7u64),
            (1, &first, 64, 7),
            (2, &first, 64, 7),
            (3, &first, 64, 7),
            (4, &second, 10, 8),
            (5, &second, 10, 8),
        ] {
            writer.check_tensor(tensor, len).expect("valid");
            let claim = writer.begin(len, writer.pool_for(len).expect("fits"));
            assert_eq!(claim.seq, seq);
            writer.commit(&claim, ts);
        }
        for (index, seq) in [(0u32, 4u64), (1, 5)] {
            let mut image = [0u8; 256];
            reader.read_slot(index, &mut image);
            let (word, contents) = decode_slot(&image).expect("well-formed");
            assert_eq!(word, committed(seq));
            assert_eq!(contents.tensor, second, "every changed byte was written");
            assert_eq!((contents.values_len_bytes, contents.timestamp_ns), (10, 8));
        }
        let mut image = [0u8; 256];
        reader.read_slot(2, &mut image);
        assert_eq!(decode_slot(&image).expect("well-formed").1.tensor, first);
    }
}
