//! Mapping the regions of a lease grant (Wire Spec §7, §8, §9, §15.1, §15.21a.5, §15.22):
//! every file is opened through the containment and identity checks of `shm::open`, its
//! superblock is validated against the grant, and only then is it used.
//!
//! The mapped memory is shared with other processes that write it concurrently (the
//! producer writes while consumers read). Slot headers are copied out word by word with
//! volatile reads, and payload views handed to applications are only trusted after the
//! seqlock re-check (Wire Spec §8.3).

use super::grant::{LeaseGrant, PoolGrant};
use crate::protocol::control::RegionType;
use crate::shm::layout::{
    decode_superblock, header_slot_offset, payload_slot_offset, ExpectedRegion, SuperblockError,
    ACTIVITY_TIMESTAMP_OFFSET, HEADER_SLOT_BYTES, SLOT_READ_BYTES, SUPERBLOCK_SIZE,
    TENSOR_HEADER_OFFSET,
};
use crate::shm::open::{map_region, open_region, Access, AllowedBaseDirs, OpenError};
use crate::shm::seqlock::SeqCommit;
use memmap2::MmapRaw;
use std::path::PathBuf;

/// Bytes of a cache line on the hosts this targets (header slots start on line
/// boundaries: a 64-byte superblock, then 256-byte slots).
const CACHE_LINE: usize = 64;

/// Why a region could not be mapped; nothing of the grant is used then.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    /// The file failed the open checks (containment, type, identity, hugepages).
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The file is shorter than the region it should hold.
    #[error("{path} is {len} bytes, the region needs {needed}")]
    TooSmall {
        /// File.
        path: PathBuf,
        /// Its length.
        len: u64,
        /// Bytes the region needs.
        needed: u64,
    },
    /// The superblock disagrees with the grant.
    #[error("{path}: {source}")]
    Superblock {
        /// File.
        path: PathBuf,
        /// What disagrees.
        source: SuperblockError,
    },
}

/// One mapped payload pool.
pub struct MappedPool {
    /// What the driver granted.
    pub grant: PoolGrant,
    map: MmapRaw,
}

impl MappedPool {
    /// Pointer to the start of payload slot `slot` (checked against the slot count).
    #[inline]
    pub fn slot_ptr(&self, slot: u32) -> Option<*mut u8> {
        if slot >= self.grant.nslots {
            return None;
        }
        let offset = payload_slot_offset(slot, self.grant.stride_bytes) as usize;
        // In bounds: the file was checked to hold nslots * stride after the superblock.
        Some(self.map.as_mut_ptr().wrapping_add(offset))
    }

    /// The first `len` bytes of payload slot `slot`, or `None` when out of range.
    ///
    /// The bytes live in shared memory another process may be overwriting: treat the
    /// view as valid only once the frame's seqlock re-check succeeded.
    #[inline]
    pub fn slot_bytes(&self, slot: u32, len: usize) -> Option<&[u8]> {
        if len > self.grant.stride_bytes as usize {
            return None;
        }
        let ptr = self.slot_ptr(slot)?;
        // SAFETY: ptr..ptr+len lies inside the mapping (slot < nslots, len <= stride), the
        // mapping lives as long as `self`, and u8 has no invalid bit patterns.
        Some(unsafe { std::slice::from_raw_parts(ptr, len) })
    }

    /// Mutable view of payload slot `slot` (producer only; the mapping is read-write).
    ///
    /// # Safety
    /// The caller must be the stream's single writer and hold no other view of the slot.
    // The memory is shared with other processes, not owned through `&self`; exclusivity
    // is the single-writer contract above, which the borrow checker cannot see.
    #[allow(clippy::mut_from_ref)]
    #[inline]
    pub unsafe fn slot_bytes_mut(&self, slot: u32, len: usize) -> Option<&mut [u8]> {
        if len > self.grant.stride_bytes as usize {
            return None;
        }
        let ptr = self.slot_ptr(slot)?;
        // SAFETY: bounds as in `slot_bytes`; exclusivity is the caller's contract.
        Some(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
    }
}

/// Every region of one epoch of a stream, mapped and validated.
pub struct MappedEpoch {
    grant: LeaseGrant,
    header: MmapRaw,
    pools: Vec<MappedPool>,
}

impl MappedEpoch {
    /// Opens and maps the header ring and every pool of `grant` (read-only for
    /// consumers, read-write for producers) and checks each superblock.
    pub fn map(
        grant: &LeaseGrant,
        allowed: &AllowedBaseDirs,
        access: Access,
    ) -> Result<Self, MapError> {
        let expected = ExpectedRegion::header_ring(
            grant.layout_version,
            grant.epoch,
            grant.stream_id,
            grant.header_nslots,
        );
        let header = map_checked(&grant.header_uri, &expected, allowed, access)?;
        let mut pools = Vec::with_capacity(grant.pools.len());
        for pool in &grant.pools {
            let expected = ExpectedRegion::payload_pool(
                grant.layout_version,
                grant.epoch,
                grant.stream_id,
                pool.pool_id,
                pool.nslots,
                pool.stride_bytes,
            );
            let map = map_checked(&pool.uri, &expected, allowed, access)?;
            pools.push(MappedPool {
                grant: pool.clone(),
                map,
            });
        }
        Ok(Self {
            grant: grant.clone(),
            header,
            pools,
        })
    }

