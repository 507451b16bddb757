//! The test-time-compute chart: for entries whose suite swept its token budgets, flexible accuracy (with its 95%
//! interval) against what an answer cost at each budget, one line per entry. This is the curve the study's argument
//! about reasoning models turns on: how much accuracy more compute at inference buys a small model. Cost is joules
//! per answer where every drawn point has it, else seconds per answer, and the chart says which.

use std::fmt::Write;

use meek_render::escape::html as esc;
use meek_render::format::num;
use meek_render::svg::{COLORS, legend};

use crate::board::{Board, BudgetPoint, Entry};
use crate::svg::{Chart, MAX_SERIES, accuracy_frame, empty, short, truncated};

/// Accuracy against cost per answer over each swept entry's budgets.
pub fn budget(b: &Board) -> Chart {
    let title = "Accuracy against compute spent per answer (token budget sweeps)";
    let rows: Vec<&Entry> = b
        .entries
        .iter()
        .filter(|e| e.budget_curve.len() > 1)
        .take(MAX_SERIES)
        .collect();
    if rows.is_empty() {
        return empty(
            "budget",
            title,
            "No entry swept its suite's token budget (`max_new_tokens = [64, 256, 1024]` in a suite).",
        );
    }
    type Pick = fn(&BudgetPoint) -> Option<f64>;
    let joules: Pick = |p| p.joules_per_answer;
    let seconds: Pick = |p| Some(p.seconds_per_answer);
    let by_joules = rows
        .iter()
        .all(|e| e.budget_curve.iter().all(|p| p.joules_per_answer.is_some()));
    let (pick, x_label) = if by_joules {
        (joules, "joules per answer")
    } else {
        (
            seconds,
            "seconds per answer (not every point has an energy figure)",
        )
    };
    let lines: Vec<Vec<(f64, &BudgetPoint)>> = rows
        .iter()
        .map(|e| {
            e.budget_curve
                .iter()
                .filter_map(|p| Some((pick(p)?, p)))
                .filter(|(x, p)| x.is_finite() && *x >= 0.0 && p.accuracy.is_finite())
                .collect()
        })
        .collect();
    let (mut s, xs, ys) = accuracy_frame(
        title,
        &lines.iter().flatten().map(|p| p.0).collect::<Vec<_>>(),
        rows.len(),
        x_label,
    );
    let mut items = Vec::new();
    for (n, (e, pts)) in rows.iter().zip(&lines).enumerate() {
        let color = COLORS[n % COLORS.len()];
        let d: Vec<String> = pts
            .iter()
            .map(|(x, p)| format!("{:.1},{:.1}", xs.at(*x), ys.at(p.accuracy)))
            .collect();
        let _ = write!(
            s,
            r##"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2" class="series"/>"##,
            d.join(" ")
        );
        for (x, p) in pts {
            let (cx, lo, hi) = (xs.at(*x), ys.at(p.ci95[0]), ys.at(p.ci95[1]));
            let _ = write!(
                s,
                r##"<line x1="{cx:.1}" x2="{cx:.1}" y1="{lo:.1}" y2="{hi:.1}" stroke="{color}" stroke-opacity="0.5" class="interval"/><circle cx="{cx:.1}" cy="{:.1}" r="4" fill="{color}" class="point"><title>{}: {}, accuracy {:.1}% [{:.1}-{:.1}], {} {}, {} tokens per answer</title></circle>"##,
                ys.at(p.accuracy),
                esc(&short(e)),
                esc(&p.budget),
                100.0 * p.accuracy,
                100.0 * p.ci95[0],
                100.0 * p.ci95[1],
                num(*x),
                esc(x_label),
                num(p.tokens_per_answer),
            );
        }
        items.push((short(e), color, true));
    }
    legend(&mut s, 640.0, 50.0, &items);
    s.push_str("</svg>");
    Chart {
        name: "budget",
        title: title.into(),
        caption: format!(
            "x: {x_label}{}; y: flexible accuracy with its 95% Wilson interval (vertical bars). One line per entry \
             through its budgets in the order measured (hover a point for the budget).{}",
            if xs.log { ", log scale" } else { "" },
            truncated(
                b.entries
                    .iter()
                    .filter(|e| e.budget_curve.len() > 1)
                    .count(),
                rows.len()
            )
        ),
        svg: s,
    }
}
