//! The shard store on a real directory: durable writes, ranged reads,
//! corruption reported and never served, hostile ids refused, ids written
//! once, I/O errors told apart from corruption, listings whole or failed,
//! quarantined copies expired, shards and bytes counted exactly.

use hamster_blob::store::count::StoreCounts;
use hamster_blob::store::{Store, StoreError, format, read::READ_CHUNK};

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

async fn put(
    store: &Store,
    id: &str,
    bytes: &[u8],
    chunk: usize,
) -> hamster_blob::store::ShardInfo {
    let mut w = store.create(id, 2).await.expect("create");
    for c in bytes.chunks(chunk.max(1)) {
        w.write(c).await.expect("write");
    }
    w.commit().await.expect("commit")
}

async fn read_all(store: &Store, id: &str, offset: u64, len: u64) -> Result<Vec<u8>, StoreError> {
    let mut r = store.read(id, offset, len).await?;
    let mut out = Vec::new();
    while let Some(blocks) = r.next().await? {
        let piece = blocks.concat();
        assert!(piece.len() as u64 <= READ_CHUNK);
        out.extend_from_slice(&piece);
    }
    Ok(out)
}

#[tokio::test]
async fn shards_round_trip_in_any_chunking_and_any_range() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).await.expect("open");
    let bs = format::BLOCK_SIZE as usize;
    let bytes = data(3 * bs + 123);
    for (i, chunk) in [1usize, 1000, bs - 1, bs, bs + 1, 10 * bs]
        .into_iter()
        .enumerate()
    {
        let id = format!("shard-{i}");
        let info = put(&store, &id, &bytes, chunk).await;
        assert_eq!(info.len, bytes.len() as u64);
        assert_eq!(info.shard_index, 2);
        assert_eq!(store.stat(&id).await.expect("stat"), info);
        assert_eq!(read_all(&store, &id, 0, 0).await.expect("all"), bytes);
    }
    // Ranges across block boundaries, to the end, single bytes.
    for (off, len) in [
        (0, 1),
        (bs as u64 - 1, 2),
        (bs as u64 - 10, 2 * bs as u64 + 20),
        (3 * bs as u64, 123),
        (5, 0),
        (bytes.len() as u64, 0),
    ] {
        let want = if len == 0 {
            &bytes[off as usize..]
        } else {
            &bytes[off as usize..(off + len) as usize]
        };
        assert_eq!(
            read_all(&store, "shard-0", off, len).await.expect("range"),
            want,
            "{off}+{len}"
        );
    }
    assert!(matches!(
        read_all(&store, "shard-0", bytes.len() as u64 + 1, 0).await,
        Err(StoreError::OutOfRange { .. })
    ));
    assert!(matches!(
        read_all(&store, "shard-0", 10, bytes.len() as u64).await,
        Err(StoreError::OutOfRange { .. })
    ));
    // Empty shards exist too.
    let info = put(&store, "empty", &[], 1).await;
    assert_eq!(info.len, 0);
    assert_eq!(
        read_all(&store, "empty", 0, 0).await.expect("empty"),
        Vec::<u8>::new()
    );
}

