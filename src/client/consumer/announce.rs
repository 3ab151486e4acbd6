//! Tracking `ShmPoolAnnounce` for the consumed stream (Wire Spec §10.1.1, §15.1, §15.2;
//! Driver Model §4.2, §8): announces are soft state. Stale ones (older than 3× the
//! announce period at receipt, or stamped before the consumer joined when the clock
//! domain is MONOTONIC) and ones with a lower epoch than the highest seen are ignored; a
//! higher epoch is validated like an attach grant before anything maps it.

use crate::client::grant::{LeaseGrant, PoolGrant, ProtocolError};
use crate::protocol::control::{ClockDomain, ShmPoolAnnounceDecoder};
use crate::shm::layout::{is_valid_stride, HEADER_SLOT_BYTES};
use crate::shm::uri::RegionUri;

/// A validated announce: everything needed to map an epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnouncedLayout {
    /// Stream id.
    pub stream_id: u32,
    /// Client id of the attached producer (0 when none is attached, Driver Model §8).
    pub producer_id: u32,
    /// Epoch.
    pub epoch: u64,
    /// SHM layout version.
    pub layout_version: u32,
    /// Header ring slot count.
    pub header_nslots: u32,
    /// Header ring location.
    pub header_uri: RegionUri,
    /// Payload pools, smallest stride first.
    pub pools: Vec<PoolGrant>,
}

impl AnnouncedLayout {
    /// A grant for this layout under an existing lease (the consumer's lease survives
    /// producer epoch changes; only the regions move).
    pub fn to_grant(&self, lease_id: u64, node_id: Option<u32>) -> LeaseGrant {
        LeaseGrant {
            lease_id,
            stream_id: self.stream_id,
            epoch: self.epoch,
            layout_version: self.layout_version,
            header_nslots: self.header_nslots,
            header_uri: self.header_uri.clone(),
            pools: self.pools.clone(),
            lease_expiry_ns: None,
            node_id,
        }
    }
}

/// What an announce meant for the consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnnounceOutcome {
    /// For another stream.
    OtherStream,
    /// Older than the freshness window.
    Stale,
    /// MONOTONIC and stamped before the consumer joined.
    BeforeJoin,
    /// Lower epoch than the highest seen.
    LowerEpoch,
    /// Fails validation.
    Invalid(ProtocolError),
    /// The highest epoch seen so far (new or repeated).
    Accepted {
        /// Its epoch.
        epoch: u64,
        /// Whether the epoch is higher than any seen before.
        newer: bool,
    },
}

/// The announce state of one stream.
#[derive(Debug, Clone)]
pub struct AnnounceTracker {
    stream_id: u32,
    freshness_ns: u64,
    join_time_ns: u64,
    highest_epoch: u64,
    latest: Option<AnnouncedLayout>,
}

impl AnnounceTracker {
    /// A tracker for `stream_id` (0 = not known yet) with the given freshness window,
    /// joined at `join_time_ns` (CLOCK_MONOTONIC).
    pub fn new(stream_id: u32, freshness_ns: u64, join_time_ns: u64) -> Self {
        Self {
            stream_id,
            freshness_ns,
            join_time_ns,
            highest_epoch: 0,
            latest: None,
        }
    }

    /// Sets the stream (the granted one, for dynamic streams); forgets other streams'
    /// state.
    pub fn set_stream(&mut self, stream_id: u32) {
        if stream_id != self.stream_id {
            self.stream_id = stream_id;
            self.highest_epoch = 0;
            self.latest = None;
        }
    }

    /// Records an epoch learnt elsewhere (an attach grant), so lower announces are
    /// ignored.
    pub fn note_epoch(&mut self, epoch: u64) {
        self.highest_epoch = self.highest_epoch.max(epoch);
    }

    /// The highest epoch seen, from announces or grants.
    pub fn highest_epoch(&self) -> u64 {
        self.highest_epoch
    }

    /// The announced layout of the highest epoch, if one was accepted.
    pub fn latest(&self) -> Option<&AnnouncedLayout> {
        self.latest
            .as_ref()
            .filter(|l| l.epoch == self.highest_epoch)
    }

