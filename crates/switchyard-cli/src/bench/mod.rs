//! `switchyard bench …`: benchmarks that print their figures next to a baseline measured
//! in the same run (this machine is shared; absolute times drift).

pub mod bus;
pub mod journal;
pub mod kill;
pub mod nats;
pub mod pipeline;
pub mod work;

use std::time::Duration;

/// Events per second.
pub fn eps(n: u64, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

/// Print `value` as JSON or as aligned `key value` lines.
pub fn print_results(json: bool, results: &[(&str, f64)]) {
    if json {
        let map: serde_json::Map<String, serde_json::Value> = results
            .iter()
            .map(|(k, v)| {
                let v = if v.fract() == 0.0 && v.abs() < 9e15 {
                    serde_json::Value::from(*v as i64)
                } else {
                    serde_json::Value::from((v * 100.0).round() / 100.0)
                };
                (k.to_string(), v)
            })
            .collect();
        println!("{}", serde_json::Value::Object(map));
    } else {
        for (k, v) in results {
            if k.ends_with("_eps") {
                println!("{k:<28} {:>14.0} events/s", v);
            } else if k.ends_with("_us") {
                println!("{k:<28} {:>14.2} µs", v);
            } else {
                println!("{k:<28} {:>14.2}", v);
            }
        }
    }
}
