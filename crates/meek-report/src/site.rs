//! The static leaderboard site: one self-contained `index.html` (inline CSS, inline SVG charts, one small inline
//! script that sorts tables), plus the charts as SVG files and the Markdown and CSV exports beside it.
//!
//! The page works from the file system: it loads nothing, no fonts, scripts or images from anywhere. Its
//! Content-Security-Policy allows only its own inline script, pinned by hash, so even markup that slipped through
//! escaping could not run.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use meek_render::escape::{base64, clip, html as esc};
use meek_render::format::num;
use sha2::{Digest, Sha256};

use crate::board::{self, Board, Entry};
use crate::svg;

/// The page's only script: click a column heading to sort by it (descending first, then ascending); empty cells
/// stay last. Cells sort by their `data-v` value when they have one, else by their text.
pub const SORT_SCRIPT: &str = r#"(function () {
  'use strict';
  function key(td) {
    var v = td.getAttribute('data-v');
    if (v === null) { v = td.textContent.trim(); }
    if (v === '' || v === '-') { return null; }
    var n = Number(v);
    return isNaN(n) ? v.toLowerCase() : n;
  }
  function sortBy(table, col, dir) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[col]), y = key(b.cells[col]);
      if (x === null || y === null) { return (x === null) - (y === null); }
      var c = (typeof x === 'number' && typeof y === 'number') ? x - y : String(x).localeCompare(String(y));
      return dir === 'ascending' ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      if (i === col) { th.setAttribute('aria-sort', dir); } else { th.removeAttribute('aria-sort'); }
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll('table.sortable'), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      var b = th.querySelector('button');
      if (!b) { return; }
      b.addEventListener('click', function () {
        var dir = th.getAttribute('aria-sort') === 'descending' ? 'ascending' : 'descending';
        sortBy(table, i, dir);
      });
    });
  });
})();"#;

