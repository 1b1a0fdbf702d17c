//! The stored formats are pinned: every golden file under tests/golden/
//! must keep decoding to the sample built here, and encoding that sample
//! must give the file's bytes exactly. A change of encoding is a new
//! format version (and new golden files), never an edit of these.
//! A missing golden file fails; `HAMSTER_BLESS=1` writes the missing ones
//! (it never overwrites one): HAMSTER_BLESS=1 cargo nextest run -p hamster-meta --test golden
//!
//! Files named v0 were written before format versions existed (ADR 0020):
//! they must decode to the same value, and today's encoding must be their
//! bytes plus the version tag, nothing else.

mod samples;

use std::fmt::Debug;
use std::path::PathBuf;

use hamster_meta::state::commands::{Command, Op, Response};
use hamster_meta::state::format;
use serde::Serialize;
use serde::de::DeserializeOwned;

use samples as s;

fn golden_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(rel)
}

fn bless() -> bool {
    std::env::var_os("HAMSTER_BLESS").is_some_and(|v| v == "1")
}

/// The variant name at the start of a value's Debug form.
fn variant_name(v: &impl Debug) -> String {
    format!("{v:?}")
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect()
}

/// Reads a golden file (writing it first if missing and blessing).
fn golden_bytes(rel: &str, encoded: &[u8], failures: &mut Vec<String>) -> Option<Vec<u8>> {
    let path = golden_path(rel);
    if !path.exists() {
        if bless() {
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, encoded).expect("bless");
        } else {
            failures.push(format!(
                "{rel}: missing golden file (HAMSTER_BLESS=1 writes it)"
            ));
            return None;
        }
    }
    Some(std::fs::read(&path).expect("read golden"))
}

/// Decodes the golden to `sample` and re-encodes it to the same bytes.
fn check<T>(rel: &str, sample: &T, failures: &mut Vec<String>)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let encoded = serde_json::to_vec(sample).expect("encode");
    let Some(golden) = golden_bytes(rel, &encoded, failures) else {
        return;
    };
    match serde_json::from_slice::<T>(&golden) {
        Ok(v) if v == *sample => {}
        Ok(v) => failures.push(format!(
            "{rel}: decodes to a different value:\n  got  {v:?}\n  want {sample:?}"
        )),
        Err(e) => failures.push(format!("{rel}: no longer decodes: {e}")),
    }
    if encoded != golden {
        failures.push(format!(
            "{rel}: encoding changed:\n  now    {}\n  golden {}",
            String::from_utf8_lossy(&encoded),
            String::from_utf8_lossy(&golden)
        ));
    }
}

/// A golden written before version tags: decodes to `expected`, and
/// `current` (today's value) encodes to the golden's bytes plus tags.
fn check_v0<T>(rel: &str, expected: &T, current: &T, failures: &mut Vec<String>)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let Ok(golden) = std::fs::read(golden_path(rel)) else {
        // Never blessed: a v0 file can only come from a v0 writer.
        failures.push(format!("{rel}: missing v0 golden file"));
        return;
    };
    match serde_json::from_slice::<T>(&golden) {
        Ok(v) if v == *expected => {}
        Ok(v) => failures.push(format!(
            "{rel}: decodes to a different value:\n  got  {v:?}\n  want {expected:?}"
        )),
        Err(e) => failures.push(format!("{rel}: no longer decodes: {e}")),
    }
    let now = String::from_utf8(serde_json::to_vec(current).expect("encode")).expect("utf-8");
    let untagged = now.replace("{\"v\":1,", "{");
    if untagged.as_bytes() != golden.as_slice() {
        failures.push(format!(
            "{rel}: encoding changed beyond the version tag:\n  now    {untagged}\n  golden {}",
            String::from_utf8_lossy(&golden)
        ));
    }
}

