//! Components with dependencies, supervision and a graceful shutdown.
//!
//! `feed` (a producer) publishes a price every 100 ms; `strategy` (depends on `feed`)
//! counts them, and its `checker` task fails every second and is restarted with backoff;
//! `reporter` (an observer: it stops last) prints the states every second. Ctrl-C stops it
//! (a second Ctrl-C forces the exit) and prints the shutdown report.
//!
//! ```text
//! cargo run -p switchyard --example 02_lifecycle          # until Ctrl-C
//! cargo run -p switchyard --example 02_lifecycle -- 3     # stop itself after 3 s
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use switchyard::bus::sync_handler;
use switchyard::lifecycle::{
    BoxFuture, Component, ComponentContext, ComponentError, ComponentKind, Escalation, Registry,
    RestartPolicy, Runtime, RuntimeConfig, ShutdownTrigger, signals,
};
use switchyard::{Bus, Envelope, Topic};

struct Feed;

impl Component for Feed {
    fn name(&self) -> &str {
        "feed"
    }
    fn kind(&self) -> ComponentKind {
        ComponentKind::Producer
    }
    fn start<'a>(&'a self, ctx: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(async move {
            let publisher = ctx
                .bus()
                .publisher::<f64>(Topic::new("prices.BTCUSD").map_err(ComponentError::new)?);
            ctx.spawn("ticker", move || {
                let mut p = publisher.clone();
                async move {
                    let mut price = 50_000.0;
                    loop {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        price += 1.5;
                        p.publish(price).await.map_err(ComponentError::msg)?;
                    }
                }
            });
            Ok(())
        })
    }
    fn stop<'a>(&'a self, _: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(async {
            println!("feed: stopped publishing");
            Ok(())
        })
    }
}

#[derive(Default)]
struct Strategy {
    seen: Arc<AtomicU64>,
}

impl Component for Strategy {
    fn name(&self) -> &str {
        "strategy"
    }
    fn dependencies(&self) -> Vec<String> {
        vec!["feed".into()]
    }
    fn restart_policy(&self) -> RestartPolicy {
        RestartPolicy::on_failure(
            Duration::from_millis(200),
            Duration::from_secs(2),
            10,
            Duration::from_secs(60),
            Escalation::ShutdownSystem,
        )
    }
    fn start<'a>(&'a self, ctx: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(async move {
            let seen = Arc::clone(&self.seen);
            ctx.bus()
                .subscribe::<f64, _>(
                    "prices.*",
                    sync_handler(move |_: &Envelope<f64>| {
                        seen.fetch_add(1, Ordering::Relaxed);
                        Ok(())
                    }),
                )
                .map_err(ComponentError::new)?;
            // A flaky task: fails after a second, restarted with backoff each time.
            ctx.spawn("checker", || async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Err(ComponentError::msg("lost connection to the risk service"))
            });
            Ok(())
        })
    }
    fn stop<'a>(&'a self, _: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(async move {
            println!("strategy: saw {} prices", self.seen.load(Ordering::Relaxed));
            Ok(())
        })
    }
}

struct Reporter {
    registry: Registry,
}

impl Component for Reporter {
    fn name(&self) -> &str {
        "reporter"
    }
    fn dependencies(&self) -> Vec<String> {
        vec!["strategy".into()]
    }
    fn kind(&self) -> ComponentKind {
        ComponentKind::Observer
    }
    fn start<'a>(&'a self, ctx: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(async move {
            let registry = self.registry.clone();
            ctx.spawn("print", move || {
                let registry = registry.clone();
                async move {
                    loop {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        let line: Vec<String> = registry
                            .health()
                            .iter()
                            .map(|s| format!("{}={} (restarts {})", s.name, s.state, s.restarts))
                            .collect();
                        println!(
                            "status ({:?}): {}",
                            registry.overall_health(),
                            line.join(", ")
                        );
                    }
                }
            });
            Ok(())
        })
    }
    fn stop<'a>(&'a self, _: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(async { Ok(()) })
    }
}

#[tokio::main]
async fn main() {
    let stop_after: Option<u64> = std::env::args().nth(1).and_then(|a| a.parse().ok());
    let bus = Bus::new();
    let mut registry = Registry::new(bus.clone());
    let strategy = Arc::new(Strategy::default());
    registry
        .register(Arc::new(Reporter {
            registry: registry.clone(),
        }))
        .expect("register reporter");
    registry.register(strategy).expect("register strategy");
    registry.register(Arc::new(Feed)).expect("register feed");

    // Components are found again by name, with their type.
    let strategy: Arc<Strategy> = registry.get("strategy").expect("registered");

    let runtime = Runtime::new(registry, bus, RuntimeConfig::default());
    if let Some(secs) = stop_after {
        let handle = runtime.shutdown_handle();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            handle.trigger(ShutdownTrigger::Elapsed {
                after_ms: secs * 1000,
            });
        });
    }
    println!("running; Ctrl-C to stop");
    let signal = async {
        let first = signals::wait_for_signal().await;
        signals::spawn_force_exit_on_second_signal();
        first
    };
    match runtime.run(signal).await {
        Ok(report) => {
            println!("prices seen: {}", strategy.seen.load(Ordering::Relaxed));
            print!("{report}");
            std::process::exit(report.exit_code());
        }
        Err(e) => {
            eprintln!("failed to start: {e}");
            std::process::exit(e.exit_code());
        }
    }
}
