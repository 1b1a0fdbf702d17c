//! The sweep's judgement of one server's listed shards after a restore
//! (ADR 0026): which to delete, which to hold, which held rows to drop.
//! Pure, so every case is a unit test.

use std::collections::{HashMap, HashSet};

use hamster_proto::{pb, shard_id};

use crate::state::model::{HeldShard, OrphanHold};

/// Shards written up to this long after the restore are held too: the
/// write times come from the blob-servers' clocks, the restore time from
/// another machine's, and a clock running ahead must not make a shard
/// written before the restore look newer (and so sweepable). Holding a
/// few failed writes made just after a restore costs an operator's
/// release; sweeping a COMPLIANCE shard costs the data.
pub const HOLD_SKEW_MS: i64 = 10 * 60 * 1000;

/// What a round does with one server's listed shards.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Judged {
    /// Orphans to delete: written after the restore (or never restored).
    pub delete: Vec<String>,
    /// Held orphans an operator released: delete, then drop their rows.
    pub delete_released: Vec<String>,
    /// Orphans written before the restore, not held yet: hold.
    pub hold: Vec<HeldShard>,
    /// Held rows to drop: the shard is named again, or gone from the list.
    pub forget: Vec<String>,
}

/// Judges one server's `entries` (its whole list), given the shard ids
/// `named` (read after the list), the grace `cutoff_ms`, the restore's
/// `hold` if any, and the server's `held` rows (shard id: released).
/// Named shards and shards written at or after the cutoff are left
/// alone; an old orphan is deleted if released or written after the
/// restore (and its skew margin), held otherwise (and left held once it is).
pub fn judge(
    entries: &[pb::ShardEntry],
    named: &HashSet<String>,
    cutoff_ms: i64,
    hold: Option<&OrphanHold>,
    held: &HashMap<String, bool>,
) -> Judged {
    let mut out = Judged::default();
    for e in entries {
        let row = held.get(&e.shard_id).copied();
        if named.contains(&e.shard_id) {
            if row.is_some() {
                out.forget.push(e.shard_id.clone());
            }
            continue;
        }
        if e.modified_ms >= cutoff_ms {
            continue;
        }
        match row {
            Some(true) => out.delete_released.push(e.shard_id.clone()),
            Some(false) => {}
            None if hold
                .is_some_and(|h| written_ms(e) < h.restored_at_ms.saturating_add(HOLD_SKEW_MS)) =>
            {
                out.hold.push(HeldShard {
                    shard_id: e.shard_id.clone(),
                    bytes: e.bytes,
                    modified_ms: e.modified_ms,
                })
            }
            None => out.delete.push(e.shard_id.clone()),
        }
    }
    let listed: HashSet<&str> = entries.iter().map(|e| e.shard_id.as_str()).collect();
    let mut gone: Vec<String> = held
        .keys()
        .filter(|id| !listed.contains(id.as_str()))
        .cloned()
        .collect();
    gone.sort();
    out.forget.extend(gone);
    out
}