#[tokio::test]
async fn a_flipped_byte_is_reported_and_never_served() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).await.expect("open");
    let bs = format::BLOCK_SIZE as usize;
    let bytes = data(3 * bs);
    put(&store, "victim", &bytes, 4096).await;
    // Find the file and flip one payload byte in block 1.
    let file = walk(&dir.path().join("shards"))
        .into_iter()
        .find(|p| p.ends_with("victim"))
        .expect("file");
    let mut raw = std::fs::read(&file).expect("read");
    let at = format::HEADER_LEN + (bs + format::CRC_LEN) + 100;
    raw[at] ^= 0x40;
    std::fs::write(&file, &raw).expect("write");
    // Block 1 is refused; blocks 0 and 2 still read.
    let err = read_all(&store, "victim", 0, 0).await.expect_err("corrupt");
    assert!(
        matches!(
            err,
            StoreError::Corrupt {
                source: format::FormatError::CorruptBlock(1),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        read_all(&store, "victim", 0, bs as u64)
            .await
            .expect("block 0"),
        &bytes[..bs]
    );
    assert_eq!(
        read_all(&store, "victim", 2 * bs as u64, 0)
            .await
            .expect("block 2"),
        &bytes[2 * bs..]
    );
    // A truncated file is corrupt as a whole.
    std::fs::write(&file, &raw[..raw.len() - 1]).expect("truncate");
    assert!(matches!(
        store.stat("victim").await,
        Err(StoreError::Corrupt { .. })
    ));
}

#[tokio::test]
async fn hostile_ids_are_refused_and_nothing_escapes_the_data_dir() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(&dir.path().join("data")).await.expect("open");
    for id in [
        "",
        "../escape",
        "a/b",
        ".hidden",
        "x\0y",
        "ünï",
        &"a".repeat(201),
    ] {
        assert!(
            matches!(store.create(id, 0).await, Err(StoreError::BadId(_))),
            "{id:?}"
        );
        assert!(
            matches!(store.stat(id).await, Err(StoreError::BadId(_))),
            "{id:?}"
        );
        assert!(
            matches!(store.delete(id).await, Err(StoreError::BadId(_))),
            "{id:?}"
        );
    }
    assert!(!dir.path().join("escape").exists());
    assert!(matches!(
        store.stat("missing").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(!store.delete("missing").await.expect("delete"));
}

#[tokio::test]
async fn unfinished_writes_are_invisible_and_cleared_at_start() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).await.expect("open");
    let tmp_files = || {
        std::fs::read_dir(dir.path().join("tmp"))
            .expect("tmp")
            .count()
    };
    // Abandoned (a put stream cut): invisible, and its temp file gone.
    let mut w = store.create("abandoned", 0).await.expect("create");
    w.write(&data(5000)).await.expect("write");
    assert_eq!(tmp_files(), 1);
    drop(w);
    assert_eq!(tmp_files(), 0);
    assert!(matches!(
        store.stat("abandoned").await,
        Err(StoreError::NotFound(_))
    ));
    // A crash before the ack leaves its temp file to the next start-up.
    let mut w = store.create("pending", 0).await.expect("create");
    w.write(&data(5000)).await.expect("write");
    std::mem::forget(w);
    assert!(matches!(
        store.stat("pending").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(tmp_files(), 1);
    let store = Store::open(dir.path()).await.expect("reopen");
    assert_eq!(tmp_files(), 0);
    // A committed write leaves nothing in tmp/ either.
    put(&store, "s", &data(10), 3).await;
    assert_eq!(tmp_files(), 0);
    assert!(store.delete("s").await.expect("delete"));
}

#[tokio::test]
async fn a_shard_id_is_written_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).await.expect("open");
    let first = data(100_000);
    // Two writes of one id both pass the early check; the first to commit
    // lands, the other is refused at its commit, atomically.
    let mut a = store.create("s", 0).await.expect("create a");
    let mut b = store.create("s", 1).await.expect("create b");
    a.write(&first).await.expect("write a");
    b.write(&data(70_000)).await.expect("write b");
    let info = a.commit().await.expect("commit a");
    assert!(
        matches!(b.commit().await, Err(StoreError::Exists(ref id)) if id == "s"),
        "the second commit is refused"
    );
    assert_eq!(store.stat("s").await.expect("stat"), info);
    assert_eq!(read_all(&store, "s", 0, 0).await.expect("read"), first);
    // A later write is refused before any byte is sent.
    assert!(matches!(
        store.create("s", 0).await,
        Err(StoreError::Exists(_))
    ));
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp"))
            .expect("tmp")
            .count(),
        0,
        "the refused write left no temp file"
    );

    // An id whose copy is in quarantine is not written again either: at
    // create, or at commit if it was moved aside meanwhile.
    assert!(store.quarantine("s").await.expect("aside"));
    assert!(matches!(
        store.create("s", 0).await,
        Err(StoreError::Exists(_))
    ));
    put(&store, "t", &data(10), 1).await;
    let mut late = store.create("u", 0).await.expect("create u");
    late.write(&data(10)).await.expect("write u");
    std::fs::copy(
        dir.path().join("quarantine/s"),
        dir.path().join("quarantine/u"),
    )
    .expect("a copy aside");
    assert!(matches!(late.commit().await, Err(StoreError::Exists(_))));
    assert!(matches!(
        store.stat("u").await,
        Err(StoreError::NotFound(_))
    ));
    // Once deleted (both copies), the id is free again.
    assert!(store.delete("s").await.expect("delete"));
    put(&store, "s", &data(5), 1).await;
    assert_eq!(read_all(&store, "s", 0, 0).await.expect("read"), data(5));
}

