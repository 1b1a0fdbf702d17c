//! `hamster restore` refusing, as an operator runs it: the real binary on
//! files made to order. Each refusal must exit non-zero, say why, and
//! leave every file where it was. Restores that go through are tested
//! with real clusters in tests/ (backup.rs, dev.rs).

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use hamster_admin::dev::topology::{MetaEntry, Topology, VERSION};

/// A dev dir: PKI, master key, meta-1's node files, and a topology whose
/// one meta-server listens at `addr` with an old data dir holding state.
struct Dev {
    tmp: tempfile::TempDir,
    key: String,
    ca: String,
}

impl Dev {
    fn new(addr: &str) -> Self {
        let tmp = tempfile::tempdir().expect("tmp");
        let d = tmp.path();
        let (key, ca) = common::cluster(d);
        let node = d.join("nodes/meta-1");
        let data = d.join("data/meta-1");
        std::fs::create_dir_all(&data).expect("mkdir");
        std::fs::write(data.join("state.db"), b"the old state").expect("write");
        Topology {
            version: VERSION,
            metas: vec![MetaEntry {
                raft_id: 1,
                name: "meta-1".into(),
                addr: addr.into(),
                data_dir: data,
                tls_cert: node.join("node.crt"),
                tls_key: node.join("node.key"),
                trust: node.join("trust.pem"),
                metrics_addr: String::new(),
            }],
            blobs: Vec::new(),
            gateways: Vec::new(),
            master_key_file: d.join("pki/master.key"),
            next_master_key_file: d.join("pki/master.next.key"),
            pki_dir: d.join("pki"),
        }
        .write(d)
        .expect("topology");
        Self { tmp, key, ca }
    }

    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// Writes a backup file outside the dev dir's tree that is compared.
    fn backup(&self, bytes: &[u8]) -> PathBuf {
        let path = self.dir().join("pki").join("backup.hbk");
        std::fs::write(&path, bytes).expect("write backup");
        path
    }

    /// A backup file made to order around `body`, under this cluster's
    /// master key and CA.
    fn made(&self, body: &[u8]) -> Vec<u8> {
        common::file(&common::header(body, &self.key, &self.ca), body)
    }

    /// A real backup whose write key is `write_key`, written as by
    /// [`Dev::backup`].
    async fn real(&self, write_key: &str) -> PathBuf {
        let real = common::real_backup(&self.dir().join("pki"), write_key).await;
        self.backup(&std::fs::read(&real).expect("read"))
    }

    /// A real backup older than a master-key rotation: the key it was
    /// written under is now the node's next key.
    async fn real_under_next_key(&self) -> PathBuf {
        let old = hamster_proto::secrets::MasterKey::generate();
        old.write_new(&self.dir().join("pki/master.next.key"))
            .expect("next key");
        self.real(&old.fingerprint()).await
    }

    /// The meta-server's flags for the `--data-dir` form.
    fn node_flags(&self, data_dir: &Path) -> Vec<String> {
        self.member_flags(data_dir, 1)
    }

    /// The `--data-dir` flags of meta-`raft_id` (provisioned in
    /// `nodes/meta-ID/`, listening on port 7400 + ID).
    fn member_flags(&self, data_dir: &Path, raft_id: u64) -> Vec<String> {
        let d = self.dir();
        let node = d.join(format!("nodes/meta-{raft_id}"));
        vec![
            format!("--data-dir={}", data_dir.display()),
            format!("--raft-id={raft_id}"),
            format!("--listen=127.0.0.1:{}", 7400 + raft_id),
            format!("--master-key-file={}", d.join("pki/master.key").display()),
            format!("--trust={}", node.join("trust.pem").display()),
            format!("--tls-cert={}", node.join("node.crt").display()),
        ]
    }
}

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").to_string()
}

fn hamster(args: &[String]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hamster"));
    for var in [
        "HAMSTER_MASTER_KEY_FILE",
        "HAMSTER_NEXT_MASTER_KEY_FILE",
        "HAMSTER_TRUST",
        "HAMSTER_TLS_CERT",
        "HAMSTER_INITIAL_MEMBERS",
    ] {
        cmd.env_remove(var);
    }
    cmd.args(args).output().expect("run hamster")
}

fn restore(from: &Path, rest: &[String]) -> Output {
    let mut args = vec!["restore".to_string(), format!("--from={}", from.display())];
    args.extend_from_slice(rest);
    hamster(&args)
}

fn refused(out: &Output, says: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "not refused: {stderr}");
    assert!(stderr.contains(says), "wanted {says:?}: {stderr}");
}

