//! Commands of format version 3 (issue 21, ADR 0034): each sets one of
//! the fields a version-2 reader would drop unseen, so it is written as
//! 3. The samples of `ops()`, without them, keep their old bytes.

use super::*;

/// (golden file, command) for every field issue 21 added to a command,
/// with and without an actor, and in a batch.
pub fn commands_v3() -> Vec<(&'static str, Command)> {
    let key = || Actor::Key("AKIAEXAMPLE".into());
    vec![
        (
            "command/v3/DeleteBucket-abort-uploads.json",
            command_by(
                "cmd-rb-uploads",
                key(),
                Op::DeleteBucket {
                    name: "old-logs".into(),
                    abort_uploads: true,
                },
            ),
        ),
        (
            "command/v3/CommitVersion-conditional.json",
            command_by(
                "cmd-put-if-match",
                key(),
                Op::CommitVersion {
                    version: version_with_checksum(),
                    if_match: Some("\"9b2cf535f27731c974343645a3985328\"".into()),
                    if_none_match: false,
                },
            ),
        ),
        (
            "command/v3/CommitVersion-if-none-match.json",
            command_by(
                "cmd-put-if-none-match",
                key(),
                Op::CommitVersion {
                    version: version(),
                    if_match: None,
                    if_none_match: true,
                },
            ),
        ),
        // A checksum alone (no condition, no actor) is enough for 3.
        (
            "command/v3/CommitVersion-checksum.json",
            command(
                "cmd-put-checksum",
                Op::commit_version(single_put_checksum()),
            ),
        ),
        (
            "command/v3/BeginMultipart-checksum.json",
            command_by(
                "cmd-begin-checksum",
                key(),
                Op::BeginMultipart {
                    upload: Upload {
                        template: template_with_checksum(),
                        ..upload()
                    },
                },
            ),
        ),
        (
            "command/v3/CommitPart-checksum.json",
            command_by(
                "cmd-part-checksum",
                key(),
                Op::CommitPart {
                    bucket: "photos".into(),
                    key: "2024/cat.jpg".into(),
                    upload_id: "upload-7f3e".into(),
                    part: Part {
                        checksum_value: "yZRlqg==".into(),
                        ..part(3)
                    },
                },
            ),
        ),
        (
            "command/v3/CompleteMultipart-conditional.json",
            command_by(
                "cmd-complete-if",
                key(),
                Op::CompleteMultipart {
                    bucket: "photos".into(),
                    key: "2024/cat.jpg".into(),
                    upload_id: "upload-7f3e".into(),
                    parts: vec![(1, "\"etag-one\"".into())],
                    version_id: "0000000000000044-beef".into(),
                    if_match: Some("*".into()),
                    if_none_match: true,
                },
            ),
        ),
        (
            "command/v3/PutLockConfiguration-enable.json",
            command_by(
                "cmd-lock-enable",
                key(),
                Op::PutLockConfiguration {
                    bucket: "photos".into(),
                    default_retention: None,
                    enable: true,
                },
            ),
        ),
        (
            "command/v3/PutPublicAccessBlock-delete.json",
            command_by(
                "cmd-pab-delete",
                key(),
                Op::PutPublicAccessBlock {
                    bucket: "photos".into(),
                    config: None,
                },
            ),
        ),
        // The batch is 3 from its first key on (its commands are 1 and 3),
        // so a version-2 reader refuses the whole entry.
        (
            "command/v3/Batch.json",
            command(
                "",
                Op::Batch(vec![
                    command(
                        "batch-a",
                        Op::DeleteBucket {
                            name: "tmp".into(),
                            abort_uploads: false,
                        },
                    ),
                    command_by(
                        "batch-b",
                        key(),
                        Op::CommitVersion {
                            version: version(),
                            if_match: None,
                            if_none_match: true,
                        },
                    ),
                ]),
            ),
        ),
    ]
}

/// A version with every field issue 21 added: a checksum (composite,
/// with a part carrying its own) and the upload that made it.
pub fn version_with_checksum() -> Version {
    let mut v = version();
    v.checksum_algorithm = "CRC32C".into();
    v.checksum_value = "yZRlqg==-2".into();
    v.checksum_type = "COMPOSITE".into();
    v.upload_id = "upload-7f3e".into();
    v.parts[0].checksum_value = "AAAAAA==".into();
    v
}

/// A single PUT's checksum: FULL_OBJECT, no parts.
fn single_put_checksum() -> Version {
    Version {
        checksum_algorithm: "SHA256".into(),
        checksum_value: "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=".into(),
        checksum_type: "FULL_OBJECT".into(),
        parts: Vec::new(),
        ..version()
    }
}

/// An upload's template names the algorithm its parts are checked in.
fn template_with_checksum() -> Version {
    Version {
        checksum_algorithm: "CRC32C".into(),
        checksum_type: "COMPOSITE".into(),
        parts: Vec::new(),
        ..version()
    }
}
