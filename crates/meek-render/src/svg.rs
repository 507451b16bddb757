//! The hand-written SVG chart kit of the reports: document head, axis scales (linear or log10) with round ticks,
//! axes with grid lines, legends, a message chart for when there is nothing to draw, and a line chart with
//! uncertainty bands. The leaderboard's charts (`meek_report::svg`) and the projection's charts
//! (`meek_projection::report`) are drawn with it.
//!
//! Every text passed in is escaped for XML here; every coordinate written is a finite number; the charts need no
//! script or font to show.

use std::fmt::Write;

use crate::escape::html as esc;

/// Series colours, in order (matplotlib's `tab10`).
pub const COLORS: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];
/// The font stack of the leaderboard's charts: the system's own sans-serif face, nothing loaded.
pub const FONT: &str = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";

/// Starts an SVG document of `w` x `h` pixels with an escaped `title` and a white background.
pub fn open(s: &mut String, w: f64, h: f64, title: &str) {
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" font-family="{FONT}" font-size="12" class="chart"><title>{}</title><rect width="{w}" height="{h}" fill="#fff"/>"##,
        esc(title)
    );
}

/// A whole chart that only says `why` there is nothing to draw (720 x 80 pixels).
pub fn message(title: &str, why: &str) -> String {
    let mut s = String::new();
    open(&mut s, 720.0, 80.0, title);
    let _ = write!(
        s,
        r##"<text x="360" y="45" text-anchor="middle" fill="#555">{}</text></svg>"##,
        esc(why)
    );
    s
}

/// An axis scale from data values to pixels, linear or log10.
#[derive(Debug, Clone, PartialEq)]
pub struct Scale {
    /// Smallest value on the axis.
    pub lo: f64,
    /// Largest value on the axis.
    pub hi: f64,
    /// Log10 scale (decades from `lo` to `hi`).
    pub log: bool,
    /// Pixel of `lo`.
    pub from: f64,
    /// Pixel of `hi`.
    pub to: f64,
}

impl Scale {
    /// A scale over the finite `values` from pixel `from` to `to`: log10 when `allow_log` and the values span more
    /// than a factor of 20 (all positive), else linear with round ends, from 0 when `zero`.
    pub fn new(values: &[f64], from: f64, to: f64, allow_log: bool, zero: bool) -> Self {
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

    /// The pixel of `v`, kept a little past the ends and always finite.
    pub fn at(&self, v: f64) -> f64 {
        let f = if self.log {
            (v.max(self.lo).log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        };
        let p = self.from + f.clamp(-0.05, 1.05) * (self.to - self.from);
        if p.is_finite() { p } else { self.from }
    }

    /// Tick values: each decade on a log scale, else about five round steps (at most 21 ticks).
    pub fn ticks(&self) -> Vec<f64> {
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

/// The round step (1, 2, 2.5 or 5 times a power of ten) at or above `raw`; 1 for nothing usable.
pub fn nice_step(raw: f64) -> f64 {
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
pub fn tick_label(v: f64, percent: bool) -> String {
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
pub fn axes(s: &mut String, xs: &Scale, ys: &Scale, x_label: &str, y_label: &str, y_percent: bool) {
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

/// A legend from `(x, y)` down, one `(label, colour, filled)` marker per line.
pub fn legend(s: &mut String, x: f64, y: f64, items: &[(String, &str, bool)]) {
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

/// One line of a [`line_chart`]: values on the chart's x grid, optionally with a band around them.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    /// Legend label.
    pub name: &'a str,
    /// One value per x.
    pub values: &'a [f64],
    /// Lower edge of the band, one value per x (the band is shaded when both edges are given).
    pub low: Option<&'a [f64]>,
    /// Upper edge of the band.
    pub high: Option<&'a [f64]>,
}

/// A line chart of `lines` over `x` (760 x 420 pixels, legend on the right), bands drawn as shaded areas;
/// `log_y` plots log10 of the positive values (others are left out). The y axis starts at 0 unless `log_y`.
/// `x` needs at least one value.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    x: &[f64],
    lines: &[Line<'_>],
    log_y: bool,
) -> String {
    let t = x;
    let (w, h, ml, mr, mt, mb) = (760.0, 420.0, 70.0, 210.0, 40.0, 50.0);
    let tr = |v: f64| {
        if log_y {
            if v > 0.0 { v.log10() } else { f64::NAN }
        } else {
            v
        }
    };
    let all = lines.iter().flat_map(|c| {
        c.values
            .iter()
            .chain(c.low.into_iter().flatten())
            .chain(c.high.into_iter().flatten())
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
        esc(title)
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
        r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text><text x="16" y="{:.1}" transform="rotate(-90 16 {:.1})" text-anchor="middle">{}</text>"#,
        (ml + w - mr) / 2.0,
        h - 12.0,
        esc(x_label),
        h / 2.0,
        h / 2.0,
        esc(y_label)
    );
    let path = |v: &[f64]| -> String {
        v.iter()
            .zip(t)
            .filter(|(y, _)| tr(**y).is_finite())
            .map(|(y, x)| format!("{:.1},{:.1}", px(*x), py(tr(*y))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    for (i, c) in lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        if let (Some(lo), Some(hi)) = (c.low, c.high) {
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
            path(c.values)
        );
        let ly = mt + 16.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{}" x2="{}" y1="{ly:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="3"/><text x="{}" y="{:.1}">{}</text>"#,
            w - mr + 10.0,
            w - mr + 30.0,
            w - mr + 36.0,
            ly + 4.0,
            esc(c.name)
        );
    }
    s.push_str("</svg>\n");
    s
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

    #[test]
    fn text_is_escaped_and_coordinates_finite() {
        const HOSTILE: &str = "<img src=x onerror=alert(1)>\u{202e}";
        let x = [0.0, 1.0, 2.0];
        let (lo, hi) = ([0.5, 1.0, 0.0], [2.0, 3.0, 4.0]);
        let lines = [
            Line {
                name: HOSTILE,
                values: &[1.0, 2.0, 3.0],
                low: Some(&lo),
                high: Some(&hi),
            },
            Line {
                name: "b & c",
                values: &[1.0, f64::NAN, 0.0],
                low: None,
                high: None,
            },
        ];
        for log_y in [false, true] {
            let svg = line_chart(HOSTILE, HOSTILE, HOSTILE, &x, &lines, log_y);
            assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
            assert!(!svg.contains("<img") && !svg.contains('\u{202e}'));
            assert!(
                svg.contains("&lt;img src=x onerror=alert(1)&gt; ") && svg.contains("b &amp; c")
            );
            assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
            assert_eq!(svg.matches("<polygon").count(), 1, "one band");
        }
        let m = message(HOSTILE, "nothing & more");
        assert!(
            m.contains("<title>&lt;img")
                && m.contains("nothing &amp; more")
                && m.ends_with("</svg>")
        );
    }
}
