//! Unknown access key ids are remembered for `UNKNOWN_TTL`: a client
//! repeating random ids costs one LookupAccessKey per id, not one per
//! request (issue 20 item 4d). Against a fake `Meta` service that counts.

use std::sync::atomic::{AtomicUsize, Ordering};

use hamster_proto::envelope::seal_secret;
use hamster_proto::secrets::MasterKey;
use tonic::Status;

use super::*;
use crate::meta::fake::{self, framed};

const KNOWN: &str = "AKKNOWN";
const DISABLED: &str = "AKDISABLED";

/// Keys over a fake meta tier knowing `KNOWN` (enabled) and `DISABLED`;
/// and its count of LookupAccessKey calls.
async fn keys() -> (Keys, Arc<AtomicUsize>) {
    let kek = MasterKey::generate();
    let sealed = seal_secret(&kek, KNOWN, "secret");
    let keyring = Arc::new(Keyring::of(kek, None));
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let (addr, channel) = fake::serve(move |path, body| {
        if !path.ends_with("/LookupAccessKey") {
            return Err(Status::unimplemented(path.to_string()));
        }
        counted.fetch_add(1, Ordering::SeqCst);
        let req: pb::LookupAccessKeyRequest =
            prost::Message::decode(body.get(5..).unwrap_or_default())
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let enabled = match req.access_key_id.as_str() {
            KNOWN => true,
            DISABLED => false,
            _ => return Err(ErrorCode::NoSuchAccessKey.status("no such key")),
        };
        Ok(framed(&pb::LookupAccessKeyResponse {
            access_key_id: req.access_key_id.clone(),
            sealed_secret: sealed.clone(),
            enabled,
            ..Default::default()
        }))
    })
    .await;
    let meta = Arc::new(MetaTier::over(vec![addr], vec![channel]));
    (Keys::new(meta, keyring), calls)
}

fn code(r: S3Result<Arc<KeyInfo>>) -> String {
    match r {
        Ok(_) => String::new(),
        Err(e) => e.code().as_str().to_string(),
    }
}

#[tokio::test]
async fn an_unknown_id_costs_one_lookup_per_ttl() {
    let (keys, calls) = keys().await;
    for _ in 0..100 {
        assert_eq!(code(keys.get("AKRANDOM1").await), "InvalidAccessKeyId");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // A refusal's recheck does not ask again either.
    assert_eq!(
        keys.recheck("AKRANDOM1")
            .await
            .err()
            .map(|e| e.code().clone()),
        Some(s3s::S3ErrorCode::InvalidAccessKeyId)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Each other id is asked once.
    for _ in 0..10 {
        assert_eq!(code(keys.get("AKRANDOM2").await), "InvalidAccessKeyId");
        assert_eq!(code(keys.get(DISABLED).await), "InvalidAccessKeyId");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // A known key is unaffected.
    assert_eq!(code(keys.get(KNOWN).await), "");
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[test]
fn unknown_ids_expire_and_stay_bounded() {
    let mut c = Cache::default();
    let t0 = Instant::now();
    c.put_unknown("X", t0);
    assert!(c.known_unknown("X", t0 + UNKNOWN_TTL - Duration::from_millis(1)));
    assert!(!c.known_unknown("X", t0 + UNKNOWN_TTL));
    assert!(!c.known_unknown("Y", t0));
    // A key found after all (created meanwhile) replaces the mark.
    let found = KeyInfo::new(
        &pb::LookupAccessKeyResponse::default(),
        SecretKey::from("s"),
    );
    c.put("X".into(), Arc::new(found), t0);
    assert!(!c.known_unknown("X", t0));
    // A flood of ids: at most UNKNOWN_MAX kept; expired ones make room.
    for i in 0..UNKNOWN_MAX + 10 {
        c.put_unknown(&format!("id{i}"), t0);
    }
    assert_eq!(c.1.len(), UNKNOWN_MAX);
    c.put_unknown("late", t0 + UNKNOWN_TTL);
    assert_eq!(c.1.len(), 1);
    assert!(c.known_unknown("late", t0 + UNKNOWN_TTL));
}
