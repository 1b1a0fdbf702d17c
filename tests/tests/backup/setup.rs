//! Step 1, what the backup must hold (plain objects of several sizes, a
//! multipart one, versions, a delete marker, GOVERNANCE and COMPLIANCE
//! retention, a legal hold), and step 5, what it must not (objects
//! written after it, whose shards become orphans after the restore).

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ObjectLockRetentionMode};
use hamster_tests::lock::{
    DAY, create_lock_bucket, now_secs, put as put_locked, put_legal_hold, put_retention, retention,
};
use hamster_tests::s3::{pattern, put_version};

use crate::*;

pub async fn load(w: &mut World) {
    for b in ["data", "load", "late"] {
        w.c.create_bucket()
            .bucket(b)
            .send()
            .await
            .unwrap_or_else(|e| panic!("mb {b}: {e:?}"));
    }
    for (key, len, seed) in [
        ("empty", 0, 1),
        ("tiny", 1, 2),
        ("small", 100_000, 3),
        ("two-segments", MIB + 1, 4),
    ] {
        let data = pattern(len, seed);
        put_version(&w.c, "data", key, &data).await;
        w.objects.push((key.to_string(), data));
    }
    let parts = [pattern(5 * MIB, 5), pattern(MIB + 3, 6)];
    multipart(&w.c, "data", "multipart", &parts).await;
    w.objects.push(("multipart".into(), parts.concat()));
    lock_bucket(w).await;
    w.locked.listing = listing(&w.c, "locked").await;
}

/// The lock bucket: three versions of "doc", "gone" behind a delete
/// marker, "gov" and "comp" retained a day, "held" under a legal hold.
async fn lock_bucket(w: &mut World) {
    let c = &w.c;
    create_lock_bucket(c, "locked").await;
    let l = &mut w.locked;
    for (i, len) in [10_000, 200_000, 33].into_iter().enumerate() {
        let data = pattern(len, 20 + i as u8);
        let id = put_locked(c, "locked", "doc", &data).await;
        l.versions.push(("doc".into(), id, data));
    }
    let data = pattern(5_000, 30);
    let id = put_locked(c, "locked", "gone", &data).await;
    l.versions.push(("gone".into(), id, data));
    let marker = c
        .delete_object()
        .bucket("locked")
        .key("gone")
        .send()
        .await
        .expect("delete marker");
    assert_eq!(marker.delete_marker(), Some(true), "no delete marker made");

    let until = now_secs() + DAY;
    for (key, mode, seed) in [
        ("gov", ObjectLockRetentionMode::Governance, 40),
        ("comp", ObjectLockRetentionMode::Compliance, 41),
    ] {
        let data = pattern(70_000, seed);
        let id = put_locked(c, "locked", key, &data).await;
        put_retention(
            c,
            "locked",
            key,
            Some(&id),
            retention(mode.clone(), until),
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("retention of {key}: {e:?}"));
        l.retained
            .push((key.into(), id.clone(), mode.as_str().to_string(), until));
        l.versions.push((key.into(), id.clone(), data));
        if key == "gov" {
            l.governance = (key.into(), id);
        } else {
            l.compliance = (key.into(), id);
        }
    }
    let data = pattern(1_000, 50);
    let id = put_locked(c, "locked", "held", &data).await;
    put_legal_hold(c, "locked", "held", true)
        .await
        .expect("legal hold");
    l.held = ("held".into(), id.clone());
    l.versions.push(("held".into(), id, data));
}

/// A completed multipart upload of `parts`.
async fn multipart(c: &Client, bucket: &str, key: &str, parts: &[Vec<u8>]) {
    let up = c
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("create upload");
    let id = up.upload_id().expect("upload id").to_string();
    let mut done = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let n = i as i32 + 1;
        let out = c
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(p.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("part {n} of {key}: {e:?}"));
        let etag = out.e_tag().expect("etag");
        done.push(CompletedPart::builder().part_number(n).e_tag(etag).build());
    }
    let list = CompletedMultipartUpload::builder()
        .set_parts(Some(done))
        .build();
    c.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(&id)
        .multipart_upload(list)
        .send()
        .await
        .unwrap_or_else(|e| panic!("complete {key}: {e:?}"));
}

/// Every version and delete marker of `bucket`, sorted.
pub async fn listing(c: &Client, bucket: &str) -> Vec<Listed> {
    let r = c
        .list_object_versions()
        .bucket(bucket)
        .send()
        .await
        .expect("list versions");
    assert!(!r.is_truncated().unwrap_or(false), "more than one page");
    let mut out: Vec<Listed> = r
        .versions()
        .iter()
        .map(|v| Listed {
            key: v.key().unwrap_or_default().into(),
            version_id: v.version_id().unwrap_or_default().into(),
            latest: v.is_latest().unwrap_or(false),
            delete_marker: false,
            size: v.size().unwrap_or(-1),
        })
        .chain(r.delete_markers().iter().map(|m| Listed {
            key: m.key().unwrap_or_default().into(),
            version_id: m.version_id().unwrap_or_default().into(),
            latest: m.is_latest().unwrap_or(false),
            delete_marker: true,
            size: 0,
        }))
        .collect();
    out.sort();
    out
}

/// Step 5: objects written after the backup, and the shards each one's
/// map names (on the meta tier that is about to be lost).
pub async fn late_writes(w: &mut World) {
    let meta = w.s.metas[0];
    for (i, len) in [1_000, 90_000, 600_000].into_iter().enumerate() {
        let key = format!("late-{i}");
        put_version(&w.c, "late", &key, &pattern(len, 60 + i as u8)).await;
        let v = w.s.c.version(meta, "late", &key, "").await;
        let map = v.shard_map.expect("a shard map");
        w.late
            .shards
            .extend(map.shards.into_iter().map(|l| (l.blob_id, l.shard_id)));
    }
    for (blob, shard) in &w.late.shards {
        let node = w.s.blob_by_id(blob);
        assert!(
            w.s.shard_file(node, shard).is_some(),
            "late shard {shard} is not on {blob}"
        );
    }
}
