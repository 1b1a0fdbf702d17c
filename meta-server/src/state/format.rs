//! Format versions of what the meta tier stores (ADR 0020), and the
//! encoding of a [`Command`] with its version.
//!
//! A Raft command is JSON `{"v":1,"id":..,"at_ms":..,"op":..}`, or
//! `{"v":2,"id":..,"at_ms":..,"by":..,"op":..}` when it names the actor
//! it acts for (ADR 0027), or `"v":3` when it carries issue 21's fields
//! (ADR 0034; the rule is [`Command::layout`], in `layout`): the version
//! comes first, so a reader refuses a command newer than it knows before
//! it meets an `Op` it cannot parse. A command without `v` was written
//! before versions existed: version 0, the same layout as 1. The version
//! belongs to the encoding, not the value: a decoded command is always in
//! this binary's layout, and is written back at the oldest version that
//! holds it ([`Command::layout`]).
//!
//! The state DB's JSON columns are versioned by its schema version
//! (`state::schema`); the Raft log DB and snapshot.json carry their own
//! (`raft::log_store`, `raft::state_machine`).

use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::commands::{Command, Op};

mod layout;

/// The newest command layout this binary reads and writes: 3.
pub const COMMAND: u64 = COMMAND_WITH_S3_ROUND_TWO;

/// The layout of a command without an actor: written as 1, so nodes
/// that do not know actors still read it.
pub const COMMAND_WITHOUT_ACTOR: u64 = 1;

/// A command that names its actor (`by`, ADR 0027): a node that does not
/// know actors refuses it (TooNew) instead of applying it unchecked.
pub const COMMAND_WITH_ACTOR: u64 = 2;

/// A command carrying issue 21's fields (conditions, checksums,
/// `abort_uploads`, `enable`, PutPublicAccessBlock; ADR 0034): a
/// version-2 node would drop them unseen and apply something else, so it
/// must refuse the command instead.
pub const COMMAND_WITH_S3_ROUND_TWO: u64 = 3;

/// Something stored in a format newer than this binary knows.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what} format version {found} is newer than this binary's {known}; upgrade")]
pub struct TooNew {
    /// What was read ("command", "snapshot.json", "raft-log.db").
    pub what: &'static str,
    pub found: u64,
    pub known: u64,
}

/// Refuses a version newer than `known`.
pub fn check(what: &'static str, found: u64, known: u64) -> Result<(), TooNew> {
    if found > known {
        return Err(TooNew { what, found, known });
    }
    Ok(())
}

impl Serialize for Command {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // An unreadable v0 command goes back out as it came in (no
        // version, its op as read), so a follower of any version decodes
        // it as it did before.
        if let Op::Unreadable { raw, .. } = &self.op {
            let mut st = s.serialize_struct("Command", 3)?;
            st.serialize_field("id", &self.id)?;
            st.serialize_field("at_ms", &self.at_ms)?;
            st.serialize_field("op", raw)?;
            return st.end();
        }
        let mut st = s.serialize_struct("Command", 5)?;
        st.serialize_field("v", &self.layout())?;
        st.serialize_field("id", &self.id)?;
        st.serialize_field("at_ms", &self.at_ms)?;
        // Absent when None, so commands without an actor keep the bytes
        // they had before actors existed (ADR 0027).
        if let Some(by) = &self.by {
            st.serialize_field("by", by)?;
        } else {
            st.skip_field("by")?;
        }
        st.serialize_field("op", &self.op)?;
        st.end()
    }
}

/// A field of a command; unknown ones are skipped, as the derived
/// decoder did.
enum Field {
    V,
    Id,
    AtMs,
    By,
    Op,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl Visitor<'_> for FieldVisitor {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a command field")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
                Ok(match v {
                    "v" => Field::V,
                    "id" => Field::Id,
                    "at_ms" => Field::AtMs,
                    "by" => Field::By,
                    "op" => Field::Op,
                    _ => Field::Other,
                })
            }
        }
        d.deserialize_identifier(FieldVisitor)
    }
}

