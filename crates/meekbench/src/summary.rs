//! The table printed at the end of a bench.

use meek_schema::BenchResult;

/// A plain-text table of the medians (± standard deviation) of every run and workload point.
pub fn table(r: &BenchResult) -> String {
    let header = [
        "model",
        "device",
        "thr",
        "pp",
        "tg",
        "load s",
        "TTFT ms",
        "prefill tok/s",
        "decode tok/s",
        "ITL p50/p99 ms",
        "peak RSS",
        "of BW bound",
    ];
    let mut rows: Vec<Vec<String>> = Vec::new();
    for run in &r.runs {
        for p in &run.speed {
            rows.push(vec![
                run.model.id.clone(),
                run.device.clone(),
                run.threads.to_string(),
                p.n_prompt.to_string(),
                p.n_gen.to_string(),
                format!("{:.2}", run.load_seconds),
                format!("{:.1}", p.ttft_ms.median),
                format!(
                    "{:.1} ± {:.1}",
                    p.prefill_tokens_per_second.median, p.prefill_tokens_per_second.stddev
                ),
                format!(
                    "{:.1} ± {:.1}",
                    p.decode_tokens_per_second.median, p.decode_tokens_per_second.stddev
                ),
                format!("{:.2} / {:.2}", p.itl_ms.p50, p.itl_ms.p99),
                format!("{:.0} MiB", p.peak_rss_bytes as f64 / (1u64 << 20) as f64),
                match (
                    p.bandwidth_bound_fraction,
                    p.bandwidth_bound_tokens_per_second,
                ) {
                    (Some(f), Some(b)) => format!("{:.0}% of {:.0}", 100.0 * f, b),
                    _ => "-".into(),
                },
            ]);
        }
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i < 2 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
            + "\n"
    };
    let mut out = line(header.iter().map(|s| s.to_string()).collect());
    out += &line(widths.iter().map(|w| "-".repeat(*w)).collect());
    for row in rows {
        out += &line(row);
    }
    out.push_str(
        "(medians ± sample standard deviation over the repetitions; TTFT includes prefill of the whole prompt; \
         BW bound: decode tok/s if each token only read the weights at the measured memory bandwidth)\n",
    );
    let mut acc = String::new();
    for run in &r.runs {
        for a in &run.accuracy {
            let pct = |s: &meek_schema::Score| {
                format!(
                    "{:.0}% [{:.0}-{:.0}]",
                    100.0 * s.accuracy,
                    100.0 * s.ci95[0],
                    100.0 * s.ci95[1]
                )
            };
            acc += &format!(
                "{} t={} {} ({} items, {}-shot, {}): strict {}, flexible {}; {:.1} tokens and {:.2} s per answer{}\n",
                run.model.id,
                run.threads,
                a.suite,
                a.strict.n,
                a.shots,
                a.prompt_style,
                pct(&a.strict),
                pct(&a.flexible),
                a.mean_generated_tokens,
                a.seconds_per_answer,
                a.seconds_per_correct
                    .map_or_else(String::new, |s| format!(", {s:.2} s per correct answer")),
            );
            let steps: Vec<String> = a
                .by_steps
                .iter()
                .map(|g| format!("p={}: {:.0}%", g.key, 100.0 * g.flexible.accuracy))
                .collect();
            let fams: Vec<String> = a
                .by_family
                .iter()
                .map(|g| format!("{}: {:.0}%", g.key, 100.0 * g.flexible.accuracy))
                .collect();
            acc += &format!(
                "    flexible by steps: {}\n    flexible by family: {}\n",
                steps.join(", "),
                fams.join(", ")
            );
        }
    }
    if !acc.is_empty() {
        out.push_str("\naccuracy (95% Wilson intervals):\n");
        out.push_str(&acc);
    }
    for f in &r.failures {
        out += &format!(
            "FAILED {}: {}\n",
            f.model,
            f.error.lines().next().unwrap_or("")
        );
    }
    out
}
