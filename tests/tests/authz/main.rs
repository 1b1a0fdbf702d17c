//! Per-key authorization (issue 19, ADR 0027) end to end, in named steps
//! over one cluster with several access keys:
//!
//! - [`grants`]: a new key sees nothing and meets 403 on another key's
//!   bucket (copy source and multipart included); read, then write, open
//!   exactly their operations; deny closes them within the cache window;
//! - [`powers`]: write without owner has no lock or configuration power;
//!   the owner bypasses GOVERNANCE, never COMPLIANCE;
//! - [`forged`]: commands forwarded over Raft with a meta certificate,
//!   naming another key, no key, or a key denied since, are refused;
//! - [`owners`]: BucketAlreadyExists / BucketAlreadyOwnedByYou, keys that
//!   may not create buckets, Owner in every listing, ListBuckets pages;
//! - [`acl`]: Get*Acl answers, `private` is accepted, public is 501;
//! - [`retention`]: a bucket's maximum retention and the cluster default;
//! - [`admin`]: the admin CLI creates for an owner, shows a bucket's
//!   grants and counts, hands ownership over, cannot delete locked data.

mod acl;
mod admin;
mod forged;
mod grants;
mod owners;
mod powers;
mod retention;

use aws_sdk_s3::primitives::ByteStream;
use hamster_tests::Steps;
use hamster_tests::authz::Tenant;
use hamster_tests::s3::S3Cluster;

/// The cluster and the two keys most steps are about: alice owns
/// "alice-data" (holding "doc" and an unfinished upload), bob owns
/// "bob-data" (holding "bob-doc").
pub struct World {
    pub s: S3Cluster,
    pub alice: Tenant,
    pub bob: Tenant,
    /// The upload alice began in "alice-data" (key "mp-alice").
    pub alice_upload: String,
}

/// The bytes of alice's "doc": what must still be there after every
/// refused attempt on it.
pub const DOC: &[u8] = b"alice's document, not for bob";

impl World {
    async fn start() -> anyhow::Result<Self> {
        let s = S3Cluster::start(1, 3).await;
        let alice = s.tenant("alice", &[]);
        let bob = s.tenant("bob", &[]);
        for (t, bucket, key, body) in [
            (&alice, "alice-data", "doc", DOC),
            (&bob, "bob-data", "bob-doc", b"bob's own".as_slice()),
        ] {
            t.s3.create_bucket().bucket(bucket).send().await?;
            t.s3.put_object()
                .bucket(bucket)
                .key(key)
                .body(ByteStream::from_static(body))
                .send()
                .await?;
        }
        let up = alice
            .s3
            .create_multipart_upload()
            .bucket("alice-data")
            .key("mp-alice")
            .send()
            .await?;
        let alice_upload = up.upload_id().unwrap_or_default().to_string();
        Ok(Self {
            s,
            alice,
            bob,
            alice_upload,
        })
    }

    /// `hamster bucket allow BUCKET --key ID FLAGS...`.
    pub fn allow(&self, bucket: &str, key: &Tenant, flags: &[&str]) {
        let mut args = vec!["bucket", "allow", bucket, "--key", &key.id];
        args.extend(flags);
        self.s.admin(&args);
    }

    /// `hamster bucket deny BUCKET --key ID`.
    pub fn deny(&self, bucket: &str, key: &Tenant) {
        self.s.admin(&["bucket", "deny", bucket, "--key", &key.id]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn per_key_authorization() {
    let mut steps = Steps::new("per_key_authorization");
    let w = steps
        .require("start: alice and bob, each with a bucket", World::start())
        .await;
    let w = &w;
    steps
        .run(
            "a new key sees no buckets; another key's bucket is 403",
            grants::strangers(w),
        )
        .await;
    steps
        .run(
            "a read grant opens reads and copy-from only",
            grants::read(w),
        )
        .await;
    steps
        .run(
            "a write grant opens writes, multipart and copy-into",
            grants::write(w),
        )
        .await;
    steps
        .run(
            "deny closes writes at once, reads within the cache window",
            grants::deny(w),
        )
        .await;
    steps
        .run(
            "write without owner has no lock or configuration power",
            powers::write_only(w),
        )
        .await;
    steps
        .run(
            "the owner bypasses GOVERNANCE and lifts holds, not COMPLIANCE",
            powers::owner(w),
        )
        .await;
    steps
        .run(
            "forged, unnamed and replayed Raft commands are refused at apply",
            forged::forward(w),
        )
        .await;
    steps
        .run(
            "CreateBucket conflicts and keys that may not create",
            owners::create(w),
        )
        .await;
    steps
        .run("Owner in every listing", owners::listings(w))
        .await;
    steps
        .run("a bucket with no owner shows none", owners::ownerless(w))
        .await;
    steps
        .run(
            "ListBuckets pages with max-buckets and continuation-token",
            owners::pages(w),
        )
        .await;
    steps
        .run("GetBucketAcl and GetObjectAcl answer", acl::get(w))
        .await;
    steps
        .run(
            "private ACLs are accepted; public or foreign grants are 501",
            acl::put(w),
        )
        .await;
    steps
        .run(
            "a bucket's maximum retention refuses longer ones",
            retention::bucket_limit(w),
        )
        .await;
    steps
        .run(
            "the cluster default applies to buckets without a limit",
            retention::cluster_default(w),
        )
        .await;
    let frank = steps
        .run(
            "the admin creates for an owner and shows grants and counts",
            admin::create_and_info(w),
        )
        .await;
    if let Some(frank) = &frank {
        steps
            .run(
                "the admin hands a bucket over; cannot deny its owner",
                admin::hand_over(w, frank),
            )
            .await;
    }
    steps
        .run(
            "the admin cannot delete a bucket holding locked data",
            admin::locked_bucket(w),
        )
        .await;
    steps.finish();
}