#[tokio::test]
async fn an_io_error_is_not_corruption_but_a_short_file_is() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).await.expect("open");
    let bs = format::BLOCK_SIZE as usize;
    // Longer than one read step (READ_CHUNK), so a second step follows.
    let step = READ_CHUNK as usize;
    let bytes = data(step + 3 * bs);
    put(&store, "cut", &bytes, 4096).await;
    let file = walk(&dir.path().join("shards"))
        .into_iter()
        .find(|p| p.ends_with("cut"))
        .expect("file");
    // Cut short under an open read: that read fails with an I/O error (it
    // cannot tell why); the next open judges the file by its length.
    let mut r = store.read("cut", 0, 0).await.expect("open");
    assert!(r.next().await.expect("step 0").expect("some").concat() == bytes[..step]);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .expect("open")
        .set_len((format::HEADER_LEN + bs + 10) as u64)
        .expect("cut");
    let e = r.next().await.expect_err("short read");
    assert!(matches!(e, StoreError::Io { .. }), "{e:?}");
    let mut v = store.verify("cut").await.map(|_| ()).expect_err("judged");
    assert!(
        matches!(
            v,
            StoreError::Corrupt {
                source: format::FormatError::Truncated,
                ..
            }
        ),
        "{v:?}"
    );
    // Shorter than a header: truncated too, judged by length.
    std::fs::write(&file, [0u8; 10]).expect("write");
    v = store.stat("cut").await.expect_err("judged");
    assert!(
        matches!(
            v,
            StoreError::Corrupt {
                source: format::FormatError::Truncated,
                ..
            }
        ),
        "{v:?}"
    );
    // Something that is not a file where the shard should be (every read
    // of it fails): an I/O error for stat, read and verify alike.
    std::fs::remove_file(&file).expect("rm");
    std::fs::create_dir(&file).expect("dir in its place");
    for e in [
        store.stat("cut").await.map(|_| ()).expect_err("stat"),
        store.read("cut", 0, 0).await.map(|_| ()).expect_err("read"),
        store.verify("cut").await.map(|_| ()).expect_err("verify"),
    ] {
        assert!(matches!(e, StoreError::Io { .. }), "{e:?}");
    }
}

/// Lists a store to its end: the entries, and the error it ended with.
async fn list(store: &Store) -> (Vec<String>, Option<StoreError>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    store.list(i64::MAX, tx);
    let mut ids = Vec::new();
    while let Some(item) = rx.recv().await {
        match item {
            Ok((id, _, _)) => ids.push(id),
            Err(e) => {
                assert!(rx.recv().await.is_none(), "an error ends the list");
                return (ids, Some(e));
            }
        }
    }
    ids.sort();
    (ids, None)
}

#[tokio::test]
async fn a_listing_is_whole_or_ends_in_an_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).await.expect("open");
    for i in 0..20 {
        put(&store, &format!("l-{i}"), &data(10), 1).await;
    }
    let (ids, err) = list(&store).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(ids.len(), 20);
    // A fan-out directory that cannot be read (here: its mount gone, a
    // dangling link in its place) fails the list, rather than shortening it.
    let fan = walk(&dir.path().join("shards"))
        .into_iter()
        .find(|p| p.ends_with("l-7"))
        .and_then(|p| p.parent().map(std::path::Path::to_path_buf))
        .expect("its directory");
    let moved = dir.path().join("elsewhere");
    std::fs::rename(&fan, &moved).expect("move");
    std::os::unix::fs::symlink(dir.path().join("gone"), &fan).expect("link");
    let (_, err) = list(&store).await;
    assert!(matches!(err, Some(StoreError::Io { .. })), "{err:?}");
    std::fs::remove_file(&fan).expect("unlink");
    std::fs::rename(&moved, &fan).expect("back");
    assert_eq!(list(&store).await.0.len(), 20);
    // No shards/ at all: an error, not an empty store.
    std::fs::remove_dir_all(dir.path().join("shards")).expect("rm");
    let (ids, err) = list(&store).await;
    assert!(ids.is_empty());
    assert!(matches!(err, Some(StoreError::Io { .. })), "{err:?}");
}