    /// The grant these regions belong to.
    #[inline]
    pub fn grant(&self) -> &LeaseGrant {
        &self.grant
    }

    /// Epoch of the mapping.
    #[inline]
    pub fn epoch(&self) -> u64 {
        self.grant.epoch
    }

    /// Header ring slot count.
    #[inline]
    pub fn header_nslots(&self) -> u32 {
        self.grant.header_nslots
    }

    /// Pools, smallest stride first.
    #[inline]
    pub fn pools(&self) -> &[MappedPool] {
        &self.pools
    }

    /// A pool by id.
    #[inline]
    pub fn pool(&self, pool_id: u16) -> Option<&MappedPool> {
        self.pools.iter().find(|p| p.grant.pool_id == pool_id)
    }

    /// The smallest pool whose stride fits `len` bytes (Wire Spec §9).
    pub fn pool_for_len(&self, len: usize) -> Option<&MappedPool> {
        self.pools
            .iter()
            .find(|p| p.grant.stride_bytes as usize >= len)
    }

    #[inline]
    fn slot_ptr(&self, index: u32) -> *mut u8 {
        let index = index & (self.grant.header_nslots - 1);
        // In bounds: index < nslots and the file holds nslots slots after the superblock.
        self.header
            .as_mut_ptr()
            .wrapping_add(header_slot_offset(index) as usize)
    }

    /// Hints the CPU to fetch the first cache line of payload slot `index` in every pool.
    /// A consumer calls it when a descriptor names the slot, before it reads the header:
    /// which pool holds the payload is only known from the header, and fetching both
    /// at once turns two dependent cross-core fetches into two parallel ones. Only a
    /// hint: nothing is read, nothing can fault.
    #[inline]
    pub fn prefetch_payloads(&self, index: u32) {
        for pool in &self.pools {
            if let Some(ptr) = pool.slot_ptr(index) {
                prefetch(ptr);
            }
        }
    }

    /// Hints the CPU to fetch the lines of header slot `index` a consumer reads after its
    /// first one (up to [`SLOT_READ_BYTES`]); the first holds `seq_commit`, which the
    /// caller has just loaded. Only a hint, as [`MappedEpoch::prefetch_payloads`].
    #[inline]
    pub fn prefetch_slot_tail(&self, index: u32) {
        let slot = self.slot_ptr(index);
        let mut offset = CACHE_LINE;
        while offset < SLOT_READ_BYTES {
            prefetch(slot.wrapping_add(offset));
            offset += CACHE_LINE;
        }
    }

    /// The header ring superblock's `activity_timestamp_ns`, which the driver refreshes
    /// (Wire Spec §15.14), read atomically.
    pub fn activity_timestamp_ns(&self) -> u64 {
        // SAFETY: the mapping is page-aligned and holds at least the 64-byte superblock
        // (checked when mapped), so offset 56 is in bounds and 8-byte aligned; it lives as
        // long as `self`; the driver stores the word atomically.
        let cell = unsafe {
            &*self
                .header
                .as_ptr()
                .add(ACTIVITY_TIMESTAMP_OFFSET)
                .cast::<std::sync::atomic::AtomicU64>()
        };
        cell.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The `seq_commit` word of header slot `index` (masked to the ring).
    #[inline]
    pub fn seq_commit(&self, index: u32) -> SeqCommit<'_> {
        // SAFETY: slot offsets are 64 + i*256 from a page-aligned mapping, so 8-byte
        // aligned; the word lives as long as `self`; it is only accessed atomically.
        unsafe { SeqCommit::from_ptr(self.slot_ptr(index).cast::<u64>()) }
    }

    /// Copies header slot `index` into `out`, word by word with volatile reads (the
    /// producer may be writing it; the seqlock decides whether the copy is usable).
    pub fn read_slot(&self, index: u32, out: &mut [u8; HEADER_SLOT_BYTES]) {
        self.read_slot_words(index, out, HEADER_SLOT_BYTES / 8);
    }

