//! The report: Markdown with every assumption next to the numbers, and SVG charts that need no script to view,
//! drawn and escaped with `meek-render` (the same escaping and chart kit as the leaderboard's), and [`write()`],
//! which puts the projection, the report and the charts in a directory.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use fs_err as fs;
use meek_render::escape;
use meek_render::svg;

use crate::{Curve, Point, Projection};

/// A line chart of `curves` over `t` (years), bands drawn as shaded areas; `log_y` plots log10 of positive values.
pub fn chart(title: &str, y_label: &str, t: &[f64], curves: &[Curve], log_y: bool) -> String {
    let lines: Vec<svg::Line<'_>> = curves
        .iter()
        .map(|c| svg::Line {
            name: &c.name,
            values: &c.values,
            low: c.low.as_deref(),
            high: c.high.as_deref(),
        })
        .collect();
    svg::line_chart(title, "years from start", y_label, t, &lines, log_y)
}

/// The charts, as `(file name, svg)`.
pub fn charts(p: &Projection) -> Vec<(String, String)> {
    // The study's reference lines: a hundred and a thousand tokens, what one answer or one page takes.
    let mut tokens = p.tokens_to_distinguish.clone();
    for n in [100.0, 1000.0] {
        tokens.push(Curve {
            name: format!("{n:.0} tokens (reference)"),
            values: vec![n; p.t.len()],
            low: None,
            high: None,
        });
    }
    vec![
        (
            "loss-gap.svg".into(),
            chart(
                "Loss gap, meek vs frontier (band: baseline under parameter ranges)",
                "nats/token",
                &p.t,
                &p.loss_gap,
                false,
            ),
        ),
        (
            "accuracy-gap.svg".into(),
            chart(
                "Accuracy gap on p-step tasks (baseline, bands)",
                "acc_sota^p - acc_meek^p",
                &p.t,
                &p.accuracy_gap,
                false,
            ),
        ),
        (
            "tokens-to-distinguish.svg".into(),
            chart(
                "Tokens needed to tell the models apart (SPRT)",
                "tokens (log10)",
                &p.t,
                &tokens,
                true,
            ),
        ),
        (
            "inference-gap.svg".into(),
            chart(
                "Fixed-budget inference: loss gap",
                "nats/token",
                &p.t,
                &p.inference_gap,
                false,
            ),
        ),
        ("trend.svg".into(), crate::trend_chart::chart(&p.trend)),
    ]
}

fn years(v: Option<f64>) -> String {
    v.map_or_else(
        || "not within the horizon".into(),
        |y| format!("{y:.1} years"),
    )
}