fn report(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} golden mismatch(es):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_sample_lists_cover_every_variant_in_order() {
    let ops = s::ops();
    assert_eq!(ops.len(), s::OP_VARIANTS);
    for (i, op) in ops.iter().enumerate() {
        assert_eq!(s::op_slot(op), i, "{} out of place", op.name());
    }
    let responses = s::responses();
    assert_eq!(responses.len(), s::RESPONSE_VARIANTS);
    for (i, r) in responses.iter().enumerate() {
        assert_eq!(s::response_slot(r), i, "{} out of place", variant_name(r));
    }
    let errors = s::errors();
    assert_eq!(errors.len(), s::ERROR_VARIANTS);
    for (i, e) in errors.iter().enumerate() {
        assert_eq!(s::error_slot(e), i, "{} out of place", variant_name(e));
    }
}

#[test]
fn every_command_matches_its_golden_file() {
    let mut failures = Vec::new();
    for (i, op) in s::ops().into_iter().enumerate() {
        let name = op.name();
        let cmd = s::command(&format!("cmd-{i:04}"), op);
        // Only decoding a v0 command makes one, and it is written back as
        // the v0 command it was: it has no encoding of its own
        // (tests/legacy.rs pins that round trip).
        if name == "Unreadable" {
            continue;
        }
        if s::V3_ONLY_OPS.contains(&name) {
            check(&format!("command/v3/{name}.json"), &cmd, &mut failures);
            for older in ["v0", "v1", "v2"] {
                assert!(
                    !golden_path(&format!("command/{older}/{name}.json")).exists(),
                    "{name}: a v3-only op has a {older} golden file"
                );
            }
            continue;
        }
        if s::V1_ONLY_OPS.contains(&name) {
            check(&format!("command/v1/{name}.json"), &cmd, &mut failures);
            assert!(
                !golden_path(&format!("command/v0/{name}.json")).exists(),
                "{name}: a v1-only op has a v0 golden file"
            );
            continue;
        }
        check_v0(
            &format!("command/v0/{name}.json"),
            &cmd,
            &cmd,
            &mut failures,
        );
        check(&format!("command/v1/{name}.json"), &cmd, &mut failures);
    }
    // A second sample where one encoding is not enough: an op whose new
    // fields are left out when zero (so the sample above keeps the old
    // bytes) is pinned with them too.
    let cmd = s::command("cmd-hb-store", s::heartbeat_with_store());
    check("command/v1/BlobHeartbeat-store.json", &cmd, &mut failures);
    for (rel, cmd) in s::commands_with_actors() {
        check(rel, &cmd, &mut failures);
    }
    for (rel, cmd) in s::commands_v3() {
        check(rel, &cmd, &mut failures);
    }
    report(failures);
}

