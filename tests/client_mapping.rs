//! Mapping granted regions: real files from the provisioner, opened through the
//! containment checks, superblocks validated against the grant (Wire Spec §15.1).

use std::path::Path;
use tempfile::TempDir;
use tensorpool::client::{LeaseGrant, MapError, MappedEpoch, PoolGrant};
use tensorpool::config::{DriverConfig, NoEnv};
use tensorpool::driver::core::{EpochLayout, Provisioner};
use tensorpool::driver::provision::ShmProvisioner;
use tensorpool::protocol::control::{Dtype, MajorOrder, ProgressUnit, TensorHeader};
use tensorpool::shm::layout::{
    decode_slot, encode_slot, SlotContents, SuperblockError, LAYOUT_VERSION, SLOT_BYTES_NULL,
};
use tensorpool::shm::open::{Access, AllowedBaseDirs, OpenError};
use tensorpool::shm::uri::RegionUri;

fn base() -> TempDir {
    let mut b = tempfile::Builder::new();
    b.prefix("tp-mapping-");
    if Path::new("/dev/shm").is_dir() {
        if let Ok(dir) = b.tempdir_in("/dev/shm") {
            return dir;
        }
    }
    b.tempdir().expect("temp dir")
}

fn provisioned(dir: &Path) -> EpochLayout {
    let config = DriverConfig::from_toml_str(
        &format!(
            "[shm]\nbase_dir = \"{}\"\n[policies]\nprefault_shm = false\n[profiles.p]\nheader_nslots = 8\npayload_pools = [{{ pool_id = 1, stride_bytes = 4096 }}, {{ pool_id = 2, stride_bytes = 65536 }}]\n",
            dir.display()
        ),
        &NoEnv,
    )
    .expect("config");
    let mut prov = ShmProvisioner::with_user(&config, "tester").expect("provisioner");
    let profile = config.profile("p").expect("profile").clone();
    prov.provision(10000, 3, LAYOUT_VERSION, &profile)
        .expect("provision")
}

fn grant_of(layout: &EpochLayout) -> LeaseGrant {
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

fn tensor() -> TensorHeader {
    let mut dims = [0; 8];
    dims[0] = 100;
    TensorHeader {
        dtype: Dtype::Uint8,
        major_order: MajorOrder::Row,
        ndims: 1,
        pad_align: 0,
        progress_unit: ProgressUnit::None,
        progress_stride_bytes: 0,
        dims,
        strides: [0; 8],
        pad: [0; 109],
    }
}

#[test]
fn producer_writes_are_seen_through_a_read_only_consumer_mapping() {
    let dir = base();
    let layout = provisioned(dir.path());
    let allowed = AllowedBaseDirs::new([dir.path()]).expect("allowed");
    let grant = grant_of(&layout);
    let producer = MappedEpoch::map(&grant, &allowed, Access::ReadWrite).expect("producer maps");
    let consumer = MappedEpoch::map(&grant, &allowed, Access::ReadOnly).expect("consumer maps");
    assert_eq!(
        producer.pool_for_len(4096).map(|p| p.grant.pool_id),
        Some(1)
    );
    assert_eq!(
        producer.pool_for_len(4097).map(|p| p.grant.pool_id),
        Some(2)
    );
    assert!(producer.pool_for_len(65537).is_none());

    let pool = producer.pool(1).expect("pool 1");
    // SAFETY: this test is the only writer of the slot.
    let payload = unsafe { pool.slot_bytes_mut(5, 100) }.expect("slot 5");
    payload
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = i as u8);
    let contents = SlotContents {
        values_len_bytes: 100,
        payload_slot: 5,
        pool_id: 1,
        payload_offset: 0,
        timestamp_ns: 9,
        meta_version: 0,
        tensor: tensor(),
    };
    producer.seq_commit(5).store_in_progress(5);
    producer.write_slot_body(5, &encode_slot(0, &contents));
    producer.seq_commit(5).store_committed(5);

    assert_eq!(consumer.seq_commit(5).load(), (5 << 1) | 1);
    let mut image = [0u8; 256];
    consumer.read_slot(5, &mut image);
    let (seq_commit, read) = decode_slot(&image).expect("well-formed slot");
    assert_eq!((seq_commit, read), ((5 << 1) | 1, contents));
    let view = consumer
        .pool(1)
        .and_then(|p| p.slot_bytes(5, 100))
        .expect("view");
    assert!(view.iter().enumerate().all(|(i, b)| *b == i as u8));
    assert!(
        consumer.pool(1).and_then(|p| p.slot_bytes(8, 1)).is_none(),
        "slot out of range"
    );
    assert!(
        consumer
            .pool(1)
            .and_then(|p| p.slot_bytes(0, 4097))
            .is_none(),
        "longer than the stride"
    );
}