const STYLE: &str = r#"
:root { --fg: #1b1f24; --muted: #5a6270; --line: #d8dde3; --head: #f3f5f8; --accent: #1f6feb; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: #fafbfc; }
header { background: #0d1b2a; color: #fff; padding: 22px 32px; }
header h1 { margin: 0 0 4px; font-size: 24px; font-weight: 650; }
header p { margin: 0; color: #c7d2e0; }
main { max-width: 1560px; margin: 0 auto; padding: 20px 32px 48px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 16px 20px; margin: 18px 0; }
h2 { font-size: 18px; margin: 0 0 10px; }
p.note, figcaption { color: var(--muted); font-size: 13.5px; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
td.small { font-size: 12px; }
th, td { padding: 6px 7px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
thead th { background: var(--head); position: sticky; top: 0; }
th button { all: unset; cursor: pointer; font-weight: 600; }
th button:focus-visible { outline: 2px solid var(--accent); }
th[aria-sort=descending] button::after { content: " \25BC"; font-size: 10px; }
th[aria-sort=ascending] button::after { content: " \25B2"; font-size: 10px; }
tbody tr:hover { background: #f6f9ff; }
td.rank { font-weight: 700; color: var(--accent); }
td.model { min-width: 11em; font-weight: 600; word-break: break-word; }
td.model .muted { font-weight: 400; }
td.machine { min-width: 14em; }
.nw { white-space: nowrap; }
.muted { color: var(--muted); font-size: 12px; }
.badge { display: inline-block; padding: 0 6px; border-radius: 9px; font-size: 12px; background: #eef1f5; }
.badge.measured { background: #dcf5e3; } .badge.estimated { background: #fff3cd; } .badge.busy { background: #fde2e1; }
.charts { display: grid; grid-template-columns: 1fr; gap: 18px; }
figure { margin: 0; }
figure svg { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; }
ul.skipped li { font-size: 13px; }
code { font-size: 12.5px; background: #f0f2f5; padding: 1px 4px; border-radius: 4px; }
"#;

/// Files written by [`write()`], relative to the site directory.
pub const FILES: [&str; 7] = [
    "index.html",
    "leaderboard.md",
    "leaderboard.csv",
    "pareto.svg",
    "speed.svg",
    "steps.svg",
    "budget.svg",
];

fn script_hash() -> String {
    format!("sha256-{}", base64(&Sha256::digest(SORT_SCRIPT.as_bytes())))
}

fn th(label: &str, numeric: bool, title: &str) -> String {
    format!(
        r#"<th scope="col"{}{}><button type="button">{}</button></th>"#,
        if numeric { r#" class="n""# } else { "" },
        if title.is_empty() {
            String::new()
        } else {
            format!(r#" title="{}""#, esc(title))
        },
        esc(label)
    )
}

fn td_num(v: Option<f64>, shown: Option<String>) -> String {
    match v {
        Some(x) if x.is_finite() => format!(
            r#"<td class="n" data-v="{x}">{}</td>"#,
            esc(&shown.unwrap_or_else(|| num(x)))
        ),
        _ => r#"<td class="n" data-v="">-</td>"#.into(),
    }
}

/// A speed cell: the figure, and where several files measured the entry, their range and count below it, with
/// each file's figure in the tooltip.
fn td_spread(v: Option<f64>, range: Option<[f64; 2]>, e: &Entry) -> String {
    match (v, range) {
        (Some(x), Some([lo, hi])) if x.is_finite() => {
            let each: Vec<String> = e
                .repeats
                .iter()
                .map(|m| {
                    format!(
                        "{}: decode {} · prefill {} ({})",
                        m.started_at,
                        m.decode_tokens_per_second.map_or_else(|| "-".into(), num),
                        m.prefill_tokens_per_second.map_or_else(|| "-".into(), num),
                        m.source
                    )
                })
                .collect();
            format!(
                r#"<td class="n" data-v="{x}" title="median of {}&#10;{}">{}<div class="muted">{}–{} · {} files</div></td>"#,
                if e.repeats.len() < e.measurements {
                    format!("the newest {} of {} files", e.repeats.len(), e.measurements)
                } else {
                    format!("{} files", e.measurements)
                },
                esc(&each.join("\n")).replace('\n', "&#10;"),
                num(x),
                num(lo),
                num(hi),
                e.measurements
            )
        }
        _ => td_num(v, None),
    }
}

fn td_text(s: &str) -> String {
    format!("<td>{}</td>", esc(s))
}

fn entry_row(e: &Entry, energy: bool, loss: bool) -> String {
    let mut r = String::from("<tr>");
    let _ = write!(
        r,
        r#"<td class="n rank" data-v="{}">{}</td>"#,
        e.rank.map_or_else(String::new, |x| x.to_string()),
        e.rank.map_or_else(|| "-".into(), |x| x.to_string())
    );
    let _ = write!(
        r,
        r#"<td class="model">{}<div class="muted">{} · {}</div></td>"#,
        esc(&e.model),
        esc(&e.quantization),
        esc(&clip(&e.sha256, 12))
    );
    let (cpu, rest) = e
        .machine_label
        .split_once(" · ")
        .unwrap_or((e.machine_label.as_str(), ""));
    let _ = write!(
        r,
        r#"<td class="machine" data-v="{}" title="machine {}">{}<div class="muted">{}</div><div class="muted">{} · {}</div></td>"#,
        esc(&e.machine_label),
        esc(&e.machine),
        esc(cpu),
        esc(rest),
        esc(&e.device),
        esc(&e.kernel)
    );
    r.push_str(&match e.busy {
        // The mark beside the thread count: the speed of this row measured other processes too.
        Some(share) => format!(
            r#"<td class="n" data-v="{t}">{t}<div><span class="badge busy" title="other processes used CPUs these threads needed during {:.0}% of the parallel regions: the speed measures them too">busy machine</span></div></td>"#,
            100.0 * share,
            t = e.threads
        ),
        None => td_num(Some(e.threads as f64), Some(e.threads.to_string())),
    });
    r.push_str(&td_spread(e.decode_tokens_per_second, e.decode_range, e));
    r.push_str(&td_spread(e.prefill_tokens_per_second, e.prefill_range, e));
    r.push_str(&td_num(e.ttft_ms, None));
    r.push_str(&td_num(e.peak_rss_mib, None));
    match (e.accuracy, e.accuracy_ci95, e.accuracy_n) {
        (Some(a), Some([lo, hi]), Some(n)) if a.is_finite() => {
            let _ = write!(
                r,
                r#"<td class="n" data-v="{a}">{:.1}%<div class="muted">[{:.0}–{:.0}] n={n}</div></td>"#,
                100.0 * a,
                100.0 * lo,
                100.0 * hi
            );
        }
        (a, _, _) => r.push_str(&td_num(a, a.map(|a| format!("{:.1}%", 100.0 * a)))),
    }
    r.push_str(&td_num(e.seconds_per_correct, None));
    if loss {
        match (e.loss_nats_per_token, &e.loss_text) {
            (Some(l), Some(t)) if l.is_finite() => {
                let _ = write!(
                    r,
                    r#"<td class="n" data-v="{l}">{l:.4}<div class="muted">{}</div></td>"#,
                    esc(t)
                );
            }
            _ => r.push_str(&td_num(None, None)),
        }
    }
    if energy {
        let status = e.energy_status.as_deref().unwrap_or("");
        let class = match status {
            "measured" => "badge measured",
            "estimated" => "badge estimated",
            _ => "badge",
        };
        match e.joules_per_decode_token.filter(|x| x.is_finite()) {
            Some(j) => {
                let _ = write!(
                    r,
                    r#"<td class="n" data-v="{j}">{}<div><span class="{class}" title="{}">{}</span></div></td>"#,
                    num(j),
                    esc(e.energy_label.as_deref().unwrap_or("")),
                    esc(status)
                );
            }
            None => r.push_str(&td_num(None, None)),
        }
        r.push_str(&td_num(e.joules_per_correct, None));
        r.push_str(&td_num(e.cost_per_correct, board::cost_text(e)));
    }
    let (tool, commit) = e.tool.split_once(" (").unwrap_or((e.tool.as_str(), ""));
    let _ = write!(
        r,
        r#"<td class="small" title="{} · {} · started {}{}">{}<div class="muted">{}</div></td>"#,
        esc(&e.source),
        esc(&e.status),
        esc(&e.started_at),
        if e.measurements > 1 {
            format!(
                " · the newest of {} measurements (speed: their median)",
                e.measurements
            )
        } else {
            String::new()
        },
        esc(tool),
        esc(commit.trim_end_matches(')'))
    );
    r.push_str("</tr>\n");
    r
}

/// The page.
pub fn html(b: &Board, charts: &[svg::Chart]) -> String {
    let energy = b.has_energy();
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src '{}'; img-src data:; base-uri 'none'; form-action 'none'">
<meta name="referrer" content="no-referrer">
<title>meekbench leaderboard</title>
<style>{STYLE}</style>
</head>
<body>
<header><h1>meekbench leaderboard</h1><p>{}</p></header>
<main>
"#,
        script_hash(),
        esc(&b.caption())
    );
    // Leaderboard.
    s.push_str(r#"<section id="leaderboard"><h2>Leaderboard</h2><p class="note">Click a column heading to sort. One row per machine, model file, device, thread count and kernel. Speed figures are medians over the repetitions (where several files measured a row, the median of theirs, with their range); accuracy is the flexible extractor's score with its 95% Wilson interval.</p><div class="table-wrap"><table class="sortable" id="board"><thead><tr>"#);
    let mut heads: Vec<String> = vec![
        th("#", true, "place by the ranking figure"),
        th("model", false, ""),
        th(
            "machine",
            false,
            "grouped by CPU, cores, memory and GPUs, not host name",
        ),
        th("threads", true, ""),
        th(
            "decode tok/s",
            true,
            "generated tokens per second after the first, median",
        ),
        th("prefill tok/s", true, "prompt tokens per second, median"),
        th("TTFT ms", true, "time to first token, median"),
        th(
            "peak MiB",
            true,
            "peak resident memory at the workload point",
        ),
        th(
            "accuracy",
            true,
            "flexible extractor, with the 95% Wilson interval and items",
        ),
        th(
            "s / correct",
            true,
            "seconds of answering per correct answer",
        ),
    ];
    let loss = b.entries.iter().any(|e| e.loss_nats_per_token.is_some());
    if loss {
        heads.push(th(
            "loss nats/token",
            true,
            "measured loss on the run's perplexity text (and context), scored as llama-perplexity scores it",
        ));
    }
    if energy {
        heads.push(th(
            "J / token",
            true,
            "joules per generated token, with how they were obtained (hover the badge for the sources)",
        ));
        heads.push(th("J / correct", true, "joules per correct answer"));
        heads.push(th("$ / correct", true, "dollars per correct answer"));
    }
    heads.push(th("measured by", false, ""));
    s.push_str(&heads.concat());
    s.push_str("</tr></thead>\n<tbody>\n");
    for e in &b.entries {
        s.push_str(&entry_row(e, energy, loss));
    }
    s.push_str("</tbody></table></div>");
    if !energy {
        s.push_str(r#"<p class="note">No result file here carries energy figures, so there are no joule or dollar columns; the cost chart uses time per token instead.</p>"#);
    }
    s.push_str("</section>\n");
    // Charts.
    s.push_str(r#"<section id="charts"><h2>Charts</h2><div class="charts">"#);
    for c in charts {
        let _ = write!(
            s,
            r#"<figure id="chart-{}"><h3>{}</h3>{}<figcaption>{}</figcaption></figure>"#,
            c.name,
            esc(&c.title),
            c.svg,
            esc(&c.caption)
        );
    }
    s.push_str("</div></section>\n");
    // Machines.
    s.push_str(r#"<section id="machines"><h2>Machines</h2><div class="table-wrap"><table class="sortable" id="machine-table"><thead><tr>"#);
    s.push_str(
        &[
            th("id", false, ""),
            th("CPU", false, ""),
            th("arch", false, ""),
            th("cores", true, "physical cores"),
            th("threads", true, "logical processors"),
            th("memory GiB", true, ""),
            th("GPUs", false, ""),
            th("OS", false, ""),
            th("virtualised", false, ""),
        ]
        .concat(),
    );
    s.push_str("</tr></thead><tbody>\n");
    for m in &b.machines {
        let _ = writeln!(
            s,
            "<tr>{}{}{}{}{}{}{}{}{}</tr>",
            td_text(&m.id),
            td_text(&m.cpu),
            td_text(&m.arch),
            td_num(
                m.physical_cores.map(|c| c as f64),
                m.physical_cores.map(|c| c.to_string())
            ),
            td_num(
                Some(m.logical_cores as f64),
                Some(m.logical_cores.to_string())
            ),
            td_num(Some(m.memory_gib as f64), Some(m.memory_gib.to_string())),
            td_text(&if m.gpus.is_empty() {
                "none".to_string()
            } else {
                m.gpus.join(", ")
            }),
            td_text(&m.os),
            td_text(match m.virtualized {
                Some(true) => "yes",
                Some(false) => "no",
                None => "unknown",
            }),
        );
    }
    s.push_str("</tbody></table></div></section>\n");
    // Runs found twice, counted once.
    if !b.duplicates.is_empty() {
        let _ = write!(
            s,
            r#"<section id="duplicates"><h2>Found twice ({})</h2><ul class="skipped">"#,
            b.duplicates.len()
        );
        for d in &b.duplicates {
            let _ = write!(s, "<li>{}</li>", esc(d));
        }
        s.push_str("</ul></section>\n");
    }
    // Skipped files.
    if !b.skipped.is_empty() {
        let _ = write!(
            s,
            r#"<section id="skipped"><h2>Files not used ({})</h2><ul class="skipped">"#,
            b.skipped.len()
        );
        for k in &b.skipped {
            let _ = write!(
                s,
                "<li><code>{}</code>: {}</li>",
                esc(&board::file_label(&k.path)),
                esc(&clip(&k.reason, 300))
            );
        }
        s.push_str("</ul></section>\n");
    }
    s.push_str(r#"<section id="about"><h2>How to read this</h2><p class="note">Each row comes from a <code>meekbench bench</code> result file, validated against the published JSON Schema; files that are invalid, too large, or from a newer meekbench are listed above and left out. Rates are medians of the repetitions at one workload point for every row, so a column compares like with like. Runs from different thread counts, kernels or devices are different rows. The exports beside this page: <code>leaderboard.md</code>, <code>leaderboard.csv</code> (every figure, full precision) and the charts as SVG files. Two files can be compared figure by figure, with significance, by <code>meekbench compare A.json B.json</code>.</p></section>
</main>
"#);
    let _ = write!(s, "<script>{SORT_SCRIPT}</script>\n</body>\n</html>\n");
    s
}

/// Writes the site into `dir` (created if needed): every file in [`FILES`]. Returns the paths written.
pub fn write(b: &Board, dir: &Path) -> Result<Vec<PathBuf>, crate::ReportError> {
    fs_err::create_dir_all(dir)?;
    let charts = svg::charts(b);
    let mut out = Vec::new();
    let mut put = |name: &str, text: &str| -> Result<(), crate::ReportError> {
        let p = dir.join(name);
        fs_err::write(&p, text)?;
        out.push(p);
        Ok(())
    };
    put("index.html", &html(b, &charts))?;
    put("leaderboard.md", &board::markdown(b))?;
    put("leaderboard.csv", &board::csv(b))?;
    for c in &charts {
        put(
            &format!("{}.svg", c.name),
            &format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}\n", c.svg),
        )?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csp_pins_the_script_that_is_on_the_page() {
        let b = Board {
            rank_by: board::RankBy::Decode,
            point: None,
            suite: None,
            machines: vec![],
            entries: vec![],
            files: 0,
            skipped: vec![],
            duplicates: vec![],
        };
        let page = html(&b, &svg::charts(&b));
        assert!(page.contains(&format!("script-src '{}'", script_hash())));
        assert!(page.contains(&format!("<script>{SORT_SCRIPT}</script>")));
        assert_eq!(
            page.matches("<script").count(),
            1,
            "one script, the pinned one"
        );
        assert!(
            !page.contains(" src=") && !page.contains(" href="),
            "the page loads nothing"
        );
    }
}
