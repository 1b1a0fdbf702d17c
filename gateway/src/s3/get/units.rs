//! The units a read walks, in order: a single-part object's one unit, or
//! a multipart object's parts, fetched from the meta tier a page at a
//! time as the read proceeds (Meta.GetParts, ADR 0031). At most one page
//! of part records is held, whatever the part count.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use hamster_proto::envelope::{DataKey, unwrap_dek};
use hamster_proto::keyring::Keyring;
use hamster_proto::pb;
use hamster_proto::transport::Pool;
use s3s::{S3Result, s3_error};

use super::super::Gateway;
use super::super::error::internal;
use crate::meta::MetaTier;
use crate::meta_call;
use crate::pipeline::read::ObjectReader;

/// Parts asked per GetParts call: the meta tier's largest page.
pub const PARTS_PAGE: u32 = 1000;

/// One encrypted, erasure-coded unit: its map, data key and size.
pub struct Unit {
    map: Option<pb::ShardMap>,
    wrapped_dek: Vec<u8>,
    kek_fingerprint: String,
    pub size: u64,
}

impl From<pb::Part> for Unit {
    fn from(p: pb::Part) -> Self {
        Self {
            map: p.shard_map,
            wrapped_dek: p.wrapped_dek,
            kek_fingerprint: p.kek_fingerprint,
            size: p.size,
        }
    }
}

/// What opening a unit needs, owned: the body keeps reading after the
/// request handler has answered.
pub struct Opener {
    keys: Arc<Keyring>,
    addresses: HashMap<String, String>,
    pool: Pool,
    hedge_after: Duration,
    /// For the log: which object a failure belongs to.
    object: (String, String, String),
}

impl Opener {
    pub fn new(gw: &Gateway, v: &pb::ObjectVersion) -> Self {
        Self {
            keys: gw.keys.clone(),
            addresses: gw.cluster.addresses(),
            pool: gw.pool.clone(),
            hedge_after: gw.hedge_after,
            object: (v.bucket.clone(), v.key.clone(), v.version_id.clone()),
        }
    }

    /// A reader of `unit`.
    pub fn open(&self, unit: &Unit) -> S3Result<ObjectReader> {
        let map = unit
            .map
            .as_ref()
            .ok_or_else(|| internal("get", "a unit with data has no shard map"))?;
        let dek = self.data_key(&unit.wrapped_dek, &unit.kek_fingerprint)?;
        Ok(ObjectReader::new(
            map,
            &dek,
            unit.size,
            &self.addresses,
            self.pool.clone(),
            self.hedge_after,
        )?)
    }

    /// A data key, unwrapped by the master key that wrapped it; a gateway
    /// without that key says so in the log, naming both sides.
    fn data_key(&self, wrapped: &[u8], fingerprint: &str) -> S3Result<DataKey> {
        let (bucket, key, version) = &self.object;
        let Some(kek) = self.keys.get(fingerprint) else {
            tracing::error!(%bucket, %key, %version, object_kek = %fingerprint,
                this_gateway = %self.keys.describe(),
                "cannot read: the object's data key is wrapped by a master key this gateway does not hold");
            return Err(s3_error!(
                ServiceUnavailable,
                "the object's data key is wrapped by master key {fingerprint}, which this gateway does not hold"
            ));
        };
        unwrap_dek(&kek, wrapped).map_err(|e| {
            tracing::error!(%bucket, %key, %version, object_kek = %fingerprint, error = %e,
                "cannot unwrap the object's data key");
            s3_error!(InternalError, "the object's data key cannot be unwrapped")
        })
    }
}

/// A version's units in order.
pub enum Units {
    /// A single-part object (taken once).
    One(Option<Unit>),
    /// A multipart object's parts, paged.
    Parts(PartPages),
}

impl Units {
    pub fn of(gw: &Gateway, v: &pb::ObjectVersion) -> Self {
        if v.parts_count == 0 {
            return Units::One(Some(Unit {
                map: v.shard_map.clone(),
                wrapped_dek: v.wrapped_dek.clone(),
                kek_fingerprint: v.kek_fingerprint.clone(),
                size: v.size,
            }));
        }
        Units::Parts(PartPages {
            meta: gw.meta.clone(),
            req: pb::GetPartsRequest {
                bucket: v.bucket.clone(),
                key: v.key.clone(),
                version_id: v.version_id.clone(),
                etag: v.etag.clone(),
                created_at_ms: v.created_at_ms,
                part_number_marker: 0,
                max_parts: PARTS_PAGE,
            },
            held: VecDeque::new(),
            done: false,
        })
    }

    /// The next unit, or None after the last.
    pub async fn next(&mut self) -> S3Result<Option<Unit>> {
        match self {
            Units::One(u) => Ok(u.take()),
            Units::Parts(p) => p.next().await,
        }
    }
}

/// A multipart version's parts, one GetParts page held at a time.
pub struct PartPages {
    meta: Arc<MetaTier>,
    req: pb::GetPartsRequest,
    held: VecDeque<pb::Part>,
    done: bool,
}

impl PartPages {
    async fn next(&mut self) -> S3Result<Option<Unit>> {
        if self.held.is_empty() && !self.done {
            let r = meta_call!(self.meta, get_parts, self.req.clone()).await?;
            // A truncated page that names nothing would never end.
            if r.is_truncated && (r.parts.is_empty() || r.next_part_number_marker == 0) {
                return Err(internal(
                    "get",
                    "GetParts: a truncated page without a marker",
                ));
            }
            self.done = !r.is_truncated;
            self.req.part_number_marker = r.next_part_number_marker;
            self.held.extend(r.parts);
        }
        Ok(self.held.pop_front().map(Unit::from))
    }
}