fn dir_flag(dev: &Dev) -> String {
    format!("--dir={}", dev.dir().display())
}

#[test]
fn a_truncated_backup_is_refused_by_check_and_by_restore_and_nothing_is_written() {
    let dev = Dev::new(&free_addr());
    let body = b"not really a database".repeat(50);
    let whole = dev.made(&body);
    let from = dev.backup(&whole[..whole.len() / 2]);
    let target = dev.dir().join("data/meta-9");
    let before = common::snapshot(dev.dir());

    let mut check = dev.node_flags(&target);
    check.push("--check".into());
    refused(&restore(&from, &check), "truncated");
    refused(&restore(&from, &dev.node_flags(&target)), "truncated");
    refused(&restore(&from, &[dir_flag(&dev)]), "truncated");
    assert_eq!(common::snapshot(dev.dir()), before);
}

#[test]
fn a_corrupt_backup_is_refused_and_the_dev_dirs_are_not_moved() {
    let dev = Dev::new(&free_addr());
    let body = b"pages".repeat(100);
    let mut bytes = dev.made(&body);
    let at = bytes.len() - 100;
    bytes[at] ^= 0x40;
    let from = dev.backup(&bytes);
    let before = common::snapshot(dev.dir());
    refused(&restore(&from, &[dir_flag(&dev)]), "checksum");
    refused(
        &restore(&from, &dev.node_flags(&dev.dir().join("data/new"))),
        "checksum",
    );
    refused(&restore(&dev.dir().join("env"), &[dir_flag(&dev)]), "env");
    let mut foreign = bytes.clone();
    foreign[..8].copy_from_slice(b"SQLite f");
    refused(
        &restore(&dev.backup(&foreign), &[dir_flag(&dev)]),
        "not a Hamster backup",
    );
    dev.backup(&bytes);
    assert_eq!(common::snapshot(dev.dir()), before);
}

#[test]
fn a_data_dir_that_holds_state_is_refused_and_left_as_it_was() {
    let dev = Dev::new(&free_addr());
    let body = b"x".repeat(10);
    let from = dev.backup(&dev.made(&body));
    let before = common::snapshot(dev.dir());
    let out = restore(&from, &dev.node_flags(&dev.dir().join("data/meta-1")));
    refused(&out, "already holds a meta-server's state");
    assert_eq!(common::snapshot(dev.dir()), before);
}

#[tokio::test]
async fn a_backup_under_a_master_key_the_node_lacks_is_refused_naming_the_key() {
    let dev = Dev::new(&free_addr());
    let real = common::real_backup(&dev.dir().join("pki"), &dev.key).await;
    let lost = "ab".repeat(32);
    let bytes = common::reheader(&std::fs::read(&real).expect("read"), |h| {
        h.key_fingerprints.push(lost.clone());
    });
    let from = dev.backup(&bytes);
    let before = common::snapshot(dev.dir());
    let out = restore(&from, &[dir_flag(&dev), "--accept-older".into()]);
    refused(&out, &format!("does not hold master key {lost}"));
    refused(&out, &dev.key);
    let mut check = dev.node_flags(&dev.dir().join("data/new"));
    check.push("--check".into());
    refused(&restore(&from, &check), &format!("master key {lost}"));
    assert_eq!(common::snapshot(dev.dir()), before);
}