/// The sweep records a held orphan's size from the listing (ADR 0026):
/// each entry carries its shard file's size.
#[tokio::test]
async fn a_listing_carries_each_shard_files_size() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).await.expect("open");
    put(&store, "small", &data(10), 4).await;
    put(&store, "large", &data(70_000), 4096).await;
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    store.list(i64::MAX, tx);
    let mut sizes = std::collections::BTreeMap::new();
    while let Some(item) = rx.recv().await {
        let (id, _, bytes) = item.expect("listed");
        sizes.insert(id, bytes);
    }
    let files = walk(&dir.path().join("shards"));
    for (id, at_least) in [("small", 10), ("large", 70_000)] {
        let file = files.iter().find(|p| p.ends_with(id)).expect("its file");
        let on_disk = std::fs::metadata(file).expect("stat").len();
        assert_eq!(sizes.get(id), Some(&on_disk), "{id}");
        assert!(on_disk >= at_least, "{id}: {on_disk}");
    }
}

fn age(path: &std::path::Path, days: u64) {
    let t = std::time::SystemTime::now() - std::time::Duration::from_secs(days * 24 * 3600);
    std::fs::File::open(path)
        .expect("open")
        .set_modified(t)
        .expect("set mtime");
}

#[tokio::test]
async fn quarantined_copies_expire_a_week_after_they_were_moved_aside() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).await.expect("open");
    let week = std::time::Duration::from_secs(7 * 24 * 3600);
    put(&store, "old", &data(10), 1).await;
    put(&store, "new", &data(10), 1).await;
    // Written a month ago, moved aside now: kept (a rename keeps the
    // file's times; the quarantine clock starts when it was moved).
    for id in ["old", "new"] {
        let file = walk(&dir.path().join("shards"))
            .into_iter()
            .find(|p| p.ends_with(id))
            .expect("file");
        age(&file, 30);
        assert!(store.quarantine(id).await.expect("aside"));
    }
    assert_eq!(store.expire_quarantine(week).await.expect("expire"), 0);
    // Aside for eight days: removed; the other stays.
    age(&dir.path().join("quarantine/old"), 8);
    assert_eq!(store.expire_quarantine(week).await.expect("expire"), 1);
    assert!(!dir.path().join("quarantine/old").exists());
    assert!(dir.path().join("quarantine/new").exists());
}

/// Runs a whole-shard check to its end; the bytes it read.
async fn verify(store: &Store, id: &str) -> Result<u64, StoreError> {
    let mut v = store.verify(id).await?;
    let mut total = 0;
    while let Some(n) = v.step().await? {
        total += n;
    }
    Ok(total)
}