/// When a shard was written, as far as the hold can tell: the earlier of
/// the time in its name and its file's. A blob store copied without its
/// file times (rsync without -t, a disk migration) makes old shards look
/// new; the name keeps the time the gateway gave it.
fn written_ms(e: &pb::ShardEntry) -> i64 {
    shard_id::created_ms(&e.shard_id).map_or(e.modified_ms, |c| c.min(e.modified_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, modified_ms: i64) -> pb::ShardEntry {
        pb::ShardEntry {
            shard_id: id.into(),
            modified_ms,
            bytes: 1000 + modified_ms as u64,
        }
    }

    fn held_shard(id: &str, modified_ms: i64) -> HeldShard {
        HeldShard {
            shard_id: id.into(),
            bytes: 1000 + modified_ms as u64,
            modified_ms,
        }
    }

    /// The restore at 600 (the backup is older); the grace cutoff well
    /// after the restore's skew margin.
    const CUTOFF: i64 = 10 * HOLD_SKEW_MS;
    /// Written after the restore and its skew margin.
    const AFTER: i64 = 600 + HOLD_SKEW_MS + 100;
    const HOLD: OrphanHold = OrphanHold {
        restored_at_ms: 600,
        backup_index: 42,
        backup_created_ms: 100,
    };

    #[test]
    fn without_a_restore_old_orphans_are_deleted_and_nothing_is_held() {
        let entries = [
            entry("old-orphan", 10),
            entry("young-orphan", CUTOFF),
            entry("named", 10),
        ];
        let named: HashSet<String> = ["named".to_string()].into();
        let j = judge(&entries, &named, CUTOFF, None, &HashMap::new());
        assert_eq!(
            j,
            Judged {
                delete: vec!["old-orphan".into()],
                ..Judged::default()
            }
        );
    }

    #[test]
    fn after_a_restore_orphans_written_before_it_are_held_until_released() {
        let entries = [
            // Written before the restore, no row names them: held (the
            // shard may be data acknowledged after the backup).
            entry("before", 500),
            entry("before-held", 400),
            // Written after the restore: an orphan as ever.
            entry("after", AFTER),
            // Written just after the restore, within the skew margin: a
            // clock ahead may have dated an older shard so, held too.
            entry("skewed", 700),
            // Held, then released by an operator: delete.
            entry("released", 300),
            // Held, then named again (an in-flight commit): drop the row.
            entry("named-again", 200),
            // Too young to judge, whatever its time.
            entry("young", CUTOFF + 5),
        ];
        let named: HashSet<String> = ["named-again".to_string()].into();
        let held: HashMap<String, bool> = [
            ("before-held".to_string(), false),
            ("released".to_string(), true),
            ("named-again".to_string(), false),
            // Held, then gone from the server's whole list: drop the row.
            ("vanished".to_string(), true),
        ]
        .into();
        let j = judge(&entries, &named, CUTOFF, Some(&HOLD), &held);
        assert_eq!(
            j,
            Judged {
                delete: vec!["after".into()],
                delete_released: vec!["released".into()],
                hold: vec![held_shard("before", 500), held_shard("skewed", 700)],
                forget: vec!["named-again".into(), "vanished".into()],
            }
        );
        // A shard written exactly at the end of the margin is after it.
        let at = [entry("at", HOLD.restored_at_ms + HOLD_SKEW_MS)];
        let j = judge(&at, &HashSet::new(), CUTOFF, Some(&HOLD), &HashMap::new());
        assert_eq!(j.delete, ["at"]);
        assert!(j.hold.is_empty());
    }

    #[test]
    fn a_shard_whose_file_time_was_lost_is_held_by_the_time_in_its_name() {
        let name = |created| shard_id::shard(&shard_id::new_object(created), 0);
        // Written before the restore, copied since without its times: the
        // file says after the restore, the name says before. Held.
        let copied = name(500);
        // Written after the restore, by name and file: an orphan as ever.
        let after = name(AFTER);
        // A name stamped after the file time (a gateway clock ahead): the
        // earlier time decides, so it is held too.
        let ahead = name(AFTER + 50);
        let entries = [
            entry(&copied, AFTER + 10),
            entry(&after, AFTER),
            entry(&ahead, 500),
        ];
        let j = judge(
            &entries,
            &HashSet::new(),
            CUTOFF,
            Some(&HOLD),
            &HashMap::new(),
        );
        assert_eq!(j.delete, [after]);
        let held: Vec<&str> = j.hold.iter().map(|h| h.shard_id.as_str()).collect();
        assert_eq!(held, [copied.as_str(), ahead.as_str()]);
    }

    #[test]
    fn a_server_that_lists_nothing_forgets_its_held_rows_and_deletes_nothing() {
        let held: HashMap<String, bool> =
            [("b".to_string(), false), ("a".to_string(), true)].into();
        let j = judge(&[], &HashSet::new(), CUTOFF, Some(&HOLD), &held);
        assert_eq!(
            j,
            Judged {
                forget: vec!["a".into(), "b".into()],
                ..Judged::default()
            }
        );
    }
}
