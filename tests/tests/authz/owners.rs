//! Ownership as S3 shows it: CreateBucket's two conflicts, keys that may
//! not create buckets, the Owner (the bucket's owner key: ID and
//! DisplayName) in every listing that carries one, and ListBuckets pages.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Initiator, Owner};
use hamster_tests::authz::{Tenant, within_cache_window};
use hamster_tests::s3::{assert_s3_error, delete_version, set_versioning, versioning};

use crate::World;
use crate::grants::{denied, head_bucket_fails, put};

/// (ID, DisplayName) of an Owner or Initiator.
fn who(id: Option<&str>, name: Option<&str>) -> (String, String) {
    (
        id.unwrap_or("<none>").to_string(),
        name.unwrap_or("<none>").to_string(),
    )
}

fn owner(o: Option<&Owner>) -> (String, String) {
    who(o.and_then(|o| o.id()), o.and_then(|o| o.display_name()))
}

fn initiator(i: Option<&Initiator>) -> (String, String) {
    who(i.and_then(|i| i.id()), i.and_then(|i| i.display_name()))
}

/// The (ID, DisplayName) a listing shows for what `t` owns.
fn as_owner(t: &Tenant) -> (String, String) {
    (t.id.clone(), t.name.clone())
}

pub async fn create(w: &World) {
    let r = w.bob.s3.create_bucket().bucket("alice-data").send().await;
    assert_s3_error(r, "BucketAlreadyExists", 409);
    let r = w.alice.s3.create_bucket().bucket("alice-data").send().await;
    assert_s3_error(r, "BucketAlreadyOwnedByYou", 409);

    let carol = w.s.tenant("carol", &["--can-create-bucket", "false"]);
    denied(carol.s3.create_bucket().bucket("carol-bucket").send().await);
    head_bucket_fails(&w.alice.s3, "carol-bucket", 404).await;
    // carol's own ListBuckets works, and is empty.
    let out = carol.s3.list_buckets().send().await.expect("list buckets");
    assert!(out.buckets().is_empty());

    let keys = w.s.admin_json(&["key", "list"]);
    let may_create = |id: &str| {
        keys.as_array()
            .and_then(|a| a.iter().find(|k| k["access_key_id"] == id))
            .and_then(|k| k["can_create_bucket"].as_bool())
    };
    assert_eq!(may_create(&carol.id), Some(false), "{keys}");
    assert_eq!(may_create(&w.alice.id), Some(true), "{keys}");
}

/// alice's versioned "alice-ver": "k" twice then deleted (a marker),
/// "other", and an upload "mp" with one part.
async fn versioned_bucket(w: &World) -> String {
    let a = &w.alice.s3;
    a.create_bucket()
        .bucket("alice-ver")
        .send()
        .await
        .expect("mb");
    set_versioning(a, "alice-ver", versioning("Enabled"))
        .await
        .expect("versioning");
    for (key, body) in [("k", "one"), ("k", "two"), ("other", "other")] {
        put(a, "alice-ver", key, body.as_bytes())
            .await
            .expect("put");
    }
    delete_version(a, "alice-ver", "k", None, false)
        .await
        .expect("delete marker");
    let up = a
        .create_multipart_upload()
        .bucket("alice-ver")
        .key("mp")
        .send()
        .await
        .expect("upload");
    let up = up.upload_id().expect("upload id").to_string();
    a.upload_part()
        .bucket("alice-ver")
        .key("mp")
        .upload_id(&up)
        .part_number(1)
        .body(ByteStream::from_static(b"part one"))
        .send()
        .await
        .expect("part");
    up
}

