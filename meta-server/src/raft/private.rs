//! Every file the meta-server writes in its data dir is mode 0600: the
//! state DB, its log, snapshots and backup copies hold wrapped DEKs, access
//! key secrets and the whole bucket map. The mode is set when a file is
//! created (never 0644 for an instant, whatever the umask) and existing
//! files are narrowed when a DB opens (data dirs from before this rule).
//! SQLite gives a DB's -wal and -shm the mode of the DB file itself.

use std::fs::{File, OpenOptions, Permissions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const MODE: u32 = 0o600;

/// Creates (or truncates) `path` for writing, 0600.
pub fn create(path: &Path) -> std::io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(MODE)
        .open(path)?;
    // An existing file keeps its mode through open: narrow it.
    f.set_permissions(Permissions::from_mode(MODE))?;
    Ok(f)
}

/// Makes the SQLite file at `path` 0600 before SQLite opens it: created
/// empty if missing (SQLite takes an empty file as a new DB, and `VACUUM
/// INTO` writes into an empty one), narrowed if not, and its -wal and
/// -shm narrowed if they exist.
pub fn prepare_db(path: &Path) -> std::io::Result<()> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(MODE)
        .open(path)?
        .set_permissions(Permissions::from_mode(MODE))?;
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut side = PathBuf::from(path).into_os_string();
        side.push(suffix);
        match std::fs::set_permissions(&side, Permissions::from_mode(MODE)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}
