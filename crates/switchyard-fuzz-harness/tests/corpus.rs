//! Every committed fuzz corpus file (`fuzz/corpus/<target>/`) and crash-regression input
//! (`fuzz/regressions/<target>/`) through its target's body, on stable Rust: a corpus
//! regression fails here, in the normal test suite, without a fuzzer.

use std::path::{Path, PathBuf};

use switchyard_fuzz_harness::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_and_regression_input_runs_clean() {
    let mut total = 0;
    for (name, body) in TARGETS {
        let corpus = inputs(&fuzz_dir().join("corpus").join(name));
        assert!(
            !corpus.is_empty(),
            "fuzz target {name} has no committed corpus in fuzz/corpus/{name}"
        );
        let regressions = inputs(&fuzz_dir().join("regressions").join(name));
        for file in corpus.iter().chain(&regressions) {
            let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let outcome = std::panic::catch_unwind(|| body(&data));
            assert!(
                outcome.is_ok(),
                "fuzz target {name} panics on {} (run it with `scripts/fuzz` to debug)",
                file.display()
            );
            total += 1;
        }
    }
    assert!(total > 0);
}

#[test]
fn every_fuzz_target_has_a_harness_and_the_reverse() {
    let dir = fuzz_dir().join("fuzz_targets");
    let mut on_disk: Vec<String> = inputs(&dir)
        .iter()
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_owned()))
        .collect();
    on_disk.sort();
    let mut named: Vec<String> = TARGETS.iter().map(|(n, _)| (*n).to_owned()).collect();
    named.sort();
    assert_eq!(on_disk, named, "fuzz/fuzz_targets/*.rs and TARGETS differ");
}
