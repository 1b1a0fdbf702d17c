//! Which layout each command is written in (`super`).

use super::*;
use crate::state::commands::Actor;
use crate::state::model::PublicAccessBlock;

fn version() -> Version {
    Version {
        bucket: "b".into(),
        key: "k".into(),
        version_id: "v1".into(),
        parts: vec![Part {
            part_number: 1,
            ..Part::default()
        }],
        ..Version::default()
    }
}

fn commit(version: Version) -> Op {
    Op::commit_version(version)
}

fn complete(if_match: Option<String>, if_none_match: bool) -> Op {
    Op::CompleteMultipart {
        bucket: "b".into(),
        key: "k".into(),
        upload_id: "u".into(),
        parts: vec![(1, "\"e\"".into())],
        version_id: "v1".into(),
        if_match,
        if_none_match,
    }
}

fn begin(template: Version) -> Op {
    Op::BeginMultipart {
        upload: Upload {
            bucket: "b".into(),
            key: "k".into(),
            upload_id: "u".into(),
            initiated_at_ms: 1,
            template,
        },
    }
}

fn commit_part(part: Part) -> Op {
    Op::CommitPart {
        bucket: "b".into(),
        key: "k".into(),
        upload_id: "u".into(),
        part,
    }
}

/// Each kind of op that issue 21 touched, as it was before.
fn old_layout_ops() -> Vec<Op> {
    vec![
        Op::DeleteBucket {
            name: "b".into(),
            abort_uploads: false,
        },
        commit(version()),
        Op::PutLockConfiguration {
            bucket: "b".into(),
            default_retention: None,
            enable: false,
        },
        begin(version()),
        commit_part(Part::default()),
        complete(None, false),
        Op::CreateBucket {
            name: "b".into(),
            object_lock_enabled: false,
            owner: None,
        },
        Op::FinishKeyRotation,
    ]
}

/// Each new field set on its own (and the new op).
fn new_layout_ops() -> Vec<(&'static str, Op)> {
    let with = |f: fn(&mut Version)| {
        let mut v = version();
        f(&mut v);
        v
    };
    let part_sum = |v: &mut Version| v.parts[0].checksum_value = "AAAAAA==".into();
    vec![
        (
            "abort_uploads",
            Op::DeleteBucket {
                name: "b".into(),
                abort_uploads: true,
            },
        ),
        (
            "CommitVersion.if_match",
            Op::CommitVersion {
                version: version(),
                if_match: Some("\"e\"".into()),
                if_none_match: false,
            },
        ),
        (
            "CommitVersion.if_none_match",
            Op::CommitVersion {
                version: version(),
                if_match: None,
                if_none_match: true,
            },
        ),
        (
            "checksum_algorithm",
            commit(with(|v| v.checksum_algorithm = "CRC32".into())),
        ),
        (
            "checksum_value",
            commit(with(|v| v.checksum_value = "AAAAAA==".into())),
        ),
        (
            "checksum_type",
            commit(with(|v| v.checksum_type = "FULL_OBJECT".into())),
        ),
        ("upload_id", commit(with(|v| v.upload_id = "u".into()))),
        ("Version.parts[].checksum_value", commit(with(part_sum))),
        (
            "template.checksum_algorithm",
            begin(with(|v| v.checksum_algorithm = "SHA256".into())),
        ),
        ("template.parts[].checksum_value", begin(with(part_sum))),
        (
            "CommitPart.part.checksum_value",
            commit_part(Part {
                checksum_value: "AAAAAA==".into(),
                ..Part::default()
            }),
        ),
        (
            "CompleteMultipart.if_match",
            complete(Some("*".into()), false),
        ),
        ("CompleteMultipart.if_none_match", complete(None, true)),
        (
            "enable",
            Op::PutLockConfiguration {
                bucket: "b".into(),
                default_retention: None,
                enable: true,
            },
        ),
        (
            "PutPublicAccessBlock",
            Op::PutPublicAccessBlock {
                bucket: "b".into(),
                config: Some(PublicAccessBlock::default()),
            },
        ),
        (
            "PutPublicAccessBlock (delete)",
            Op::PutPublicAccessBlock {
                bucket: "b".into(),
                config: None,
            },
        ),
    ]
}

fn written_version(cmd: &Command) -> u64 {
    let v: serde_json::Value = serde_json::to_value(cmd).expect("encode");
    v["v"].as_u64().expect("v")
}

#[test]
fn an_old_layout_command_keeps_its_old_version() {
    for op in old_layout_ops() {
        let name = op.name();
        let plain = Command::new("c", 1, op.clone());
        assert_eq!(plain.layout(), COMMAND_WITHOUT_ACTOR, "{name}");
        assert_eq!(written_version(&plain), 1, "{name}");
        let by = plain.by(Actor::Key("AK".into()));
        assert_eq!(by.layout(), COMMAND_WITH_ACTOR, "{name}");
        assert_eq!(written_version(&by), 2, "{name}");
        let batch = Command::new("", 1, Op::Batch(vec![by]));
        assert_eq!(written_version(&batch), 2, "{name} in a batch");
    }
}

#[test]
fn each_new_field_forces_version_3() {
    for (what, op) in new_layout_ops() {
        assert!(op.needs_v3(), "{what}");
        for cmd in [
            Command::new("c", 1, op.clone()),
            Command::new("c", 1, op.clone()).by(Actor::Key("AK".into())),
        ] {
            assert_eq!(cmd.layout(), COMMAND_WITH_S3_ROUND_TWO, "{what}");
            assert_eq!(written_version(&cmd), 3, "{what}");
            let back: Command =
                serde_json::from_slice(&serde_json::to_vec(&cmd).expect("e")).expect("decodes");
            assert_eq!(back, cmd, "{what}");
            // A batch holding it is 3 from its first key on, so a
            // version-2 reader refuses the whole entry.
            let batch = Command::new("", 1, Op::Batch(vec![cmd]));
            assert_eq!(written_version(&batch), 3, "{what} in a batch");
        }
    }
}

#[test]
fn a_version_3_field_in_an_older_command_is_refused() {
    for (what, op) in new_layout_ops() {
        let json = serde_json::to_string(&Command::new("c", 1, op)).expect("encode");
        for older in [r#"{"v":2,"#, r#"{"v":1,"#, "{"] {
            let forged = json.replacen(r#"{"v":3,"#, older, 1);
            let e = serde_json::from_str::<Command>(&forged).expect_err(what);
            assert!(e.to_string().contains("version 3"), "{what}: {e}");
        }
    }
}
