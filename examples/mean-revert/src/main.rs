//! A trading bot: the mean-reversion strategy of `strategy.rs` with Switchyard's whole
//! command line — `mean-revert-bot run --config bot.toml`, `replay … --expect-parity`,
//! `journal`, `kill`, `reset`, `bench`.

mod strategy;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    switchyard_cli::App::new()
        .name("mean-revert-bot")
        .strategy("mean_revert", strategy::MeanRevert::from_config)
        .main()
}
