//! Pairing and testing: each run of the baseline with its partner in every other input (same model file, thread
//! count, device and kernel as far as they exist), each figure with the matching figure, and each pair with a
//! ratio or difference and, where both sides have samples, a bootstrap interval that decides significance. What
//! differs between the runs is collected on the way.

use std::collections::{BTreeMap, BTreeSet};

use meek_render::escape::clip;
use meek_stats::{Contrast, Sample, Statistic};

use super::import::{from_llama_bench, from_meekbench};
use super::{
    Comparison, Difference, Entry, Figure, MAX_BOOTSTRAP_SAMPLES, Measured, Metric, Options, Row,
    Versus,
};
use crate::ReportError;
use crate::input::{Document, Loaded};

fn paired_items(m: &Measured) -> Option<&[(String, bool)]> {
    match m {
        Measured::Outcomes { items: Some(v), .. } => Some(v),
        _ => None,
    }
}

/// The outcomes of both sides in one item order, when both answered exactly the same items (unique ids).
fn align(a: &[(String, bool)], b: &[(String, bool)]) -> Option<(Vec<f64>, Vec<f64>)> {
    if a.len() != b.len() || a.len() < 2 {
        return None;
    }
    let index: BTreeMap<&str, bool> = b.iter().map(|(id, ok)| (id.as_str(), *ok)).collect();
    let unique: BTreeSet<&str> = a.iter().map(|(id, _)| id.as_str()).collect();
    if index.len() != b.len() || unique.len() != a.len() {
        return None;
    }
    let one = |ok: bool| if ok { 1.0 } else { 0.0 };
    let mut xa = Vec::with_capacity(a.len());
    let mut xb = Vec::with_capacity(a.len());
    for (id, ok) in a {
        xa.push(one(*ok));
        xb.push(one(*index.get(id.as_str())?));
    }
    Some((xa, xb))
}

fn versus(metric: Metric, a: &Figure, b: &Figure, opts: &Options, seed: u64) -> Versus {
    let (ca, cb) = (a.cell(), b.cell());
    let accuracy = metric.is_accuracy();
    let estimate = if accuracy {
        Some(cb.value - ca.value)
    } else if ca.value > 0.0 {
        Some(cb.value / ca.value)
    } else {
        None
    };
    let as_sample = |m: &Measured| -> Option<Sample> {
        match m {
            Measured::Samples(v) => Sample::new(v.clone()).ok(),
            Measured::Outcomes { correct, n, .. } => Sample::new(
                (0..*n)
                    .map(|i| if i < *correct { 1.0 } else { 0.0 })
                    .collect(),
            )
            .ok(),
            Measured::Single(_) => None,
        }
    };
    let contrast = if accuracy { "difference" } else { "ratio" };
    let untested = |why: &str| Versus {
        contrast,
        estimate,
        ci95: None,
        significant: None,
        verdict: format!("not tested: {why}"),
        test: None,
    };
    let verdict_of = |lo: f64, hi: f64, none: f64| {
        let significant = lo > none || hi < none;
        let verdict = if !significant {
            "no significant difference"
        } else if (lo > none) == metric.higher_is_better() {
            "better"
        } else {
            "worse"
        };
        (significant, verdict.to_string())
    };
    // The same items answered on both sides: a paired test, which is not fooled by how hard the items are.
    if let (Some(pa), Some(pb)) = (paired_items(&a.value), paired_items(&b.value))
        && let Some((xa, xb)) = align(pa, pb)
        && let Some((lo, hi)) =
            meek_stats::bootstrap_paired_difference_ci95(&xa, &xb, opts.resamples, seed)
    {
        let (significant, verdict) = verdict_of(lo, hi, 0.0);
        return Versus {
            contrast,
            estimate,
            ci95: Some([lo, hi]),
            significant: Some(significant),
            verdict,
            test: Some("paired bootstrap over the same items"),
        };
    }
    let (Some(sa), Some(sb)) = (as_sample(&a.value), as_sample(&b.value)) else {
        return untested("one value per side");
    };
    if sa.len().max(sb.len()) > MAX_BOOTSTRAP_SAMPLES {
        return untested("too many samples");
    }
    let (stat, contrast_kind, none) = if accuracy {
        (Statistic::Mean, Contrast::Difference, 0.0)
    } else {
        (Statistic::Median, Contrast::Ratio, 1.0)
    };
    let Some((lo, hi)) =
        meek_stats::bootstrap_ci95(&sa, &sb, stat, contrast_kind, opts.resamples, seed)
    else {
        return untested(if sa.len() < 2 || sb.len() < 2 {
            "fewer than two samples"
        } else {
            "baseline is zero"
        });
    };
    let (significant, verdict) = verdict_of(lo, hi, none);
    Versus {
        contrast,
        estimate,
        ci95: Some([lo, hi]),
        significant: Some(significant),
        verdict,
        test: Some(if accuracy {
            "bootstrap of the difference of proportions"
        } else {
            "bootstrap of the ratio of medians"
        }),
    }
}