#[tokio::test]
async fn the_whole_shard_check_reads_every_byte_and_catches_a_forged_checksum() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).await.expect("open");
    let bs = format::BLOCK_SIZE as usize;
    // Spans several check windows (1 MiB each), the last block partial.
    let bytes = data(40 * bs + 7);
    put(&store, "big", &bytes, 70_000).await;
    let file = walk(&dir.path().join("shards"))
        .into_iter()
        .find(|p| p.ends_with("big"))
        .expect("file");
    let size = std::fs::metadata(&file).expect("meta").len();
    assert_eq!(verify(&store, "big").await.expect("good"), size);
    put(&store, "empty", &[], 1).await;
    assert_eq!(
        verify(&store, "empty").await.expect("empty"),
        format::HEADER_LEN as u64
    );

    // Every block intact, but the header's shard checksum forged (with a
    // valid header CRC): only the whole check can tell.
    let raw = std::fs::read(&file).expect("read");
    let mut h = format::Header::decode(&raw).expect("header");
    h.shard_crc ^= 1;
    let mut forged = raw.clone();
    forged[..format::HEADER_LEN].copy_from_slice(&h.encode());
    std::fs::write(&file, &forged).expect("write");
    assert_eq!(
        read_all(&store, "big", 0, 0)
            .await
            .expect("blocks are fine"),
        bytes
    );
    assert!(matches!(
        verify(&store, "big").await,
        Err(StoreError::Corrupt { .. })
    ));

    // The last block's last byte.
    let mut rotten = raw.clone();
    let end = rotten.len() - format::CRC_LEN - 1;
    rotten[end] ^= 0x80;
    std::fs::write(&file, &rotten).expect("write");
    assert!(matches!(
        verify(&store, "big").await,
        Err(StoreError::Corrupt {
            source: format::FormatError::CorruptBlock(40),
            ..
        })
    ));

    // Moved aside: gone for readers, delete removes the copy aside.
    assert!(store.quarantine("big").await.expect("quarantine"));
    assert!(!store.quarantine("big").await.expect("again: gone"));
    assert!(matches!(
        store.stat("big").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(dir.path().join("quarantine/big").exists());
    assert!(store.delete("big").await.expect("delete"));
    assert!(!dir.path().join("quarantine/big").exists());
    assert!(!store.delete("big").await.expect("delete again"));
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("dir").flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// What the heartbeat should say, from the disk itself: every file under
/// shards/ and the sum of their sizes.
fn on_disk(dir: &std::path::Path) -> StoreCounts {
    walk(&dir.join("shards"))
        .iter()
        .fold(StoreCounts::default(), |c, f| StoreCounts {
            shards: c.shards + 1,
            bytes: c.bytes + std::fs::metadata(f).expect("stat").len(),
        })
}

#[tokio::test]
async fn shard_counts_follow_writes_deletes_quarantine_and_a_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).await.expect("open");
    assert_eq!(store.counts(), StoreCounts::default());
    let bs = format::BLOCK_SIZE as usize;
    for (i, len) in [0usize, 10, bs, 3 * bs + 7, 100_000]
        .into_iter()
        .enumerate()
    {
        put(&store, &format!("s-{i}"), &data(len), 4096).await;
    }
    let five = store.counts();
    assert_eq!(five.shards, 5);
    assert_eq!(five, on_disk(dir.path()), "bytes are the files' sizes");

    // A write in progress, a refused rewrite: not shards.
    let mut pending = store.create("pending", 0).await.expect("create");
    pending.write(&data(5000)).await.expect("write");
    assert!(store.create("s-1", 0).await.is_err());
    assert_eq!(store.counts(), five);
    drop(pending);

    assert!(store.delete("s-3").await.expect("delete"));
    assert!(!store.delete("s-3").await.expect("delete again"));
    assert!(store.quarantine("s-4").await.expect("aside"));
    assert!(!store.quarantine("s-4").await.expect("aside again"));
    let two_gone = store.counts();
    assert_eq!(two_gone.shards, 3);
    assert_eq!(two_gone, on_disk(dir.path()));
    // Deleting a quarantined copy changes nothing live.
    assert!(store.delete("s-4").await.expect("delete aside"));
    assert_eq!(store.counts(), two_gone);

    // A restart counts the same from disk.
    drop(store);
    let store = Store::open(dir.path()).await.expect("reopen");
    assert_eq!(store.counts(), two_gone);

    // Everything deleted: zero, as a drain waits to see.
    for id in ["s-0", "s-1", "s-2"] {
        assert!(store.delete(id).await.expect("delete"));
    }
    assert_eq!(store.counts(), StoreCounts::default());
}

#[tokio::test]
async fn a_recount_mends_changes_made_behind_the_stores_back() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).await.expect("open");
    put(&store, "kept", &data(1000), 100).await;
    put(&store, "lost", &data(2000), 100).await;
    // A file removed by hand, another copied in (an operator, a restore).
    let lost = walk(&dir.path().join("shards"))
        .into_iter()
        .find(|p| p.ends_with("lost"))
        .expect("file");
    let stray = lost.with_file_name("stray");
    std::fs::copy(&lost, &stray).expect("copy");
    std::fs::remove_file(&lost).expect("rm");
    assert_eq!(store.counts().shards, 2, "not seen yet");
    let mended = store.recount().await.expect("recount");
    assert_eq!(mended, on_disk(dir.path()));
    assert_eq!(store.counts(), mended);
}

/// Ids whose files share one count stripe (the first byte of their path
/// hash), so writes and deletes race the recount of that very stripe.
fn ids_in_one_stripe(n: usize) -> Vec<String> {
    use sha2::Digest;
    (0..)
        .map(|i| format!("w-{i}"))
        .filter(|id| sha2::Sha256::digest(id.as_bytes())[0] == 0)
        .take(n)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counts_stay_exact_while_a_recount_runs_beside_writes_and_deletes() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).await.expect("open");
    let ids = ids_in_one_stripe(400);
    let mut writers = Vec::new();
    for part in ids.chunks(100) {
        let (store, part) = (store.clone(), part.to_vec());
        writers.push(tokio::spawn(async move {
            for (i, id) in part.iter().enumerate() {
                put(&store, id, &data(100 + i), 64).await;
                if i % 2 == 0 {
                    assert!(store.delete(id).await.expect("delete"));
                }
            }
        }));
    }
    while writers.iter().any(|w| !w.is_finished()) {
        store.recount().await.expect("recount");
    }
    for w in writers {
        w.await.expect("writer");
    }
    assert_eq!(store.counts(), on_disk(dir.path()));
    assert_eq!(store.counts().shards, 200);
}
