//! The trend chart: every model's cost per correct answer against its declared release date (log scale), and the
//! line fitted at each accuracy threshold over the years its frontier models span.

use std::fmt::Write;

use meek_render::escape::html as esc;
use meek_render::svg::{self, Scale};

use crate::trend::Trend;

/// The chart as SVG, or a message chart saying why there is nothing to draw.
pub fn chart(t: &Trend) -> String {
    let title = "Cost per correct answer against release date (the study's claim, measured)";
    if t.entries.is_empty() {
        return svg::message(
            title,
            "no measured model has a declared release date ([models.card] release_date)",
        );
    }
    let (w, h, ml, mr, mt, mb) = (760.0, 420.0, 80.0, 230.0, 40.0, 50.0);
    let years: Vec<f64> = t.entries.iter().map(|e| e.release_year).collect();
    let costs: Vec<f64> = t.entries.iter().map(|e| e.usd_per_correct).collect();
    let xs = Scale::new(&years, ml, w - mr, false, false);
    let ys = Scale::new(&costs, h - mb, mt, true, false);
    let mut s = String::new();
    svg::open(&mut s, w, h, title);
    let _ = write!(
        s,
        r#"<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>"#,
        w / 2.0,
        esc(title)
    );
    svg::axes(
        &mut s,
        &xs,
        &ys,
        "declared release date (year)",
        "$ per correct answer",
        false,
    );
    let mut legend = vec![("models (measured cost)".to_string(), "#7f7f7f", true)];
    for (i, f) in t.fits.iter().enumerate() {
        let (Some([a, b]), Some(d)) = (f.line, f.decline_per_year) else {
            continue;
        };
        let color = svg::COLORS[i % svg::COLORS.len()];
        let (lo, hi) = f
            .frontier
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), m| {
                (l.min(m.1), h.max(m.1))
            });
        // The fit is a straight line on a log axis only: drawn as points, it is right on either.
        let points: Vec<String> = (0..=24)
            .map(|i| {
                let x = lo + (hi - lo) * f64::from(i) / 24.0;
                format!("{:.1},{:.1}", xs.at(x), ys.at((a + b * x).exp()))
            })
            .collect();
        let _ = write!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            points.join(" ")
        );
        legend.push((
            format!("acc >= {:.0}%: {d:.2}x/yr", 100.0 * f.threshold),
            color,
            false,
        ));
    }
    for e in &t.entries {
        let _ = write!(
            s,
            r##"<circle cx="{:.1}" cy="{:.1}" r="4" fill="#7f7f7f"><title>{} ({}): {:.1}%, ${:.3e}</title></circle>"##,
            xs.at(e.release_year),
            ys.at(e.usd_per_correct),
            esc(&e.model),
            esc(&e.release_date),
            100.0 * e.accuracy,
            e.usd_per_correct
        );
    }
    svg::legend(&mut s, w - mr + 20.0, mt + 10.0, &legend);
    s.push_str("</svg>");
    s
}