/// The Markdown report.
pub fn markdown(p: &Projection) -> String {
    let mut s = String::from(
        "# meekbench projection\n\nThe meek-models model (Gundlach, Lynch, Thompson 2025) with this configuration, and the models measured here placed on it.\n\n## Assumptions\n\n",
    );
    for a in &p.assumptions {
        let _ = writeln!(s, "- {}", escape::markdown(a));
    }
    s.push_str("\n## Loss gap per scenario\n\n| scenario | peak (numeric) | peak (closed form) | gap at peak | gap at t = 10 |\n|---|---|---|---|---|\n");
    for k in &p.peaks {
        let _ = writeln!(
            s,
            "| {} | {:.2} years | {} | {:.3} nats/token | {:.3} nats/token |",
            escape::markdown(&k.scenario),
            k.t_numeric,
            k.t_closed_form
                .map_or_else(|| "n/a".into(), |t| format!("{t:.2} years")),
            k.gap,
            k.gap_at_10
        );
    }
    s.push_str("\n![loss gap](loss-gap.svg)\n\n![accuracy gap](accuracy-gap.svg)\n\n![tokens to distinguish](tokens-to-distinguish.svg)\n\n![inference gap](inference-gap.svg)\n\n## Measured models\n\n");
    if p.points.is_empty() {
        s.push_str("No result files were given (`meekbench project --results results/*.json`).\n");
    } else {
        s.push_str("| model | setup | decode tok/s | J/token | $/token | accuracy | implied loss | meek-equivalent year | years to target (per g_inf) | Pareto |\n|---|---|---|---|---|---|---|---|---|---|\n");
        for q in &p.points {
            let yt: Vec<String> = q
                .years_to_target
                .iter()
                .map(|(g, y)| format!("{g}: {}", years(*y)))
                .collect();
            let _ = writeln!(
                s,
                "| {} | {} | {:.1} | {:.3} ({}) | {:.2e} | {} | {} | {} | {} | {} |",
                escape::markdown(&q.model),
                escape::markdown(&q.setup),
                q.decode_tokens_per_second,
                q.joules_per_token,
                escape::markdown(&q.energy_basis),
                q.usd_per_token,
                q.accuracy.map_or_else(
                    || "-".into(),
                    |a| format!(
                        "{:.1}% ({})",
                        100.0 * a,
                        escape::markdown(q.suite.as_deref().unwrap_or(""))
                    )
                ),
                q.implied_loss.map_or_else(
                    || escape::markdown(q.note.as_deref().unwrap_or("-")),
                    |l| format!("{l:.3}")
                ),
                q.implied_year
                    .map_or_else(|| "-".into(), |y| format!("{y:.1}")),
                yt.join("; "),
                if q.pareto { "yes" } else { "" }
            );
        }
        s.push_str("\nWhere each model's figures come from:\n\n");
        for q in &p.points {
            let tokens = q.training_tokens.as_ref().map_or_else(
                || "training tokens unknown (no [models.card] training_tokens)".into(),
                |(d, basis)| format!("{d:.3e} training tokens, {basis}"),
            );
            let date = q.release_date.as_ref().map_or_else(
                || "release date unknown (no [models.card] release_date)".into(),
                |(d, basis)| format!("released {d}, {basis}"),
            );
            let ne = q
                .non_embedding_params
                .map_or_else(String::new, |n| format!(", {n} outside the embeddings"));
            let _ = writeln!(
                s,
                "- {} ({}): {} parameters{ne}, measured (counted from the file's tensors); {}; {}; accuracy and \
                 tokens/s measured; energy {}; price per kWh, hardware cost, lifetime and utilisation assumed \
                 ([machine])",
                escape::markdown(&q.model),
                escape::markdown(&q.setup),
                q.n_params,
                escape::markdown(&tokens),
                escape::markdown(&date),
                escape::markdown(&q.energy_basis),
            );
        }
        s.push_str("\nHow each budget became years (provenance in brackets):\n\n");
        for q in &p.points {
            let when: Vec<String> = q
                .years_to_target
                .iter()
                .map(|(g, y)| match (y, q.run_year) {
                    (Some(y), Some(r)) => format!("g_inf {g}: {y:.1} years, {:.1}", r + y),
                    (Some(y), None) => format!("g_inf {g}: {y:.1} years"),
                    (None, _) => format!("g_inf {g}: not within the horizon"),
                })
                .collect();
            let _ = writeln!(
                s,
                "- {} ({}): {}; target reached: {}",
                escape::markdown(&q.model),
                escape::markdown(&q.setup),
                escape::markdown(&q.budget_chain),
                when.join("; ")
            );
        }
        let measured: Vec<&Point> = p
            .points
            .iter()
            .filter(|q| q.measured_loss.is_some())
            .collect();
        if !measured.is_empty() {
            s.push_str(
                "\nLoss measured by the runs themselves (*measured*: the loss of a text, `[[perplexity]]`, not the \
                 pretraining loss the study's law predicts, so it ranks the models on that text and is not placed on \
                 the curves):\n\n",
            );
            for q in measured {
                let Some(m) = &q.measured_loss else { continue };
                let _ = writeln!(
                    s,
                    "- {} ({}): {:.4} ± {:.4} nats/token, {:.4} bits/byte on {} ({} tokens)",
                    escape::markdown(&q.model),
                    escape::markdown(&q.setup),
                    m.nats_per_token,
                    m.stderr,
                    m.bits_per_byte,
                    escape::markdown(&m.text),
                    m.tokens
                );
            }
        }
        for q in &p.points {
            if !q.accuracy_by_steps.is_empty() {
                let steps: Vec<String> = q
                    .accuracy_by_steps
                    .iter()
                    .map(|(k, a)| format!("p={k}: {:.0}%", 100.0 * a))
                    .collect();
                let _ = writeln!(
                    s,
                    "\n{} accuracy by steps: {}",
                    escape::markdown(&q.model),
                    steps.join(", ")
                );
            }
        }
    }
    trend_section(&mut s, p);
    if !p.skipped.is_empty() {
        s.push_str("\n## Skipped result files\n\n");
        for k in &p.skipped {
            let _ = writeln!(s, "- {}", escape::markdown(k));
        }
    }
    s
}

