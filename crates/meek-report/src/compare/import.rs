//! Reading each compared file into what `matching` pairs: a meekbench result or llama-bench output becomes its
//! runs (one per model, device and thread count) with their figures, the attributes that may differ between
//! runs (machine, build, kernel, energy provenance), and a one-line description of the input. Every text taken
//! from a file is clipped here.

use std::collections::BTreeMap;

use meek_render::escape::{self, clip};

use super::{Entry, Figure, Input, Measured, Metric, ModelKey, Source};
use crate::input::{Document, Loaded};

pub(super) fn samples(v: &[f64]) -> Option<Measured> {
    (!v.is_empty() && v.iter().all(|x| x.is_finite())).then(|| Measured::Samples(v.to_vec()))
}

pub(super) fn single(x: f64) -> Option<Measured> {
    x.is_finite().then_some(Measured::Single(x))
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
}

/// What took CPUs from a run's threads, by the pool's counts of its speed points.
enum Busy {
    /// Other processes contended its parallel regions: its speed measures the neighbour too.
    Neighbours(String),
    /// None did, but it had more threads than the CPUs it could run on (or its CPU quota gave), and ran regions on
    /// fewer.
    Excess(String),
}

/// How much of a run's parallel regions other processes contended, or ran on fewer threads, where any.
fn busy(speed: &[meek_schema::SpeedPoint]) -> Option<Busy> {
    let all = speed
        .iter()
        .filter_map(|p| p.pool)
        .reduce(meek_schema::PoolRegions::plus)?;
    if let Some(busy) = all.busy() {
        return Some(Busy::Neighbours(format!(
            "{:.0}% of parallel regions contended, {:.0}% on fewer threads",
            100.0 * busy,
            100.0 * all.reduced_share().unwrap_or(0.0)
        )));
    }
    let excess = all.excess()?;
    Some(Busy::Excess(format!(
        "{:.0}% of parallel regions on fewer threads",
        100.0 * excess
    )))
}

