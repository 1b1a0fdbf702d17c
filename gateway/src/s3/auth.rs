//! Access keys for s3s: one LookupAccessKey call gives a key's sealed
//! secret and its rights (ADR 0027). The secret is unsealed with the
//! master key in memory (ADR 0007); both are cached together for `TTL`,
//! so a busy client does not cost a meta round trip per request, and a
//! deleted or disabled key, or a revoked grant, stops working at the
//! gateway within `TTL` (writes are refused at once: the meta tier checks
//! them again where it applies them). [`Auth`] (SigV4) and
//! [`super::access`] (rights) share one [`Keys`] cache, which also
//! limits how often a refusal may ask the meta tier again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hamster_proto::ErrorCode;
pub use hamster_proto::access::Rights;
use hamster_proto::access::display_name;
use hamster_proto::envelope::open_secret;
use hamster_proto::keyring::Keyring;
use hamster_proto::pb;
use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Result, s3_error};

use crate::meta::MetaTier;

/// How long a key's secret and rights are trusted without asking again.
pub const TTL: Duration = Duration::from_secs(5);

/// One access key as the meta tier described it, secret unsealed.
pub struct KeyInfo {
    pub id: String,
    /// S3's DisplayName: the key's name, or its id if it has none.
    pub display_name: String,
    pub secret: SecretKey,
    pub can_create_bucket: bool,
    /// Bucket name to the key's rights there (owned buckets included).
    pub grants: HashMap<String, Rights>,
}

impl KeyInfo {
    /// The rights of a LookupAccessKey answer; `secret` is already open.
    pub fn new(k: &pb::LookupAccessKeyResponse, secret: SecretKey) -> Self {
        let mut grants: HashMap<String, Rights> = HashMap::new();
        for g in &k.grants {
            // One row per bucket is the contract; union if ever more.
            let r = grants.entry(g.bucket.clone()).or_default();
            r.read |= g.read;
            r.write |= g.write;
            r.owner |= g.owner;
        }
        Self {
            id: k.access_key_id.clone(),
            display_name: display_name(&k.access_key_id, &k.name),
            secret,
            can_create_bucket: k.can_create_bucket,
            grants,
        }
    }

    /// The key's rights on `bucket` (none if it has no grant there).
    pub fn on(&self, bucket: &str) -> Rights {
        self.grants.get(bucket).copied().unwrap_or_default()
    }
}

/// How often a refused request may look its key up again, or ask
/// whether a bucket it was refused exists: a key hammering a bucket it
/// may not use costs the meta tier about two reads a second, not two a
/// request (ADR 0027).
pub const RECHECK_EVERY: Duration = Duration::from_secs(1);

/// At most this many refused buckets are remembered per key.
const REFUSED_MAX: usize = 64;

/// How long an id the meta tier did not know (or knew disabled) is
/// refused without asking again: random ids repeated by a scanner cost
/// one quorum read per id per `UNKNOWN_TTL`, not one per request. A key
/// created just after a refused try works once this has passed.
pub const UNKNOWN_TTL: Duration = Duration::from_secs(5);

/// At most this many unknown ids are remembered (a flood of distinct
/// ids must not grow memory without bound).
const UNKNOWN_MAX: usize = 10_000;

struct Entry {
    key: Arc<KeyInfo>,
    /// When `key` was looked up.
    at: Instant,
    /// When a refusal last looked the key up again.
    rechecked: Option<Instant>,
    /// Buckets a refusal found existing and out of the key's reach, and
    /// when: within `RECHECK_EVERY` they are refused without asking.
    refused: HashMap<String, Instant>,
}

/// Entries younger than `TTL`, by access key id; and ids found unknown,
/// with when.
#[derive(Default)]
struct Cache(HashMap<String, Entry>, HashMap<String, Instant>);

fn within(since: Instant, now: Instant, span: Duration) -> bool {
    now.saturating_duration_since(since) < span
}

impl Cache {
    fn fresh(&self, id: &str, now: Instant) -> Option<Arc<KeyInfo>> {
        let e = self.0.get(id)?;
        within(e.at, now, TTL).then(|| e.key.clone())
    }