pub async fn listings(w: &World) {
    let up = versioned_bucket(w).await;
    let a = &w.alice.s3;
    let alice = as_owner(&w.alice);

    let v1 = a
        .list_objects()
        .bucket("alice-ver")
        .send()
        .await
        .expect("V1");
    assert_eq!(v1.contents().len(), 1, "{v1:?}");
    for o in v1.contents() {
        assert_eq!(owner(o.owner()), alice);
    }
    let v2 = a
        .list_objects_v2()
        .bucket("alice-ver")
        .send()
        .await
        .expect("V2");
    assert_eq!(v2.contents().len(), 1, "{v2:?}");
    assert!(v2.contents().iter().all(|o| o.owner().is_none()), "{v2:?}");
    let v2 = a
        .list_objects_v2()
        .bucket("alice-ver")
        .fetch_owner(true)
        .send()
        .await
        .expect("V2 fetch-owner");
    for o in v2.contents() {
        assert_eq!(owner(o.owner()), alice);
    }

    let vs = a
        .list_object_versions()
        .bucket("alice-ver")
        .send()
        .await
        .expect("versions");
    assert_eq!(
        (vs.versions().len(), vs.delete_markers().len()),
        (3, 1),
        "{vs:?}"
    );
    for o in vs
        .versions()
        .iter()
        .map(|v| v.owner())
        .chain(vs.delete_markers().iter().map(|m| m.owner()))
    {
        assert_eq!(owner(o), alice);
    }

    let ups = a
        .list_multipart_uploads()
        .bucket("alice-ver")
        .send()
        .await
        .expect("uploads");
    assert_eq!(ups.uploads().len(), 1, "{ups:?}");
    let u = &ups.uploads()[0];
    assert_eq!(
        (owner(u.owner()), initiator(u.initiator())),
        (alice.clone(), alice.clone())
    );
    let parts = a
        .list_parts()
        .bucket("alice-ver")
        .key("mp")
        .upload_id(&up)
        .send()
        .await
        .expect("parts");
    assert_eq!(parts.parts().len(), 1);
    assert_eq!(
        (owner(parts.owner()), initiator(parts.initiator())),
        (alice.clone(), alice)
    );

    // ListBuckets: the caller.
    for t in [&w.alice, &w.bob] {
        let out = t.s3.list_buckets().send().await.expect("list buckets");
        assert_eq!(owner(out.owner()), as_owner(t));
    }
}

/// An admin-made bucket with no owner, alice granted on it: no Owner.
pub async fn ownerless(w: &World) {
    w.s.admin(&["bucket", "create", "no-owner"]);
    w.allow("no-owner", &w.alice, &["--read", "--write"]);
    let a = &w.alice.s3;
    within_cache_window("alice's grant on no-owner", || async {
        put(a, "no-owner", "x", b"x").await.is_ok()
    })
    .await;
    let v1 = a
        .list_objects()
        .bucket("no-owner")
        .send()
        .await
        .expect("V1");
    assert_eq!(v1.contents().len(), 1);
    assert!(v1.contents()[0].owner().is_none(), "{v1:?}");
    let v2 = a
        .list_objects_v2()
        .bucket("no-owner")
        .fetch_owner(true)
        .send()
        .await
        .expect("V2");
    assert!(v2.contents()[0].owner().is_none(), "{v2:?}");
    let vs = a
        .list_object_versions()
        .bucket("no-owner")
        .send()
        .await
        .expect("versions");
    assert!(vs.versions().iter().all(|v| v.owner().is_none()), "{vs:?}");
    let listed = w.s.admin_json(&["bucket", "list"]);
    let b = listed
        .as_array()
        .and_then(|a| a.iter().find(|b| b["name"] == "no-owner"))
        .expect("listed");
    assert!(b["owner"].is_null(), "{b}");
    // A grant is not ownership: no owner powers.
    denied(set_versioning(a, "no-owner", versioning("Enabled")).await);
}

/// erin's three buckets, one page at a time.
pub async fn pages(w: &World) {
    let erin = w.s.tenant("erin", &[]);
    for b in ["erin-2", "erin-1", "erin-3"] {
        erin.s3.create_bucket().bucket(b).send().await.expect("mb");
    }
    let (mut names, mut pages, mut token) = (Vec::new(), 0, None);
    loop {
        let out = erin
            .s3
            .list_buckets()
            .max_buckets(1)
            .set_continuation_token(token)
            .send()
            .await
            .expect("page");
        pages += 1;
        assert!(out.buckets().len() <= 1, "{out:?}");
        names.extend(
            out.buckets()
                .iter()
                .filter_map(|b| b.name().map(str::to_string)),
        );
        token = out.continuation_token().map(str::to_string);
        if token.is_none() {
            break;
        }
        assert!(pages < 10, "pages never end: {names:?}");
    }
    assert_eq!(names, ["erin-1", "erin-2", "erin-3"]);
    assert_eq!(pages, 3, "the last page says no more follow");
    let out = erin
        .s3
        .list_buckets()
        .prefix("erin-2")
        .send()
        .await
        .expect("prefix");
    let names: Vec<&str> = out.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, ["erin-2"]);
}
