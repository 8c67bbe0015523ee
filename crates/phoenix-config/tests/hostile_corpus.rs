//! Replays the fuzz corpus (`fuzz/corpus/load`) through the fuzz target's
//! entry point on stable: no panic, no hang (loops and recursion are bounded
//! by fuel), nothing read outside `templates/`, no environment variable read
//! without `env()`. Files the fuzzer adds to the corpus are replayed too.

use std::path::Path;
use std::time::{Duration, Instant};

use phoenix_config::hostile::{Outcome, load_case};

/// A case that takes longer than this is a hang.
const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn every_corpus_case_loads_or_is_refused_quickly_without_breaking_confinement() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/load");
    let mut cases: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
    cases.sort();
    assert!(cases.len() >= 20, "the corpus has {} cases", cases.len());
    let (mut loaded, mut refused) = (0, 0);
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let bytes = std::fs::read(case).unwrap();
        let started = Instant::now();
        let (tx, rx) = std::sync::mpsc::channel();
        let worker = std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn(move || {
                let _ = tx.send(std::panic::catch_unwind(|| load_case(&bytes)));
            })
            .unwrap();
        match rx.recv_timeout(LIMIT) {
            Err(_) => panic!("{name}: still loading after {LIMIT:?} (a hang)"),
            Ok(Err(_)) => panic!("{name}: the loader panicked"),
            Ok(Ok(Err(v))) => panic!("{name}: {}", v.0),
            Ok(Ok(Ok(Outcome::Loaded(_)))) => loaded += 1,
            Ok(Ok(Ok(Outcome::Refused(_)))) => refused += 1,
        }
        worker.join().unwrap();
        eprintln!("hostile: {name}: {:?}", started.elapsed());
    }
    eprintln!("hostile: {} cases: {loaded} loaded, {refused} refused", cases.len());
    // The repository's own environments are in the corpus and load.
    assert!(loaded >= 3, "{loaded} loaded");
}