    /// Judges one announce. `now_ns` is CLOCK_MONOTONIC at receipt, `now_realtime_ns`
    /// CLOCK_REALTIME (used only for REALTIME_SYNCED announces).
    pub fn on_announce(
        &mut self,
        announce: &ShmPoolAnnounceDecoder<'_>,
        now_ns: u64,
        now_realtime_ns: u64,
    ) -> AnnounceOutcome {
        if self.stream_id == 0 || announce.stream_id() != self.stream_id {
            return AnnounceOutcome::OtherStream;
        }
        let stamp = announce.announce_timestamp_ns();
        let clock = announce.announce_clock_domain();
        let receipt = match clock {
            ClockDomain::Monotonic => now_ns,
            ClockDomain::RealtimeSynced => now_realtime_ns,
            ClockDomain::Unrecognized(_) => {
                return AnnounceOutcome::Invalid(ProtocolError::UnknownEnum("ClockDomain"))
            }
        };
        if receipt.saturating_sub(stamp) > self.freshness_ns {
            return AnnounceOutcome::Stale;
        }
        // The join-time rule only compares like with like (§10.1.1): MONOTONIC only.
        if clock == ClockDomain::Monotonic && stamp < self.join_time_ns {
            return AnnounceOutcome::BeforeJoin;
        }
        let epoch = announce.epoch();
        if epoch < self.highest_epoch {
            return AnnounceOutcome::LowerEpoch;
        }
        if let Some(latest) = self.latest.as_mut().filter(|l| l.epoch == epoch) {
            latest.producer_id = announce.producer_id();
            return AnnounceOutcome::Accepted {
                epoch,
                newer: false,
            };
        }
        match validate_announce(announce) {
            Ok(layout) => {
                let newer = epoch > self.highest_epoch;
                self.highest_epoch = epoch;
                self.latest = Some(layout);
                AnnounceOutcome::Accepted { epoch, newer }
            }
            Err(e) => AnnounceOutcome::Invalid(e),
        }
    }
}

fn uri(bytes: &[u8], field: &'static str) -> Result<RegionUri, ProtocolError> {
    let text = std::str::from_utf8(bytes).map_err(|_| ProtocolError::EmptyUri(field))?;
    if text.trim().is_empty() {
        return Err(ProtocolError::EmptyUri(field));
    }
    Ok(RegionUri::parse(text)?)
}

