//! tmp/ holds only writes in progress: a write that fails leaves nothing,
//! and the cleaner removes orphans past their age but never a live write's
//! file, however old.

use std::time::{Duration, SystemTime};

use hamster_blob::store::{Store, StoreError};

fn tmp_names(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir.join("tmp"))
        .expect("tmp")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

fn age(path: &std::path::Path, by: Duration) {
    let f = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open");
    f.set_modified(SystemTime::now() - by).expect("set mtime");
}

#[tokio::test]
async fn the_cleaner_removes_stale_orphans_and_spares_live_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).await.expect("open");
    let minute = Duration::from_secs(60);
    // Orphans: one stale, one fresh (it may be a write just starting).
    let stale = dir.path().join("tmp").join("stale.0000000000000001");
    let fresh = dir.path().join("tmp").join("fresh.0000000000000002");
    std::fs::write(&stale, b"left behind").expect("write");
    std::fs::write(&fresh, b"just made").expect("write");
    age(&stale, 2 * minute);
    // A live write whose file has not changed for long (a paced rebuild).
    let mut live = store.create("slow", 0).await.expect("create");
    live.write(b"some bytes").await.expect("write");
    let live_name = tmp_names(dir.path())
        .into_iter()
        .find(|n| n.starts_with("slow."))
        .expect("the live write's file");
    age(&dir.path().join("tmp").join(&live_name), 10 * minute);

    assert_eq!(store.clean_tmp(minute).await.expect("clean"), 1);
    let mut left = tmp_names(dir.path());
    left.sort();
    assert_eq!(left, vec!["fresh.0000000000000002".to_string(), live_name]);
    // The live write still lands, and leaves nothing in tmp/.
    live.commit().await.expect("commit");
    assert!(store.stat("slow").await.is_ok());
    assert_eq!(tmp_names(dir.path()), vec!["fresh.0000000000000002"]);
}

#[tokio::test]
async fn a_failed_write_leaves_nothing_in_tmp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).await.expect("open");
    let mut w = store.create("doomed", 0).await.expect("create");
    w.write(&[7u8; 100_000]).await.expect("write");
    assert_eq!(tmp_names(dir.path()).len(), 1);
    // The commit cannot make the shard's directory (as a full or failing
    // disk would refuse it): an error, and the temp file goes with it.
    std::fs::remove_dir(dir.path().join("shards")).expect("rmdir");
    std::fs::write(dir.path().join("shards"), b"not a directory").expect("write");
    let e = w.commit().await.expect_err("no shard directory");
    assert!(matches!(e, StoreError::Io { .. }), "{e:?}");
    assert!(
        tmp_names(dir.path()).is_empty(),
        "{:?}",
        tmp_names(dir.path())
    );
    // Nothing either from a write whose stream is cut before the commit.
    std::fs::remove_file(dir.path().join("shards")).expect("rm");
    std::fs::create_dir(dir.path().join("shards")).expect("mkdir");
    let mut w = store.create("cut", 0).await.expect("create");
    w.write(&[7u8; 100_000]).await.expect("write");
    drop(w);
    assert!(tmp_names(dir.path()).is_empty());
    assert!(store.clean_tmp(Duration::ZERO).await.expect("clean") == 0);
}
