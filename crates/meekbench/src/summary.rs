//! The table printed at the end of a bench.

use meek_schema::{BenchResult, EnergyStatus};

/// `0.12 J/tok` when measured, `~0.12 J/tok (est.)` when estimated, `-` without joules.
pub fn joules(value: Option<f64>, status: EnergyStatus, unit: &str) -> String {
    match (value, status) {
        (Some(j), EnergyStatus::Measured) => format!("{} {unit}", sig(j)),
        (Some(j), EnergyStatus::Estimated) => format!("~{} {unit} (est.)", sig(j)),
        _ => "-".into(),
    }
}

/// Three significant digits.
fn sig(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let digits = (2 - x.abs().log10().floor() as i32).max(0) as usize;
    format!("{x:.digits$}")
}

/// A line for each speed point measured while other processes used CPUs its threads needed (the pool's counts),
/// since such a point measures the neighbour as much as the model, and for each that ran regions on fewer threads
/// because it has more than the process's CPUs.
fn busy(r: &BenchResult) -> String {
    let mut out = String::new();
    for run in &r.runs {
        for p in &run.speed {
            let Some(pool) = p.pool else { continue };
            let point = format!(
                "{} t={} pp{} tg{}",
                run.model.id, run.threads, p.n_prompt, p.n_gen
            );
            if let Some(busy) = pool.busy() {
                out += &format!(
                    "{point}: the machine was busy: other processes used CPUs these threads needed during {:.0}% of \
                     the parallel regions, {:.0}% ran on fewer threads (compare it with care)\n",
                    100.0 * busy,
                    100.0 * pool.reduced_share().unwrap_or(0.0)
                );
            } else if let Some(excess) = pool.excess() {
                out += &format!(
                    "{point}: {:.0}% of the parallel regions ran on fewer threads: more threads than the CPUs this \
                     process may run on or its CPU quota gives\n",
                    100.0 * excess
                );
            }
        }
    }
    out
}

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
        "decode energy",
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
                p.energy.as_ref().map_or_else(
                    || "-".into(),
                    |e| {
                        joules(
                            e.joules_per_decode_token.as_ref().map(|s| s.median),
                            e.status,
                            "J/tok",
                        )
                    },
                ),
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
         BW bound: decode tok/s if each token only read the weights at the measured memory bandwidth; \
         decode energy: gross joules per decoded token, ~ and (est.) when estimated)\n",
    );
    out += &busy(r);
    for run in &r.runs {
        if let Some(s) = meek_report::localscore::of_run(run) {
            out += &format!(
                "{} t={}: LocalScore {:.0} by its formula from these figures (means over its nine tests: prompt \
                 {:.1} tok/s, generation {:.1} tok/s, TTFT {:.0} ms)\n",
                run.model.id, run.threads, s.score, s.prompt_tps, s.gen_tps, s.ttft_ms
            );
        }
    }
    let mut energy = String::new();
    for run in &r.runs {
        let Some(e) = &run.energy else { continue };
        energy += &format!(
            "{} t={}: {} [{}]",
            run.model.id,
            run.threads,
            e.status.as_str(),
            e.label
        );
        if let Some(w) = e.average_watts {
            energy += &format!(", {w:.2} W average");
        }
        if let Some(b) = &e.baseline {
            energy += &format!(", idle {:.2} ± {:.2} W", b.watts, b.watts_stddev);
        }
        if let Some(j) = e.net_joules_per_decode_token {
            energy += &format!(", net {}", joules(Some(j), e.status, "J/tok"));
        }
        if let Some(c) = &e.cost
            && let Some(m) = c.per_million_decode_tokens
        {
            energy += &format!(", {m:.4} {} per 1M decoded tokens", c.currency);
        }
        energy.push('\n');
        let p = &e.proxies;
        energy += &format!(
            "    proxies: {} CPU-s/token (decode), {:.3e} FLOPs/token + {:.3e} per position of context, {:.1} MB of \
             weights/token\n",
            p.cpu_seconds_per_decode_token
                .map_or_else(|| "-".into(), |c| format!("{c:.4}")),
            p.flops_per_token,
            p.attention_flops_per_token_per_position,
            p.weight_bytes_per_token as f64 / 1e6
        );
        for u in &e.unavailable {
            energy += &format!("    unavailable {}: {}\n", u.source, u.reason);
        }
        for n in &e.notes {
            energy += &format!("    note: {n}\n");
        }
    }
    if !energy.is_empty() {
        out.push_str(
            "\nenergy (`meekbench doctor` shows how to enable the unavailable sources):\n",
        );
        out.push_str(&energy);
    }
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
            let per_correct = a.energy.as_ref().map_or_else(String::new, |e| {
                match joules(e.joules_per_correct_answer, e.status, "J") {
                    j if j == "-" => String::new(),
                    j => format!(", {j} per correct answer"),
                }
            });
            acc += &format!(
                "{} t={} {} ({} items, {}-shot, {}): strict {}, flexible {}; {:.1} tokens and {:.2} s per answer{}{per_correct}\n",
                run.model.id,
                run.threads,
                a.key(),
                a.strict.n,
                a.shots,
                a.task.as_ref().map_or_else(
                    || a.prompt_style.clone(),
                    |t| format!("{}, lm-eval {t}", a.prompt_style)
                ),
                pct(&a.strict),
                pct(&a.flexible),
                a.mean_generated_tokens,
                a.seconds_per_answer,
                a.seconds_per_correct
                    .map_or_else(String::new, |s| format!(", {s:.2} s per correct answer")),
            );
            let steps: Vec<String> = match &a.step_model {
                // Measured beside the p-step model's prediction from the fewest steps.
                Some(m) => m
                    .points
                    .iter()
                    .map(|p| {
                        if p.steps == m.base_steps {
                            format!("p={}: {}", p.steps, pct(&p.measured))
                        } else {
                            format!(
                                "p={}: {} vs {:.0}% [{:.0}-{:.0}]",
                                p.steps,
                                pct(&p.measured),
                                100.0 * p.predicted,
                                100.0 * p.predicted_ci95[0],
                                100.0 * p.predicted_ci95[1]
                            )
                        }
                    })
                    .collect(),
                None => a
                    .by_steps
                    .iter()
                    .map(|g| format!("p={}: {:.0}%", g.key, 100.0 * g.flexible.accuracy))
                    .collect(),
            };
            let steps_label = a.step_model.as_ref().map_or_else(
                || "flexible by steps".to_string(),
                |m| {
                    format!(
                        "flexible by steps (measured vs acc({0})^(p/{0}))",
                        m.base_steps
                    )
                },
            );
            let fams: Vec<String> = a
                .by_family
                .iter()
                .map(|g| format!("{}: {:.0}%", g.key, 100.0 * g.flexible.accuracy))
                .collect();
            acc += &format!(
                "    {steps_label}: {}\n    flexible by family: {}\n",
                steps.join(", "),
                fams.join(", ")
            );
            if let Some(t) = a.mean_thinking_tokens {
                acc += &format!(
                    "    thinking: {t:.1} tokens per answer{}\n",
                    a.thinking_forced
                        .map_or_else(String::new, |n| format!(", {n} closed by the budget"))
                );
            }
        }
    }
    if !acc.is_empty() {
        out.push_str("\naccuracy (95% Wilson intervals):\n");
        out.push_str(&acc);
    }
    let mut ppl = String::new();
    for run in &r.runs {
        for p in &run.perplexity {
            ppl += &format!(
                "{} t={} {} (context {}, {} chunks, {} tokens scored): {:.4} nats/token +/- {:.4}, perplexity {:.3} \
                 [{:.3}-{:.3}], {:.4} bits/byte, {:.1} tokens/s\n",
                run.model.id,
                run.threads,
                p.name,
                p.context,
                p.chunks,
                p.tokens_scored,
                p.nll_mean,
                p.nll_stderr,
                p.perplexity,
                p.perplexity_ci95[0],
                p.perplexity_ci95[1],
                p.bits_per_byte,
                p.tokens_per_second
            );
        }
    }
    if !ppl.is_empty() {
        out.push_str("\nperplexity (scored as llama-perplexity does; 95% intervals):\n");
        out.push_str(&ppl);
    }
    out.push_str(&crate::sweep::curves(r));
    for f in &r.failures {
        out += &format!(
            "FAILED {}: {}\n",
            f.model,
            f.error.lines().next().unwrap_or("")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn energy_cells_say_how_the_figure_was_obtained() {
        assert_eq!(
            joules(Some(0.1234), EnergyStatus::Measured, "J/tok"),
            "0.123 J/tok"
        );
        assert_eq!(
            joules(Some(0.1234), EnergyStatus::Estimated, "J/tok"),
            "~0.123 J/tok (est.)"
        );
        assert_eq!(
            joules(Some(137.12), EnergyStatus::Estimated, "J"),
            "~137 J (est.)"
        );
        assert_eq!(joules(None, EnergyStatus::Estimated, "J"), "-");
        assert_eq!(joules(Some(1.0), EnergyStatus::ProxyOnly, "J"), "-");
    }

    #[test]
    fn a_point_measured_on_a_busy_machine_says_so() {
        let mut r = meek_schema::from_json(include_str!(
            "../../meek-report/tests/fixtures/machine-a.json"
        ))
        .unwrap();
        let pool = |regions, contended, reduced| {
            Some(meek_schema::PoolRegions {
                regions,
                contended,
                reduced,
            })
        };
        assert_eq!(busy(&r), "", "no pool record: nothing to say");
        r.runs[0].speed[0].pool = pool(200, 0, 0);
        assert_eq!(busy(&r), "", "a quiet machine");
        r.runs[0].speed[0].pool = pool(200, 1, 1);
        assert_eq!(busy(&r), "", "one contended region in 200 is a blip");
        r.runs[0].speed[0].pool = pool(200, 0, 50);
        let line = busy(&r);
        assert!(
            line.contains(
                "25% of the parallel regions ran on fewer threads: more threads than the CPUs"
            ),
            "{line}"
        );
        // A crafted file's counts out of order cannot say more than all of them.
        r.runs[0].speed[0].pool = pool(200, 150, 900);
        let line = busy(&r);
        assert!(
            line.contains("during 75% of the parallel regions, 100% ran on fewer threads"),
            "{line}"
        );
        assert!(
            line.starts_with(&format!("{} t=", r.runs[0].model.id)),
            "{line}"
        );
    }
}