pub(super) fn from_meekbench(l: &Loaded) -> Option<(Source, Input)> {
    let Document::Meekbench { result, energy } = &l.document else {
        return None;
    };
    let r = result;
    let m = &r.machine;
    let gpus: Vec<String> = m.gpus.iter().map(|g| clip(&g.name, 60)).collect();
    let cores = match m.cpu.physical_cores {
        Some(p) => format!("{p} cores / {} threads", m.cpu.logical_cores),
        None => format!("{} threads", m.cpu.logical_cores),
    };
    let mut attrs = BTreeMap::new();
    let program = format!("meekbench {}", clip(&r.tool.version, 40));
    attrs.insert("program", program.clone());
    if let Some(c) = &r.tool.git_commit {
        attrs.insert("tool commit", clip(c, 40));
    }
    attrs.insert("build profile", clip(&r.tool.profile, 20));
    attrs.insert(
        "build features",
        if r.tool.features.is_empty() {
            "none".into()
        } else {
            clip(&r.tool.features.join(","), 80)
        },
    );
    attrs.insert("engine", clip(&r.tool.engine, 60));
    attrs.insert("target", clip(&r.tool.target, 60));
    attrs.insert("config sha256", clip(&r.config.sha256, 12));
    attrs.insert("cpu", clip(&m.cpu.brand, 80));
    attrs.insert("cores", cores.clone());
    attrs.insert("memory", gib(m.memory_bytes));
    attrs.insert(
        "gpus",
        if gpus.is_empty() {
            "none".into()
        } else {
            gpus.join(", ")
        },
    );
    attrs.insert("os", clip(&m.os, 60));
    attrs.insert("os kernel", clip(&m.kernel, 60));
    if let Some(v) = m.virtualized {
        attrs.insert("virtualized", v.to_string());
    }
    attrs.insert("status", format!("{:?}", r.status).to_lowercase());
    let mut entries = Vec::new();
    for (i, run) in r.runs.iter().enumerate() {
        let mut ea = BTreeMap::new();
        ea.insert("device", clip(&run.device, 40));
        ea.insert("kernel", clip(&run.kernel, 40));
        ea.insert("threads", run.threads.to_string());
        match busy(&run.speed) {
            Some(Busy::Neighbours(b)) => {
                ea.insert("busy machine", b);
            }
            Some(Busy::Excess(b)) => {
                ea.insert("threads beyond the CPUs or quota", b);
            }
            None => {}
        }
        let e = energy.get(i).cloned().flatten();
        if let Some(e) = &e {
            if let Some(s) = &e.status {
                ea.insert("energy status", s.clone());
            }
            if let Some(s) = &e.label {
                ea.insert("energy provenance", s.clone());
            }
            if e.cost_per_correct.is_some() || e.cost_per_million_tokens.is_some() {
                ea.insert(
                    "currency",
                    e.currency.clone().unwrap_or_else(|| "USD".into()),
                );
            }
        }
        let mut figures = Vec::new();
        let mut push = |metric, n_prompt, n_gen, suite: Option<String>, value: Option<Measured>| {
            if let Some(value) = value {
                figures.push(Figure {
                    metric,
                    n_prompt,
                    n_gen,
                    depth: 0,
                    isolated: false,
                    suite,
                    value,
                });
            }
        };
        for p in &run.speed {
            let (np, ng) = (p.n_prompt, p.n_gen);
            push(
                Metric::PrefillTokensPerSecond,
                np,
                ng,
                None,
                samples(&p.prefill_tokens_per_second.samples),
            );
            push(
                Metric::DecodeTokensPerSecond,
                np,
                ng,
                None,
                samples(&p.decode_tokens_per_second.samples),
            );
            push(Metric::TtftMs, np, ng, None, samples(&p.ttft_ms.samples));
            push(Metric::ItlP50Ms, np, ng, None, samples(&p.itl_ms.samples));
            push(
                Metric::PeakRssMib,
                np,
                ng,
                None,
                single(p.peak_rss_bytes as f64 / f64::from(1u32 << 20)),
            );
        }
        push(Metric::LoadSeconds, 0, 0, None, single(run.load_seconds));
        if let Some(e) = &e {
            // Per-repetition joules at each point when the file has them (tested like the rates), else the
            // run's one figure beside its first point.
            for (k, p) in run.speed.iter().enumerate() {
                let (np, ng) = (p.n_prompt, p.n_gen);
                let pe = e.points.iter().find(|q| (q.n_prompt, q.n_gen) == (np, ng));
                let pick = |per_point: Option<&Vec<f64>>, run_level: Option<f64>| {
                    per_point
                        .and_then(|v| samples(v))
                        .or_else(|| (k == 0).then_some(run_level).flatten().and_then(single))
                };
                push(
                    Metric::JoulesPerPrefillToken,
                    np,
                    ng,
                    None,
                    pick(
                        pe.map(|q| &q.joules_per_prefill_token),
                        e.joules_per_prefill_token,
                    ),
                );
                push(
                    Metric::JoulesPerDecodeToken,
                    np,
                    ng,
                    None,
                    pick(
                        pe.map(|q| &q.joules_per_decode_token),
                        e.joules_per_decode_token,
                    ),
                );
            }
        }
        for (k, s) in run.accuracy.iter().enumerate() {
            let suite = Some(clip(&s.key(), 80));
            let outcomes = |sc: &meek_schema::Score, strict: bool| {
                // Item list usable for pairing only when it agrees with the score.
                let items: Vec<(String, bool)> = s
                    .items
                    .iter()
                    .map(|it| {
                        let ok = if strict {
                            it.correct_strict
                        } else {
                            it.correct_flexible
                        };
                        (it.id.clone(), ok)
                    })
                    .collect();
                let consistent =
                    items.len() == sc.n && items.iter().filter(|(_, ok)| *ok).count() == sc.correct;
                (sc.correct <= sc.n).then_some(Measured::Outcomes {
                    correct: sc.correct,
                    n: sc.n,
                    items: consistent.then_some(items),
                })
            };
            push(
                Metric::AccuracyFlexible,
                0,
                0,
                suite.clone(),
                outcomes(&s.flexible, false),
            );
            push(
                Metric::AccuracyStrict,
                0,
                0,
                suite.clone(),
                outcomes(&s.strict, true),
            );
            if let Some(d) = &s.decode_tokens_per_second {
                push(
                    Metric::SuiteDecodeTokensPerSecond,
                    0,
                    0,
                    suite.clone(),
                    samples(&d.samples),
                );
            }
            push(
                Metric::SecondsPerCorrect,
                0,
                0,
                suite.clone(),
                s.seconds_per_correct.and_then(single),
            );
            if k == 0
                && let Some(e) = &e
            {
                push(
                    Metric::JoulesPerCorrect,
                    0,
                    0,
                    suite.clone(),
                    e.joules_per_correct.and_then(single),
                );
                push(
                    Metric::CostPerCorrect,
                    0,
                    0,
                    suite.clone(),
                    e.cost_per_correct.and_then(single),
                );
            }
        }
        // A perplexity text's loss, keyed by the workload's name and its text's hash (another text is another row).
        for t in &run.perplexity {
            let key = Some(clip(
                &format!(
                    "perplexity {}, context {} ({})",
                    t.name,
                    t.context,
                    t.text_sha256.get(..12).unwrap_or(&t.text_sha256)
                ),
                80,
            ));
            push(
                Metric::LossNatsPerToken,
                t.context,
                0,
                key.clone(),
                single(t.nll_mean),
            );
            push(
                Metric::BitsPerByte,
                t.context,
                0,
                key,
                single(t.bits_per_byte),
            );
        }
        entries.push(Entry {
            model: ModelKey {
                sha256: Some(clip(&run.model.sha256, 64)),
                file: clip(&run.model.file, 120),
                name: clip(&run.model.id, escape::MAX_CELL_CHARS),
            },
            threads: run.threads,
            attrs: ea,
            figures,
        });
    }
    let input = Input {
        name: String::new(),
        path: meek_schema::shown(&l.path),
        program: format!(
            "{program}{}",
            r.tool
                .git_commit
                .as_deref()
                .map(|c| format!(" ({})", clip(c, 24)))
                .unwrap_or_default()
        ),
        machine: format!(
            "{}, {cores}, {}",
            clip(&m.cpu.brand, 60),
            gib(m.memory_bytes)
        ) + &if gpus.is_empty() {
            String::new()
        } else {
            format!(", {}", gpus.join(", "))
        },
    };
    Some((Source { attrs, entries }, input))
}

