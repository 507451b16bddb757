//! The leaderboard's SVG charts: accuracy against cost with the Pareto frontier, tokens per second per machine
//! and model, and accuracy by reasoning step count. They are drawn with the chart kit of [`meek_render::svg`]
//! (scales, axes, legends); what is here is which entries are drawn and how. Every text is escaped for XML; every
//! coordinate is a finite number; charts need no script or font to show.

use std::fmt::Write;

use meek_render::escape::{clip, html as esc};
use meek_render::format::num;
use meek_render::svg::{self, COLORS, Scale, axes, legend, open, tick_label};

use crate::board::{Board, Entry};

/// Entries drawn at most per chart (the best-ranked); the tables list every entry.
pub const MAX_SERIES: usize = 24;

/// A chart: file name stem, title, and the SVG document.
#[derive(Debug, Clone)]
pub struct Chart {
    /// File name without extension (`pareto`, `speed`, `steps`, `budget`).
    pub name: &'static str,
    /// Heading.
    pub title: String,
    /// What the chart shows and how it was built.
    pub caption: String,
    /// The SVG.
    pub svg: String,
}

pub(crate) fn short(e: &Entry) -> String {
    let cpu = e.machine_label.split(" · ").next().unwrap_or("");
    format!(
        "{} · {} · {}t",
        clip(&e.model, 26),
        clip(cpu, 16),
        e.threads
    )
}

pub(crate) fn empty(name: &'static str, title: &str, why: &str) -> Chart {
    Chart {
        name,
        title: title.into(),
        caption: why.into(),
        svg: svg::message(title, why),
    }
}

/// Accuracy against cost per token, with the Pareto frontier (no other entry is both cheaper and more
/// accurate). Cost is joules per generated token when the results carry it, else dollars per correct answer,
/// else milliseconds per generated token (1000 / decode rate), and the chart says which.
pub fn pareto(b: &Board) -> Chart {
    type Pick = fn(&Entry) -> Option<f64>;
    let choices: [(Pick, &str); 3] = [
        (|e| e.joules_per_decode_token, "joules per generated token"),
        (|e| e.cost_per_correct, "dollars per correct answer"),
        (
            |e| {
                e.decode_tokens_per_second
                    .filter(|d| *d > 0.0)
                    .map(|d| 1.0 / d)
            },
            "seconds per generated token (no energy figures in these results)",
        ),
    ];
    let title = "Accuracy against cost, with the Pareto frontier";
    let Some((pick, x_label)) = choices.iter().find(|(f, _)| {
        b.entries
            .iter()
            .any(|e| e.accuracy.is_some() && f(e).is_some())
    }) else {
        return empty(
            "pareto",
            title,
            "No entry has both an accuracy and a cost figure.",
        );
    };
    let pts: Vec<(&Entry, f64, f64)> = b
        .entries
        .iter()
        .filter_map(|e| Some((e, pick(e)?, e.accuracy?)))
        .filter(|(_, x, y)| x.is_finite() && y.is_finite() && *x >= 0.0)
        .take(MAX_SERIES)
        .collect();
    // Frontier: by cost ascending (accuracy descending among equals), keep each point more accurate than all
    // cheaper ones.
    let mut order: Vec<usize> = (0..pts.len()).collect();
    order.sort_by(|&i, &j| {
        pts[i]
            .1
            .total_cmp(&pts[j].1)
            .then(pts[j].2.total_cmp(&pts[i].2))
    });
    let mut frontier = Vec::new();
    let mut best = f64::NEG_INFINITY;
    for i in order {
        if pts[i].2 > best {
            best = pts[i].2;
            frontier.push(i);
        }
    }
    let (mut s, xs, ys) = accuracy_frame(
        title,
        &pts.iter().map(|p| p.1).collect::<Vec<_>>(),
        pts.len(),
        x_label,
    );
    if frontier.len() > 1 {
        let mut d = String::new();
        for (k, &i) in frontier.iter().enumerate() {
            let (x, y) = (xs.at(pts[i].1), ys.at(pts[i].2));
            if k == 0 {
                let _ = write!(d, "M{x:.1},{y:.1}");
            } else {
                // A step: more accuracy costs more, nothing in between is reachable.
                let _ = write!(d, " H{x:.1} V{y:.1}");
            }
        }
        let _ = write!(
            s,
            r##"<path d="{d}" fill="none" stroke="#2ca02c" stroke-width="2" stroke-dasharray="6 3" class="frontier"/>"##
        );
    }
    let mut items = Vec::new();
    for (i, (e, x, y)) in pts.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let on = frontier.contains(&i);
        let fill = if on { color } else { "#fff" };
        let _ = write!(
            s,
            r##"<circle cx="{:.1}" cy="{:.1}" r="6" fill="{fill}" stroke="{color}" stroke-width="2" class="point"><title>{}: accuracy {:.1}%, {} {}</title></circle>"##,
            xs.at(*x),
            ys.at(*y),
            esc(&short(e)),
            100.0 * y,
            num(*x),
            esc(x_label),
        );
        items.push((
            format!("{}{}", short(e), if on { " (frontier)" } else { "" }),
            color,
            on,
        ));
    }
    legend(&mut s, 640.0, 50.0, &items);
    s.push_str("</svg>");
    let left_out = b.entries.len() - pts.len();
    Chart {
        name: "pareto",
        title: title.into(),
        caption: format!(
            "x: {x_label}{}; y: accuracy on the suite. Filled points are on the Pareto frontier (dashed): no other \
             entry is both cheaper and more accurate.{}",
            if xs.log { ", log scale" } else { "" },
            if left_out > 0 {
                format!(" {left_out} entries without both figures are not drawn.")
            } else {
                String::new()
            }
        ),
        svg: s,
    }
}