    /// Copies the first [`SLOT_READ_BYTES`] of header slot `index` into `out` (as
    /// [`MappedEpoch::read_slot`]) and leaves the rest of `out` as it was: the slot's
    /// tail is the tensor header's reserved pad, which a consumer ignores (§8.2).
    #[inline]
    pub fn read_slot_used(&self, index: u32, out: &mut [u8; HEADER_SLOT_BYTES]) {
        self.read_slot_words(index, out, SLOT_READ_BYTES / 8);
    }

    #[inline]
    fn read_slot_words(&self, index: u32, out: &mut [u8; HEADER_SLOT_BYTES], words: usize) {
        let src = self.slot_ptr(index).cast::<u64>();
        for (i, chunk) in out.chunks_exact_mut(8).take(words).enumerate() {
            // SAFETY: src..src+32 words lies inside the slot, 8-byte aligned.
            let word = unsafe { std::ptr::read_volatile(src.add(i)) };
            chunk.copy_from_slice(&word.to_ne_bytes());
        }
    }

    /// Makes bytes 8..256 of header slot `index` equal to `image` (everything but
    /// `seq_commit`, which only the seqlock stores touch). Producer only.
    ///
    /// Words that already hold their value are not stored again: most of a slot (the
    /// tensor description, the pool, the length) is the same frame after frame, and a
    /// store, even of the same value, takes the cache line away from every consumer that
    /// read it, which then has to fetch it again across cores. Reading the words first
    /// costs nothing comparable: the producer wrote them, so they are in its cache.
    #[inline]
    pub fn write_slot_body(&self, index: u32, image: &[u8; HEADER_SLOT_BYTES]) {
        self.write_slot_words(index, image, HEADER_SLOT_BYTES / 8);
    }

    /// As [`MappedEpoch::write_slot_body`] for bytes 8..64 only (the `SlotHeader` block
    /// and the `headerBytes` length: the seqlock word's cache line), for a producer that
    /// knows the slot already holds the tensor description it is writing. Producer only.
    #[inline]
    pub fn write_slot_head(&self, index: u32, image: &[u8; HEADER_SLOT_BYTES]) {
        self.write_slot_words(index, image, TENSOR_HEADER_OFFSET / 8);
    }

    #[inline]
    fn write_slot_words(&self, index: u32, image: &[u8; HEADER_SLOT_BYTES], words: usize) {
        let dst = self.slot_ptr(index).cast::<u64>();
        for (i, chunk) in image.chunks_exact(8).enumerate().take(words).skip(1) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let word = u64::from_ne_bytes(word);
            // SAFETY: dst..dst+32 words lies inside the slot, 8-byte aligned; the mapping
            // is read-write for producers (a read-only mapping would fault, and only the
            // producer, which maps read-write, calls this). The producer is the slot's only
            // writer, so what it reads is what it last stored.
            unsafe {
                if std::ptr::read_volatile(dst.add(i)) != word {
                    std::ptr::write_volatile(dst.add(i), word);
                }
            }
        }
    }
}

/// Prefetches the cache line at `ptr` into every cache level (a no-op off x86-64).
#[inline]
fn prefetch(ptr: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(ptr.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}

fn map_checked(
    uri: &crate::shm::uri::RegionUri,
    expected: &ExpectedRegion,
    allowed: &AllowedBaseDirs,
    access: Access,
) -> Result<MmapRaw, MapError> {
    let opened = open_region(uri, allowed, access)?;
    let needed = expected.region_len().unwrap_or(u64::MAX);
    if opened.len < needed {
        return Err(MapError::TooSmall {
            path: opened.canonical_path.clone(),
            len: opened.len,
            needed,
        });
    }
    let map = map_region(&opened, access)?;
    let mut superblock = [0u8; SUPERBLOCK_SIZE];
    // SAFETY: the mapping is at least `needed` >= 64 bytes long.
    unsafe {
        std::ptr::copy_nonoverlapping(map.as_ptr(), superblock.as_mut_ptr(), SUPERBLOCK_SIZE)
    };
    let sb = decode_superblock(&superblock).map_err(|source| MapError::Superblock {
        path: opened.canonical_path.clone(),
        source,
    })?;
    expected
        .validate(&sb)
        .map_err(|source| MapError::Superblock {
            path: opened.canonical_path.clone(),
            source,
        })?;
    debug_assert!(matches!(
        sb.region_type,
        RegionType::HeaderRing | RegionType::PayloadPool
    ));
    Ok(map)
}
