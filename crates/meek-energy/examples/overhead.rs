//! What a window edge costs on this machine: `cargo run -p meek-energy --release --example overhead`.
//!
//! A speed repetition reads the meter three times (prompt handed over, first token, last token) and an accuracy
//! answer twice; compare the figure printed here with a repetition's duration to get the harness overhead.

use std::time::Instant;

use meek_energy::{CpuIdentity, Env, Meter, Settings, probe};

fn main() {
    let env = Env::system(CpuIdentity {
        brand: std::env::args().nth(1).unwrap_or_else(|| "unknown".into()),
        logical_cpus: std::thread::available_parallelism().map_or(1, usize::from),
    });
    let meter = Meter::new(probe(&env, &Settings::default()), &env);
    let labels: Vec<&str> = meter
        .components()
        .iter()
        .map(|c| c.label.as_str())
        .collect();
    println!("sources: {}", labels.join(" + "));
    let n = 20_000;
    let t = Instant::now();
    let mut a = meter.mark();
    let mut joules = 0.0;
    for _ in 0..n {
        let b = meter.mark();
        joules += meter.window(&a, &b).joules.unwrap_or(0.0);
        a = b;
    }
    let per = t.elapsed().as_secs_f64() / n as f64;
    println!(
        "one mark + window: {:.2} us ({n} in a row; {joules:.3} J modelled meanwhile)",
        per * 1e6
    );
}
