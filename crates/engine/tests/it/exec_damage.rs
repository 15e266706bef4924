//! Damaged run state: a truncated, bit-flipped or otherwise broken database is reported
//! as damaged, never read as an older state, and never panics a reader.

use std::collections::BTreeMap;
use std::path::Path;

use baton_engine::executor::{self, ExecError, Outcome};
use baton_engine::store::{self, RunState};
use baton_engine::test_util as support;
use tokio_util::sync::CancellationToken;

use super::exec_store::{Fixture, events, fixture, opts, steps};

/// A finished run whose database we then damage in various ways.
pub(crate) fn finished_run(f: &Fixture, name: &str) -> std::path::PathBuf {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let plan = support::plan(name, "none");
    let outcome = runtime.block_on(executor::start(
        &plan,
        steps(f),
        &opts(&f.state),
        events(),
        CancellationToken::new(),
    ));
    assert_eq!(outcome.unwrap(), Outcome::Succeeded);
    store::db_dir(&store::run_dir(&f.state, name))
}

fn assert_clear_error(f: &Fixture, name: &str, damage: &str) {
    let loaded = std::panic::catch_unwind(|| executor::load_run(&f.state, name));
    let loaded = loaded.unwrap_or_else(|_| panic!("{damage}: loading panicked"));
    let error = loaded.expect_err(damage);
    // Never `NoRecord`: that would free the name for a new run over the old one's target.
    assert!(
        matches!(error, ExecError::Corrupt { .. }),
        "{damage}: unexpected error {error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(name),
        "{damage}: the message names the run: {message}"
    );
    let listed = executor::list_runs(&f.state).unwrap();
    let entry = listed.iter().find(|s| s.run == name).unwrap();
    assert!(
        entry.state.is_none() && entry.problem.is_some(),
        "{damage}: list shows the problem"
    );
}

