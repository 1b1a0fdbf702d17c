//! `hamster`, the operator's tool. One module per command group:
//!
//! - [`init`]: `hamster init` — a new cluster's CA, admin certificate,
//!   and master key.
//! - [`cert`]: `hamster cert request|sign` — a node's key and CSR, and
//!   signing a CSR with the CA key.
//! - [`keygen`]: `hamster keygen` — a new master key file.
//! - [`health`]: `hamster health` — ask any node over mTLS who it is.
//! - [`status`]: `hamster status` — the meta tier: leader, indexes, members.
//! - [`key`]: `hamster key create|list|delete` — S3 access keys.
//! - [`bucket`]: `hamster bucket list|info|create|delete|allow|deny|set|defaults|adopt`
//!   — buckets, their owners, grants and retention limits, under S3's rules.
//! - [`member`]: `hamster member add|remove` — meta tier membership.
//! - [`compose`]: `hamster compose init|bootstrap` — compose.yaml's one-shot steps.
//! - [`dev`]: `hamster dev` — a whole cluster as local processes.
//! - [`profile`]: `hamster profile set|default` — the erasure profile.
//! - [`token`]: `hamster token create` — join tokens for new nodes.
//! - [`rotate`]: `hamster rotate-key` — master-key rotation, followed to the end.
//! - [`rotate_ca`]: `hamster rotate-ca` — CA rotation by dual trust, followed to the end.
//! - [`repair`]: `hamster repair` — scrub every shard now, follow repair to the end.
//! - [`blob`]: `hamster blob list|drain|undrain|remove|replace|rebalance` —
//!   a blob-server's life: drain, retire, replace, fill new ones.
//! - [`backup`]: `hamster backup` — the metadata, streamed to a file.
//! - [`restore`]: `hamster restore` — a new meta tier from a backup.
//! - [`orphans`]: `hamster orphans list|release` — shards held since a restore.
//! - [`conn`]: the admin identity and how to reach the cluster.

pub mod backup;
pub mod blob;
pub mod bucket;
pub mod cert;
pub mod compose;
pub mod conn;
pub mod dev;
pub mod health;
pub mod init;
pub mod key;
pub mod keygen;
pub mod member;
pub mod orphans;
pub mod profile;
pub mod repair;
pub mod restore;
pub mod rotate;
pub mod rotate_ca;
pub mod status;
pub mod token;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "hamster", version, about = "Operate a Hamster cluster")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new cluster's CA, admin certificate and master key.
    Init(init::InitArgs),
    /// Node certificates: make a key and CSR, or sign a CSR with the CA.
    #[command(subcommand)]
    Cert(cert::CertCommand),
    /// Write a new 32-byte master key file (mode 0600).
    Keygen(keygen::KeygenArgs),
    /// compose.yaml's one-shot steps (init before, bootstrap after the meta tier).
    #[command(subcommand)]
    Compose(compose::ComposeCommand),
    /// Run a whole cluster as local processes (3 meta, 6 blob, 1 gateway).
    Dev(dev::DevArgs),
    /// Ask a node who it is and what it trusts.
    Health(health::HealthArgs),
    /// The meta tier: leader, term, indexes, each member's health.
    Status(status::StatusArgs),
    /// S3 access keys: create (secret shown once), list, delete.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Buckets: list, inspect, create, delete; owners, grants, retention limits.
    #[command(subcommand)]
    Bucket(bucket::BucketCommand),
    /// The erasure profile for new objects.
    #[command(subcommand)]
    Profile(profile::ProfileCommand),
    /// Join tokens for new blob-servers and gateways.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Rotate the master key: rewrap every data key to the next key.
    RotateKey(rotate::RotateKeyArgs),
    /// Rotate the cluster CA: trust both, reissue every member, drop the old.
    RotateCa(rotate_ca::RotateCaArgs),
    /// Add or remove a meta-server.
    #[command(subcommand)]
    Member(member::MemberCommand),
    /// Scrub every shard now and follow repair until all is redundant again.
    Repair(repair::RepairArgs),
    /// Blob-servers: list, drain, undrain, remove, replace, rebalance.
    #[command(subcommand)]
    Blob(blob::BlobCommand),
    /// Back up the metadata (at a committed index) to a file.
    Backup(backup::BackupArgs),
    /// Build a new meta tier from a backup (offline; see the runbook).
    Restore(restore::RestoreArgs),
    /// Shards held since a restore: list them, release them to the sweep.
    #[command(subcommand)]
    Orphans(orphans::OrphansCommand),
}

/// A failure with its own exit status (the message is printed as usual):
/// lets a command say "unrecoverable" (1) apart from "timed out" (2).
#[derive(Debug)]
pub struct Exit {
    pub code: u8,
    pub message: String,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init(a) => init::run(&a),
        Command::Cert(c) => cert::run(&c),
        Command::Keygen(a) => keygen::run(&a),
        Command::Dev(a) => dev::run(&a).await,
        Command::Compose(c) => compose::run(&c).await,
        Command::Health(a) => health::run(&a).await,
        Command::Status(a) => status::run(&a).await,
        Command::Key(c) => key::run(&c).await,
        Command::Bucket(c) => bucket::run(&c).await,
        Command::Member(c) => member::run(&c).await,
        Command::Token(c) => token::run(&c).await,
        Command::Profile(c) => profile::run(&c).await,
        Command::RotateKey(a) => rotate::run(&a).await,
        Command::RotateCa(a) => rotate_ca::run(&a).await,
        Command::Repair(a) => repair::run(&a).await,
        Command::Blob(c) => blob::run(&c).await,
        Command::Backup(a) => backup::run(&a).await,
        Command::Restore(a) => restore::run(&a).await,
        Command::Orphans(c) => orphans::run(&c).await,
    }
}
