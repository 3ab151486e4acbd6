//! One provisioned epoch on real files and the grant a client would get for it, for the
//! client's unit tests and fuzz harness (the driver's provisioner makes the files, so
//! they are what a real driver would hand out).

use std::path::Path;

use crate::client::grant::{LeaseGrant, PoolGrant};
use crate::config::{DriverConfig, NoEnv};
use crate::driver::core::Provisioner;
use crate::driver::provision::ShmProvisioner;
use crate::shm::layout::LAYOUT_VERSION;
use crate::shm::uri::RegionUri;

/// Stream id of the epoch.
pub(crate) const STREAM_ID: u32 = 10_000;

/// The next epoch of [`STREAM_ID`] under `base_dir` (user `user`), with `header_nslots`
/// slots and one pool per stride (ids from 1), not prefaulted; returns the provisioner,
/// which keeps its superblocks fresh, and the grant.
pub(crate) fn provisioned_epoch(
    base_dir: &Path,
    user: &str,
    header_nslots: u32,
    strides: &[u32],
) -> (ShmProvisioner, LeaseGrant) {
    let pools: Vec<String> = strides
        .iter()
        .enumerate()
        .map(|(i, stride)| format!("{{ pool_id = {}, stride_bytes = {stride} }}", i + 1))
        .collect();
    let config = DriverConfig::from_toml_str(
        &format!(
            "[shm]\nbase_dir = \"{}\"\n[policies]\nprefault_shm = false\n[profiles.p]\n\
             header_nslots = {header_nslots}\npayload_pools = [{}]\n",
            base_dir.display(),
            pools.join(", ")
        ),
        &NoEnv,
    )
    .expect("the test configuration is valid");
    let mut provisioner = ShmProvisioner::with_user(&config, user).expect("the provisioner");
    let profile = config.profile("p").expect("profile p").clone();
    // The directory may hold earlier epochs (the fuzz harness reuses its own).
    let epoch = provisioner.highest_epoch(STREAM_ID).expect("highest epoch") + 1;
    let layout = provisioner
        .provision(STREAM_ID, epoch, LAYOUT_VERSION, &profile)
        .expect("the epoch's files");
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
    (provisioner, grant)
}
