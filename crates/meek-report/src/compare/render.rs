//! Writing a comparison: a plain-text table for a terminal (every text from a file was clipped, its control and
//! invisible characters blanked, when read) and GitHub-flavoured Markdown with every text escaped for Markdown.

use std::collections::BTreeSet;
use std::fmt::Write;

use meek_render::escape::{self, clip};
use meek_render::format::num;

use super::{Cell, Comparison, Metric, Versus};

fn cell_text(metric: Metric, c: &Option<Cell>) -> String {
    match c {
        None => "-".into(),
        Some(c) if metric.is_accuracy() => format!("{:.1}% of {}", 100.0 * c.value, c.n),
        Some(c) => match c.spread {
            Some(s) => format!("{} ± {}", num(c.value), num(s)),
            None => num(c.value),
        },
    }
}

fn versus_text(v: &Option<Versus>) -> (String, String, String) {
    let Some(v) = v else {
        return ("-".into(), String::new(), String::new());
    };
    let pct = v.contrast == "difference";
    let f = |x: f64| {
        if pct {
            format!("{:+.1} pts", 100.0 * x)
        } else {
            format!("{x:.3}")
        }
    };
    (
        v.estimate.map_or_else(|| "-".into(), f),
        v.ci95
            .map_or_else(String::new, |[lo, hi]| format!("[{}, {}]", f(lo), f(hi))),
        v.verdict.clone(),
    )
}

/// The comparison's table: header and rows of text cells.
fn grid(c: &Comparison) -> (Vec<String>, Vec<Vec<String>>) {
    let mut head = vec![
        "model".to_string(),
        "threads".into(),
        "figure".into(),
        "point / suite".into(),
    ];
    for i in &c.inputs {
        head.push(i.name.clone());
    }
    for i in c.inputs.iter().skip(1) {
        let a = &c.inputs[0].name;
        head.push(format!("{}/{a}", i.name));
        head.push(format!("{} 95% CI", i.name));
        head.push(format!("{} vs {a}", i.name));
    }
    let mut rows = Vec::new();
    for r in &c.rows {
        let threads: BTreeSet<usize> = r.threads.iter().flatten().copied().collect();
        let threads = threads
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(" vs ");
        let mut cells = vec![
            r.model.clone(),
            threads,
            r.label.clone(),
            r.suite.clone().unwrap_or_else(|| r.point.clone()),
        ];
        for cell in &r.cells {
            cells.push(cell_text(r.metric, cell));
        }
        for v in r.versus.iter().skip(1) {
            let (e, ci, verdict) = versus_text(v);
            cells.extend([e, ci, verdict]);
        }
        rows.push(cells);
    }
    (head, rows)
}

/// Plain-text table for a terminal.
pub fn terminal(c: &Comparison) -> String {
    let mut s = String::from("inputs:\n");
    for i in &c.inputs {
        let _ = writeln!(
            s,
            "  {}  {}  {}  [{}]",
            i.name,
            clip(&i.path, 120),
            i.program,
            i.machine
        );
    }
    if !c.differences.is_empty() {
        s.push_str("\ndifferences between the runs (read these before the figures):\n");
        let w = c
            .differences
            .iter()
            .map(|d| d.what.chars().count())
            .max()
            .unwrap_or(0);
        for d in &c.differences {
            let vals: Vec<String> = d
                .values
                .iter()
                .enumerate()
                .filter(|(_, v)| v.as_str() != "-")
                .map(|(i, v)| format!("{}={v}", c.inputs[i].name))
                .collect();
            let _ = writeln!(s, "  {:<w$}  {}  ({})", d.what, vals.join("  "), d.scope);
        }
    }
    for n in &c.notes {
        let _ = writeln!(s, "\nnote: {n}");
    }
    let (head, rows) = grid(c);
    let widths: Vec<usize> = (0..head.len())
        .map(|k| {
            rows.iter()
                .map(|r| r[k].chars().count())
                .chain([head[k].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    s.push('\n');
    let line = |cells: &[String]| {
        let mut l = String::new();
        for (k, cell) in cells.iter().enumerate() {
            let pad = widths[k] - cell.chars().count();
            if k >= 4 && !cell.starts_with(char::is_alphabetic) {
                l.push_str(&" ".repeat(pad));
                l.push_str(cell);
            } else {
                l.push_str(cell);
                l.push_str(&" ".repeat(pad));
            }
            l.push_str("  ");
        }
        l.trim_end().to_string()
    };
    let _ = writeln!(s, "{}", line(&head));
    let _ = writeln!(
        s,
        "{}",
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("  ")
    );
    for r in &rows {
        let _ = writeln!(s, "{}", line(r));
    }
    for u in &c.unmatched {
        let _ = writeln!(s, "unmatched: {u}");
    }
    let _ = writeln!(s, "\n{}", c.method);
    s
}

/// GitHub-flavoured Markdown, every text from the files escaped.
pub fn markdown(c: &Comparison) -> String {
    let md = escape::markdown;
    let mut s = String::from("| input | file | program | machine |\n|---|---|---|---|\n");
    for i in &c.inputs {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            i.name,
            md(&i.path),
            md(&i.program),
            md(&i.machine)
        );
    }
    if !c.differences.is_empty() {
        s.push_str("\n**Differences between the runs**\n\n| what | scope |");
        for i in &c.inputs {
            let _ = write!(s, " {} |", i.name);
        }
        s.push_str("\n|---|---|");
        s.push_str(&"---|".repeat(c.inputs.len()));
        s.push('\n');
        for d in &c.differences {
            let _ = write!(s, "| {} | {} |", md(&d.what), md(&d.scope));
            for v in &d.values {
                let _ = write!(s, " {} |", md(v));
            }
            s.push('\n');
        }
    }
    for n in &c.notes {
        let _ = write!(s, "\n> {}\n", md(n));
    }
    let (head, rows) = grid(c);
    s.push('\n');
    let _ = writeln!(
        s,
        "| {} |",
        head.iter().map(|h| md(h)).collect::<Vec<_>>().join(" | ")
    );
    let _ = writeln!(s, "|{}", "---|".repeat(head.len()));
    for r in &rows {
        let _ = writeln!(
            s,
            "| {} |",
            r.iter().map(|h| md(h)).collect::<Vec<_>>().join(" | ")
        );
    }
    for u in &c.unmatched {
        let _ = writeln!(s, "\n- unmatched: {}", md(u));
    }
    let _ = writeln!(s, "\n{}", md(&c.method));
    s
}
