//! `compose init` over temporary volumes: a fresh cluster, a second run,
//! an older layout, a damaged master copy, a crash halfway through a
//! node's files, and a lost node volume after a CA rotation.

use std::path::{Path, PathBuf};

use hamster_proto::secrets::MasterKey;

use super::init;
use crate::compose::InitStep;

struct Vols {
    _tmp: tempfile::TempDir,
    step: InitStep,
}

fn vols() -> Vols {
    let tmp = tempfile::tempdir().expect("tmp");
    let p = |n: &str| tmp.path().join(n);
    let step = InitStep {
        pki: p("pki"),
        ca: Some(p("ca")),
        master: p("master"),
        node_tls: Some(p("tls")),
        metas: 3,
    };
    Vols { _tmp: tmp, step }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn node(v: &Vols, i: u32) -> PathBuf {
    v.step
        .node_tls
        .as_ref()
        .expect("tls")
        .join(format!("meta-{i}"))
}

fn fp(path: &Path) -> String {
    MasterKey::load(path).expect("key").fingerprint()
}

#[test]
fn a_fresh_init_splits_pki_ca_master_and_nodes_and_a_second_keeps_them() {
    let v = vols();
    init(&v.step).expect("init");
    assert_eq!(names(&v.step.pki), ["admin.crt", "admin.key", "trust.pem"]);
    assert_eq!(names(v.step.ca.as_ref().expect("ca")), ["ca.crt", "ca.key"]);
    assert_eq!(names(&v.step.master), ["master.key"]);
    assert_eq!(names(&node(&v, 2)), ["node.crt", "node.key", "trust.pem"]);
    let (key, crt) = (
        fp(&v.step.master.join("master.key")),
        std::fs::read(node(&v, 2).join("node.crt")).expect("crt"),
    );
    init(&v.step).expect("second init");
    assert_eq!(fp(&v.step.master.join("master.key")), key);
    assert_eq!(
        std::fs::read(node(&v, 2).join("node.crt")).expect("crt"),
        crt
    );
}

#[test]
fn an_older_layout_moves_the_ca_the_node_files_and_the_master_key() {
    let v = vols();
    // The older layout: everything in pki, node files in pki/nodes.
    let old = InitStep {
        ca: None,
        node_tls: None,
        ..clone(&v.step)
    };
    init(&old).expect("old init");
    std::fs::write(v.step.pki.join("master.key"), [7u8; 32]).expect("key copy");
    std::fs::write(v.step.master.join("master.key"), [7u8; 32]).expect("key");
    let crt = std::fs::read(v.step.pki.join("nodes/meta-1/node.crt")).expect("crt");
    init(&v.step).expect("init");
    assert_eq!(names(&v.step.pki), ["admin.crt", "admin.key", "trust.pem"]);
    assert_eq!(names(v.step.ca.as_ref().expect("ca")), ["ca.crt", "ca.key"]);
    assert_eq!(
        std::fs::read(node(&v, 1).join("node.crt")).expect("crt"),
        crt
    );
    assert_eq!(names(&v.step.master), ["master.key"]);
}

#[test]
fn a_damaged_master_copy_is_rewritten_before_the_pki_copy_goes() {
    let v = vols();
    std::fs::create_dir_all(&v.step.master).expect("dir");
    // Half a key: as a crash while writing it would leave.
    std::fs::write(v.step.master.join("master.key"), [1u8; 10]).expect("bad");
    init(&v.step).expect("init");
    assert!(!v.step.pki.join("master.key").exists());
    assert_eq!(
        std::fs::read(v.step.master.join("master.key"))
            .expect("key")
            .len(),
        32
    );
}

#[test]
fn two_good_but_different_master_keys_are_both_kept() {
    let v = vols();
    init(&v.step).expect("init");
    std::fs::write(v.step.pki.join("master.key"), [9u8; 32]).expect("other");
    let e = init(&v.step).expect_err("two keys");
    assert!(e.to_string().contains("differ"), "{e:#}");
    assert!(v.step.pki.join("master.key").exists());
}

#[test]
fn a_crash_between_the_node_key_and_its_certificate_is_redone() {
    let v = vols();
    init(&v.step).expect("init");
    std::fs::remove_file(node(&v, 3).join("node.crt")).expect("rm");
    std::fs::remove_file(node(&v, 3).join("trust.pem")).expect("rm");
    init(&v.step).expect("init again");
    assert_eq!(names(&node(&v, 3)), ["node.crt", "node.key", "trust.pem"]);
}

#[test]
fn a_lost_node_volume_after_a_ca_rotation_is_refused() {
    let v = vols();
    init(&v.step).expect("init");
    let ca = v.step.ca.as_ref().expect("ca");
    // What a rotation's mint leaves in the CA directory.
    std::fs::copy(ca.join("ca.crt"), ca.join("ca-0123456789abcdef.crt")).expect("cp");
    std::fs::remove_dir_all(node(&v, 2)).expect("lost");
    let e = init(&v.step).expect_err("refused");
    assert!(e.to_string().contains("no longer the issuing CA"), "{e:#}");
    assert!(!node(&v, 2).join("node.crt").exists());
}

fn clone(s: &InitStep) -> InitStep {
    InitStep {
        pki: s.pki.clone(),
        ca: s.ca.clone(),
        master: s.master.clone(),
        node_tls: s.node_tls.clone(),
        metas: s.metas,
    }
}
