//! Logs written before format versions existed (v0) must replay to the
//! same state. Before the state's strings became kinds, apply was the only
//! check on a mode, status or role, and it refused bad ones: such refused
//! commands sit in old logs and must be refused again, not stop the
//! replay (ADR 0020).

mod common;

use common::*;

/// A v0 PutRetention whose mode the version that wrote it refused at apply.
const V0_BAD_MODE: &str = r#"{"id":"old-1","at_ms":1600000000000,"op":{"PutRetention":{"bucket":"locked","key":"k","version_id":"","mode":"FOREVER","retain_until_ms":1700000000000,"bypass_governance":false}}}"#;

#[test]
fn a_v0_command_with_a_value_outside_its_kind_decodes_as_unreadable() {
    let cmd: Command = serde_json::from_str(V0_BAD_MODE).expect("a v0 command still decodes");
    let Op::Unreadable { raw, why } = &cmd.op else {
        panic!("expected Op::Unreadable, got {:?}", cmd.op);
    };
    assert_eq!(raw["PutRetention"]["mode"], "FOREVER");
    assert!(why.contains("FOREVER"), "{why}");
    assert_eq!((cmd.id.as_str(), cmd.at_ms), ("old-1", NOW));

    // Written again (a leader sending old entries to a follower) it is the
    // v0 command it was, which any version decodes as it did before.
    let again = serde_json::to_string(&cmd).expect("encode");
    assert!(!again.contains(r#""v":"#), "{again}");
    let as_read: serde_json::Value = serde_json::from_str(V0_BAD_MODE).expect("json");
    let written: serde_json::Value = serde_json::from_str(&again).expect("json");
    assert_eq!(written, as_read);
    let back: Command = serde_json::from_str(&again).expect("decode again");
    assert_eq!(back, cmd);
}

#[test]
fn a_v1_command_with_a_value_outside_its_kind_is_a_decode_error() {
    // Since v1 the edge checks values before proposing: a v1 command with
    // a bad value is not something we wrote, and is refused.
    let v1 = V0_BAD_MODE.replacen('{', r#"{"v":1,"#, 1);
    let err = serde_json::from_str::<Command>(&v1).expect_err("refused");
    assert!(err.to_string().contains("FOREVER"), "{err}");
}

#[test]
fn a_version_after_a_lenient_op_is_refused() {
    // Writers put "v" first; an op met before it was read as v0 would be.
    let late_v = V0_BAD_MODE.replacen("}}}", r#"}},"v":1}"#, 1);
    let err = serde_json::from_str::<Command>(&late_v).expect_err("refused");
    assert!(err.to_string().contains("FOREVER"), "{err}");
}

#[tokio::test]
async fn a_v0_register_blob_with_any_state_still_registers() {
    // Apply ignored a registration's state (a registered server is
    // active), so a v0 one with any text did what it does now.
    let v0 = r#"{"id":"","at_ms":1600000000000,"op":{"RegisterBlob":{"server":{"id":"blob-1","address":"127.0.0.1:1","failure_domain":"a","capacity_bytes":1,"free_bytes":1,"state":"dead","last_heartbeat_ms":0}}}}"#;
    let cmd: Command = serde_json::from_str(v0).expect("decode");
    let Op::RegisterBlob { server } = &cmd.op else {
        panic!("expected RegisterBlob, got {:?}", cmd.op);
    };
    assert_eq!(server.id, "blob-1");
    assert_eq!(server.state, BlobState::Unset);
    // And applied, it registers the server as active, as it did then.
    let mut db = Db::new().await;
    db.seq += 1;
    let seq = db.seq;
    assert_eq!(db.apply_cmd(seq, &cmd).await, Response::Ok);
    let servers = q::blob_servers(db.c()).await.expect("blob servers");
    assert_eq!(servers.len(), 1);
    assert_eq!(
        (servers[0].id.as_str(), servers[0].state),
        ("blob-1", BlobState::Active)
    );
}

#[test]
fn bytes_that_are_not_json_are_still_an_error() {
    let cut = &V0_BAD_MODE[..V0_BAD_MODE.len() - 5];
    assert!(serde_json::from_str::<Command>(cut).is_err());
}

#[tokio::test]
async fn an_unreadable_v0_command_is_refused_at_apply_and_changes_nothing() {
    let mut db = Db::new().await;
    db.ok(create("locked", true)).await;
    db.ok(commit(ver("locked", "k", "v1", "a"))).await;
    let before = db.dump().await;

    let cmd: Command = serde_json::from_str(V0_BAD_MODE).expect("decode");
    db.seq += 1;
    let seq = db.seq;
    let resp = db.apply_cmd(seq, &cmd).await;
    match resp {
        Response::Err(MetaError::InvalidArgument(m)) => {
            assert!(m.contains("cannot read"), "{m}")
        }
        other => panic!("expected an InvalidArgument refusal, got {other:?}"),
    }
    // Only the command id's remembered answer is new.
    let after: Vec<String> = db
        .dump()
        .await
        .into_iter()
        .filter(|r| !r.contains("old-1"))
        .collect();
    assert_eq!(after, before);
}