fn input_name(i: usize) -> String {
    let letter = (b'A' + (i % 26) as u8) as char;
    if i < 26 {
        letter.to_string()
    } else {
        format!("{letter}{}", i / 26)
    }
}

/// Compares `inputs` (at least two); the first is the baseline.
pub fn compare(inputs: &[Loaded], opts: &Options) -> Result<Comparison, ReportError> {
    if inputs.len() < 2 {
        return Err(ReportError::TooFewInputs(inputs.len()));
    }
    let mut sources = Vec::new();
    let mut described = Vec::new();
    for (i, l) in inputs.iter().enumerate() {
        let (s, mut input) = from_meekbench(l)
            .or_else(|| from_llama_bench(l))
            .ok_or_else(|| ReportError::Empty(meek_schema::shown(&l.path)))?;
        input.name = input_name(i);
        sources.push(s);
        described.push(input);
    }
    let n = sources.len();
    let mut differences = BTreeSet::new();
    // File-level differences: shown when two inputs record different values.
    let keys: BTreeSet<&'static str> = sources
        .iter()
        .flat_map(|s| s.attrs.keys().copied())
        .collect();
    for k in keys {
        let values: Vec<Option<&String>> = sources.iter().map(|s| s.attrs.get(k)).collect();
        let distinct: BTreeSet<&String> = values.iter().flatten().copied().collect();
        if distinct.len() > 1 {
            differences.insert(Difference {
                what: k.to_string(),
                scope: "all runs".into(),
                values: values
                    .iter()
                    .map(|v| v.map_or("-".to_string(), |s| s.to_string()))
                    .collect(),
            });
        }
    }
    let mut notes = Vec::new();
    for (i, s) in sources.iter().enumerate() {
        let name = &described[i].name;
        if s.attrs.get("build profile").is_some_and(|p| p != "release") {
            notes.push(format!(
                "{name} was measured by a {} build; its speed figures are far below what the machine does",
                s.attrs["build profile"]
            ));
        }
        for e in &s.entries {
            if let Some(b) = e.attrs.get("busy machine") {
                notes.push(format!(
                    "{name}'s {} at {} threads was measured on a busy machine ({b}): other processes held CPUs \
                     its threads needed, so its speed figures measure them too",
                    e.model.name, e.threads
                ));
            }
        }
        if s.attrs.get("status").is_some_and(|p| p != "complete") {
            notes.push(format!(
                "{name} is {}: not every planned figure was measured",
                s.attrs["status"]
            ));
        }
    }
    let any_llama = inputs
        .iter()
        .any(|l| matches!(l.document, Document::LlamaBench(_)));
    if any_llama {
        notes.push(
            "llama-bench figures: a pp<N> test processes a prompt with no generation and is matched with prefill \
             at an N-token prompt; a tg<N> test generates N tokens after its depth's cached tokens (none unless \
             llama-bench ran with -d) and is matched with decode of N tokens after a prompt as long, or else the \
             nearest; llama-bench records no file hash, so its tests match on the model's file name. The median of \
             llama-bench's samples is shown (llama-bench itself prints their mean)."
                .to_string(),
        );
    }
    let mut rows = Vec::new();
    let mut matched: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    let base = &sources[0];
    for e in &base.entries {
        // Partner entry in each other input.
        let mut partners: Vec<Option<&Entry>> = vec![Some(e)];
        for (j, s) in sources.iter().enumerate().skip(1) {
            let same: Vec<(usize, &Entry, bool)> = s
                .entries
                .iter()
                .enumerate()
                .filter_map(|(k, o)| e.model.same(&o.model).map(|h| (k, o, h)))
                .collect();
            // Among runs at the same thread count, prefer the same device, then the same kernel (a file may hold
            // one model on the CPU and on a GPU).
            let score = |o: &Entry| {
                (
                    o.attrs.get("device") == e.attrs.get("device"),
                    o.attrs.get("kernel") == e.attrs.get("kernel"),
                )
            };
            let mut exact: Vec<&(usize, &Entry, bool)> = same
                .iter()
                .filter(|(_, o, _)| o.threads == e.threads)
                .collect();
            exact.sort_by_key(|(k, o, _)| (std::cmp::Reverse(score(o)), *k));
            let base_threads: BTreeSet<usize> = base
                .entries
                .iter()
                .filter(|b| b.model.same(&e.model).is_some())
                .map(|b| b.threads)
                .collect();
            let other_threads: BTreeSet<usize> = same.iter().map(|(_, o, _)| o.threads).collect();
            let chosen = exact.first().copied().or_else(|| {
                // Each side measured this model at one thread count, and they differ: compare, and flag it.
                (base_threads.len() == 1 && other_threads.len() == 1)
                    .then(|| {
                        same.iter()
                            .max_by_key(|(k, o, _)| (score(o), std::cmp::Reverse(*k)))
                    })
                    .flatten()
            });
            let Some(&(k, o, by_hash)) = chosen else {
                partners.push(None);
                continue;
            };
            matched[j].insert(k);
            let mut vals = vec!["-".to_string(); n];
            if !by_hash {
                vals[0] = e.model.sha256.clone().map_or_else(
                    || e.model.file.clone(),
                    |h| format!("sha256 {}", clip(&h, 12)),
                );
                vals[j] = format!("file name {}", o.model.file);
                differences.insert(Difference {
                    what: "model matched by".into(),
                    scope: e.model.name.clone(),
                    values: vals.clone(),
                });
            }
            let keys: BTreeSet<&&str> = e.attrs.keys().chain(o.attrs.keys()).collect();
            for k in keys {
                let (va, vb) = (e.attrs.get(*k), o.attrs.get(*k));
                if va != vb {
                    let mut vals = vec!["-".to_string(); n];
                    vals[0] = va.cloned().unwrap_or_else(|| "not recorded".into());
                    vals[j] = vb.cloned().unwrap_or_else(|| "not recorded".into());
                    differences.insert(Difference {
                        what: k.to_string(),
                        scope: e.model.name.clone(),
                        values: vals,
                    });
                }
            }
            partners.push(Some(o));
        }
        for f in &e.figures {
            let found: Vec<Option<&Figure>> = partners
                .iter()
                .enumerate()
                .map(|(j, p)| {
                    if j == 0 {
                        Some(f)
                    } else {
                        p.and_then(|o| f.counterpart(&o.figures))
                    }
                })
                .collect();
            let vs: Vec<Option<Versus>> = found
                .iter()
                .enumerate()
                .map(|(j, g)| {
                    if j == 0 {
                        return None;
                    }
                    g.map(|g| versus(f.metric, f, g, opts, opts.seed))
                })
                .collect();
            if let [Some(a), rest @ ..] = found.as_slice() {
                for (j, b) in rest.iter().enumerate() {
                    if let Some(b) = b.filter(|b| b.context() != a.context()) {
                        // The point llama-bench should have run: the other figure's (a meekbench decode's) context.
                        let same = if a.isolated { b.context() } else { a.context() };
                        notes.push(format!(
                            "{}: {} of {} at {} threads follows {} cached tokens, {}'s {} follows {}: the longer \
                             cache costs attention on every token, which the ratio includes (llama-bench -d {} \
                             measures the same point)",
                            e.model.name,
                            a.point(),
                            described[0].name,
                            e.threads,
                            a.context(),
                            described[j + 1].name,
                            b.point(),
                            b.context(),
                            same,
                        ));
                    }
                }
            }
            let point = found
                .iter()
                .flatten()
                .map(|g| g.point())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .filter(|p| !p.is_empty())
                .collect::<Vec<_>>()
                .join(" = ");
            rows.push(Row {
                model: e.model.name.clone(),
                threads: partners.iter().map(|p| p.map(|p| p.threads)).collect(),
                metric: f.metric,
                label: f.metric.label().to_string(),
                point,
                suite: f.suite.clone(),
                higher_is_better: f.metric.higher_is_better(),
                cells: found.iter().map(|g| g.map(Figure::cell)).collect(),
                versus: vs,
            });
        }
    }
    let mut unmatched = Vec::new();
    for (j, s) in sources.iter().enumerate().skip(1) {
        for (k, o) in s.entries.iter().enumerate() {
            if !matched[j].contains(&k) {
                unmatched.push(format!(
                    "{}: {} with {} threads has no counterpart in {}",
                    described[j].name, o.model.name, o.threads, described[0].name
                ));
            }
        }
    }
    unmatched.dedup();
    Ok(Comparison {
        inputs: described,
        differences: differences.into_iter().collect(),
        notes,
        rows,
        unmatched,
        method: format!(
            "ratio = input / baseline (A) of medians; 95% interval by percentile bootstrap ({} resamples, \
             fixed seed) of the ratio of medians, significant when it excludes 1; accuracy: difference of \
             proportions, items resampled (in pairs when both files answered the same items), significant when \
             the interval excludes 0. better/worse take the \
             figure's direction into account (tokens/s: higher is better; ms, bytes, joules, $: lower is better).",
            opts.resamples
        ),
    })
}