/// The study's claim tested on the measured results ([`crate::trend`]).
fn trend_section(s: &mut String, p: &Projection) {
    let t = &p.trend;
    s.push_str("\n## The study's claim, tested on these results\n\n");
    let _ = writeln!(s, "{}\n", escape::markdown(&t.summary));
    if !t.entries.is_empty() {
        s.push_str("| model | released (declared) | accuracy | $ per correct answer (measured time and energy, assumed [machine] prices) | J per correct answer |\n|---|---|---|---|---|\n");
        for e in &t.entries {
            let _ = writeln!(
                s,
                "| {} | {} | {:.1}% of {} | {:.3e} | {} |",
                escape::markdown(&e.model),
                escape::markdown(&e.release_date),
                100.0 * e.accuracy,
                e.items,
                e.usd_per_correct,
                e.joules_per_correct.map_or_else(
                    || format!("- ({})", escape::markdown(&e.energy_basis)),
                    |j| format!("{j:.1} ({})", escape::markdown(&e.energy_basis))
                )
            );
        }
        s.push_str("\n| accuracy at least | models reaching it | frontier at release | decline per year on the frontier (95% interval) | over all models reaching it | energy decline per year |\n|---|---|---|---|---|---|\n");
        for f in &t.fits {
            let fit = match (f.decline_per_year, f.ci95) {
                (Some(d), Some([lo, hi])) => format!("{d:.2}x ({lo:.2} to {hi:.2})"),
                _ => escape::markdown(f.note.as_deref().unwrap_or("-")),
            };
            let names: Vec<String> = f
                .frontier
                .iter()
                .map(|(m, y, _)| format!("{} ({y:.1})", escape::markdown(m)))
                .collect();
            let all = match (f.all_decline_per_year, f.all_ci95) {
                (Some(d), Some([lo, hi])) => format!("{d:.2}x ({lo:.2} to {hi:.2})"),
                _ => "-".into(),
            };
            let _ = writeln!(
                s,
                "| {:.0}% | {} | {} | {fit} | {all} | {} |",
                100.0 * f.threshold,
                f.reaching,
                if names.is_empty() {
                    "-".into()
                } else {
                    names.join(", ")
                },
                f.energy_decline_per_year
                    .map_or_else(|| "-".into(), |d| format!("{d:.2}x"))
            );
        }
        s.push_str("\n![cost per correct answer against release date](trend.svg)\n");
    }
    if !t.left_out.is_empty() {
        s.push_str("\nLeft out of the test:\n\n");
        for l in &t.left_out {
            let _ = writeln!(s, "- {}", escape::markdown(l));
        }
    }
}

/// Why [`write()`] failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Creating the directory or writing a file failed (the message names the path).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The projection could not be written as JSON.
    #[error("cannot write {}: {source}", path.display())]
    Json {
        /// The file it was to be written to.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
}

/// Writes `projection` into `dir` (created if needed): `projection.json` (the whole projection, pretty-printed),
/// `report.md` ([`markdown`]) and every chart of [`charts`]. Returns the paths written, in that order.
pub fn write(dir: &Path, projection: &Projection) -> Result<Vec<PathBuf>, WriteError> {
    fs::create_dir_all(dir)?;
    let mut out = Vec::new();
    let mut put = |name: &str, text: &str| -> Result<(), WriteError> {
        let path = dir.join(name);
        fs::write(&path, text)?;
        out.push(path);
        Ok(())
    };
    let json = serde_json::to_string_pretty(projection).map_err(|source| WriteError::Json {
        path: dir.join("projection.json"),
        source,
    })?;
    put("projection.json", &json)?;
    put("report.md", &markdown(projection))?;
    for (name, svg) in charts(projection) {
        put(&name, &svg)?;
    }
    Ok(out)
}
