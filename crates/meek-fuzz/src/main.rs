//! `meek-fuzz [TARGET|all] [--seconds N] [--iterations N] [--seed S]`: fuzzes the targets of [`meek_fuzz`] from
//! `fuzz/corpus/<target>/`, saves panicking inputs to `fuzz/artifacts/<target>/` and exits 1 if there were any.

use std::process::ExitCode;
use std::time::Duration;

use meek_fuzz::{Budget, TARGETS, fuzz, fuzz_dir, read_corpus, target};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut which = "all".to_string();
    let mut budget = Budget::Time(Duration::from_secs(60));
    let mut seed = 0u64;
    while let Some(a) = args.next() {
        let mut number = |what: &str| -> Option<u64> {
            let v = args.next().and_then(|v| v.parse().ok());
            if v.is_none() {
                eprintln!("{what} needs a number");
            }
            v
        };
        match a.as_str() {
            "--seconds" => match number("--seconds") {
                Some(s) => budget = Budget::Time(Duration::from_secs(s)),
                None => return ExitCode::from(2),
            },
            "--iterations" => match number("--iterations") {
                Some(n) => budget = Budget::Iterations(n),
                None => return ExitCode::from(2),
            },
            "--seed" => match number("--seed") {
                Some(s) => seed = s,
                None => return ExitCode::from(2),
            },
            "-h" | "--help" => {
                let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
                println!(
                    "usage: meek-fuzz [all|{}] [--seconds N | --iterations N] [--seed S]",
                    names.join("|")
                );
                return ExitCode::SUCCESS;
            }
            name => which = name.to_string(),
        }
    }
    let targets: Vec<_> = if which == "all" {
        TARGETS.iter().collect()
    } else {
        match target(&which) {
            Some(t) => vec![t],
            None => {
                eprintln!("no fuzz target `{which}`");
                return ExitCode::from(2);
            }
        }
    };
    let dir = fuzz_dir();
    let mut failed = false;
    for t in targets {
        let corpus = read_corpus(&dir.join("corpus").join(t.name));
        let r = fuzz(t, &corpus, seed, budget);
        println!(
            "{:<8} {:>10} inputs ({} seeds), slowest {} us, {} panics",
            t.name,
            r.iterations,
            corpus.len(),
            r.slowest_micros,
            r.crashes.len()
        );
        if r.crashes.is_empty() {
            continue;
        }
        failed = true;
        let out = dir.join("artifacts").join(t.name);
        // fs_err's errors name the path.
        if let Err(e) = fs_err::create_dir_all(&out) {
            eprintln!("{e}");
            continue;
        }
        let mut messages: Vec<&str> = Vec::new();
        for (i, (input, msg)) in r.crashes.iter().enumerate() {
            let p = out.join(format!("crash-{seed}-{i:04}"));
            if let Err(e) = fs_err::write(&p, input) {
                eprintln!("{e}");
            }
            if !messages.contains(&msg.as_str()) {
                messages.push(msg);
                println!("  {}: {msg}", p.display());
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
