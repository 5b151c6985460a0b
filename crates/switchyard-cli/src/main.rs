//! The `switchyard` binary: the command line with the built-in strategies.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    switchyard_cli::App::new().main()
}
