//! SigV4 secrets for s3s: looked up in the meta tier by access key id,
//! unsealed with the master key in memory (ADR 0007), cached briefly so
//! a busy client does not cost a meta round trip per request. A deleted
//! or disabled key stops working within `TTL`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hamster_proto::ErrorCode;
use hamster_proto::envelope::open_secret;
use hamster_proto::keyring::Keyring;
use hamster_proto::pb;
use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Result, s3_error};

use crate::meta::MetaTier;

const TTL: Duration = Duration::from_secs(10);

pub struct Auth {
    meta: Arc<MetaTier>,
    keys: Arc<Keyring>,
    cache: Mutex<HashMap<String, (SecretKey, Instant)>>,
}

impl Auth {
    pub fn new(meta: Arc<MetaTier>, keys: Arc<Keyring>) -> Self {
        Self {
            meta,
            keys,
            cache: Mutex::default(),
        }
    }

    fn cached(&self, id: &str) -> Option<SecretKey> {
        let cache = self.cache.lock().ok()?;
        let (secret, at) = cache.get(id)?;
        (at.elapsed() < TTL).then(|| secret.clone())
    }
}

#[async_trait::async_trait]
impl S3Auth for Auth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        if let Some(s) = self.cached(access_key) {
            return Ok(s);
        }
        let found = crate::meta_call!(
            self.meta,
            lookup_access_key,
            pb::LookupAccessKeyRequest {
                access_key_id: access_key.to_string(),
            }
        )
        .await;
        let key = match found {
            Ok(k) if k.enabled => k,
            Ok(_) => return Err(s3_error!(InvalidAccessKeyId)),
            Err(e) if e.code() == Some(ErrorCode::NoSuchAccessKey) => {
                return Err(s3_error!(InvalidAccessKeyId));
            }
            Err(e) => return Err(e.into()),
        };
        // Sealed by the key it names; "" (before any rotation): the current.
        let kek = if key.kek_fingerprint.is_empty() {
            Some(self.keys.current())
        } else {
            self.keys.get(&key.kek_fingerprint)
        };
        let Some(kek) = kek else {
            tracing::error!(access_key_id = %key.access_key_id, sealed_by = %key.kek_fingerprint,
                this_gateway = %self.keys.describe(),
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
        let secret = SecretKey::from(secret.as_str());
        if let Ok(mut cache) = self.cache.lock() {
            cache.retain(|_, (_, at)| at.elapsed() < TTL);
            cache.insert(key.access_key_id, (secret.clone(), Instant::now()));
        }
        Ok(secret)
    }
}
