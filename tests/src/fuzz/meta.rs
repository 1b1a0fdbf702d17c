//! The meta tier's inputs (hamster-meta): Raft RPCs and their answers
//! from peers, forwarded writes, log entries, vote and log-id records and
//! snapshot.json from disk (all JSON, `raft::codec` and `log_store`), the
//! commands themselves (`state::format`, seeded with every golden
//! command), and backup files (`backup::format`). A snapshot's data is a
//! SQLite DB that SQLite's own integrity check reads (ADR 0033: not ours
//! to fuzz).

use std::path::{Path, PathBuf};

use hamster_meta::backup::format::{self as backup, BackupHeader, Summer};
use hamster_meta::fuzz as mfuzz;
use hamster_meta::state::commands::{Command, Op};

use super::{Harness, Target, control, outcome};

pub fn targets() -> Vec<Target> {
    vec![
        Target {
            name: "raft-messages",
            make: messages,
        },
        Target {
            name: "raft-command",
            make: command,
        },
        Target {
            name: "backup-file",
            make: backup_file,
        },
    ]
}

const JSON_TOKENS: [&[u8]; 14] = [
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\"",
    b"null",
    b"true",
    b"0",
    b"-1",
    b"\"v\":",
    b"{\"a\":[",
    b"\\u0000",
];

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../meta-server/tests/golden")
}

/// Every `.json` file under `dir`, recursively.
fn jsons(dir: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "json")
                && let Ok(b) = std::fs::read(&p)
            {
                out.push(b);
            }
        }
    }
    out
}

fn read_golden(rel: &str) -> Vec<u8> {
    std::fs::read(golden_dir().join(rel)).unwrap_or_default()
}

/// Input: a kind byte (which message or record), then its JSON.
fn messages() -> Harness {
    let entry = read_golden("log/entry-normal-v1.json");
    let snapshot = read_golden("snapshot/meta-v1.json");
    let mut seeds: Vec<Vec<u8>> = mfuzz::seeds(&entry, &snapshot)
        .into_iter()
        .map(|(k, v)| [&[k][..], &v[..]].concat())
        .collect();
    for (kind, rel) in [
        (8, "log/entry-membership.json"),
        (8, "log/entry-normal-v0.json"),
        (9, "log/vote.json"),
        (10, "log/log-id.json"),
        (11, "snapshot/meta-v0.json"),
    ] {
        seeds.push([&[kind][..], &read_golden(rel)[..]].concat());
    }
    Harness {
        seeds,
        tokens: JSON_TOKENS.to_vec(),
        run: Box::new(|data| {
            let (kind, json) = control(data);
            let kind = kind % mfuzz::KINDS.len() as u8;
            outcome(&mfuzz::decode(kind, json)) ^ u64::from(kind) << 1
        }),
    }
}

/// Every golden command, any version; a command that decodes must
/// encode to one that decodes to itself (a follower applies what the
/// leader wrote). Not checked for a v0 op kept unread (`Op::Unreadable`,
/// raw JSON): serde_json's default float parsing is not exact, so a
/// number beyond i64 in one may change in its last digit on the way
/// (found by this target; only a v0 log could hold such a command, and
/// apply refuses it on every node alike).
fn command() -> Harness {
    Harness {
        seeds: jsons(&golden_dir().join("command")),
        tokens: JSON_TOKENS.to_vec(),
        run: Box::new(|data| {
            let r = serde_json::from_slice::<Command>(data);
            if let Ok(cmd) = &r
                && !unread(&cmd.op)
            {
                let bytes = serde_json::to_vec(cmd).expect("a decoded command encodes");
                let again: Command =
                    serde_json::from_slice(&bytes).expect("an encoded command decodes");
                assert_eq!(&again, cmd, "a command changes on its way through the log");
            }
            outcome(&r)
        }),
    }
}

fn sample_header(db_bytes: u64) -> BackupHeader {
    BackupHeader {
        format: backup::BACKUP_FORMAT,
        cluster_id: "c0ffee".into(),
        raft_term: 7,
        raft_index: 5000,
        created_ms: 1_714_000_000_123,
        source_raft_id: 2,
        schema_version: 9,
        db_bytes,
        key_fingerprints: vec!["fd191ca4f5d2dcc6c5b84adb098106b2".into()],
        write_key: "fd191ca4f5d2dcc6c5b84adb098106b2".into(),
        trust_generation: 3,
        trust_cas: vec!["ab".repeat(32)],
        issuing_ca: "ab".repeat(32),
        removed_blob_servers: vec!["blob-9".into()],
        versions: 10,
        buckets: 2,
        access_keys: 1,
    }
}

/// Makes the trailer the SHA-256 of what precedes it.
fn fix_trailer(file: &mut [u8]) {
    let Some(body) = file.len().checked_sub(backup::TRAILER_LEN as usize) else {
        return;
    };
    let mut sum = Summer::default();
    sum.update(&file[..body]);
    file[body..].copy_from_slice(&sum.trailer());
}

/// A backup file on disk, read by `verify` as `hamster restore` does
/// first. Control bit 0: make the trailer right after mutating.
fn backup_file() -> Harness {
    let dir = tempfile::tempdir().expect("a temp dir for the backup target");
    let path = dir.path().join("backup.hbk");
    let mut seeds = Vec::new();
    for db in [&b""[..], b"SQLite format 3\0 and some pages"] {
        let Ok(mut f) = backup::prefix(&sample_header(db.len() as u64)) else {
            continue;
        };
        f.extend_from_slice(db);
        f.extend_from_slice(&[0; 32]);
        fix_trailer(&mut f);
        seeds.push([&[1u8][..], &f[..]].concat());
    }
    Harness {
        seeds,
        tokens: JSON_TOKENS.to_vec(),
        run: Box::new(move |data| {
            let _keep = &dir;
            let (c, rest) = control(data);
            let mut f = rest.to_vec();
            if c & 1 != 0 {
                fix_trailer(&mut f);
            }
            std::fs::write(&path, &f).expect("writing the backup file");
            let r = backup::verify(&path);
            outcome(&r)
        }),
    }
}

/// An op kept unread, or a batch holding one.
fn unread(op: &Op) -> bool {
    match op {
        Op::Unreadable { .. } => true,
        Op::Batch(cmds) => cmds.iter().any(|c| unread(&c.op)),
        _ => false,
    }
}