/// Checks the version as it meets it (writers put it first), so a newer
/// command is refused before its `Op` is parsed; no intermediate value,
/// since a rewrap command holds hundreds of items.
struct CommandVisitor;

impl<'de> Visitor<'de> for CommandVisitor {
    type Value = Command;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a command")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Command, A::Error> {
        let mut version: Option<u64> = None;
        let mut id: Option<String> = None;
        let mut at_ms: Option<i64> = None;
        let mut by: Option<super::commands::Actor> = None;
        let mut op: Option<Op> = None;
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::V => {
                    if version.is_some() {
                        return Err(de::Error::duplicate_field("v"));
                    }
                    let v: u64 = map.next_value()?;
                    check("command", v, COMMAND).map_err(de::Error::custom)?;
                    // Our writers put the version first: an op read before
                    // it was read leniently, which only v0 may be.
                    if let Some(Op::Unreadable { why, .. }) = &op {
                        return Err(de::Error::custom(why));
                    }
                    version = Some(v);
                }
                Field::Id => {
                    if id.is_some() {
                        return Err(de::Error::duplicate_field("id"));
                    }
                    id = Some(map.next_value()?);
                }
                Field::AtMs => {
                    if at_ms.is_some() {
                        return Err(de::Error::duplicate_field("at_ms"));
                    }
                    at_ms = Some(map.next_value()?);
                }
                Field::By => {
                    if by.is_some() {
                        return Err(de::Error::duplicate_field("by"));
                    }
                    by = Some(map.next_value()?);
                }
                Field::Op => {
                    if op.is_some() {
                        return Err(de::Error::duplicate_field("op"));
                    }
                    op = Some(if version.is_none() {
                        legacy_op(map.next_value()?)
                    } else {
                        map.next_value()?
                    });
                }
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        // No version: written before versions existed (v0 = v1's layout).
        let version = version.unwrap_or(0);
        // Only a version-2 (or later) writer names an actor.
        if by.is_some() && version < COMMAND_WITH_ACTOR {
            return Err(de::Error::custom(
                "a command naming its actor must be format version 2 or later",
            ));
        }
        let op = op.ok_or_else(|| de::Error::missing_field("op"))?;
        // Only a version-3 writer sets issue 21's fields; a batch's
        // commands were judged as each was read.
        if version < COMMAND_WITH_S3_ROUND_TWO && op.needs_v3() {
            return Err(de::Error::custom(format!(
                "a {} command with issue 21's fields must be format version 3, not {version}",
                op.name()
            )));
        }
        Ok(Command {
            id: id.unwrap_or_default(),
            at_ms: at_ms.ok_or_else(|| de::Error::missing_field("at_ms"))?,
            by,
            op,
        })
    }
}

/// The `Op` of a command with no version (v0, or one whose `v` does not
/// come first). v0 has v1's layout, but its values were checked only at
/// apply, so a v0 log may hold values today's types refuse (a mode or role
/// outside its kind): such an op becomes [`Op::Unreadable`], which apply
/// refuses as the writing version did, instead of stopping the replay.
/// Bytes that are not JSON are still an error.
fn legacy_op(raw: serde_json::Value) -> Op {
    let why = match Op::deserialize(&raw) {
        Ok(op) => return op,
        Err(e) => e.to_string(),
    };
    // RegisterBlob's `state` was ignored by apply (a registered server is
    // active): whatever text it held, the command did what it does now.
    if let Some(server) = raw.get("RegisterBlob").and_then(|r| r.get("server")) {
        let mut fixed = raw.clone();
        if let Some(state) = fixed
            .get_mut("RegisterBlob")
            .and_then(|r| r.get_mut("server"))
            .and_then(|s| s.get_mut("state"))
            && server
                .get("state")
                .is_some_and(serde_json::Value::is_string)
        {
            *state = serde_json::Value::String(String::new());
            if let Ok(op) = Op::deserialize(&fixed) {
                return op;
            }
        }
    }
    Op::Unreadable { raw, why }
}

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_struct("Command", &["v", "id", "at_ms", "by", "op"], CommandVisitor)
    }
}