    /// Stores a lookup; what refusals remembered stays (it expires alone).
    fn put(&mut self, id: String, key: Arc<KeyInfo>, now: Instant) {
        self.0.retain(|_, e| within(e.at, now, TTL));
        self.1.remove(&id);
        match self.0.get_mut(&id) {
            Some(e) => {
                e.key = key;
                e.at = now;
            }
            None => {
                let e = Entry {
                    key,
                    at: now,
                    rechecked: None,
                    refused: HashMap::new(),
                };
                self.0.insert(id, e);
            }
        }
    }

    /// Whether a refusal may look the key up again now (and if so, the
    /// next may only `RECHECK_EVERY` later). A key not cached: yes.
    fn claim_recheck(&mut self, id: &str, now: Instant) -> bool {
        let Some(e) = self.0.get_mut(id) else {
            return true;
        };
        if e.rechecked.is_some_and(|t| within(t, now, RECHECK_EVERY)) {
            return false;
        }
        e.rechecked = Some(now);
        true
    }

    fn known_unknown(&self, id: &str, now: Instant) -> bool {
        self.1.get(id).is_some_and(|t| within(*t, now, UNKNOWN_TTL))
    }

    /// Remembers that the meta tier did not know `id` (or knew it disabled).
    fn put_unknown(&mut self, id: &str, now: Instant) {
        self.0.remove(id);
        if self.1.len() >= UNKNOWN_MAX {
            self.1.retain(|_, t| within(*t, now, UNKNOWN_TTL));
        }
        if self.1.len() < UNKNOWN_MAX {
            self.1.insert(id.to_string(), now);
        }
    }

    fn refused_recently(&self, id: &str, bucket: &str, now: Instant) -> bool {
        self.0
            .get(id)
            .and_then(|e| e.refused.get(bucket))
            .is_some_and(|t| within(*t, now, RECHECK_EVERY))
    }

    fn remember_refused(&mut self, id: &str, bucket: &str, now: Instant) {
        let Some(e) = self.0.get_mut(id) else {
            return;
        };
        if e.refused.len() >= REFUSED_MAX {
            e.refused.retain(|_, t| within(*t, now, RECHECK_EVERY));
        }
        if e.refused.len() < REFUSED_MAX || e.refused.contains_key(bucket) {
            e.refused.insert(bucket.to_string(), now);
        }
    }
}

/// The access keys this gateway has looked up recently.
pub struct Keys {
    meta: Arc<MetaTier>,
    keyring: Arc<Keyring>,
    cache: Mutex<Cache>,
}

impl Keys {
    pub fn new(meta: Arc<MetaTier>, keyring: Arc<Keyring>) -> Self {
        Self {
            meta,
            keyring,
            cache: Mutex::default(),
        }
    }

    /// The key, from the cache if it is younger than `TTL`.
    pub async fn get(&self, id: &str) -> S3Result<Arc<KeyInfo>> {
        Ok(self.lookup(id).await?.0)
    }

