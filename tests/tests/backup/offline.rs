//! No cluster: `hamster restore --check` of a file that is not a backup,
//! and of one cut short in its header, exits non-zero naming the problem
//! and creates nothing.

use hamster_tests::path_str;
use hamster_tests::{Cluster, Kind};

#[test]
fn restore_refuses_what_is_not_a_whole_backup() {
    let mut c = Cluster::new();
    let meta = c.prepare(Kind::Meta, "meta-1");
    let target = c.root().join("restored");
    let args = c.restore_target(meta, &target);

    let not_backup = c.root().join("not-a.backup");
    std::fs::write(&not_backup, b"SQLite format 3\0 and more bytes after it").expect("write");
    // Magic, then a header length far beyond the end of the file.
    let mut short = b"HAMSTRBK".to_vec();
    short.extend(4096u32.to_be_bytes());
    short.extend(b"{\"format\":1");
    let cut = c.root().join("cut.backup");
    std::fs::write(&cut, &short).expect("write");

    let entries = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(c.root())
            .expect("read root")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before = entries();
    for (file, why) in [(&not_backup, "not a hamster backup"), (&cut, "truncated")] {
        for check in [true, false] {
            let mut cmd = vec!["restore", "--from", path_str(file)];
            if check {
                cmd.push("--check");
            }
            cmd.extend(args.iter().map(String::as_str));
            let run = c.cli(&cmd);
            assert!(!run.ok(), "{cmd:?} was not refused: {run}");
            let said = format!("{}{}", run.stdout, run.stderr).to_lowercase();
            assert!(said.contains(why), "{cmd:?} does not say {why:?}: {run}");
            assert!(!target.exists(), "{cmd:?} created {}", target.display());
            assert_eq!(entries(), before, "{cmd:?} left files beside the target");
        }
    }
}
