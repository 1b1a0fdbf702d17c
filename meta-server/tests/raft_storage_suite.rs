//! openraft's own storage test suite, run against our SQLite log store and
//! state machine (the same code the server runs).

// openraft's StorageError is large; the suite returns it.
#![allow(clippy::result_large_err)]

use hamster_meta::raft::TypeConfig;
use hamster_meta::raft::log_store::LogStore;
use hamster_meta::raft::state_machine::{StateDb, StateMachine};
use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};

struct SqliteBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for SqliteBuilder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = LogStore::open(&dir.path().join("raft-log.db"))
            .await
            .expect("log store");
        let db = StateDb::open(dir.path()).await.expect("state db");
        Ok((dir, log, StateMachine::new(db)))
    }
}

#[test]
fn openraft_storage_suite_passes_on_sqlite() -> Result<(), StorageError<u64>> {
    Suite::test_all(SqliteBuilder)
}