/// Each golden's directory is the version it is written in (its first
/// key), and a reader that knows only version 2 (the binaries before
/// issue 21) meets that key first and refuses every v3 file (TooNew)
/// before it reads an op whose new fields it would drop, while it reads
/// every v1 and v2 file as before.
#[test]
fn a_v3_command_is_refused_by_a_reader_that_knows_only_2() {
    const V2_READER: u64 = 2;
    let mut seen = [0usize; 4];
    for dir in ["v1", "v2", "v3"] {
        let path = golden_path(&format!("command/{dir}"));
        // Missing only before the first HAMSTER_BLESS=1 run has written it.
        let files = std::fs::read_dir(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (bless first)", path.display()));
        for file in files {
            let file = file.expect("entry").path();
            let text = std::fs::read_to_string(&file).expect("read golden");
            let v: u64 = dir[1..].parse().expect("dir version");
            assert!(
                text.starts_with(&format!("{{\"v\":{v},")),
                "{}: not written as version {v}",
                file.display()
            );
            let found = format::check("command", v, V2_READER);
            if v > V2_READER {
                assert_eq!(
                    found,
                    Err(format::TooNew {
                        what: "command",
                        found: 3,
                        known: 2
                    }),
                    "{}",
                    file.display()
                );
            } else {
                assert_eq!(found, Ok(()), "{}", file.display());
            }
            // This binary reads them all.
            serde_json::from_str::<Command>(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            seen[v as usize] += 1;
        }
    }
    assert_eq!(format::COMMAND, 3);
    // Every v3 sample has its file (blessed by the test above).
    assert!(seen[3] > s::commands_v3().len(), "v3 goldens: {}", seen[3]);
}

#[test]
fn every_response_and_error_matches_its_golden_file() {
    let mut failures = Vec::new();
    for r in s::responses() {
        check(
            &format!("response/{}.json", variant_name(&r)),
            &r,
            &mut failures,
        );
    }
    // A bucket with an owner and a limit of its own (ADR 0027); the
    // sample above, without them, keeps the bytes from before.
    check(
        "response/Bucket-owned.json",
        &Response::Bucket(s::owned_bucket()),
        &mut failures,
    );
    for e in s::errors() {
        let name = variant_name(&e);
        check(
            &format!("error/{name}.json"),
            &Response::Err(e),
            &mut failures,
        );
    }
    report(failures);
}

/// The JSON columns of state.db (their encoding is versioned by the
/// schema version: see state::schema).
#[test]
fn every_json_column_matches_its_golden_file() {
    let mut f = Vec::new();
    check("column/versions.shard_map.json", &s::shard_map(9), &mut f);
    check("column/versions.parts.json", &s::parts(), &mut f);
    check(
        "column/versions.user_metadata.json",
        &s::user_metadata(),
        &mut f,
    );
    check(
        "column/versions.stored_headers.json",
        &s::stored_headers(),
        &mut f,
    );
    check("column/parts.shard_map.json", &s::shard_map(3), &mut f);
    check("column/uploads.template.json", &s::version(), &mut f);
    check(
        "column/buckets.lock_config.json",
        &s::default_retention(),
        &mut f,
    );
    check("column/settings.trust.json", &s::trust_bundle(), &mut f);
    check(
        "column/settings.orphan_hold.json",
        &s::orphan_hold(),
        &mut f,
    );
    check("column/rotations.kek.json", &s::key_rotation(), &mut f);
    check("column/rotations.ca.json", &s::ca_rotation(), &mut f);
    check(
        "column/sm_meta.last_applied.json",
        &Some(s::log_id(42)),
        &mut f,
    );
    check(
        "column/sm_meta.membership.json",
        &s::stored_membership(),
        &mut f,
    );
    check(
        "column/applied_commands.response.json",
        &Response::Committed {
            version: s::version(),
            freed: vec![s::shard_map(1)],
            versioned: true,
        },
        &mut f,
    );
    check(
        "column/applied_commands.response-swapped.json",
        &Response::Swapped {
            freed: vec![s::shard_map(11)],
        },
        &mut f,
    );
    report(f);
}

#[test]
fn raft_log_entries_and_snapshot_meta_match_their_golden_files() {
    let mut f = Vec::new();
    check_v0(
        "log/entry-normal-v0.json",
        &s::entry_normal(),
        &s::entry_normal(),
        &mut f,
    );
    check("log/entry-normal-v1.json", &s::entry_normal(), &mut f);
    check("log/entry-membership.json", &s::entry_membership(), &mut f);
    check("log/log-id.json", &s::log_id(42), &mut f);
    check(
        "log/vote.json",
        &openraft::Vote::<u64>::new_committed(7, 2),
        &mut f,
    );
    check_v0(
        "snapshot/meta-v0.json",
        &s::snapshot_meta(0),
        &s::snapshot_meta(1),
        &mut f,
    );
    check("snapshot/meta-v1.json", &s::snapshot_meta(1), &mut f);
    report(f);
}

/// A batch's name is stable whatever it holds.
#[test]
fn op_names_are_the_golden_file_names() {
    assert_eq!(Op::Batch(Vec::new()).name(), "Batch");
}
