//! Steps 2 to 4: `hamster backup` under an S3 write load (every write
//! acknowledged before the call is in it, none fails), the file's format
//! checked by hand, no secret in it, and the refusals of a restore: a
//! corrupt, truncated or foreign-key file changes nothing.

use std::path::Path;

use hamster_tests::backup::{AckedLoad, contains, leaked};
use hamster_tests::path_str;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::*;

const MAGIC: &[u8; 8] = b"HAMSTRBK";

/// The file's header, checked against the format: magic, length, JSON
/// header, a body of `db_bytes`, and a SHA-256 trailer over the rest.
fn read_header(bytes: &[u8]) -> Result<(Value, usize), String> {
    if bytes.len() < 12 + 32 || &bytes[..8] != MAGIC {
        return Err("no HAMSTRBK magic".into());
    }
    let mut len = [0u8; 4];
    len.copy_from_slice(&bytes[8..12]);
    let h = u32::from_be_bytes(len) as usize;
    let header: Value = serde_json::from_slice(&bytes[12..12 + h])
        .map_err(|e| format!("header is not JSON: {e}"))?;
    let body = header["db_bytes"].as_u64().ok_or("no db_bytes")? as usize;
    let end = 12 + h + body;
    if bytes.len() != end + 32 {
        return Err(format!(
            "{} bytes, not magic + header {h} + body {body} + trailer 32",
            bytes.len()
        ));
    }
    if Sha256::digest(&bytes[..end]).as_slice() != &bytes[end..] {
        return Err("the trailer is not the SHA-256 of the rest".into());
    }
    Ok((header, 12 + h))
}

/// Step 2: a background PUT load runs before, during and after `hamster
/// backup`; every write acknowledged before the call started is in the
/// backup (checked after the restore), none after it answered is.
pub async fn under_load(w: &mut World) {
    let file = w.s.c.root().join("meta.backup");
    let load = AckedLoad::start(&w.c, "load", "w", 3);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let started = Instant::now();
    let run =
        w.s.c
            .admin_cli_bg(&["backup", "--out", path_str(&file), "--json"])
            .await
            .expect("backup task");
    let answered = Instant::now();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let report = load.stop().await;
    assert!(run.ok(), "hamster backup: {run}");
    assert_eq!(report.failed, 0, "writes failed: {:?}", report.errors);
    let json = run.json().expect("backup --json");
    let took = answered - started;
    let bytes = std::fs::metadata(&file).expect("backup file").len();
    eprintln!("backup: {bytes} bytes in {took:.2?}: {json}");

    let raw = std::fs::read(&file).expect("read backup");
    let (header, _) = read_header(&raw).expect("the backup file's format");
    let raft_index = header["raft_index"].as_u64().expect("raft_index");
    assert_eq!(json["raft_index"].as_u64(), Some(raft_index), "{json}");
    assert_eq!(json["bytes"].as_u64(), Some(bytes), "{json}");
    assert_eq!(header["format"], 1, "{header}");
    let kek = w.s.c.kek_fingerprint();
    assert!(
        header["key_fingerprints"]
            .as_array()
            .is_some_and(|a| a.iter().any(|f| f == &kek)),
        "the header does not name the master key {kek}: {header}"
    );
    assert_eq!(header["write_key"], kek.as_str(), "{header}");
    assert!(
        header["cluster_id"].as_str().is_some_and(|c| !c.is_empty()),
        "{header}"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&file).expect("meta").permissions(),
    );
    assert_eq!(
        mode & 0o077,
        0,
        "the backup is readable by others: {mode:o}"
    );
    assert!(
        !w.s.c.root().join("meta.backup.partial").exists(),
        "the partial file was left behind"
    );

    let (before, rest): (Vec<Acked>, Vec<Acked>) =
        report.acked.into_iter().partition(|a| a.acked < started);
    let (after, during): (Vec<Acked>, Vec<Acked>) =
        rest.into_iter().partition(|a| a.acked > answered);
    eprintln!(
        "load: {} writes acknowledged before the backup, {} during, {} after",
        before.len(),
        during.len(),
        after.len()
    );
    assert!(
        !before.is_empty(),
        "no write was acknowledged before the backup"
    );
    let versions = header["versions"].as_u64().unwrap_or(0);
    let at_least = (w.objects.len() + w.locked.versions.len() + before.len()) as u64;
    assert!(
        versions >= at_least,
        "the header counts {versions} versions, {at_least} were acknowledged"
    );
    w.before = before;
    w.during = during;
    w.after = after;
    w.backup = Some(Backup { file, raft_index });
}

