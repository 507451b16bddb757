//! The report: Markdown with every assumption next to the numbers, and SVG charts that need no script to view.

use std::fmt::Write;

use crate::{Curve, Projection};

/// Escapes text for SVG and HTML.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

const COLORS: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// A line chart of `curves` over `t`, bands drawn as shaded areas; `log_y` plots log10 of positive values.
pub fn chart(title: &str, y_label: &str, t: &[f64], curves: &[Curve], log_y: bool) -> String {
    let (w, h, ml, mr, mt, mb) = (760.0, 420.0, 70.0, 210.0, 40.0, 50.0);
    let tr = |v: f64| {
        if log_y {
            if v > 0.0 { v.log10() } else { f64::NAN }
        } else {
            v
        }
    };
    let all = curves.iter().flat_map(|c| {
        c.values
            .iter()
            .chain(c.low.iter().flatten())
            .chain(c.high.iter().flatten())
            .map(|&v| tr(v))
    });
    let (mut ymin, mut ymax) = all
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if !ymin.is_finite() {
        (ymin, ymax) = (0.0, 1.0);
    }
    if !log_y {
        ymin = ymin.min(0.0);
    }
    if (ymax - ymin).abs() < 1e-12 {
        ymax = ymin + 1.0;
    }
    let (x0, x1) = (t[0], t[t.len() - 1]);
    let px = |x: f64| ml + (x - x0) / (x1 - x0) * (w - ml - mr);
    let py = |y: f64| mt + (1.0 - (y - ymin) / (ymax - ymin)) * (h - mt - mb);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">
<rect width="{w}" height="{h}" fill="white"/>
<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>
"#,
        w / 2.0,
        escape(title)
    );
    for i in 0..=5 {
        let yv = ymin + (ymax - ymin) * i as f64 / 5.0;
        let label = if log_y {
            format!("1e{yv:.1}")
        } else {
            format!("{yv:.3}")
        };
        let _ = writeln!(
            s,
            r##"<line x1="{ml}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{label}</text>"##,
            w - mr,
            ml - 6.0,
            py(yv) + 4.0,
            y = py(yv)
        );
    }
    for i in 0..=10 {
        let xv = x0 + (x1 - x0) * i as f64 / 10.0;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{xv:.0}</text>"#,
            px(xv),
            h - mb + 18.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{}" text-anchor="middle">years from start</text><text x="16" y="{:.1}" transform="rotate(-90 16 {:.1})" text-anchor="middle">{}</text>"#,
        (ml + w - mr) / 2.0,
        h - 12.0,
        h / 2.0,
        h / 2.0,
        escape(y_label)
    );
    let path = |v: &[f64]| -> String {
        v.iter()
            .zip(t)
            .filter(|(y, _)| tr(**y).is_finite())
            .map(|(y, x)| format!("{:.1},{:.1}", px(*x), py(tr(*y))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    for (i, c) in curves.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        if let (Some(lo), Some(hi)) = (&c.low, &c.high) {
            let mut pts = path(hi);
            let back: Vec<f64> = lo.iter().rev().copied().collect();
            let rev_t: Vec<f64> = t.iter().rev().copied().collect();
            let lower = back
                .iter()
                .zip(&rev_t)
                .filter(|(y, _)| tr(**y).is_finite())
                .map(|(y, x)| format!("{:.1},{:.1}", px(*x), py(tr(*y))))
                .collect::<Vec<_>>()
                .join(" ");
            pts.push(' ');
            pts.push_str(&lower);
            let _ = writeln!(
                s,
                r#"<polygon points="{pts}" fill="{color}" fill-opacity="0.15" stroke="none"/>"#
            );
        }
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            path(&c.values)
        );
        let ly = mt + 16.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{}" x2="{}" y1="{ly:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="3"/><text x="{}" y="{:.1}">{}</text>"#,
            w - mr + 10.0,
            w - mr + 30.0,
            w - mr + 36.0,
            ly + 4.0,
            escape(&c.name)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// The charts, as `(file name, svg)`.
pub fn charts(p: &Projection) -> Vec<(String, String)> {
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
                &p.tokens_to_distinguish,
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
        let _ = writeln!(s, "- {}", escape_md(a));
    }
    s.push_str("\n## Loss gap per scenario\n\n| scenario | peak (numeric) | peak (closed form) | gap at peak | gap at t = 10 |\n|---|---|---|---|---|\n");
    for k in &p.peaks {
        let _ = writeln!(
            s,
            "| {} | {:.2} years | {} | {:.3} nats/token | {:.3} nats/token |",
            escape_md(&k.scenario),
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
                escape_md(&q.model),
                escape_md(&q.setup),
                q.decode_tokens_per_second,
                q.joules_per_token,
                escape_md(&q.energy_basis),
                q.usd_per_token,
                q.accuracy.map_or_else(
                    || "-".into(),
                    |a| format!(
                        "{:.1}% ({})",
                        100.0 * a,
                        escape_md(q.suite.as_deref().unwrap_or(""))
                    )
                ),
                q.implied_loss.map_or_else(
                    || escape_md(q.note.as_deref().unwrap_or("-")),
                    |l| format!("{l:.3}")
                ),
                q.implied_year
                    .map_or_else(|| "-".into(), |y| format!("{y:.1}")),
                yt.join("; "),
                if q.pareto { "yes" } else { "" }
            );
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
                    escape_md(&q.model),
                    steps.join(", ")
                );
            }
        }
    }
    if !p.skipped.is_empty() {
        s.push_str("\n## Skipped result files\n\n");
        for k in &p.skipped {
            let _ = writeln!(s, "- {}", escape_md(k));
        }
    }
    s
}

/// Escapes what could break out of Markdown text or a table cell (HTML tags, entities, pipes, newlines, control
/// and bidi characters) in text from result files.
fn escape_md(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
        .chars()
        // Newlines, terminal escapes and bidi overrides would break the table or act on a terminal showing it.
        .map(|c| if meek_schema::is_hidden(c) { ' ' } else { c })
        .collect()
}