    /// [`Self::get`], and whether the key was looked up just now.
    pub async fn lookup(&self, id: &str) -> S3Result<(Arc<KeyInfo>, bool)> {
        let cached = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.fresh(id, Instant::now()));
        match cached {
            Some(k) => Ok((k, false)),
            None => Ok((self.refresh(id).await?, true)),
        }
    }

    /// The key looked up again for a refusal, at most once per
    /// `RECHECK_EVERY` per key (None: not now, the cached key stands).
    pub async fn recheck(&self, id: &str) -> S3Result<Option<Arc<KeyInfo>>> {
        let claimed = self
            .cache
            .lock()
            .map_or(true, |mut c| c.claim_recheck(id, Instant::now()));
        if !claimed {
            return Ok(None);
        }
        Ok(Some(self.refresh(id).await?))
    }

    /// Counts a lookup just made for a refused request as the key's
    /// recheck (the next one only `RECHECK_EVERY` later).
    pub fn rechecked(&self, id: &str) {
        if let Ok(mut c) = self.cache.lock() {
            c.claim_recheck(id, Instant::now());
        }
    }

    /// Whether a refusal found `bucket` existing and out of the key's
    /// reach less than `RECHECK_EVERY` ago.
    pub fn refused_recently(&self, id: &str, bucket: &str) -> bool {
        self.cache
            .lock()
            .is_ok_and(|c| c.refused_recently(id, bucket, Instant::now()))
    }

    /// Remembers that `bucket` exists and the key may not do what it asked.
    pub fn remember_refused(&self, id: &str, bucket: &str) {
        if let Ok(mut c) = self.cache.lock() {
            c.remember_refused(id, bucket, Instant::now());
        }
    }

    /// The key as the meta tier has it now (the cache is updated).
    /// Unknown or disabled: InvalidAccessKeyId, remembered for
    /// `UNKNOWN_TTL` (no lookup meanwhile).
    pub async fn refresh(&self, id: &str) -> S3Result<Arc<KeyInfo>> {
        if self
            .cache
            .lock()
            .is_ok_and(|c| c.known_unknown(id, Instant::now()))
        {
            return Err(s3_error!(InvalidAccessKeyId));
        }
        let found = crate::meta_call!(
            self.meta,
            lookup_access_key,
            pb::LookupAccessKeyRequest {
                access_key_id: id.to_string(),
            }
        )
        .await;
        let key = match found {
            Ok(k) if k.enabled => k,
            Ok(_) => return Err(self.unknown(id)),
            Err(e) if e.code() == Some(ErrorCode::NoSuchAccessKey) => return Err(self.unknown(id)),
            Err(e) => return Err(e.into()),
        };
        let secret = self.open(&key)?;
        let info = Arc::new(KeyInfo::new(&key, secret));
        if let Ok(mut cache) = self.cache.lock() {
            cache.put(id.to_string(), info.clone(), Instant::now());
        }
        Ok(info)
    }

    /// InvalidAccessKeyId, remembered for `UNKNOWN_TTL`.
    fn unknown(&self, id: &str) -> s3s::S3Error {
        if let Ok(mut c) = self.cache.lock() {
            c.put_unknown(id, Instant::now());
        }
        s3_error!(InvalidAccessKeyId)
    }

    /// The key's secret, unsealed by the master key it names.
    fn open(&self, key: &pb::LookupAccessKeyResponse) -> S3Result<SecretKey> {
        // Sealed by the key it names; "" (before any rotation): the current.
        let kek = if key.kek_fingerprint.is_empty() {
            Some(self.keyring.current())
        } else {
            self.keyring.get(&key.kek_fingerprint)
        };
        let Some(kek) = kek else {
            tracing::error!(access_key_id = %key.access_key_id, sealed_by = %key.kek_fingerprint,
                this_gateway = %self.keyring.describe(),
                "split key: an access key's secret is sealed by a master key this gateway does not hold");
            return Err(s3_error!(
                ServiceUnavailable,
                "this gateway does not hold master key {}",
                key.kek_fingerprint
            ));
        };
        let secret = open_secret(&kek, &key.access_key_id, &key.sealed_secret).map_err(|_| {
            tracing::error!(access_key_id = %key.access_key_id, sealed_by = %kek.fingerprint(),
                "cannot open an access key's secret");
            s3_error!(InternalError)
        })?;
        Ok(SecretKey::from(secret.as_str()))
    }
}

/// SigV4 secrets for s3s, from the shared cache.
pub struct Auth {
    keys: Arc<Keys>,
}

impl Auth {
    pub fn new(keys: Arc<Keys>) -> Self {
        Self { keys }
    }
}

#[async_trait::async_trait]
impl S3Auth for Auth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        Ok(self.keys.get(access_key).await?.secret.clone())
    }
}

