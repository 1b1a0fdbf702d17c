//! Stored records. These, not the protobuf messages, are what the log and
//! the DB hold, so the wire contract can change without rewriting history.
//!
//! The states a record keeps as one of a few names (versioning, lock mode,
//! role, CA phase, blob-server state) are enums whose serde name is the
//! text stored and sent; conversions from the wire refuse other text.
//!
//! The records of the durability commands (a unit, a shard swap, a bad
//! shard) are in `durability`, those of the orphan hold in `orphans`;
//! the conversions to and from protobuf in `wire`. They are re-exported
//! or implemented on the types here.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

mod durability;
mod orphans;
mod wire;
pub use durability::{BadShard, ShardSwap, Unit};
pub use orphans::{HeldOrphan, HeldShard};

/// Text that names none of a state's values (from the wire or the DB).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {name:?} (expected one of {expected:?})")]
pub struct UnknownName {
    pub what: &'static str,
    pub name: String,
    pub expected: &'static [&'static str],
}

/// An enum of named states. Each variant's text is its serde name, its
/// DB text and its protobuf string: today's encoding, never to change.
macro_rules! named {
    (
        $(#[$meta:meta])*
        $name:ident ($what:literal) {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored (and wire) text.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, UnknownName> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownName {
                        what: $what,
                        name: s.to_string(),
                        expected: &[$($text),+],
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named! {
    /// A bucket's versioning state.
    #[derive(Default)]
    Versioning ("versioning state") {
        /// Never versioned.
        #[default]
        Unversioned = "",
        Enabled = "Enabled",
        Suspended = "Suspended",
    }
}

named! {
    /// A version's object lock retention mode.
    #[derive(Default)]
    LockMode ("lock mode") {
        /// No retention.
        #[default]
        None = "",
        Governance = "GOVERNANCE",
        Compliance = "COMPLIANCE",
    }
}

named! {
    /// The part a node plays (as in its certificate).
    Role ("role") {
        Meta = "meta",
        Blob = "blob",
        Gateway = "gateway",
        Admin = "admin",
    }
}

named! {
    /// The phase of an open CA rotation.
    CaPhase ("CA rotation phase") {
        /// Trust is {old, new}: waiting for every member to load it.
        Widening = "widening",
        /// New certificates come from the new CA: waiting for every
        /// member to hold one.
        Reissuing = "reissuing",
    }
}

named! {
    /// A blob-server's state in the registry.
    #[derive(Default)]
    BlobState ("blob-server state") {
        /// None given: what a blob-server's own registration carries
        /// (the registry records it as active).
        #[default]
        Unset = "",
        Active = "active",
        /// Silent past the grace period, as the leader judged: its shards
        /// count as lost until it heartbeats again.
        Down = "down",
    }
}

named! {
    /// The operator's intent for a blob-server, apart from its liveness
    /// (ADR 0025): in service, being drained, drained (no map names it
    /// and none may), or removed for good.
    #[derive(Default)]
    Lifecycle ("blob-server lifecycle") {
        #[default]
        In = "in",
        Draining = "draining",
        Drained = "drained",
        Removed = "removed",
    }
}

impl From<hamster_proto::Role> for Role {
    fn from(r: hamster_proto::Role) -> Self {
        match r {
            hamster_proto::Role::Meta => Role::Meta,
            hamster_proto::Role::Blob => Role::Blob,
            hamster_proto::Role::Gateway => Role::Gateway,
            hamster_proto::Role::Admin => Role::Admin,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    pub name: String,
    pub created_at_ms: i64,
    pub versioning: Versioning,
    pub object_lock_enabled: bool,
    /// Object lock's default retention for new versions that carry none.
    #[serde(default)]
    pub default_retention: Option<DefaultRetention>,
    /// The access key that owns the bucket ("": none; ADR 0027).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub owner: String,
    /// The bucket's own maximum retention in days (None: the cluster's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retention_days: Option<u32>,
    /// S3's PublicAccessBlock as the owner set it (None: none set).
    /// Stored and shown only: nothing is ever public (issue 21).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_access_block: Option<PublicAccessBlock>,
}

/// S3's four PublicAccessBlock flags, kept as the owner set them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicAccessBlock {
    pub block_public_acls: bool,
    pub ignore_public_acls: bool,
    pub block_public_policy: bool,
    pub restrict_public_buckets: bool,
}

/// A key's rights on a bucket (ADR 0027). Owner implies read and write.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketGrant {
    pub bucket: String,
    pub key_id: String,
    pub read: bool,
    pub write: bool,
    pub owner: bool,
}

/// A bucket's default retention: a mode and a period of whole days or
/// whole years (a year is 365 days), never both.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRetention {
    /// GOVERNANCE or COMPLIANCE (apply refuses None).
    pub mode: LockMode,
    pub days: u32,
    pub years: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardLocation {
    pub index: u32,
    pub blob_id: String,
    pub shard_id: String,
    #[serde(with = "hexbytes")]
    pub checksum: Vec<u8>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMap {
    pub data_shards: u32,
    pub parity_shards: u32,
    pub segment_size: u64,
    pub shards: Vec<ShardLocation>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub bucket: String,
    pub key: String,
    pub version_id: String,
    pub size: u64,
    pub etag: String,
    pub content_type: String,
    pub user_metadata: BTreeMap<String, String>,
    pub stored_headers: BTreeMap<String, String>,
    pub created_at_ms: i64,
    pub delete_marker: bool,
    pub shard_map: Option<ShardMap>,
    /// The data key wrapped by the master key: never a plain key.
    #[serde(with = "hexbytes")]
    pub wrapped_dek: Vec<u8>,
    pub kek_fingerprint: String,
    pub lock_mode: LockMode,
    pub retain_until_ms: i64,
    pub legal_hold: bool,
    /// A completed multipart object: its parts in order, each with its own
    /// shard map and wrapped data key. Empty for a single-part object.
    #[serde(default)]
    pub parts: Vec<Part>,
    /// The checksum the client sent or asked for (issue 21): algorithm
    /// ("CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"; "" none), the
    /// value as S3 shows it (base64; composite ones end "-N"), and its
    /// type ("FULL_OBJECT" or "COMPOSITE").
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub checksum_algorithm: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub checksum_value: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub checksum_type: String,
    /// The multipart upload that made this version ("": none): a repeated
    /// CompleteMultipart for it is answered with this version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub upload_id: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    pub initiated_at_ms: i64,
    /// Headers and metadata the completed object will carry.
    pub template: Version,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub part_number: u32,
    pub size: u64,
    pub etag: String,
    pub shard_map: Option<ShardMap>,
    #[serde(with = "hexbytes")]
    pub wrapped_dek: Vec<u8>,
    pub kek_fingerprint: String,
    /// The part's checksum (base64) in its upload's algorithm ("": none).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub checksum_value: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKey {
    pub id: String,
    pub name: String,
    /// The secret sealed under the master key (ADR 0007); never plain.
    #[serde(with = "hexbytes")]
    pub sealed_secret: Vec<u8>,
    pub created_at_ms: i64,
    pub enabled: bool,
    /// The master key that sealed the secret ("": before any rotation,
    /// the cluster's first key).
    #[serde(default)]
    pub kek_fingerprint: String,
    /// Whether the key may create buckets (ADR 0027; absent: yes).
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub can_create_bucket: bool,
}

fn yes() -> bool {
    true
}

fn is_yes(v: &bool) -> bool {
    *v
}

/// A gateway or meta-server and the master keys it reported holding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyHolder {
    pub id: String,
    /// Gateway or Meta.
    pub role: Role,
    pub current_fp: String,
    /// "" if it holds no next key.
    pub next_fp: String,
    pub last_seen_ms: i64,
}

/// An open master-key rotation: every wrapped key moves from `old` to
/// `new`; new writes already use `new`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRotation {
    pub old: String,
    pub new: String,
    pub started_at_ms: i64,
}

/// What one rewrap changes: a wrapped key (or a sealed S3 secret), where
/// it is, and its bytes before and after.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rewrapped {
    pub target: RewrapTarget,
    #[serde(with = "hexbytes")]
    pub old: Vec<u8>,
    #[serde(with = "hexbytes")]
    pub new: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RewrapTarget {
    Version {
        bucket: String,
        key: String,
        version_id: String,
    },
    /// A part of a completed multipart version.
    VersionPart {
        bucket: String,
        key: String,
        version_id: String,
        part_number: u32,
    },
    /// A part of an upload in progress.
    UploadPart {
        upload_id: String,
        part_number: u32,
    },
    AccessKey {
        id: String,
    },
}

/// A join token as the meta tier keeps it: the secret only as SHA-256.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinToken {
    pub id: String,
    /// Blob or Gateway.
    pub role: Role,
    pub secret_hash: String,
    pub uses_left: u32,
    pub expires_at_ms: i64,
    pub created_at_ms: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobServer {
    pub id: String,
    pub address: String,
    pub failure_domain: String,
    pub capacity_bytes: u64,
    pub free_bytes: u64,
    pub state: BlobState,
    pub last_heartbeat_ms: i64,
    /// When it last finished a full scrub pass (0: never). The registry's
    /// to set, like the state; absent from commands that carry none, so
    /// a RegisterBlob keeps its encoding.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub last_scrub_ms: i64,
    /// The registry's to set (DrainBlob, RemoveBlob...), like the state;
    /// absent from a RegisterBlob, which keeps its encoding.
    #[serde(default, skip_serializing_if = "is_in")]
    pub lifecycle: Lifecycle,
    /// Draining onto this server only ("": anywhere).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub drain_to: String,
    /// The store as the server last reported it (heartbeat).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub shards_stored: u64,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub bytes_stored: u64,
}

impl BlobServer {
    /// The one word placement and operators go by (ADR 0025): removed,
    /// else down, else draining or drained, else active.
    pub fn display_state(&self) -> &'static str {
        match (self.lifecycle, self.state) {
            (Lifecycle::Removed, _) => "removed",
            (_, BlobState::Down) => "down",
            (Lifecycle::Draining, _) => "draining",
            (Lifecycle::Drained, _) => "drained",
            (Lifecycle::In, _) => "active",
        }
    }

    /// May take new shards (placement, repair, moves): in service and not
    /// judged down. Freshness of its heartbeat is the caller's to judge.
    pub fn usable(&self) -> bool {
        self.lifecycle == Lifecycle::In && self.state != BlobState::Down
    }
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

fn is_in(l: &Lifecycle) -> bool {
    *l == Lifecycle::In
}

/// A blob-server's heartbeat as apply records it (not stored as JSON).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Heartbeat {
    pub id: String,
    pub capacity_bytes: u64,
    pub free_bytes: u64,
    pub shards_stored: u64,
    pub bytes_stored: u64,
    /// The command's time.
    pub at_ms: i64,
}

/// Bytes as hex in JSON: compact enough, and readable when debugging a log.
mod hexbytes {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}

/// The cluster's trust bundle: public CA certificates only (ADR 0019).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustBundle {
    /// Raised by every change; members load the newest they see.
    pub generation: u64,
    /// PEM of each trusted CA certificate.
    pub cas: Vec<String>,
    /// Fingerprint of the CA that signs new certificates.
    pub issuing: String,
    /// The meta-server that minted the issuing CA ("" : not known); a
    /// hint for where to send CSRs, not a rule.
    pub issuer: String,
}

/// An open CA rotation, from `old` to `new`, in its phase.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaRotation {
    pub old: String,
    pub new: String,
    pub phase: CaPhase,
    /// The generation that first trusted both.
    pub widened: u64,
    pub started_at_ms: i64,
}

/// A member's last report: the trust generation it has loaded and the
/// CA that signed its current certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsMember {
    pub id: String,
    pub role: Role,
    pub generation: u64,
    pub cert_ca: String,
    pub last_seen_ms: i64,
}