/// A backup older than a master-key rotation and a blob-server removal:
/// `--check` names both, a restore refuses without `--accept-older`, and
/// with it rebuilds the dev meta dir (the old one kept aside), rewrapped
/// to the current key with the revoked blob-server removed.
#[tokio::test]
async fn an_older_backup_is_refused_without_the_flag_and_restored_with_it() {
    let dev = Dev::new(&free_addr());
    let from = dev.real_under_next_key().await;
    let trust = dev.dir().join("nodes/meta-1/trust.pem");
    std::fs::write(
        hamster_proto::revoke::file_for(&trust),
        "hamster://blob/blob-2\n",
    )
    .expect("revoked");
    let before = common::snapshot(dev.dir());

    let check = restore(&from, &[dir_flag(&dev), "--check".into()]);
    refused(&check, "--accept-older");
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(text.contains("master-key rotation"), "{text}");
    assert!(text.contains("blob-2"), "{text}");
    let refusal = restore(&from, &[dir_flag(&dev)]);
    refused(&refusal, "--accept-older");
    refused(&refusal, "master-key rotation");
    assert_eq!(common::snapshot(dev.dir()), before);

    let out = restore(
        &from,
        &[dir_flag(&dev), "--accept-older".into(), "--json".into()],
    );
    let v = ok(&out);
    assert_eq!(v["raft_index"], 2, "{v}");
    assert_eq!(v["raft_term"], 3, "{v}");
    assert_eq!(v["accepted_older"].as_array().map(Vec::len), Some(2), "{v}");
    let data = dev.dir().join("data/meta-1");
    assert_eq!(v["seeded"][0], data.display().to_string(), "{v}");
    let aside = PathBuf::from(v["moved_aside"][0].as_str().expect("moved aside"));
    assert!(aside.display().to_string().contains("meta-1.pre-restore-"));
    assert_eq!(
        std::fs::read(aside.join("state.db")).expect("old state kept"),
        b"the old state"
    );
    let left = std::fs::read_dir(dev.dir().join("data"))
        .expect("ls")
        .count();
    assert_eq!(left, 2, "only meta-1 and its old dir");

    let db = hamster_meta::raft::state_machine::StateDb::open(&data)
        .await
        .expect("restored state");
    let mut c = db.acquire().await.expect("conn");
    assert_eq!(
        hamster_meta::state::key_rotation::write_key(&mut c)
            .await
            .expect("write key"),
        dev.key
    );
    let removed: Vec<String> = hamster_meta::state::reads::blob_servers(&mut c)
        .await
        .expect("blobs")
        .into_iter()
        .filter(|b| b.lifecycle == hamster_meta::state::model::Lifecycle::Removed)
        .map(|b| b.id)
        .collect();
    assert_eq!(removed, ["blob-2"]);
    drop(c);
    db.close().await;

    // The restored dir is a meta-server's now: not written over.
    refused(
        &restore(&from, &dev.node_flags(&data)),
        "already holds a meta-server's state",
    );
}

/// The one-node form: `--check` passes and writes nothing, then the data
/// dir is seeded and the next steps say how the cluster grows.
#[tokio::test]
async fn one_meta_server_is_restored_into_a_new_data_dir() {
    let dev = Dev::new(&free_addr());
    let from = dev.real(&dev.key).await;
    let target = dev.dir().join("data/meta-4");
    let mut flags = dev.node_flags(&target);
    flags.retain(|f| f != "--raft-id=1");
    flags.push("--raft-id=4".into());
    let before = common::snapshot(dev.dir());

    let mut check = flags.clone();
    check.push("--check".into());
    let out = restore(&from, &check);
    succeeded(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("would go ahead"), "{text}");
    assert!(text.contains("raft index     2 (term 3)"), "{text}");
    assert_eq!(common::snapshot(dev.dir()), before);

    let out = restore(&from, &flags);
    succeeded(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("restored raft index 2 (term 3)"), "{text}");
    assert!(text.contains("hamster member add"), "{text}");
    assert!(text.contains("hamster orphans list"), "{text}");
    // Seeded in a staging dir inside it, renamed in: nothing else is left.
    assert_eq!(data_entries(&target), ["raft-log.db", "state.db"]);
}

#[test]
fn a_dev_restore_is_refused_while_a_meta_server_answers() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dev = Dev::new(&listener.local_addr().expect("addr").to_string());
    let body = b"w".repeat(10);
    let from = dev.backup(&dev.made(&body));
    let before = common::snapshot(dev.dir());
    refused(&restore(&from, &[dir_flag(&dev)]), "stop hamster dev first");
    assert_eq!(common::snapshot(dev.dir()), before);
}

#[test]
fn the_target_forms_are_checked_before_anything_is_read() {
    let dev = Dev::new(&free_addr());
    let from = dev.backup(b"unused");
    let mut both = dev.node_flags(&dev.dir().join("data/x"));
    both.push(dir_flag(&dev));
    assert!(!restore(&from, &both).status.success());
    assert!(!restore(&from, &[]).status.success());
    let mut wrong_id = dev.node_flags(&dev.dir().join("data/x"));
    wrong_id.push("--node-id=meta-7".into());
    refused(&restore(&from, &wrong_id), "not the id in");
    let mut members = dev.node_flags(&dev.dir().join("data/x"));
    members.push("--initial-members=2=meta-2@h:1,3=meta-3@h:2".into());
    refused(&restore(&from, &members), "must include --raft-id 1");
}

