use baton_engine::executor;
use baton_engine::store;

use crate::exec_damage::finished_run;
use crate::exec_store::fixture;

#[test]
fn a_run_let_go_of_leaves_no_status_file_and_reads_whole_from_its_database() {
    let f = fixture();
    let db = finished_run(&f, "let-go");
    let dir = store::run_dir(&f.state, "let-go");
    assert!(
        !store::status_path(&dir).exists(),
        "status.json outlived the process that drove the run"
    );
    let view = executor::load_run(&f.state, "let-go").unwrap();
    let record = store::SledStore::read_detached(&db).unwrap().unwrap();
    assert_eq!(view, store::RunView::of(&record, None));
    assert_eq!(view.state, store::RunState::Succeeded);
    assert!(view.live_pid.is_none());
    assert!(
        !view.events.is_empty(),
        "the events are read from the database"
    );
}