#[cfg(test)]
mod unknown;

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(bucket: &str, read: bool, write: bool, owner: bool) -> pb::BucketGrant {
        pb::BucketGrant {
            bucket: bucket.into(),
            access_key_id: "AK".into(),
            read,
            write,
            owner,
        }
    }

    fn info(grants: Vec<pb::BucketGrant>, name: &str) -> KeyInfo {
        let k = pb::LookupAccessKeyResponse {
            access_key_id: "AK".into(),
            name: name.into(),
            enabled: true,
            can_create_bucket: true,
            grants,
            ..Default::default()
        };
        KeyInfo::new(&k, SecretKey::from("s"))
    }

    #[test]
    fn grants_become_rights_and_owner_implies_both() {
        let k = info(
            vec![
                grant("mine", true, true, true),
                grant("ro", true, false, false),
                grant("drop", false, true, false),
            ],
            "backup",
        );
        assert!(k.on("mine").can_read() && k.on("mine").can_write() && k.on("mine").owner);
        assert!(k.on("ro").can_read() && !k.on("ro").can_write() && !k.on("ro").owner);
        assert!(!k.on("drop").can_read() && k.on("drop").can_write());
        assert_eq!(k.on("other"), Rights::default());
        // An owner row alone (no read/write flags) still reads and writes.
        let k = info(vec![grant("o", false, false, true)], "");
        assert!(k.on("o").can_read() && k.on("o").can_write());
        assert_eq!(k.display_name, "AK");
        assert_eq!(info(vec![], "backup").display_name, "backup");
    }

    #[test]
    fn an_entry_is_served_for_ttl_only() {
        let mut c = Cache::default();
        let t0 = Instant::now();
        c.put("AK".into(), Arc::new(info(vec![], "")), t0);
        assert!(c.fresh("AK", t0 + TTL - Duration::from_millis(1)).is_some());
        assert!(c.fresh("AK", t0 + TTL).is_none());
        assert!(c.fresh("OTHER", t0).is_none());
        // Stale entries go when another is stored.
        c.put("B".into(), Arc::new(info(vec![], "")), t0 + TTL);
        assert_eq!(c.0.len(), 1);
    }

    #[test]
    fn a_refusal_rechecks_a_key_at_most_once_a_second() {
        let mut c = Cache::default();
        let t0 = Instant::now();
        c.put("AK".into(), Arc::new(info(vec![], "")), t0);
        assert!(c.claim_recheck("AK", t0));
        // Not again within the second, however often asked.
        for ms in [0, 1, 500, 999] {
            assert!(!c.claim_recheck("AK", t0 + Duration::from_millis(ms)));
        }
        // Another key has its own allowance.
        c.put("B".into(), Arc::new(info(vec![], "")), t0);
        assert!(c.claim_recheck("B", t0 + Duration::from_millis(10)));
        // The lookup the recheck stores keeps the limit.
        c.put(
            "AK".into(),
            Arc::new(info(vec![], "")),
            t0 + Duration::from_millis(20),
        );
        assert!(!c.claim_recheck("AK", t0 + Duration::from_millis(30)));
        assert!(c.claim_recheck("AK", t0 + RECHECK_EVERY));
        assert!(!c.claim_recheck("AK", t0 + RECHECK_EVERY + Duration::from_millis(1)));
        // A key not cached (nothing to remember it by): yes.
        assert!(c.claim_recheck("NEW", t0));
    }

    #[test]
    fn a_refused_bucket_is_remembered_for_a_second_per_key() {
        let mut c = Cache::default();
        let t0 = Instant::now();
        c.put("AK".into(), Arc::new(info(vec![], "")), t0);
        c.put("B".into(), Arc::new(info(vec![], "")), t0);
        assert!(!c.refused_recently("AK", "theirs", t0));
        c.remember_refused("AK", "theirs", t0);
        let soon = t0 + Duration::from_millis(999);
        assert!(c.refused_recently("AK", "theirs", soon));
        assert!(!c.refused_recently("AK", "other", soon));
        assert!(!c.refused_recently("B", "theirs", soon));
        assert!(!c.refused_recently("AK", "theirs", t0 + RECHECK_EVERY));
        // Bounded: past REFUSED_MAX, expired names make room, live ones stay.
        for i in 0..REFUSED_MAX {
            c.remember_refused("AK", &format!("b{i}"), t0);
        }
        c.remember_refused("AK", "late", soon);
        assert!(!c.refused_recently("AK", "late", soon));
        let later = t0 + RECHECK_EVERY;
        c.remember_refused("AK", "late", later);
        assert!(c.refused_recently("AK", "late", later));
        assert_eq!(c.0.get("AK").map(|e| e.refused.len()), Some(1));
    }
}