fn data_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Asserts that the command succeeded, showing its stderr if not.
fn succeeded(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ok(out: &Output) -> serde_json::Value {
    succeeded(out);
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

/// A `restore --dir` cut short mid-swap: meta-1's old dir was moved aside
/// but the restored one not yet renamed in. `hamster dev` refuses to start
/// on the half-swapped dir; the next restore finishes the swap first (the
/// old dir and the interrupted restore's dir both kept), then restores.
#[tokio::test]
async fn an_interrupted_dev_swap_stops_hamster_dev_and_the_next_restore_finishes_it() {
    use hamster_admin::restore::journal::{self, Swap};
    let dev = Dev::new(&free_addr());
    let from = dev.real(&dev.key).await;
    let data = dev.dir().join("data");
    let swap = Swap {
        data_dir: data.join("meta-1"),
        aside: data.join("meta-1.pre-restore-5"),
        staged: data.join("meta-1.restoring-5"),
    };
    std::fs::rename(&swap.data_dir, &swap.aside).expect("moved aside");
    std::fs::create_dir_all(&swap.staged).expect("mkdir");
    std::fs::write(swap.staged.join("state.db"), b"restored earlier").expect("write");
    journal::write(dev.dir(), std::slice::from_ref(&swap)).expect("journal");
    let before = common::snapshot(dev.dir());

    let out = hamster(&["dev".into(), dir_flag(&dev)]);
    refused(&out, "a restore was interrupted");
    refused(&out, "restore.pending");
    assert_eq!(common::snapshot(dev.dir()), before);

    let out = restore(&from, &[dir_flag(&dev), "--json".into()]);
    let v = ok(&out);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("finished the swap"), "{said}");
    assert!(!journal::path(dev.dir()).exists());
    assert_eq!(
        std::fs::read(swap.aside.join("state.db")).expect("the old state, kept"),
        b"the old state"
    );
    // The interrupted restore's dir went in, and this restore moved it aside.
    let aside = PathBuf::from(v["moved_aside"][0].as_str().expect("moved aside"));
    assert_eq!(
        std::fs::read(aside.join("state.db")).expect("kept"),
        b"restored earlier"
    );
    let db = hamster_meta::raft::state_machine::StateDb::open(&swap.data_dir)
        .await
        .expect("a restored state.db");
    db.close().await;
    assert!(
        data_entries(&data)
            .iter()
            .all(|n| !n.contains(".restoring-")),
        "{:?}",
        data_entries(&data)
    );
}

/// `--data-dir` seeds inside DATA and renames in at the end: a restore
/// refused after staging leaves DATA as it was (one it made is removed),
/// and a staging dir left by a killed restore is named, not written over.
#[tokio::test]
async fn a_refused_node_restore_leaves_the_data_dir_as_it_was() {
    let dev = Dev::new(&free_addr());
    // Older than the node's key: refused inside the restore, after staging.
    let from = dev.real_under_next_key().await;
    let flags = |data: &Path| {
        let mut f = dev.node_flags(data);
        f.push(format!(
            "--next-master-key-file={}",
            dev.dir().join("pki/master.next.key").display()
        ));
        f
    };

    let new = dev.dir().join("data/meta-new");
    let out = restore(&from, &flags(&new));
    refused(&out, "--accept-older");
    refused(&out, "nothing was restored");
    assert!(!new.exists(), "the data dir it made is gone");

    let mount = dev.dir().join("data/mount");
    std::fs::create_dir_all(&mount).expect("mkdir");
    refused(&restore(&from, &flags(&mount)), "nothing was restored");
    assert!(
        data_entries(&mount).is_empty(),
        "{:?}",
        data_entries(&mount)
    );

    std::fs::create_dir_all(mount.join(".restoring-dead")).expect("mkdir");
    let mut go = flags(&mount);
    go.push("--accept-older".into());
    refused(&restore(&from, &go), ".restoring-dead");
    std::fs::remove_dir(mount.join(".restoring-dead")).expect("rmdir");
    go.push("--json".into());
    let v = ok(&restore(&from, &go));
    assert_eq!(v["role"], "seeded", "{v}");
    assert_eq!(data_entries(&mount), ["raft-log.db", "state.db"]);
}

/// Ctrl-C while the restore runs (here: blocked reading a backup that
/// never comes, a FIFO): the staging dir goes, the data dir the restore
/// made goes, and the message says nothing was restored.
#[test]
fn ctrl_c_during_a_node_restore_removes_what_it_staged() {
    use std::os::unix::fs::OpenOptionsExt;
    use std::time::{Duration, Instant};
    let dev = Dev::new(&free_addr());
    let fifo = dev.dir().join("pki/slow.hbk");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let data = dev.dir().join("data/meta-4");
    let mut args = vec!["restore".to_string(), format!("--from={}", fifo.display())];
    args.extend(dev.node_flags(&data));
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_hamster"))
        .args(&args)
        .env_remove("HAMSTER_NEXT_MASTER_KEY_FILE")
        .env_remove("HAMSTER_INITIAL_MEMBERS")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run hamster");

    let deadline = Instant::now() + Duration::from_secs(30);
    while hamster_admin::restore::staging::leftover(&data).is_none() {
        assert!(Instant::now() < deadline, "the restore never staged");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::INT).expect("SIGINT");
    // Let the blocked read end (EOF): the open rendezvous needs a writer.
    std::thread::sleep(Duration::from_millis(300));
    let nonblock = rustix::fs::OFlags::NONBLOCK.bits() as i32;
    while Instant::now() < deadline {
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(nonblock)
            .open(&fifo)
        {
            Ok(w) => {
                drop(w);
                break;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    let out = child.wait_with_output().expect("wait");
    refused(&out, "interrupted");
    refused(&out, "nothing was restored");
    assert!(!data.exists(), "{:?}", data_entries(&data));
}

/// `--initial-members`: the same command on every member. The lowest raft
/// id is seeded with the state and the whole membership; the others are
/// verified (file, master keys) and left empty, marked to await it.
#[tokio::test]
async fn with_initial_members_only_the_lowest_raft_id_is_seeded() {
    use hamster_meta::backup::reseed::AWAIT_MARKER;
    use openraft::storage::RaftStateMachine;
    let dev = Dev::new(&free_addr());
    hamster_admin::cert::provision_node(
        &dev.dir().join("pki"),
        hamster_proto::Role::Meta,
        "meta-2",
        &dev.dir().join("nodes/meta-2"),
    )
    .expect("provision meta-2");
    let real =
        std::fs::read(common::real_backup(&dev.dir().join("pki"), &dev.key).await).expect("read");
    let members = "--initial-members=1=meta-1@127.0.0.1:7401,2=meta-2@127.0.0.1:7402";
    let (d1, d2) = (dev.dir().join("data/m1"), dev.dir().join("data/m2"));
    let meta2 = |data: &Path| {
        let mut f = dev.member_flags(data, 2);
        f.push(members.into());
        f
    };

    // A member that awaits still refuses a bad file or a missing key.
    let mut bad = real.clone();
    let at = bad.len() - 40;
    bad[at] ^= 1;
    refused(&restore(&dev.backup(&bad), &meta2(&d2)), "checksum");
    let lost = "cd".repeat(32);
    let needs_lost = common::reheader(&real, |h| h.key_fingerprints.push(lost.clone()));
    refused(
        &restore(&dev.backup(&needs_lost), &meta2(&d2)),
        &format!("does not hold master key {lost}"),
    );
    assert!(!d2.exists());

    let from = dev.backup(&real);
    let text = restore(&from, &meta2(&d2));
    succeeded(&text);
    let said = String::from_utf8_lossy(&text.stdout);
    assert!(
        said.contains("left empty: it will receive the state from meta-1 (raft id 1)"),
        "{said}"
    );
    assert_eq!(data_entries(&d2), [AWAIT_MARKER]);
    // The same command again (say, after meta-1's restore was fixed).
    let mut json = meta2(&d2);
    json.push("--json".into());
    let v = ok(&restore(&from, &json));
    assert_eq!(v["role"], "awaits-leader", "{v}");
    assert_eq!(v["leader"]["raft_id"], 1, "{v}");
    assert_eq!(v["raft_index"], 2, "{v}");
    assert_eq!(data_entries(&d2), [AWAIT_MARKER]);

    let mut flags = dev.node_flags(&d1);
    flags.push(members.into());
    flags.push("--json".into());
    let v = ok(&restore(&from, &flags));
    assert_eq!(v["role"], "seeded", "{v}");
    assert_eq!(data_entries(&d1), ["raft-log.db", "state.db"]);
    let db = hamster_meta::raft::state_machine::StateDb::open(&d1)
        .await
        .expect("state");
    let mut sm = hamster_meta::raft::state_machine::StateMachine::new(db.clone());
    let (applied, membership) = sm.applied_state().await.expect("applied");
    assert_eq!(applied.map(|l| l.index), Some(2));
    let voters: Vec<u64> = membership.membership().voter_ids().collect();
    assert_eq!(voters, [1, 2]);
    db.close().await;
}
