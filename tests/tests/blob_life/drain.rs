//! Draining: what remove says while maps name a server, and a whole drain
//! under S3 load, then the drained server removed and two more lost.

use crate::*;

/// The text a CLI run printed, with the server's id taken out (an id like
/// blob-3 must not pass for a count of 3).
fn said(run: &hamster_tests::durability::CliRun, id: &str) -> String {
    format!("{}\n{}", run.stdout, run.stderr).replace(id, "<id>")
}

/// Step 2: `hamster blob remove` of a server the maps name fails, says
/// how many shards (as `blob list` counts them), and changes nothing.
pub async fn remove_refused(w: &mut World) {
    settle(w, "before the refused remove").await;
    let busy = w.s.blobs[2];
    let id = id_of(w, busy);
    let named = blob_list(w).row(&id).shards_named;
    assert!(named > 0, "{id} holds no shard: nothing to refuse");
    let run = w.s.c.admin_cli(&["blob", "remove", &id]);
    assert!(!run.ok(), "removed while {named} shards are named: {run}");
    assert!(
        names_number(&said(&run, &id), named),
        "the refusal does not name the {named} shards: {run}"
    );
    let after = blob_list(w);
    let row = after.row(&id);
    assert_eq!(
        (row.state.as_str(), row.lifecycle.as_str(), row.shards_named),
        ("active", "in", named),
        "a refused remove changed the server: {}",
        after.summary()
    );
}

/// Step 3: a drain while 2 streams PUT and GET, and the test PUTs objects
/// of its own: no request fails; when `hamster blob drain` returns, no
/// map names the server and its store is empty; it is then removed, and
/// with two other servers SIGKILLed every object reads back.
pub async fn under_load(w: &mut World) {
    settle(w, "before the drain").await;
    let meta = w.s.metas[0];
    let victim = w.s.blobs[1];
    let id = id_of(w, victim);
    let named = blob_list(w).row(&id).shards_named;
    assert!(named > 0, "{id} holds no shard: nothing to drain");

    let load = Load::start(&w.c, "data", "load/", 2, 3);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = std::time::Instant::now();
    let drain = w.s.c.admin_cli_bg(&[
        "blob",
        "drain",
        &id,
        "--json",
        "--timeout-secs",
        CLI_TIMEOUT,
    ]);
    // Objects written while the drain runs must survive it too.
    let mut n = 0;
    while !drain.is_finished() {
        if n < 30 {
            add(
                w,
                &format!("during-drain-{n}"),
                pattern(150 * KIB + n, n as u8),
            )
            .await;
            n += 1;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let run = drain.await.expect("the drain command's thread");
    let took = started.elapsed();
    let report = load.stop().await;
    eprintln!(
        "drain of {id} ({named} shards) took {took:.1?}; load: {} requests, {} failed; \
         {n} objects written during it",
        report.ok, report.failed
    );
    assert!(run.ok(), "hamster blob drain: {run}");
    let out = run.json().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out["outcome"], "drained", "{run}");
    assert_eq!(report.failed, 0, "failed requests: {:#?}", report.errors);
    assert!(report.ok > 0, "the load did nothing");

    // Nothing named on it, nothing left in its store.
    let list = blob_list(w);
    let row = list.row(&id);
    assert_eq!(
        (row.state.as_str(), row.shards_named),
        ("drained", 0),
        "after the drain: {}",
        list.summary()
    );
    let units = w.s.c.bucket_units(meta, "data").await;
    let still: Vec<&String> = units
        .iter()
        .filter(|(_, m)| m.shards.iter().any(|l| l.blob_id == id))
        .map(|(k, _)| k)
        .collect();
    assert!(still.is_empty(), "maps still name {id}: {still:?}");
    let names = named_ids(&units);
    let files = w.s.shard_files(victim);
    let named_files: Vec<String> = files
        .iter()
        .map(|p| hamster_tests::durability::file_name(p))
        .filter(|f| names.contains(f))
        .collect();
    assert!(
        named_files.is_empty(),
        "{id}'s disk holds shards the maps name: {named_files:?}"
    );
    assert!(
        files.is_empty(),
        "{id}'s store is not empty after the drain: {files:?}"
    );

    let run = w.s.c.admin_cli(&["blob", "remove", &id]);
    assert!(run.ok(), "remove of the drained server: {run}");
    assert_eq!(blob_list(w).row(&id).state, "removed");
    // The operator stops the process.
    w.s.c.kill(victim);
    w.gone.push(victim);
    assert_whole(w, "after the drain").await;

    let others: Vec<Node> = running_others(w, &[]).into_iter().take(2).collect();
    w.s.c.kill_all(&others);
    let read = std::panic::AssertUnwindSafe(read_all(w, "drained, removed, two more killed"))
        .catch_unwind()
        .await;
    w.s.c.restart_all(&others).await;
    if let Err(p) = read {
        std::panic::resume_unwind(p);
    }
}
