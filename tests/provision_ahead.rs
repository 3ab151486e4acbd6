//! `policies.provision_ahead` through a running driver: each producer attach is answered
//! with the spare epoch made on the worker thread since the previous epoch change (the
//! very files, already on disk before the request), the numbering stays strictly
//! increasing, and a consumer attach meanwhile still gets the current epoch.

mod support;

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use support::{DriverSettings, InThreadDriver, TestClient, TestEnv, DEADLINE, STATIC_STREAM};
use tensorpool::protocol::driver::Role;
use tensorpool::shm::paths::CanonicalLayout;

#[test]
fn producer_attaches_get_the_epoch_made_ahead() {
    let env = TestEnv::new();
    let settings = DriverSettings {
        instance_id: "tp-ahead".into(),
        ..DriverSettings::shared_announce()
    };
    let mut config = settings.config(&env);
    config.policies.provision_ahead = true;
    let layout = CanonicalLayout::new(&config.shm.base_dir, &config.shm.namespace)
        .expect("canonical layout");
    let _driver = InThreadDriver::start_with_config(&env, config);
    let mut client = TestClient::for_settings(&env.aeron_dir(), &settings);

    let consumer = client.attach_ok(STATIC_STREAM, 100, Role::Consumer);
    let mut current = consumer.epoch;
    for client_id in 1..=3 {
        // The next epoch is made while nobody asks for it.
        let spare = current + 1;
        let ring = layout.header_ring_path(STATIC_STREAM, spare);
        let inode = support::wait_until("the spare epoch's header ring", DEADLINE, || {
            std::fs::metadata(&ring).ok().map(|m| m.ino())
        });
        let producer = client.attach_ok(STATIC_STREAM, client_id, Role::Producer);
        assert_eq!(producer.epoch, spare, "the attach got the spare's epoch");
        assert_eq!(
            std::fs::metadata(&ring).expect("ring").ino(),
            inode,
            "the very files made ahead"
        );
        // A consumer attaching now maps the producer's epoch.
        let late = client.attach_ok(STATIC_STREAM, 200 + client_id, Role::Consumer);
        assert_eq!(late.epoch, spare);
        client.detach(&late);
        // The producer's end starts one more epoch: the next spare again.
        client.detach(&producer);
        client.pump_for(Duration::from_millis(20));
        current = spare + 1;
        let after = layout.header_ring_path(STATIC_STREAM, current);
        support::wait_until("the epoch after the producer's detach", DEADLINE, || {
            after.is_file().then_some(())
        });
    }
}
