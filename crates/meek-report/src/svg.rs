//! Hand-written SVG charts of a leaderboard: accuracy against cost with the Pareto frontier, tokens per second
//! per machine and model, and accuracy by reasoning step count. Every text is escaped for XML; every coordinate
//! is a finite number; charts need no script or font to show.

use std::fmt::Write;

use crate::board::{Board, Entry};
use crate::compare::num;
use crate::escape::{clip, html as esc};

const COLORS: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];
const FONT: &str = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
/// Entries drawn at most per chart (the best-ranked); the tables list every entry.
pub const MAX_SERIES: usize = 24;

/// A chart: file name stem, title, and the SVG document.
#[derive(Debug, Clone)]
pub struct Chart {
    /// File name without extension (`pareto`, `speed`, `steps`).
    pub name: &'static str,
    /// Heading.
    pub title: String,
    /// What the chart shows and how it was built.
    pub caption: String,
    /// The SVG.
    pub svg: String,
}

fn short(e: &Entry) -> String {
    let cpu = e.machine_label.split(" · ").next().unwrap_or("");
    format!(
        "{} · {} · {}t",
        clip(&e.model, 26),
        clip(cpu, 16),
        e.threads
    )
}

fn open(s: &mut String, w: f64, h: f64, title: &str) {
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" font-family="{FONT}" font-size="12" class="chart"><title>{}</title><rect width="{w}" height="{h}" fill="#fff"/>"##,
        esc(title)
    );
}

fn empty(name: &'static str, title: &str, why: &str) -> Chart {
    let mut s = String::new();
    open(&mut s, 720.0, 80.0, title);
    let _ = write!(
        s,
        r##"<text x="360" y="45" text-anchor="middle" fill="#555">{}</text></svg>"##,
        esc(why)
    );
    Chart {
        name,
        title: title.into(),
        caption: why.into(),
        svg: s,
    }
}

/// An axis scale from data values to pixels, linear or log10.
struct Scale {
    lo: f64,
    hi: f64,
    log: bool,
    from: f64,
    to: f64,
}

impl Scale {
    fn new(values: &[f64], from: f64, to: f64, allow_log: bool, zero: bool) -> Self {
        let (mut lo, mut hi) = values
            .iter()
            .filter(|v| v.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        if !lo.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        let log = allow_log && lo > 0.0 && hi / lo > 20.0;
        if log {
            lo = 10f64.powf(lo.log10().floor());
            hi = 10f64.powf(hi.log10().ceil());
        } else {
            if zero {
                lo = lo.min(0.0);
            } else {
                let pad = (hi - lo).max(hi.abs() * 0.1).max(1e-12) * 0.1;
                lo -= pad;
                hi += pad;
                if lo < 0.0 && values.iter().all(|v| *v >= 0.0) {
                    lo = 0.0;
                }
            }
            if hi - lo < 1e-12 {
                hi = lo + 1.0;
            }
            let step = nice_step((hi - lo) / 5.0);
            lo = (lo / step).floor() * step;
            hi = (hi / step).ceil() * step;
        }
        Self {
            lo,
            hi,
            log,
            from,
            to,
        }
    }

    fn at(&self, v: f64) -> f64 {
        let f = if self.log {
            (v.max(self.lo).log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        };
        let p = self.from + f.clamp(-0.05, 1.05) * (self.to - self.from);
        if p.is_finite() { p } else { self.from }
    }

    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let (a, b) = (
                self.lo.log10().round() as i32,
                self.hi.log10().round() as i32,
            );
            (a..=b).map(|e| 10f64.powi(e)).collect()
        } else {
            let step = nice_step((self.hi - self.lo) / 5.0);
            let n = ((self.hi - self.lo) / step).round() as usize;
            (0..=n.min(20)).map(|i| self.lo + step * i as f64).collect()
        }
    }
}

fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 2.5 {
        2.5
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// A tick label: a percentage, or the value with as many decimals as the tick spacing needs (ticks sit on round
/// multiples, so `0.0075`, `250`, `1e-6` rather than `7.50e-3` or `250.0`).
fn tick_label(v: f64, percent: bool) -> String {
    if percent {
        return format!("{:.0}%", 100.0 * v);
    }
    let a = v.abs();
    if a == 0.0 {
        return "0".into();
    }
    if !(1e-4..1e6).contains(&a) {
        return format!("{v:e}");
    }
    // Shortest decimal form after rounding away the float noise of `lo + step * i`.
    let r = (v * 1e9).round() / 1e9;
    format!("{r}")
}

/// Axes with grid lines and labels; the plot area is `[x0, x1] x [y0, y1]` in pixels (y0 at the bottom).
fn axes(s: &mut String, xs: &Scale, ys: &Scale, x_label: &str, y_label: &str, y_percent: bool) {
    let (x0, x1, y0, y1) = (xs.from, xs.to, ys.from, ys.to);
    for t in ys.ticks() {
        let y = ys.at(t);
        let _ = write!(
            s,
            r##"<line x1="{x0:.1}" x2="{x1:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#e6e6e6"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#444">{}</text>"##,
            x0 - 6.0,
            y + 4.0,
            tick_label(t, y_percent)
        );
    }
    for t in xs.ticks() {
        let x = xs.at(t);
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{y0:.1}" y2="{y1:.1}" stroke="#f0f0f0"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="#444">{}</text>"##,
            y0 + 16.0,
            tick_label(t, false)
        );
    }
    let _ = write!(
        s,
        r##"<line x1="{x0:.1}" x2="{x1:.1}" y1="{y0:.1}" y2="{y0:.1}" stroke="#888"/><line x1="{x0:.1}" x2="{x0:.1}" y1="{y0:.1}" y2="{y1:.1}" stroke="#888"/><text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#222">{}</text><text transform="translate({:.1},{:.1}) rotate(-90)" text-anchor="middle" fill="#222">{}</text>"##,
        (x0 + x1) / 2.0,
        y0 + 36.0,
        esc(x_label),
        x0 - 48.0,
        (y0 + y1) / 2.0,
        esc(y_label)
    );
}

fn legend(s: &mut String, x: f64, y: f64, items: &[(String, &str, bool)]) {
    for (i, (label, color, filled)) in items.iter().enumerate() {
        let yy = y + 18.0 * i as f64;
        let fill = if *filled { color } else { "#fff" };
        let _ = write!(
            s,
            r##"<circle cx="{x:.1}" cy="{:.1}" r="5" fill="{fill}" stroke="{color}" stroke-width="2"/><text x="{:.1}" y="{:.1}" fill="#222" font-size="11">{}</text>"##,
            yy - 4.0,
            x + 10.0,
            yy,
            esc(label)
        );
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
    let n_legend = pts.len();
    let (w, h) = (1000.0, (400.0f64).max(90.0 + 18.0 * n_legend as f64));
    let xs = Scale::new(
        &pts.iter().map(|p| p.1).collect::<Vec<_>>(),
        80.0,
        600.0,
        true,
        false,
    );
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

fn truncated(all: usize, drawn: usize) -> String {
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
    vec![pareto(b), speed(b), steps(b)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_stay_finite_and_ordered() {
        let s = Scale::new(&[0.001, 10.0], 0.0, 100.0, true, false);
        assert!(s.log && s.at(0.001) <= s.at(10.0));
        let s = Scale::new(&[5.0, 5.0], 0.0, 100.0, true, false);
        assert!(!s.log && s.hi > s.lo && s.at(5.0).is_finite());
        let s = Scale::new(&[], 0.0, 100.0, true, true);
        assert_eq!((s.lo, s.hi), (0.0, 1.0));
        assert_eq!(nice_step(0.0), 1.0);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(nice_step(140.0), 200.0);
        assert_eq!(tick_label(250.0, false), "250");
        assert_eq!(tick_label(0.1 + 0.2, false), "0.3");
        assert_eq!(tick_label(0.0075, false), "0.0075");
        assert_eq!(tick_label(1e-6, false), "1e-6");
        assert_eq!(tick_label(0.25, true), "25%");
    }
}