/// The hold a restore puts on orphan shards (ADR 0026): the setting
/// `orphan_hold`, written by the restore into the restored DB. A shard no
/// row names, written before `restored_at_ms`, may hold data committed
/// after the backup: it is kept and listed until released.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrphanHold {
    pub restored_at_ms: i64,
    pub backup_index: u64,
    pub backup_created_ms: i64,
}

/// The setting that holds the [`OrphanHold`] (JSON).
pub const ORPHAN_HOLD: &str = "orphan_hold";

#[cfg(test)]
mod tests {
    use hamster_proto::pb;

    use super::*;

    /// Every value's text parses back to it and is its serde encoding;
    /// any other text is refused, by the parser and by serde alike.
    fn check<T>(all: &[T], texts: &[&str])
    where
        T: Copy + fmt::Debug + fmt::Display + PartialEq + FromStr<Err = UnknownName>,
        T: Serialize + serde::de::DeserializeOwned,
    {
        let names: Vec<String> = all.iter().map(|v| v.to_string()).collect();
        assert_eq!(names, texts, "the stored texts never change");
        for v in all {
            assert_eq!(v.to_string().parse::<T>(), Ok(*v));
            let json = serde_json::to_string(v).expect("encode");
            assert_eq!(json, serde_json::to_string(&v.to_string()).expect("encode"));
            assert_eq!(serde_json::from_str::<T>(&json).expect("decode"), *v);
        }
        for bad in ["bogus", "ENABLED", " meta", "none"] {
            assert!(bad.parse::<T>().is_err(), "{bad:?} was accepted");
            let json = serde_json::to_string(bad).expect("encode");
            assert!(serde_json::from_str::<T>(&json).is_err(), "{bad:?} decoded");
        }
    }

    #[test]
    fn named_states_keep_their_texts_and_refuse_others() {
        check(Versioning::ALL, &["", "Enabled", "Suspended"]);
        check(LockMode::ALL, &["", "GOVERNANCE", "COMPLIANCE"]);
        check(Role::ALL, &["meta", "blob", "gateway", "admin"]);
        check(CaPhase::ALL, &["widening", "reissuing"]);
        check(BlobState::ALL, &["", "active", "down"]);
        check(Lifecycle::ALL, &["in", "draining", "drained", "removed"]);
    }

    #[test]
    fn an_unknown_name_from_the_wire_says_what_it_is() {
        let e = "FOREVER".parse::<LockMode>().expect_err("unknown");
        assert_eq!(
            e.to_string(),
            r#"unknown lock mode "FOREVER" (expected one of ["", "GOVERNANCE", "COMPLIANCE"])"#
        );
        let v = pb::ObjectVersion {
            lock_mode: "FOREVER".into(),
            ..Default::default()
        };
        assert_eq!(Version::try_from(v), Err(e));
    }
}