/// The frame of a chart of flexible accuracy (0 to 100%) against a cost: the canvas, tall enough for `n_legend`
/// legend rows, an x scale over `x_values` (log10 when they span more than a factor of 20) and the axes. Returns
/// the open SVG and both scales.
pub(crate) fn accuracy_frame(
    title: &str,
    x_values: &[f64],
    n_legend: usize,
    x_label: &str,
) -> (String, Scale, Scale) {
    let (w, h) = (1000.0, (400.0f64).max(90.0 + 18.0 * n_legend as f64));
    let xs = Scale::new(x_values, 80.0, 600.0, true, false);
    let ys = Scale {
        lo: 0.0,
        hi: 1.0,
        log: false,
        from: h - 60.0,
        to: 40.0,
    };
    let mut s = String::new();
    open(&mut s, w, h, title);
    axes(&mut s, &xs, &ys, x_label, "accuracy (flexible)", true);
    (s, xs, ys)
}

/// Decode and prefill tokens per second for each machine, model and thread count (horizontal bars).
pub fn speed(b: &Board) -> Chart {
    let title = "Tokens per second per machine and model";
    let rows: Vec<&Entry> = b
        .entries
        .iter()
        .filter(|e| e.decode_tokens_per_second.is_some() || e.prefill_tokens_per_second.is_some())
        .take(MAX_SERIES)
        .collect();
    if rows.is_empty() {
        return empty(
            "speed",
            title,
            "No entry has speed figures at this workload point.",
        );
    }
    let max = rows
        .iter()
        .flat_map(|e| [e.decode_tokens_per_second, e.prefill_tokens_per_second])
        .flatten()
        .fold(0.0f64, f64::max);
    let (w, row_h, top, left) = (1000.0, 34.0, 50.0, 370.0);
    let h = top + row_h * rows.len() as f64 + 50.0;
    let xs = Scale::new(&[0.0, max], left, w - 60.0, false, true);
    let mut s = String::new();
    open(&mut s, w, h, title);
    for t in xs.ticks() {
        let x = xs.at(t);
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{top}" y2="{:.1}" stroke="#eee"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="#444">{}</text>"##,
            h - 45.0,
            h - 30.0,
            tick_label(t, false)
        );
    }
    let _ = write!(
        s,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#222">tokens per second (median)</text>"##,
        (left + w - 60.0) / 2.0,
        h - 10.0
    );
    legend(&mut s, left, 25.0, &[("decode".into(), "#1f77b4", true)]);
    legend(
        &mut s,
        left + 110.0,
        25.0,
        &[("prefill".into(), "#9ecae1", true)],
    );
    for (i, e) in rows.iter().enumerate() {
        let y = top + row_h * i as f64;
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#222" font-size="11">{}</text>"##,
            left - 8.0,
            y + 20.0,
            esc(&short(e))
        );
        for (k, (v, color, what)) in [
            (e.decode_tokens_per_second, "#1f77b4", "decode"),
            (e.prefill_tokens_per_second, "#9ecae1", "prefill"),
        ]
        .into_iter()
        .enumerate()
        {
            let Some(v) = v else { continue };
            let yy = y + 4.0 + 13.0 * k as f64;
            let x1 = xs.at(v);
            let _ = write!(
                s,
                r##"<rect x="{left}" y="{yy:.1}" width="{:.1}" height="12" fill="{color}" class="bar"><title>{}: {what} {} tok/s</title></rect><text x="{:.1}" y="{:.1}" fill="#333" font-size="11">{}</text>"##,
                (x1 - left).max(0.5),
                esc(&short(e)),
                num(v),
                x1 + 4.0,
                yy + 10.0,
                num(v)
            );
        }
    }
    s.push_str("</svg>");
    let point = b.point.map_or_else(String::new, |(p, g)| {
        format!(" at prompt {p} / generation {g} tokens")
    });
    Chart {
        name: "speed",
        title: title.into(),
        caption: format!(
            "Median decode and prefill rates{point}, one pair of bars per machine, model and thread count \
             (labels: model · CPU · threads).{}",
            truncated(b.entries.len(), rows.len())
        ),
        svg: s,
    }
}

