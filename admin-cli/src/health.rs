//! `hamster health --addr HOST:PORT`: who a node is, what it trusts, and
//! when its certificate expires. Exit status 0 only if it answered.

use std::time::Duration;

use anyhow::Context;
use hamster_proto::pb::{HealthRequest, node_client::NodeClient};

use crate::conn::AdminConn;

#[derive(Debug, clap::Args)]
pub struct HealthArgs {
    #[command(flatten)]
    pub conn: AdminConn,
    /// Node address (host:port of its gRPC listener).
    #[arg(long, env = "HAMSTER_ADDR")]
    pub addr: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Ask with a node's own certificate (any role) instead of the admin
    /// one: what container health checks use.
    #[arg(long)]
    pub as_node: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 5)]
    pub timeout: u64,
}

pub async fn run(a: &HealthArgs) -> anyhow::Result<()> {
    let channel = if a.as_node {
        a.conn.channel_as_any_role(&a.addr)?
    } else {
        a.conn.channel(&a.addr)?
    };
    let mut client = NodeClient::new(channel);
    let resp = tokio::time::timeout(
        Duration::from_secs(a.timeout),
        client.health(HealthRequest {}),
    )
    .await
    .with_context(|| format!("{} did not answer within {}s", a.addr, a.timeout))?
    .with_context(|| format!("health call to {}", a.addr))?
    .into_inner();
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "role": resp.role,
                "node_id": resp.node_id,
                "version": resp.version,
                "trusted_ca_fingerprints": resp.trusted_ca_fingerprints,
                "issuer_fingerprint": resp.issuer_fingerprint,
                "cert_expires_in_secs": resp.cert_expires_in_secs,
            })
        );
    } else {
        println!("node      {}/{} ({})", resp.role, resp.node_id, a.addr);
        println!("version   {}", resp.version);
        println!("issuer    {}", resp.issuer_fingerprint);
        for fp in &resp.trusted_ca_fingerprints {
            println!("trusts    {fp}");
        }
        println!(
            "cert      expires in {} days",
            resp.cert_expires_in_secs / 86_400
        );
    }
    Ok(())
}
