//! This gateway's key reports: every few seconds it tells the meta tier
//! which master keys it holds (fingerprints only), so `hamster rotate-key`
//! can see that every live gateway has the next key before any write
//! uses it.

use std::sync::Arc;
use std::time::Duration;

use hamster_proto::keyring::Keyring;
use hamster_proto::pb;
use hamster_proto::pb::registry_client::RegistryClient;

use crate::meta::MetaTier;

const EVERY: Duration = Duration::from_secs(5);

pub fn spawn_reports(meta: Arc<MetaTier>, keys: Arc<Keyring>) {
    tokio::spawn(async move {
        loop {
            let (current, next) = keys.fingerprints();
            let report = pb::ReportKeysRequest {
                current_kek_fingerprint: current,
                next_kek_fingerprint: next.unwrap_or_default(),
            };
            let sent = meta
                .call(|ch| {
                    let report = report.clone();
                    async move { RegistryClient::new(ch).report_keys(report).await }
                })
                .await;
            match sent {
                Ok(r)
                    if keys.get(&r.write_kek_fingerprint).is_none()
                        && !r.write_kek_fingerprint.is_empty() =>
                {
                    tracing::error!(cluster_write_key = %r.write_kek_fingerprint, this_gateway = %keys.describe(),
                        "split key: this gateway does not hold the cluster's write key; writes are refused");
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "key report not sent"),
            }
            tokio::time::sleep(EVERY).await;
        }
    });
}
