//! The state backend conformance suite, and S3-only behaviour (leases,
//! takeover, stale writers, versions), against moto's S3.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use phoenix_state::conformance::{holder_of, put};
use phoenix_state::{LockInfo, StateBackend, StateError, StateRoot};
use phoenix_state_s3::S3Root;
use phoenix_testkit::Moto;

fn client(moto: &Moto) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new(Moto::REGION))
        .endpoint_url(moto.endpoint())
        .credentials_provider(aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "test"))
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

async fn bucket(moto: &Moto, name: &str, versioned: bool) -> aws_sdk_s3::Client {
    let c = client(moto);
    c.create_bucket()
        .bucket(name)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                .build(),
        )
        .send()
        .await
        .unwrap();
    if versioned {
        c.put_bucket_versioning()
            .bucket(name)
            .versioning_configuration(VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build())
            .send()
            .await
            .unwrap();
    }
    c
}

fn info(op: &str) -> LockInfo {
    LockInfo::new(op, format!("run-{op}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_backend_passes_the_conformance_suite() {
    let moto = Moto::start();
    let c = bucket(&moto, "state", true).await;
    phoenix_state::conformance::suite(Arc::new(S3Root::with_client(c.clone(), "state", "team/ci"))).await;
    // And with no prefix at all.
    phoenix_state::conformance::suite(Arc::new(S3Root::with_client(c, "state", ""))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_abandoned_lease_expires_and_is_taken_over_and_the_old_holder_cannot_write() {
    let moto = Moto::start();
    let c = bucket(&moto, "leases", false).await;
    let root = S3Root::with_client(c, "leases", "p").with_lease(Duration::from_secs(2));
    let store = root.store("ci", Some("job-1"));

    // A holder that keeps running keeps its lock well past one lease.
    let live = StateBackend::lock(&store, info("up"), Duration::ZERO).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let err = StateBackend::lock(&store, info("down"), Duration::ZERO).await.err().expect("renewed lease still held");
    assert!(matches!(err, StateError::Leased { .. }), "{err}");
    assert_eq!(holder_of(&err).unwrap().operation, "up");
    drop(live);

    // A holder that dies (no renewal, no release) blocks others for one lease
    // only. It runs on a runtime of its own that is then shut down with the
    // lock and journal leaked: its renewal task is gone, nothing is released,
    // exactly what SIGKILL leaves.
    let endpoint_client = client(&moto);
    let doc = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let doc = rt.block_on(async move {
            let root = S3Root::with_client(endpoint_client, "leases", "p").with_lease(Duration::from_secs(2));
            let store = root.store("ci", Some("job-1"));
            let dead = StateBackend::lock(&store, info("up"), Duration::ZERO).await.unwrap();
            let r = dead.recover("ci", Some("job-1")).await.unwrap();
            let written = dead.write(&r.0).await.unwrap();
            let journal = dead.journal(written.clone()).await.unwrap();
            journal.record(put(1)).await.unwrap();
            std::mem::forget(journal);
            std::mem::forget(dead);
            written
        });
        rt.shutdown_background();
        doc
    })
    .join()
    .unwrap();
    let status = store.lock_holder().await.unwrap().unwrap();
    assert!(status.live);
    let started = std::time::Instant::now();
    let taker = StateBackend::lock(&store, info("down"), Duration::from_secs(30)).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(taker.info().operation, "down");
    // The dead run's journal is recovered by the taker.
    let (recovered, replayed) = taker.recover("ci", Some("job-1")).await.unwrap();
    assert_eq!((replayed, recovered.serial, recovered.resources.len()), (1, doc.serial + 1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_holder_whose_lease_was_taken_stops_journaling_and_its_stale_write_is_refused() {
    let moto = Moto::start();
    let c = bucket(&moto, "stale", false).await;
    let root = S3Root::with_client(c, "stale", "").with_lease(Duration::from_secs(60));
    let store = root.store("ci", None);
    let first = StateBackend::lock(&store, info("up"), Duration::ZERO).await.unwrap();
    let (doc, _) = first.recover("ci", None).await.unwrap();
    let doc = first.write(&doc).await.unwrap();
    // An operator forces the lock away; a second run takes it and writes.
    assert_eq!(store.unlock(true).await.unwrap().unwrap().operation, "up");
    let second = StateBackend::lock(&store, info("down"), Duration::ZERO).await.unwrap();
    let (mut theirs, _) = second.recover("ci", None).await.unwrap();
    theirs.apply_record(&put(7));
    second.write(&theirs).await.unwrap();
    // The first holder's copy is stale: refused, not merged.
    let mut mine = doc.clone();
    mine.apply_record(&put(8));
    assert!(matches!(first.write(&mine).await, Err(StateError::SerialConflict { .. })));
    let stored = store.load("ci", None).await.unwrap();
    assert!(stored.resources.contains_key(&phoenix_state::conformance::addr(7)));
    assert!(!stored.resources.contains_key(&phoenix_state::conformance::addr(8)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_versioned_bucket_keeps_every_state_version() {
    let moto = Moto::start();
    let c = bucket(&moto, "versions", true).await;
    let root = S3Root::with_client(c, "versions", "x");
    let store = root.store("prod", None);
    let locked = StateBackend::lock(&store, info("up"), Duration::ZERO).await.unwrap();
    let (mut doc, _) = locked.recover("prod", None).await.unwrap();
    for i in 0..3 {
        doc.apply_record(&put(i));
        doc = locked.write(&doc).await.unwrap();
    }
    let versions = store.history().await.unwrap();
    assert_eq!(versions.len(), 3, "{versions:?}");
    assert!(versions.iter().all(|v| v.id != "null"));
    let listed = root.list(None).await.unwrap();
    assert_eq!(listed.len(), 1);
}