#[test]
fn a_grant_that_disagrees_with_the_superblock_is_refused() {
    let dir = base();
    let layout = provisioned(dir.path());
    let allowed = AllowedBaseDirs::new([dir.path()]).expect("allowed");
    let mut grant = grant_of(&layout);
    grant.epoch = 4;
    match MappedEpoch::map(&grant, &allowed, Access::ReadOnly) {
        Err(MapError::Superblock {
            source:
                SuperblockError::Mismatch {
                    field: "epoch",
                    expected: 4,
                    actual: 3,
                },
            ..
        }) => {}
        other => panic!("expected an epoch mismatch, got {:?}", other.err()),
    }
    let mut grant = grant_of(&layout);
    grant.pools[0].stride_bytes = 8192;
    assert!(matches!(
        MappedEpoch::map(&grant, &allowed, Access::ReadOnly),
        Err(MapError::TooSmall { .. })
    ));
}

/// Overwrites the superblock's `slotBytes` (bytes 32..36) of the region behind `uri`.
fn forge_slot_bytes(uri: &str, slot_bytes: u32) {
    use std::io::{Seek, SeekFrom, Write};
    let path = RegionUri::parse(uri).expect("uri").path().to_path_buf();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open region for forging");
    file.seek(SeekFrom::Start(32)).expect("seek to slotBytes");
    file.write_all(&slot_bytes.to_le_bytes())
        .expect("write slotBytes");
}

#[test]
fn pool_files_with_null_slot_bytes_map_as_tensor_pool_c_writes_them() {
    let dir = base();
    let layout = provisioned(dir.path());
    let allowed = AllowedBaseDirs::new([dir.path()]).expect("allowed");
    for pool in &layout.pools {
        forge_slot_bytes(&pool.region_uri, SLOT_BYTES_NULL);
    }
    let grant = grant_of(&layout);
    let consumer = MappedEpoch::map(&grant, &allowed, Access::ReadOnly)
        .expect("null slotBytes in pool superblocks is accepted");
    assert_eq!(consumer.pools().len(), 2);
    assert!(consumer
        .pool(2)
        .and_then(|p| p.slot_bytes(7, 65536))
        .is_some());

    // Everything else is still checked: a stride the grant disagrees with is refused.
    let mut grant = grant_of(&layout);
    grant.pools[0].stride_bytes = 2048;
    assert!(matches!(
        MappedEpoch::map(&grant, &allowed, Access::ReadOnly),
        Err(MapError::Superblock {
            source: SuperblockError::Mismatch {
                field: "slotBytes" | "strideBytes",
                ..
            },
            ..
        })
    ));

    // A header ring has a defined slot size (256): its null value is refused.
    forge_slot_bytes(&layout.header_region_uri, SLOT_BYTES_NULL);
    match MappedEpoch::map(&grant_of(&layout), &allowed, Access::ReadOnly) {
        Err(MapError::Superblock {
            source:
                SuperblockError::Mismatch {
                    field: "slotBytes",
                    expected: 256,
                    actual,
                },
            ..
        }) => assert_eq!(actual, u64::from(SLOT_BYTES_NULL)),
        other => panic!(
            "expected a header-ring slotBytes mismatch, got {:?}",
            other.err()
        ),
    }
}

#[test]
fn pool_files_with_a_wrong_non_null_slot_bytes_are_refused() {
    let dir = base();
    let layout = provisioned(dir.path());
    let allowed = AllowedBaseDirs::new([dir.path()]).expect("allowed");
    forge_slot_bytes(&layout.pools[1].region_uri, 0);
    match MappedEpoch::map(&grant_of(&layout), &allowed, Access::ReadOnly) {
        Err(MapError::Superblock {
            source:
                SuperblockError::Mismatch {
                    field: "slotBytes",
                    expected: 65536,
                    actual: 0,
                },
            ..
        }) => {}
        other => panic!("expected a pool slotBytes mismatch, got {:?}", other.err()),
    }
}

#[test]
fn regions_outside_the_allowed_dirs_are_refused() {
    let dir = base();
    let other = base();
    let layout = provisioned(dir.path());
    let allowed = AllowedBaseDirs::new([other.path()]).expect("allowed");
    assert!(matches!(
        MappedEpoch::map(&grant_of(&layout), &allowed, Access::ReadOnly),
        Err(MapError::Open(OpenError::OutsideAllowedDirs { .. }))
    ));
}