pub(super) fn from_llama_bench(l: &Loaded) -> Option<(Source, Input)> {
    let Document::LlamaBench(tests) = &l.document else {
        return None;
    };
    let first = tests.first()?;
    let opt = |s: &Option<String>| s.as_deref().map(|s| clip(s, 80)).unwrap_or_default();
    let program = format!(
        "llama-bench (llama.cpp build {}, commit {})",
        first.build_number.unwrap_or(0),
        opt(&first.build_commit)
    );
    let mut attrs = BTreeMap::new();
    attrs.insert("program", program.clone());
    attrs.insert("cpu", opt(&first.cpu_info));
    let gpu = opt(&first.gpu_info);
    attrs.insert(
        "gpus",
        if gpu.is_empty() {
            "none".into()
        } else {
            gpu.clone()
        },
    );
    let mut entries: Vec<Entry> = Vec::new();
    for t in tests {
        let mut ea = BTreeMap::new();
        let backends = opt(&t.backends);
        ea.insert(
            "device",
            if backends.is_empty() || backends.eq_ignore_ascii_case("cpu") {
                "cpu".to_string()
            } else {
                format!("{backends} (ngl {})", t.n_gpu_layers.unwrap_or(0))
            },
        );
        ea.insert(
            "kernel",
            format!(
                "llama.cpp {}",
                if backends.is_empty() { "?" } else { &backends }
            ),
        );
        ea.insert("threads", t.n_threads.to_string());
        if let (Some(b), Some(u)) = (t.n_batch, t.n_ubatch) {
            ea.insert("batch", format!("{b}/{u}"));
        }
        let metric = match (t.n_prompt, t.n_gen) {
            (_, 0) => Metric::PrefillTokensPerSecond,
            (0, _) => Metric::DecodeTokensPerSecond,
            _ => Metric::BlendedTokensPerSecond,
        };
        let value = t
            .samples_ts
            .as_deref()
            .and_then(samples)
            .or_else(|| single(t.avg_ts))?;
        let figure = Figure {
            metric,
            n_prompt: t.n_prompt,
            n_gen: t.n_gen,
            depth: t.n_depth,
            isolated: metric != Metric::BlendedTokensPerSecond,
            suite: None,
            value,
        };
        let file = clip(t.file_name(), 120);
        let existing = entries
            .iter_mut()
            .find(|e| e.model.file == file && e.threads == t.n_threads && e.attrs == ea);
        match existing {
            Some(e) => e.figures.push(figure),
            None => entries.push(Entry {
                model: ModelKey {
                    sha256: None,
                    name: file.clone(),
                    file,
                },
                threads: t.n_threads,
                attrs: ea,
                figures: vec![figure],
            }),
        }
    }
    let input = Input {
        name: String::new(),
        path: meek_schema::shown(&l.path),
        program,
        machine: if gpu.is_empty() {
            opt(&first.cpu_info)
        } else {
            format!("{}, {gpu}", opt(&first.cpu_info))
        },
    };
    Some((Source { attrs, entries }, input))
}
