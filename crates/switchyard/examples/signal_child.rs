//! Test helper for `tests/lifecycle.rs`: a tiny system that prints `ready` once every
//! component runs, stops on SIGINT/SIGTERM, prints its shutdown report and exits with
//! its exit code. With the argument `slow-stop`, one component takes 60 s to stop, so a
//! second signal can force the exit.

use std::sync::Arc;
use std::time::Duration;

use switchyard::Bus;
use switchyard::lifecycle::{
    BoxFuture, Component, ComponentContext, ComponentError, ComponentKind, LifecycleState,
    Registry, Runtime, RuntimeConfig, signals,
};

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
                .publisher::<u64>(switchyard::Topic::new("ticks").expect("topic"));
            ctx.spawn("publish", move || {
                let mut p = publisher.clone();
                async move {
                    for i in 0.. {
                        if p.publish(i).await.is_err() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Ok(())
                }
            });
            Ok(())
        })
    }
    fn stop<'a>(&'a self, _: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(async { Ok(()) })
    }
}

struct Sink {
    slow_stop: bool,
}

impl Component for Sink {
    fn name(&self) -> &str {
        "sink"
    }
    fn dependencies(&self) -> Vec<String> {
        vec!["feed".into()]
    }
    fn start<'a>(&'a self, ctx: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(async move {
            ctx.bus()
                .subscribe::<u64, _>(
                    "ticks",
                    switchyard::bus::sync_handler(|_: &switchyard::Envelope<u64>| Ok(())),
                )
                .map_err(ComponentError::new)?;
            Ok(())
        })
    }
    fn stop<'a>(&'a self, _: &'a ComponentContext) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(async move {
            if self.slow_stop {
                println!("stopping slowly");
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            Ok(())
        })
    }
}

#[tokio::main]
async fn main() {
    let slow_stop = std::env::args().any(|a| a == "slow-stop");
    let bus = Bus::new();
    let mut registry = Registry::new(bus.clone());
    registry.register(Arc::new(Feed)).expect("register feed");
    registry
        .register(Arc::new(Sink { slow_stop }))
        .expect("register sink");
    let config = RuntimeConfig {
        stop_deadline: Duration::from_secs(120),
        ..RuntimeConfig::default()
    };
    let runtime = Runtime::new(registry.clone(), bus, config);

    // `run` polls the signal future before starting anything, so the handlers are in
    // place by the time every component is running.
    let watches: Vec<_> = registry
        .names()
        .iter()
        .filter_map(|n| registry.watch(n))
        .collect();
    tokio::spawn(async move {
        for mut w in watches {
            let _ = w.wait_for(|s| *s == LifecycleState::Running).await;
        }
        println!("ready");
    });

    let signal = async {
        let first = signals::wait_for_signal().await;
        signals::spawn_force_exit_on_second_signal();
        first
    };
    match runtime.run(signal).await {
        Ok(report) => {
            print!("{report}");
            std::process::exit(report.exit_code());
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(e.exit_code());
        }
    }
}
