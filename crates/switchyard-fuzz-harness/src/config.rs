//! A node's configuration: a TOML file over the embedded defaults
//! ([`Config::load_str_with_env`], the steps of `Config::load_str`), and
//! `SWITCHYARD__<SECTION>__<KEY>` environment overrides. Checks: an error is a message,
//! never a panic; a configuration that loads answers every accessor without panicking,
//! and its effective TOML (`switchyard config`) renders.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use switchyard_node::Config;
use switchyard_node::config::ENV_PREFIX;

/// The whole input as the TOML file, no environment.
pub fn toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    load(text, &[]);
}

/// A small TOML file (up to the first NUL byte, often empty), then environment variables,
/// one `NAME=value` a line (`SWITCHYARD__` is put in front of a name that lacks it). Names
/// and values may be any bytes, as in a real environment.
pub fn env(data: &[u8]) {
    let (file, vars) = crate::split_once(data, 0);
    let Ok(text) = std::str::from_utf8(file) else {
        return;
    };
    let mut env = Vec::new();
    for line in vars.split(|&b| b == b'\n') {
        let (name, value) = crate::split_once(line, b'=');
        let mut key = name.to_vec();
        if !key.starts_with(ENV_PREFIX.as_bytes()) {
            key.splice(0..0, ENV_PREFIX.bytes());
        }
        env.push((OsString::from_vec(key), OsString::from_vec(value.to_vec())));
    }
    // Not ours: must be ignored, whatever it holds.
    env.push((
        OsString::from("PATH"),
        OsString::from_vec(b"/usr/bin:\xff".to_vec()),
    ));
    load(text, &env);
}

fn load(text: &str, env: &[(OsString, OsString)]) {
    match Config::load_str_with_env(text, env) {
        Ok(cfg) => {
            let _ = cfg.role();
            let _ = cfg.speed();
            let _ = cfg.duration();
            let _ = cfg.bad_line_policy();
            let _ = cfg.http_addr();
            let _ = cfg.validate_entries(&["ma_crossover"]);
            for i in 0..cfg.strategy.len() {
                let _ = cfg.strategy_limits(i);
                let _ = cfg.strategy[i].instrument();
            }
            assert!(!cfg.to_toml().starts_with("# cannot render"));
        }
        Err(e) => assert!(!format!("{e:#}").is_empty()),
    }
}