/// Validates an announce as strictly as an attach grant (Driver Model §4.2): URIs parse,
/// `headerSlotBytes` is 256, the ring size is a power of two, pools are listed, each with
/// the ring's slot count and a valid stride.
pub fn validate_announce(a: &ShmPoolAnnounceDecoder<'_>) -> Result<AnnouncedLayout, ProtocolError> {
    if a.header_slot_bytes() as usize != HEADER_SLOT_BYTES {
        return Err(ProtocolError::HeaderSlotBytes(a.header_slot_bytes()));
    }
    let header_nslots = a.header_nslots();
    if !header_nslots.is_power_of_two() {
        return Err(ProtocolError::Geometry(
            "headerNslots is not a power of two",
        ));
    }
    let mut pools = Vec::with_capacity(a.payload_pools().len());
    for pool in a.payload_pools() {
        if pool.pool_nslots() != header_nslots {
            return Err(ProtocolError::PoolNslotsMismatch {
                pool_id: pool.pool_id(),
                pool_nslots: pool.pool_nslots(),
                header_nslots,
            });
        }
        if !is_valid_stride(pool.stride_bytes()) {
            return Err(ProtocolError::Geometry(
                "strideBytes is not a power-of-two multiple of 64",
            ));
        }
        pools.push(PoolGrant {
            pool_id: pool.pool_id(),
            nslots: pool.pool_nslots(),
            stride_bytes: pool.stride_bytes(),
            uri: uri(pool.region_uri(), "payloadPools.regionUri")?,
        });
    }
    if pools.is_empty() {
        return Err(ProtocolError::NoPayloadPools);
    }
    pools.sort_by_key(|p| p.stride_bytes);
    Ok(AnnouncedLayout {
        stream_id: a.stream_id(),
        producer_id: a.producer_id(),
        epoch: a.epoch(),
        layout_version: a.layout_version(),
        header_nslots,
        header_uri: uri(a.header_region_uri(), "headerRegionUri")?,
        pools,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::control::{ShmPoolAnnounce, ShmPoolAnnouncePayloadPools};

    const MS: u64 = 1_000_000;
    const POOL_URI: &[u8] = b"shm:file?path=/dev/shm/tp/1.pool";
    const HEADER_URI: &[u8] = b"shm:file?path=/dev/shm/tp/h.ring";

    fn announce(epoch: u64, stamp: u64, pools: &[ShmPoolAnnouncePayloadPools<'_>]) -> Vec<u8> {
        let a = ShmPoolAnnounce {
            stream_id: 10000,
            producer_id: 7,
            epoch,
            announce_timestamp_ns: stamp,
            announce_clock_domain: ClockDomain::Monotonic,
            layout_version: 1,
            header_nslots: 8,
            header_slot_bytes: 256,
            payload_pools: pools,
            header_region_uri: HEADER_URI,
        };
        let mut buf = vec![0u8; a.encoded_len()];
        a.encode(&mut buf).expect("fits");
        buf
    }

    fn pool(nslots: u32, uri: &[u8]) -> ShmPoolAnnouncePayloadPools<'_> {
        ShmPoolAnnouncePayloadPools {
            pool_id: 1,
            pool_nslots: nslots,
            stride_bytes: 4096,
            region_uri: uri,
        }
    }

    fn judge(t: &mut AnnounceTracker, bytes: &[u8], now: u64) -> AnnounceOutcome {
        let d = ShmPoolAnnounceDecoder::wrap(bytes).expect("decodes");
        t.on_announce(&d, now, 0)
    }

    #[test]
    fn stale_and_pre_join_announces_are_ignored() {
        // Joined at 1000 ms, period 200 ms: window 600 ms.
        let mut t = AnnounceTracker::new(10000, 600 * MS, 1000 * MS);
        let pools = [pool(8, POOL_URI)];
        assert_eq!(
            judge(&mut t, &announce(5, 900 * MS, &pools), 1100 * MS),
            AnnounceOutcome::BeforeJoin
        );
        assert_eq!(
            judge(&mut t, &announce(5, 1100 * MS, &pools), 1701 * MS),
            AnnounceOutcome::Stale
        );
        assert_eq!(t.highest_epoch(), 0);
        assert_eq!(
            judge(&mut t, &announce(5, 1100 * MS, &pools), 1700 * MS),
            AnnounceOutcome::Accepted {
                epoch: 5,
                newer: true
            }
        );
    }

    #[test]
    fn the_highest_epoch_wins() {
        let mut t = AnnounceTracker::new(10000, 600 * MS, 0);
        let pools = [pool(8, POOL_URI)];
        t.note_epoch(4);
        assert_eq!(
            judge(&mut t, &announce(3, MS, &pools), MS),
            AnnounceOutcome::LowerEpoch
        );
        assert_eq!(
            judge(&mut t, &announce(4, MS, &pools), MS),
            AnnounceOutcome::Accepted {
                epoch: 4,
                newer: false
            }
        );
        assert_eq!(
            judge(&mut t, &announce(6, MS, &pools), MS),
            AnnounceOutcome::Accepted {
                epoch: 6,
                newer: true
            }
        );
        let latest = t.latest().expect("layout kept");
        assert_eq!((latest.epoch, latest.producer_id), (6, 7));
        assert_eq!(latest.to_grant(42, None).lease_id, 42);
        assert_eq!(
            judge(&mut t, &announce(5, MS, &pools), MS),
            AnnounceOutcome::LowerEpoch
        );
    }

    #[test]
    fn announces_are_validated_like_grants() {
        let mut t = AnnounceTracker::new(10000, 600 * MS, 0);
        assert!(matches!(
            judge(&mut t, &announce(2, MS, &[]), MS),
            AnnounceOutcome::Invalid(ProtocolError::NoPayloadPools)
        ));
        assert!(matches!(
            judge(&mut t, &announce(2, MS, &[pool(16, POOL_URI)]), MS),
            AnnounceOutcome::Invalid(ProtocolError::PoolNslotsMismatch { .. })
        ));
        assert!(matches!(
            judge(&mut t, &announce(2, MS, &[pool(8, b"")]), MS),
            AnnounceOutcome::Invalid(ProtocolError::EmptyUri(_))
        ));
        assert!(matches!(
            judge(&mut t, &announce(2, MS, &[pool(8, b"file:///x")]), MS),
            AnnounceOutcome::Invalid(ProtocolError::InvalidUri(_))
        ));
        assert_eq!(t.highest_epoch(), 0, "nothing invalid is remembered");
        let mut other = AnnounceTracker::new(10001, 600 * MS, 0);
        assert_eq!(
            judge(&mut other, &announce(2, MS, &[pool(8, POOL_URI)]), MS),
            AnnounceOutcome::OtherStream
        );
    }
}