/// Accuracy by the number of dependent reasoning steps, one line per entry.
pub fn steps(b: &Board) -> Chart {
    let title = "Accuracy by reasoning step count";
    let rows: Vec<&Entry> = b
        .entries
        .iter()
        .filter(|e| !e.by_steps.is_empty())
        .take(MAX_SERIES.min(COLORS.len() * 2))
        .collect();
    let mut keys: Vec<String> = Vec::new();
    for e in &rows {
        for (k, _, _) in &e.by_steps {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
    }
    keys.sort_by(|a, b| {
        let n = |s: &str| s.parse::<f64>().unwrap_or(f64::INFINITY);
        n(a).total_cmp(&n(b)).then_with(|| a.cmp(b))
    });
    if rows.is_empty() || keys.is_empty() {
        return empty("steps", title, "No entry has accuracy by step count.");
    }
    let (w, h) = (1000.0, (400.0f64).max(90.0 + 18.0 * rows.len() as f64));
    let (x0, x1) = (80.0, 600.0);
    let xi = |i: usize| {
        if keys.len() == 1 {
            (x0 + x1) / 2.0
        } else {
            x0 + 20.0 + (x1 - x0 - 40.0) * i as f64 / (keys.len() - 1) as f64
        }
    };
    let ys = Scale {
        lo: 0.0,
        hi: 1.0,
        log: false,
        from: h - 60.0,
        to: 40.0,
    };
    let mut s = String::new();
    open(&mut s, w, h, title);
    for t in ys.ticks() {
        let y = ys.at(t);
        let _ = write!(
            s,
            r##"<line x1="{x0}" x2="{x1}" y1="{y:.1}" y2="{y:.1}" stroke="#e6e6e6"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#444">{}</text>"##,
            x0 - 6.0,
            y + 4.0,
            tick_label(t, true)
        );
    }
    for (i, k) in keys.iter().enumerate() {
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#444">{}</text>"##,
            xi(i),
            ys.from + 16.0,
            esc(k)
        );
    }
    let _ = write!(
        s,
        r##"<line x1="{x0}" x2="{x1}" y1="{y:.1}" y2="{y:.1}" stroke="#888"/><text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#222">dependent steps per problem</text><text transform="translate({:.1},{:.1}) rotate(-90)" text-anchor="middle" fill="#222">accuracy (flexible)</text>"##,
        (x0 + x1) / 2.0,
        ys.from + 36.0,
        x0 - 48.0,
        (ys.from + ys.to) / 2.0,
        y = ys.from
    );
    let mut items = Vec::new();
    for (n, e) in rows.iter().enumerate() {
        let color = COLORS[n % COLORS.len()];
        let dash = if n >= COLORS.len() {
            r#" stroke-dasharray="5 3""#
        } else {
            ""
        };
        let pts: Vec<(f64, f64, &(String, f64, usize))> = e
            .by_steps
            .iter()
            .filter_map(|g| {
                let i = keys.iter().position(|k| k == &g.0)?;
                g.1.is_finite().then(|| (xi(i), ys.at(g.1), g))
            })
            .collect();
        let d: Vec<String> = pts
            .iter()
            .map(|(x, y, _)| format!("{x:.1},{y:.1}"))
            .collect();
        let _ = write!(
            s,
            r##"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"{dash} class="series"/>"##,
            d.join(" ")
        );
        for (x, y, g) in &pts {
            let _ = write!(
                s,
                r##"<circle cx="{x:.1}" cy="{y:.1}" r="4" fill="{color}"><title>{}: {} steps, {:.1}% of {}</title></circle>"##,
                esc(&short(e)),
                esc(&g.0),
                100.0 * g.1,
                g.2
            );
        }
        items.push((short(e), color, true));
    }
    legend(&mut s, 640.0, 50.0, &items);
    s.push_str("</svg>");
    let suite = b.suite.as_deref().unwrap_or("-");
    Chart {
        name: "steps",
        title: title.into(),
        caption: format!(
            "Flexible accuracy on suite \"{}\" per number of dependent steps; few items per step count, so read \
             the trend, not single points (hover a point for its item count).{}",
            clip(suite, 60),
            truncated(
                b.entries.iter().filter(|e| !e.by_steps.is_empty()).count(),
                rows.len()
            )
        ),
        svg: s,
    }
}

pub(crate) fn truncated(all: usize, drawn: usize) -> String {
    if drawn < all {
        format!(
            " The first {drawn} of {all} entries in ranking order are drawn; the table has them all."
        )
    } else {
        String::new()
    }
}

/// All charts of a board.
pub fn charts(b: &Board) -> Vec<Chart> {
    vec![
        pareto(b),
        speed(b),
        steps(b),
        crate::budget_chart::budget(b),
    ]
}
