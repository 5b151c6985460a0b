//! Unit tests of the writer that need its internals (fault injection).

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use super::*;

/// Generous bound: anything slower than this is a hang.
const HANG: Duration = Duration::from_secs(20);

fn append_one(j: &Journal, i: u64) -> Result<u64, JournalError> {
    j.append(i, Timestamp(i), "a.b", "k", b"payload")
}

fn is_writer_panic(e: &JournalError) -> bool {
    matches!(e, JournalError::WriterFailed { .. }) && e.to_string().contains("panicked")
}

#[test]
fn a_writer_panic_fails_waiters_appenders_and_close_instead_of_hanging() {
    let dir = tempfile::tempdir().unwrap();
    // `Never`: nothing becomes durable on its own, so the waiters below really wait.
    let config = JournalConfig::new(dir.path())
        .sync(SyncPolicy::Never)
        .max_buffer_bytes(1);
    let (j, _) = Journal::open(config).unwrap();
    assert_eq!(append_one(&j, 1).unwrap(), 1);

    let (tx, rx) = mpsc::channel::<(&str, Result<u64, JournalError>)>();
    {
        let (j, tx) = (j.clone(), tx.clone());
        thread::spawn(move || tx.send(("wait_durable", j.wait_durable(1))));
    }
    {
        let (j, tx) = (j.clone(), tx.clone());
        thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            tx.send(("durable_at_least", rt.block_on(j.durable_at_least(1))))
        });
    }
    // Give the waiters time to block (if they come late they fail at once: also fine).
    thread::sleep(Duration::from_millis(50));

    j.inner.shared.inject_panic.store(true, Ordering::Release);
    // Appenders against a one-byte buffer: without the writer they would wait for
    // space forever; each must end with an error.
    for t in 0..4u64 {
        let (j, tx) = (j.clone(), tx.clone());
        thread::spawn(move || {
            let mut last = Ok(0);
            for i in 0..200 {
                last = append_one(&j, 1000 * t + i);
                if last.is_err() {
                    break;
                }
            }
            tx.send(("append", last))
        });
    }
    drop(tx);
    let mut seen = Vec::new();
    for _ in 0..6 {
        let (who, res) = rx
            .recv_timeout(HANG)
            .unwrap_or_else(|_| panic!("hang; finished so far: {seen:?}"));
        let e = res.expect_err(who);
        assert!(is_writer_panic(&e), "{who}: {e}");
        seen.push(who);
    }

    assert!(j.inner.shared.stopped.load(Ordering::Acquire));
    assert!(is_writer_panic(&append_one(&j, 9).unwrap_err()));
    assert!(is_writer_panic(&j.sync_now().unwrap_err()));
    let e = j.close().unwrap_err();
    assert!(is_writer_panic(&e), "{e}");
    // Again: same outcome.
    assert!(is_writer_panic(&j.close().unwrap_err()));
}

#[test]
fn a_panicking_payload_writer_leaves_no_partial_frame_and_keeps_the_lock_usable() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(JournalConfig::new(dir.path())).unwrap();
    assert_eq!(append_one(&j, 1).unwrap(), 1);
    let before = j.inner.shared.lock().buf.len();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        j.append_with(2, Timestamp(2), "a.b", "k", |b| {
            b.extend_from_slice(b"half a payl");
            if b.len() > 1 {
                panic!("serializer bug");
            }
            Ok::<(), std::io::Error>(())
        })
    }));
    assert!(r.is_err());
    assert!(!j.inner.shared.state.is_poisoned());
    // The buffer may have been drained by the writer meanwhile, never grown.
    assert!(j.inner.shared.lock().buf.len() <= before);
    assert_eq!(j.next_index(), 2);
    assert_eq!(append_one(&j, 3).unwrap(), 2);
    assert_eq!(j.close().unwrap().durable, 2);
}
