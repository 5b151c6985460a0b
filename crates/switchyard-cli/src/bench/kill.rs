//! Kill-switch event overtaking a data backlog, against the same event queued behind it
//! (what a single FIFO, as in the founding guide, would do).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchyard::bus::{Handler, HandlerResult, Overflow};
use switchyard::control::ControlEvent;
use switchyard::kill_switch::{KillSwitch, KillSwitchConfig, Mode, Scope, TriggerRequest};
use switchyard::{Bus, ControlEnvelope, Envelope, Topic};
use tokio::sync::{Notify, Semaphore};

struct H {
    gate: Arc<Semaphore>,
    first: bool,
    kill_seen: Arc<Mutex<Option<Instant>>>,
    done: Arc<Notify>,
    work: u64,
}

impl Handler<u64> for H {
    async fn handle(&mut self, ev: &Envelope<u64>) -> HandlerResult {
        if self.first {
            self.first = false;
            self.gate
                .acquire()
                .await
                .map_err(switchyard::bus::HandlerError::msg)?
                .forget();
        }
        // A little work per market-data event.
        self.work = self.work.wrapping_mul(31).wrapping_add(*ev.payload());
        if *ev.payload() == u64::MAX {
            // The in-band "kill" marker of the FIFO baseline.
            *self.kill_seen.lock().expect("lock") = Some(Instant::now());
            self.done.notify_one();
        }
        Ok(())
    }

    async fn on_control(&mut self, ev: &ControlEnvelope) -> HandlerResult {
        if matches!(ev.event, ControlEvent::KillSwitch(_)) {
            *self.kill_seen.lock().expect("lock") = Some(Instant::now());
            self.done.notify_one();
        }
        Ok(())
    }
}

/// Microseconds from trigger to the subscriber handling the kill event, with `backlog`
/// events queued: (control lane, in-band FIFO baseline).
async fn once(backlog: u64, control_lane: bool) -> f64 {
    let bus = Bus::new();
    let ks = KillSwitch::new(KillSwitchConfig::default(), None, bus.clock()).expect("config");
    let b = bus.clone();
    ks.set_listener(Arc::new(move |ev| {
        b.publish_control(ControlEvent::KillSwitch(ev.clone()));
    }));
    let gate = Arc::new(Semaphore::new(0));
    let kill_seen = Arc::new(Mutex::new(None));
    let done = Arc::new(Notify::new());
    let sub = bus
        .subscription::<u64>("market_data.x")
        .expect("pattern")
        .capacity(backlog as usize + 16)
        .overflow(Overflow::Block)
        .control(true)
        .subscribe(H {
            gate: gate.clone(),
            first: true,
            kill_seen: kill_seen.clone(),
            done: done.clone(),
            work: 0,
        })
        .expect("subscribe");
    let mut p = bus.publisher::<u64>(Topic::new("market_data.x").expect("topic"));
    p.publish(0).await.expect("open");
    while sub.stats().queued != 0 {
        tokio::task::yield_now().await;
    }
    for i in 1..=backlog {
        p.publish(i).await.expect("open");
    }
    let t0 = Instant::now();
    if control_lane {
        ks.trigger(TriggerRequest::new(
            Scope::All,
            Mode::Halt,
            "bench",
            "bench",
        ));
    } else {
        p.publish(u64::MAX).await.expect("open");
    }
    gate.add_permits(1);
    done.notified().await;
    let seen = kill_seen.lock().expect("lock").expect("kill seen");
    bus.shutdown(Duration::from_secs(10)).await;
    seen.duration_since(t0).as_secs_f64() * 1e6
}

/// `kill_overtake_us` (median of 5) and the FIFO baseline.
pub async fn run(backlog: u64) -> Vec<(&'static str, f64)> {
    let mut lane = Vec::new();
    let mut fifo = Vec::new();
    for _ in 0..5 {
        lane.push(once(backlog, true).await);
        fifo.push(once(backlog, false).await);
    }
    lane.sort_by(f64::total_cmp);
    fifo.sort_by(f64::total_cmp);
    vec![
        ("backlog_events", backlog as f64),
        ("kill_overtake_us", lane[2]),
        ("kill_overtake_max_us", lane[4]),
        ("fifo_kill_us", fifo[2]),
    ]
}