/// Step 3: no master key, CA key, node key or S3 secret in the file, in
/// any form; the access key's id is (so the search reads real rows).
pub async fn no_secrets(w: &World) {
    let b = w.backup.as_ref().expect("a backup");
    let raw = std::fs::read(&b.file).expect("read backup");
    let needles = w.s.c.secret_needles(&[&w.s.secret]);
    let scalars = needles
        .iter()
        .filter(|(n, _)| n.ends_with("(private scalar)"))
        .count();
    // The CA's, the admin's, and at least one node's.
    assert!(scalars >= 3, "private scalars found in {scalars} keys only");
    let found = leaked(&raw, &needles);
    assert!(found.is_empty(), "the backup holds {found:?}");
    assert!(
        contains(&raw, w.s.access_key_id.as_bytes()),
        "the access key's id is not in the backup: the search proves nothing"
    );
}

/// Step 4: a restore of a file with a flipped body byte, of a truncated
/// one, and with a master key the backup is not under, each refused
/// naming why; the target stays empty and nothing appears beside it.
pub async fn refusals(w: &World) {
    let b = w.backup.as_ref().expect("a backup");
    let root = w.s.c.root().join("refused");
    let target = root.join("data");
    std::fs::create_dir_all(&target).expect("target");
    let raw = std::fs::read(&b.file).expect("read backup");
    let (header, body_at) = read_header(&raw).expect("format");
    let body = header["db_bytes"].as_u64().expect("db_bytes") as usize;

    let mut flipped = raw.clone();
    flipped[body_at + body / 2] ^= 0x40;
    let corrupt = w.s.c.root().join("corrupt.backup");
    std::fs::write(&corrupt, &flipped).expect("write");
    let truncated = w.s.c.root().join("truncated.backup");
    std::fs::write(&truncated, &raw[..raw.len() / 2]).expect("write");

    let meta = w.s.metas[0];
    let args = w.s.c.restore_target(meta, &target);
    for (file, why) in [(&corrupt, "checksum"), (&truncated, "truncated")] {
        refused(w, file, &args, why, &root);
    }

    let other = w.s.c.root().join("other.key");
    let run = w.s.c.cli(&["keygen", "--out", path_str(&other)]);
    assert!(run.ok(), "keygen: {run}");
    let mut foreign: Vec<String> = args
        .iter()
        .filter(|a| !a.starts_with("--master-key-file="))
        .cloned()
        .collect();
    foreign.push(format!("--master-key-file={}", path_str(&other)));
    let kek = w.s.c.kek_fingerprint();
    refused(w, &b.file, &foreign, &kek, &root);

    // --check of the good file passes and writes nothing either.
    let mut check = vec!["restore", "--check", "--from", path_str(&b.file)];
    check.extend(args.iter().map(String::as_str));
    let run = w.s.c.cli(&check);
    assert!(run.ok(), "restore --check of a good backup: {run}");
    assert_untouched(&root, "restore --check");
}

/// `hamster restore --from FILE ARGS` exits non-zero, its output names
/// `why`, and `root` holds only its empty data dir.
fn refused(w: &World, file: &Path, args: &[String], why: &str, root: &Path) {
    let mut cmd = vec!["restore", "--from", path_str(file)];
    cmd.extend(args.iter().map(String::as_str));
    let run = w.s.c.cli(&cmd);
    assert!(
        !run.ok(),
        "restore of {} was not refused: {run}",
        file.display()
    );
    let said = format!("{}{}", run.stdout, run.stderr).to_lowercase();
    assert!(
        said.contains(&why.to_lowercase()),
        "the refusal of {} does not say {why:?}: {run}",
        file.display()
    );
    assert_untouched(root, &format!("a refused restore of {}", file.display()));
}

/// `root` holds exactly one entry, its empty `data` dir.
fn assert_untouched(root: &Path, what: &str) {
    let names: Vec<String> = std::fs::read_dir(root)
        .expect("read root")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["data"], "{what} left files beside the target");
    let inside = std::fs::read_dir(root.join("data"))
        .expect("read target")
        .count();
    assert_eq!(inside, 0, "{what} wrote into the target");
}
