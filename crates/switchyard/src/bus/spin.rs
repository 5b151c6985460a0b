//! The busy-poll wait strategy: a subscription's worker on a dedicated OS thread that
//! never parks (the LMAX Disruptor's busy-spin wait strategy).
//!
//! A parked tokio worker is woken through the OS (a futex wake, and the scheduler putting
//! the thread back on a core): microseconds at the median and, on a busy machine, far more
//! in the tail. A spinning thread sees the event as soon as the publisher's store reaches
//! its core. The cost is a core: the thread spins at 100 % whether events come or not.
//!
//! The worker future is the same as a parked subscription's (same queue, same batches,
//! same control lane, isolation and counters); only its executor differs. Its waker sets
//! a flag, and the thread polls the future again once the flag is set, spinning on that
//! one cache line in between — not on the queue's lock, which the publisher takes.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

/// Run `fut` to completion on this thread, polling it again whenever it is woken and
/// spinning (never sleeping) in between.
pub(crate) fn block_on_spinning<F: Future>(fut: F) -> F::Output {
    let flag = Arc::new(Flag(AtomicBool::new(true)));
    let waker = Waker::from(Arc::clone(&flag));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if flag.0.swap(false, Ordering::Acquire) {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
        } else {
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_future_woken_from_another_thread_completes() {
        let (tx, rx) = std::sync::mpsc::channel::<tokio::sync::oneshot::Sender<u32>>();
        let sender = std::thread::spawn(move || {
            let reply = rx.recv().unwrap();
            reply.send(7).unwrap();
        });
        let got = block_on_spinning(async move {
            let (reply, wait) = tokio::sync::oneshot::channel();
            tx.send(reply).unwrap();
            wait.await.unwrap()
        });
        assert_eq!(got, 7);
        sender.join().unwrap();
    }
}
