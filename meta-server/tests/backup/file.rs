//! The backup file: what its header says, that no secret is in it, and
//! that a reader refuses every damaged or foreign file, leaving nothing.

use std::path::Path;

use hamster_meta::backup::format::{self, BackupError, BackupHeader, Summer};
use hamster_meta::backup::restore::restore;
use hamster_meta::backup::take;
use hamster_meta::state::schema;
use hamster_proto::secrets::MasterKey;

use super::common::*;
use super::fixture::*;

/// The file's parts: (header, body), the checksum checked.
fn split(bytes: &[u8]) -> (BackupHeader, Vec<u8>) {
    assert_eq!(&bytes[..8], format::MAGIC);
    let len = u32::from_be_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
    let header: BackupHeader = serde_json::from_slice(&bytes[12..12 + len]).expect("header");
    let body = bytes[12 + len..bytes.len() - 32].to_vec();
    (header, body)
}

/// A file with a header of our choosing and a valid checksum.
fn rebuild(header_json: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = format::MAGIC.to_vec();
    out.extend_from_slice(&(header_json.len() as u32).to_be_bytes());
    out.extend_from_slice(header_json);
    out.extend_from_slice(body);
    let mut sum = Summer::default();
    sum.update(&out);
    out.extend_from_slice(&sum.trailer());
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_backup_says_what_it_holds_and_verifies() {
    let b = backup().await;
    let h = &b.header;
    assert_eq!(h.format, 1);
    assert_eq!(h.source_raft_id, 1);
    assert_eq!((h.raft_term, h.raft_index), (TERM, b.src.index));
    assert_eq!(h.schema_version, schema::current_version());
    assert_eq!(h.cluster_id, b.pki.fingerprint());
    assert_eq!(h.key_fingerprints, vec![b.key.fingerprint()]);
    assert_eq!(h.write_key, b.key.fingerprint());
    assert_eq!(h.trust_cas, vec![b.pki.fingerprint()]);
    assert_eq!(h.issuing_ca, b.pki.fingerprint());
    assert_eq!(h.trust_generation, 1);
    assert_eq!(h.removed_blob_servers, vec!["blob-3".to_string()]);
    // va1, va2, vg1, the delete marker, vk1, vh1, vm1.
    assert_eq!((h.versions, h.buckets, h.access_keys), (7, 2, 1));
    assert!(h.created_ms > NOW, "stamped with the wall clock");
    assert_eq!(format::verify(&b.path).expect("verifies"), *h);
    let db = b.dir.path().join("out.db");
    assert_eq!(
        format::verify_into(&b.path, &db).await.expect("verifies"),
        *h
    );
    assert_eq!(std::fs::metadata(&db).expect("db").len(), h.db_bytes);
    // The copy taken in the data dir is gone.
    let left: Vec<String> = files_under(b.src.dir.path())
        .into_iter()
        .filter(|f| f.starts_with("backup-"))
        .collect();
    assert!(left.is_empty(), "temp copies left: {left:?}");
}

#[tokio::test]
async fn no_key_or_secret_is_in_a_backup() {
    let b = backup().await;
    let bytes = std::fs::read(&b.path).expect("read");
    let body_of = |pem: &str| -> Vec<String> {
        // Each base64 line of a PEM: any one of them found is a leak.
        pem.lines()
            .filter(|l| !l.starts_with("-----") && l.len() > 20)
            .map(str::to_string)
            .collect()
    };
    assert!(!contains(&bytes, b.key.expose()), "master key bytes");
    assert!(!contains(&bytes, hex::encode(b.key.expose()).as_bytes()));
    for line in body_of(&b.pki.ca.key_pem)
        .iter()
        .chain(&body_of(&b.pki.node.key_pem))
    {
        assert!(!contains(&bytes, line.as_bytes()), "a private key's PEM");
    }
    assert!(!contains(&bytes, SECRET.as_bytes()), "the S3 secret");
    // The search sees the DB itself: the public CA and the sealed secret
    // (useless without the master key) are there.
    assert!(contains(&bytes, body_of(&b.pki.ca.cert_pem)[0].as_bytes()));
    let mut c = b.src.db.acquire().await.expect("conn");
    let stored = q::access_key(&mut c, "AK1")
        .await
        .expect("read")
        .expect("the key");
    assert!(contains(&bytes, &stored.sealed_secret), "the sealed secret");
}

/// A damage: what it is, the damaged file, and the refusal it must meet.
type Damage = (&'static str, Vec<u8>, fn(&BackupError) -> bool);

fn damaged(good: &[u8]) -> Vec<Damage> {
    let (header, body) = split(good);
    let head_len = good.len() - body.len() - 32;
    let flip = |at: usize| {
        let mut b = good.to_vec();
        b[at] ^= 0x40;
        b
    };
    let mut newer = serde_json::to_value(&header).expect("json");
    newer["format"] = 2.into();
    newer["something_new"] = "x".into();
    let mut wrong_index = header.clone();
    wrong_index.raft_index += 1;
    // A size that would wrap the expected file length to a small number.
    let mut huge = header.clone();
    huge.db_bytes = u64::MAX;
    vec![
        (
            "a flipped body byte",
            flip(head_len + body.len() / 2),
            |e| matches!(e, BackupError::Checksum),
        ),
        ("a flipped checksum byte", flip(good.len() - 1), |e| {
            matches!(e, BackupError::Checksum)
        }),
        ("cut in the magic", good[..5].to_vec(), |e| {
            matches!(e, BackupError::Truncated)
        }),
        ("cut in the header", good[..head_len - 3].to_vec(), |e| {
            matches!(e, BackupError::Truncated)
        }),
        (
            "cut in the body",
            good[..head_len + body.len() / 3].to_vec(),
            |e| matches!(e, BackupError::Truncated),
        ),
        (
            "cut in the checksum",
            good[..good.len() - 5].to_vec(),
            |e| matches!(e, BackupError::Truncated),
        ),
        ("bytes after the checksum", [good, b"extra"].concat(), |e| {
            matches!(e, BackupError::Trailing(5))
        }),
        (
            "another magic",
            [b"SQLite f".as_slice(), &good[8..]].concat(),
            |e| matches!(e, BackupError::NotABackup),
        ),
        ("an empty file", Vec::new(), |e| {
            matches!(e, BackupError::NotABackup)
        }),
        (
            "format 2",
            rebuild(&serde_json::to_vec(&newer).expect("json"), &body),
            |e| matches!(e, BackupError::TooNew { found: 2, known: 1 }),
        ),
        (
            "a header naming another index",
            rebuild(&serde_json::to_vec(&wrong_index).expect("json"), &body),
            |e| matches!(e, BackupError::Db(m) if m.contains("index")),
        ),
        (
            "a db_bytes of u64::MAX",
            rebuild(&serde_json::to_vec(&huge).expect("json"), &body),
            |e| matches!(e, BackupError::BadHeader(m) if m.contains("db_bytes")),
        ),
        (
            "a body that is not SQLite",
            rebuild(
                &serde_json::to_vec(&header).expect("json"),
                &vec![7u8; body.len()],
            ),
            |e| matches!(e, BackupError::Db(_)),
        ),
    ]
}

#[tokio::test]
async fn a_damaged_or_foreign_file_is_refused_and_nothing_is_written() {
    let b = backup().await;
    let good = std::fs::read(&b.path).expect("read");
    let node = NodeFiles::new(&b.key, None, &b.pki);
    for (what, bytes, expected) in damaged(&good) {
        let path = b.dir.path().join("damaged.hbk");
        std::fs::write(&path, &bytes).expect("write");
        let db_out = b.dir.path().join("damaged.db");
        let e = format::verify_into(&path, &db_out).await.expect_err(what);
        assert!(expected(&e), "{what}: refused with {e:?}");
        assert!(!db_out.exists(), "{what}: the DB written is removed");
        let db_checked = matches!(e, BackupError::Db(_));
        if !db_checked {
            let e = format::verify(&path).expect_err(what);
            assert!(expected(&e), "{what}: verify refused with {e:?}");
        }
        // A restore of it writes nothing anywhere.
        let root = tempfile::tempdir().expect("tempdir");
        let plan = dev_plan(&path, root.path(), true);
        let e = restore(&plan, &node.facts()).await.expect_err(what);
        assert!(
            matches!(e, hamster_meta::backup::restore::RestoreError::Backup(_)),
            "{what}: {e}"
        );
        assert_eq!(files_under(root.path()), Vec::<String>::new(), "{what}");
    }
}

#[tokio::test]
async fn refusals_say_what_is_wrong() {
    let b = backup().await;
    let good = std::fs::read(&b.path).expect("read");
    let at = |p: &Path, bytes: &[u8]| {
        std::fs::write(p, bytes).expect("write");
        format::verify(p).expect_err("refused").to_string()
    };
    let p = b.dir.path().join("x.hbk");
    assert_eq!(at(&p, b"hello world, not a backup"), "not a Hamster backup");
    assert!(at(&p, &good[..good.len() - 1]).contains("truncated"));
    let mut flipped = good.clone();
    let n = flipped.len();
    flipped[n - 40] ^= 1;
    assert!(at(&p, &flipped).contains("corrupt: checksum"));
    let (header, body) = split(&good);
    let mut v = serde_json::to_value(&header).expect("json");
    v["format"] = 9.into();
    let msg = at(&p, &rebuild(&serde_json::to_vec(&v).expect("json"), &body));
    assert!(msg.contains("newer hamster"), "{msg}");
}

/// Copies of the DB left in the data dir by a crash mid-backup, mid
/// snapshot or mid-restore are never state: opening the DB removes them
/// (with what SQLite keeps beside them), and nothing else.
#[tokio::test]
async fn copies_left_in_the_data_dir_are_removed_when_the_db_opens() {
    let src = Source::empty().await;
    src.db.close().await;
    let dir = src.dir.path();
    let stale = [
        "backup-0badc0de.db",
        "backup-0badc0de.db-journal",
        "building-00000001.db",
        "building-00000001.db-wal",
        ".restore-deadbeef.db",
        ".restore-deadbeef.db-shm",
    ];
    let kept = ["backup-notes.txt", "my-backup.db", "restore-x.db"];
    for f in stale.iter().chain(&kept) {
        std::fs::write(dir.join(f), b"x").expect("write");
    }
    let db = StateDb::open(dir).await.expect("opens");
    db.close().await;
    let left = files_under(dir);
    for f in stale {
        assert!(!left.contains(&f.to_string()), "{f} left: {left:?}");
    }
    for f in kept {
        assert!(left.contains(&f.to_string()), "{f} removed: {left:?}");
    }
}

/// A client that goes away while the copy is being made (the call's
/// future dropped at any point) leaves no copy behind once SQLite is done.
#[tokio::test]
async fn an_abandoned_backup_leaves_no_copy() {
    let key = MasterKey::generate();
    let src = Source::populated(&key, &Pki::new("ca-1")).await;
    // Some 30 MB, so that the copy takes long enough to be walked away from.
    let mut c = src.db.acquire().await.expect("conn");
    sqlx::query(
        "CREATE TABLE test_pad AS WITH RECURSIVE n(i) AS \
         (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) \
         SELECT randomblob(10000) AS b FROM n",
    )
    .execute(&mut *c)
    .await
    .expect("pad");
    drop(c);
    let copies = || -> Vec<String> {
        files_under(src.dir.path())
            .into_iter()
            .filter(|f| f.starts_with("backup-"))
            .collect()
    };
    for wait_us in [0, 100, 1_000, 5_000, 20_000, 50_000] {
        let copying = take::copy(&src.db, 1);
        let _ = tokio::time::timeout(std::time::Duration::from_micros(wait_us), copying).await;
        // Time for a copy still being made to be finished (and removed).
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !copies().is_empty() && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(copies(), Vec::<String>::new(), "after {wait_us} µs");
    }
}

/// A multipart object's version row wraps no key (its parts do): the
/// header names the keys things are really under, not the write key as
/// well. Here a rotation from A to B has started (write key B) and
/// nothing has moved yet: only A is needed.
#[tokio::test]
async fn the_header_names_only_the_keys_in_use() {
    let (a, b) = (MasterKey::generate(), MasterKey::generate());
    let mut src = Source::populated(&a, &Pki::new("ca-1")).await;
    src.ok(Op::KeyHolderSeen {
        id: "meta-1".into(),
        role: Role::Meta,
        current: a.fingerprint(),
        next: b.fingerprint(),
    })
    .await;
    src.ok(Op::StartKeyRotation {
        old: a.fingerprint(),
        new: b.fingerprint(),
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let header = take::write_file(&src.db, 1, &dir.path().join("meta.hbk"))
        .await
        .expect("backup");
    assert_eq!(header.write_key, b.fingerprint());
    assert_eq!(header.key_fingerprints, vec![a.fingerprint()]);

    // An S3 secret sealed before rotations existed (no fingerprint) is
    // under the write key: that one counts.
    let mut c = src.db.acquire().await.expect("conn");
    sqlx::query("UPDATE access_keys SET kek_fingerprint = ''")
        .execute(&mut *c)
        .await
        .expect("unmark");
    let mut fps = take::key_fingerprints(&mut c, &b.fingerprint())
        .await
        .expect("read");
    fps.sort();
    let mut want = vec![a.fingerprint(), b.fingerprint()];
    want.sort();
    assert_eq!(fps, want);
}