#[test]
fn damaged_state_gives_a_clear_error_and_never_a_panic() {
    let f = fixture();

    let db = finished_run(&f, "truncated");
    std::fs::File::options()
        .write(true)
        .open(db.join("db"))
        .unwrap()
        .set_len(0)
        .unwrap();
    assert_clear_error(&f, "truncated", "database file truncated to nothing");

    let db = finished_run(&f, "zeroed");
    let path = db.join("db");
    let len = std::fs::metadata(&path).unwrap().len() as usize;
    std::fs::write(&path, vec![0u8; len]).unwrap();
    assert_clear_error(&f, "zeroed", "database file overwritten with zeros");

    let db = finished_run(&f, "deleted");
    std::fs::remove_dir_all(&db).unwrap();
    assert_clear_error(&f, "deleted", "database removed");

    type Edit = Box<dyn Fn(&sled::Db)>;
    let edits: [(&str, &str, Edit); 4] = [
        (
            "bad-json",
            "a record that is not JSON",
            Box::new(|db| {
                db.open_tree("nodes")
                    .unwrap()
                    .insert(0u32.to_be_bytes(), &b"{not json"[..])
                    .unwrap();
            }),
        ),
        (
            "newer",
            "a record from a newer format",
            Box::new(|db| {
                db.open_tree("meta")
                    .unwrap()
                    .insert(b"run", &br#"{"v": 99, "body": {}}"#[..])
                    .unwrap();
            }),
        ),
        (
            "lost-node",
            "a node missing",
            Box::new(|db| {
                db.open_tree("nodes")
                    .unwrap()
                    .remove(3u32.to_be_bytes())
                    .unwrap();
            }),
        ),
        (
            "lost-log",
            "log entries missing at the end",
            Box::new(|db| {
                let log = db.open_tree("log").unwrap();
                let last = log.last().unwrap().unwrap().0;
                log.remove(last).unwrap();
            }),
        ),
    ];
    for (name, damage, edit) in edits {
        let db = finished_run(&f, name);
        // sled's flusher thread lets go of the file lock a moment after the run's last
        // handle is dropped: wait for it as the engine's own readers do.
        let opened = (0..100)
            .find_map(|_| {
                let config = baton_engine::store::sled::config(&db).unwrap();
                match config.open() {
                    Ok(db) => Some(db),
                    Err(_) => {
                        std::thread::sleep(std::time::Duration::from_millis(50));
                        None
                    }
                }
            })
            .expect("the finished run's database is still locked after 5 s");
        edit(&opened);
        opened.flush().unwrap();
        drop(opened);
        assert_clear_error(&f, name, damage);
    }
    let newer = executor::load_run(&f.state, "newer")
        .unwrap_err()
        .to_string();
    assert!(newer.contains("newer baton"), "{newer}");
}

/// Every file under `dir` with its bytes, to show a reader changed nothing.
fn snapshot_tree(dir: &Path) -> BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                files.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

fn restore(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    for (path, bytes) in snapshot_tree(from) {
        let target = to.join(path.strip_prefix(from).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, bytes).unwrap();
    }
}

#[derive(Debug)]
enum Damage {
    /// The file cut to this many bytes.
    Truncate(u64),
    /// One bit flipped in the byte at this offset.
    Flip(u64),
}

impl Damage {
    fn apply(&self, path: &Path) {
        match *self {
            Damage::Truncate(len) => std::fs::File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_len(len)
                .unwrap(),
            Damage::Flip(at) => {
                let mut bytes = std::fs::read(path).unwrap();
                bytes[at as usize] ^= 0x10;
                std::fs::write(path, bytes).unwrap();
            }
        }
    }
}

/// Issue #12 item 9: sled opens a truncated or bit-flipped log as the prefix before the
/// damage, so a succeeded run read back as `running` with part of its history, and a resume
/// acted on that older state. Every such damage must now be reported, or be harmless (the
/// run reads back exactly as it was); a resume of a damaged run changes nothing.
#[test]
fn a_truncated_or_bit_flipped_database_is_reported_never_read_as_an_older_state() {
    let f = fixture();
    let db = finished_run(&f, "sealed");
    let good = executor::load_run(&f.state, "sealed").unwrap();
    assert_eq!(good.state, RunState::Succeeded);
    let run_dir = store::run_dir(&f.state, "sealed");
    let pristine = f._tmp.path().join("pristine");
    restore(&run_dir, &pristine);
    let world = std::fs::read(&f.world).unwrap();
    let data = db.join("db");
    let len = std::fs::metadata(&data).unwrap().len();
    assert!(len > 4096, "a finished run's database is {len} bytes");

    let mut damages: Vec<Damage> = (0..12u64).map(|k| Damage::Truncate(len * k / 12)).collect();
    damages.extend((0..24u64).map(|k| Damage::Flip((len * k / 24 + 7).min(len - 1))));
    let mut reported = 0;
    for (i, damage) in damages.iter().enumerate() {
        restore(&pristine, &run_dir);
        damage.apply(&data);
        let before = snapshot_tree(&f.state);
        match executor::load_run(&f.state, "sealed") {
            Err(ExecError::Corrupt { detail, .. }) => {
                reported += 1;
                assert!(!detail.is_empty(), "{damage:?}");
            }
            Ok(view) => assert_eq!(
                view, good,
                "{damage:?}: read back as another state than the one written"
            ),
            Err(other) => panic!("{damage:?}: {other:?}"),
        }
        assert!(
            before == snapshot_tree(&f.state),
            "{damage:?}: reading the run changed its state directory"
        );
        // A resume of a damaged run must refuse before any step runs. (Every third
        // damage: each resume opens the database in place.)
        if i % 3 == 0 {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let resumed = runtime.block_on(executor::resume(
                Some("sealed"),
                None,
                steps(&f),
                &opts(&f.state),
                events(),
                CancellationToken::new(),
            ));
            match resumed {
                Err(ExecError::Corrupt { .. }) | Ok(Outcome::AlreadyFinished { .. }) => {}
                other => panic!("{damage:?}: resume gave {other:?}"),
            }
            assert_eq!(std::fs::read(&f.world).unwrap(), world, "{damage:?}");
        }
    }
    assert!(
        reported >= damages.len() / 2,
        "only {reported} of {} damages were reported",
        damages.len()
    );

    // The seal itself, removed or altered, is damage too.
    restore(&pristine, &run_dir);
    let seal = store::seal::seal_path(&db);
    std::fs::remove_file(&seal).unwrap();
    assert!(matches!(
        executor::load_run(&f.state, "sealed"),
        Err(ExecError::Corrupt { .. })
    ));
    restore(&pristine, &run_dir);
    let mut bytes = std::fs::read(&seal).unwrap();
    bytes[10] ^= 0x01;
    std::fs::write(&seal, bytes).unwrap();
    assert!(matches!(
        executor::load_run(&f.state, "sealed"),
        Err(ExecError::Corrupt { .. })
    ));
    restore(&pristine, &run_dir);
    assert_eq!(executor::load_run(&f.state, "sealed").unwrap(), good);
}
