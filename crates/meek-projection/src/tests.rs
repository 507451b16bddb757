use fs_err as fs;

use super::*;
use crate::model::{AccuracyCurve, LossLaw, Schedule};

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs()
}

#[test]
fn headline_values_of_the_study() {
    let cfg = Config::default_config();
    let s = cfg.baseline();
    let t = s.peak_closed_form().unwrap();
    assert!(close(t, 3.36, 0.005), "peak at {t}");
    let (tn, g) = s.peak_numeric(20.0);
    assert!(close(tn, t, 1e-4), "numeric {tn} vs closed {t}");
    assert!(close(g, 0.212, 0.005), "peak gap {g}");
    assert!(
        close(s.gap(10.0), 0.093, 0.005),
        "gap at 10: {}",
        s.gap(10.0)
    );
    assert!(s.gap(200.0) < 0.01, "the gap closes");
    // The SPRT numerator at alpha = 0.05.
    assert!(close(
        model::tokens_to_distinguish(0.05, 1.0, 1.0),
        2.65,
        0.005
    ));
}

/// Closed-form and numeric peaks agree across random parameters (a deterministic property test).
#[test]
fn closed_form_peak_equals_numeric_peak() {
    let mut state = 12345u64;
    let mut uni = |lo: f64, hi: f64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        lo + (hi - lo) * ((state >> 11) as f64 / (1u64 << 53) as f64)
    };
    for _ in 0..300 {
        let s = Scenario {
            law: LossLaw {
                a: uni(100.0, 5000.0),
                gamma: uni(0.05, 0.4),
                l0: uni(1.0, 2.0),
            },
            budget_usd: uni(1e2, 1e5),
            kappa: 1e17,
            g_alg: uni(1.2, 6.0),
            g_h: uni(1.05, 1.6),
            frontier_usd: 0.0,
            schedule: Schedule::constant(uni(1.1, 20.0)),
        };
        let s = Scenario {
            frontier_usd: s.budget_usd,
            ..s
        };
        let t = s.peak_closed_form().unwrap();
        let horizon = (4.0 * t).max(1.0);
        let (tn, _) = s.peak_numeric(horizon);
        assert!(
            (tn - t).abs() < 1e-3 * t.max(1.0),
            "closed {t} numeric {tn} for {s:?}"
        );
    }
}

#[test]
fn accuracy_inversion_round_trips_and_refuses_outside_the_range() {
    let c = Config::default_config().curve();
    for l in [1.8, 1.9, 1.97, 2.05, 2.2] {
        let a = c.accuracy(l);
        assert!(close(c.loss_for(a).unwrap(), l, 1e-9), "{l}");
    }
    let e = c.loss_for(0.2).unwrap_err();
    assert!(e.contains("0.254") && e.contains("0.811"), "{e}");
    assert!(c.loss_for(0.9).is_err());
    let law = Config::default_config().baseline().law;
    assert!(close(law.loss(law.compute_for(2.1).unwrap()), 2.1, 1e-12));
    assert!(law.compute_for(1.6).is_none());
}

#[test]
fn calibration_recovers_known_parameters() {
    let truth = AccuracyCurve {
        lm: 0.8,
        x0: 2.3,
        k: -9.0,
        b: 0.0,
    };
    let points: Vec<(f64, f64)> = (0..12)
        .map(|i| {
            let l = 1.9 + 0.07 * i as f64;
            (l, truth.accuracy(l))
        })
        .collect();
    let start = AccuracyCurve {
        lm: 0.6,
        x0: 2.0,
        k: -5.0,
        b: 0.0,
    };
    let fit = fit::fit_accuracy(&points, start).unwrap();
    assert!(
        close(fit.lm, truth.lm, 1e-3)
            && close(fit.x0, truth.x0, 1e-3)
            && close(fit.k, truth.k, 1e-3),
        "{fit:?}"
    );
    assert!(fit::fit_accuracy(&points[..2], start).is_err());
}

#[test]
fn schedules_are_piecewise() {
    let s = Schedule(vec![
        model::Segment {
            growth: 3.6,
            until: Some(5.0),
        },
        model::Segment {
            growth: 1.5,
            until: None,
        },
    ]);
    assert!(close(s.ln_factor(2.0), 2.0 * 3.6f64.ln(), 1e-12));
    assert!(close(
        s.ln_factor(7.0),
        5.0 * 3.6f64.ln() + 2.0 * 1.5f64.ln(),
        1e-12
    ));
    let flat = Schedule(vec![model::Segment {
        growth: 3.6,
        until: Some(5.0),
    }]);
    assert!(
        close(flat.ln_factor(9.0), 5.0 * 3.6f64.ln(), 1e-12),
        "flat after the last segment"
    );
    assert!(s.constant_growth().is_none());
}

#[test]
fn bad_parameters_are_named_with_their_range() {
    let bad = DEFAULT_TEXT.replace("gamma = 0.154", "gamma = -0.1");
    let e = Config::parse(&bad, "p.toml").unwrap_err().to_string();
    assert!(
        e.contains("p.toml") && e.contains("model.gamma") && e.contains("gamma > 0"),
        "{e}"
    );
    let bad = DEFAULT_TEXT.replace("g_h = 1.4 ", "g_h = 0.0 ");
    let e = Config::parse(&bad, "p.toml").unwrap_err().to_string();
    assert!(e.contains("model.g_h"), "{e}");
    let e = Config::parse("[model]\nbogus = 1\n", "p.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("p.toml"), "{e}");
}

const DEFAULT_TEXT: &str = config::DEFAULT;

#[test]
fn projection_has_every_curve_and_bands_contain_the_baseline() {
    let cfg = Config::default_config();
    let p = project(&cfg, &[], vec![]);
    assert_eq!(p.t.len(), 401);
    assert_eq!(p.loss_gap.len(), cfg.presets.len());
    let base = &p.loss_gap[0];
    let (lo, hi) = (base.low.as_ref().unwrap(), base.high.as_ref().unwrap());
    for i in 0..p.t.len() {
        assert!(lo[i] <= base.values[i] + 1e-12 && base.values[i] <= hi[i] + 1e-12);
    }
    assert!(
        hi.iter().zip(lo).any(|(h, l)| h - l > 0.01),
        "the band has width"
    );
    assert_eq!(p.accuracy_gap.len(), 4);
    assert_eq!(p.tokens_to_distinguish.len(), 3);
    assert_eq!(p.inference_gap.len(), 2);
    // Peaks: the flat schedule peaks earlier than constant growth.
    let find = |n: &str| p.peaks.iter().find(|k| k.scenario.contains(n)).unwrap();
    assert!(find("then flat").t_numeric < find("baseline").t_numeric + 2.0);
    let md = report::markdown(&p);
    assert!(md.contains("3.36 years"), "{md}");
    // Every scenario the study varies, and the token chart's reference lines.
    for name in [
        "$1e5",
        "both start at $1e3",
        "gamma = 0.155",
        "gamma = 0.178",
        "5/1.4x until t=5",
    ] {
        assert!(p.peaks.iter().any(|k| k.scenario.contains(name)), "{name}");
    }
    let charts = report::charts(&p);
    let tokens = &charts
        .iter()
        .find(|(n, _)| n.starts_with("tokens"))
        .unwrap()
        .1;
    assert!(
        tokens.contains("100 tokens (reference)") && tokens.contains("1000 tokens (reference)")
    );
    for (name, svg) in report::charts(&p) {
        assert!(
            svg.starts_with("<svg") && (svg.contains("polyline") || name == "trend.svg"),
            "{name}"
        );
    }
}

/// A minimal result file with one run of `n_params` weights at `tps` tokens/s and the given accuracy.
fn result(id: &str, n_params: u64, tps: f64, acc: f64) -> meek_schema::BenchResult {
    let summary = |v: f64| serde_json::json!({"median": v, "mean": v, "stddev": 0.0, "min": v, "max": v, "samples": [v]});
    let score = |a: f64| serde_json::json!({"correct": (a * 100.0).round() as u64, "n": 100, "accuracy": a, "ci95": [a - 0.05, a + 0.05]});
    let v = serde_json::json!({
        "schema_version": 1, "status": "complete",
        "tool": {"name": "meekbench", "version": "0", "features": [], "target": "t", "rustc": "r", "profile": "release", "engine": "e"},
        "machine": {"cpu": {"brand": "Test CPU", "arch": "x86_64", "logical_cores": 2, "flags": []}, "memory_bytes": 1, "os": "os", "kernel": "k", "gpus": []},
        "started_at": "2026-01-01T00:00:00Z",
        "config": {"source": "s", "sha256": "x", "text": ""},
        "runs": [{
            "model": {"id": id, "file": "f", "sha256": format!("sha-{id}"), "size_bytes": 1, "source": "cache", "architecture": "llama", "quantization": "Q4_1", "n_params": n_params, "weight_bytes_per_token": n_params / 2},
            "device": "cpu", "threads": 2, "kernel": "cpu-avx2", "load_seconds": 0.1,
            "speed": [{"n_prompt": 128, "n_gen": 64, "warmup": 1, "repetitions": 1, "ttft_ms": summary(1.0),
                       "prefill_tokens_per_second": summary(100.0), "decode_tokens_per_second": summary(tps),
                       "itl_ms": {"p50": 1.0, "p90": 1.0, "p99": 1.0, "mean": 1.0, "min": 1.0, "max": 1.0, "samples": [1.0]},
                       "peak_rss_bytes": 1}],
            "accuracy": [{"suite": "reasoning", "prompt_style": "chat", "shots": 0, "max_new_tokens": 8,
                          "strict": score(acc), "flexible": score(acc), "by_family": [], "by_steps": [],
                          "mean_generated_tokens": 1.0, "seconds_per_answer": 1.0, "items": []}]
        }]
    });
    serde_json::from_value(v).unwrap()
}

#[test]
fn measured_models_are_placed_calibrated_and_ranked() {
    let mut cfg = Config::default_config();
    // Three models of a made-up family, trained on 1T tokens; accuracy generated from a known curve.
    let truth = AccuracyCurve {
        lm: 0.9,
        x0: 2.6,
        k: -12.0,
        b: 0.0,
    };
    let models = [
        ("small", 1.0e8, 300.0),
        ("mid", 5.0e8, 120.0),
        ("big", 3.0e9, 25.0),
        ("slow-small", 1.0e8, 100.0),
    ];
    let results: Vec<(String, meek_schema::BenchResult)> = models
        .iter()
        .map(|&(id, n, tps)| {
            cfg.calibration.training_tokens.insert(id.to_string(), 1e12);
            let l = cfg.calibration.chinchilla.loss(n, 1e12);
            (
                format!("{id}.json"),
                result(id, n as u64, tps, truth.accuracy(l)),
            )
        })
        .collect();
    let p = project(
        &cfg,
        &results,
        vec!["junk.json: not a meekbench result file".into()],
    );
    let c = p.calibrated_curve.expect("calibrated on 4 models");
    assert!(
        p.calibration_note.contains("4 measured models"),
        "{}",
        p.calibration_note
    );
    // Three distinct losses cannot pin three parameters exactly, but the fitted curve reproduces the points.
    for (_, r) in &results {
        let run = &r.runs[0];
        let l = cfg
            .calibration
            .chinchilla
            .loss(run.model.n_params as f64, 1e12);
        // Within the rounding of the pooled items (correct answers of 100).
        assert!((c.accuracy(l) - run.accuracy[0].flexible.accuracy).abs() < 1e-2);
    }
    assert_eq!(p.points.len(), 4);
    let by = |id: &str| p.points.iter().find(|q| q.model == id).unwrap();
    // Cost per token falls with speed; the slower copy of the small model is dominated.
    assert!(by("small").usd_per_token < by("slow-small").usd_per_token);
    assert!(by("small").pareto && by("big").pareto && !by("slow-small").pareto);
    assert!(by("big").implied_year.unwrap() > by("small").implied_year.unwrap());
    assert_eq!(by("big").energy_basis, "assumed (30 W)");
    assert!(p.assumptions.iter().any(|a| a.contains("30 W is assumed")));
    let md = report::markdown(&p);
    assert!(md.contains("junk.json") && md.contains("| big |"));
}

#[test]
fn a_run_with_an_energy_record_is_costed_on_its_own_joules() {
    let cfg = Config::default_config();
    let mut r = result("e", 100_000_000, 100.0, 0.5);
    r.runs[0].energy = Some(
        serde_json::from_value(serde_json::json!({
            "status": "estimated",
            "label": "estimated:tdp-model(curve=teads,tdp=8W,tdp_source=default,util=rusage)",
            "scope": ["cpu-package"], "excludes": [], "components": [], "seconds": 10.0,
            "joules_per_decode_token": 0.05,
            "proxies": {"flops_per_token": 1.0, "attention_flops_per_token_per_position": 1.0,
                        "non_embedding_params": 1, "weight_bytes_per_token": 1}
        }))
        .unwrap(),
    );
    let p = project(&cfg, &[("e.json".into(), r)], vec![]);
    let q = &p.points[0];
    assert_eq!(q.joules_per_token, 0.05, "not the assumed 30 W / 100 tok/s");
    assert!(
        q.energy_basis
            .starts_with("estimated (estimated:tdp-model("),
        "{}",
        q.energy_basis
    );
}

#[test]
fn hostile_names_are_escaped() {
    const HOSTILE: &str = "<img src=x onerror=alert(1)>";
    let nasty =
        "![x](http://track.example/p.png) [a](javascript:alert(1)) `code` *b* a|b\u{202e}\nnew";
    let mut cfg = Config::default_config();
    cfg.presets[0].name = HOSTILE.into();
    let results = vec![(
        format!("{nasty}.json"),
        result(nasty, 100_000_000, 100.0, 0.5),
    )];
    let p = project(&cfg, &results, vec![format!("{HOSTILE}.json: {nasty}")]);
    let md = report::markdown(&p);
    assert!(
        md.contains("&lt;img src=x onerror=alert\\(1\\)&gt;"),
        "{md}"
    );
    assert!(!md.contains("<img") && !md.contains('\u{202e}'), "{md}");
    assert!(
        !md.contains("](http") && !md.contains("](javascript"),
        "no link or image forms: {md}"
    );
    let bytes = md.as_bytes();
    for (i, &c) in bytes.iter().enumerate() {
        if c == b'`' {
            assert!(
                i > 0 && bytes[i - 1] == b'\\',
                "unescaped backtick at {i}: {md}"
            );
        }
    }
    // Every row of a table keeps its header's number of cells (no unescaped pipe, no line break).
    let cells = |line: &str| {
        let mut n = 0;
        let mut escaped = false;
        for c in line.chars() {
            match c {
                '\\' if !escaped => escaped = true,
                '|' if !escaped => n += 1,
                _ => escaped = false,
            }
        }
        n
    };
    for table in md.split("\n\n").filter(|b| b.starts_with('|')) {
        let rows: Vec<&str> = table.lines().collect();
        assert!(
            rows.iter()
                .all(|r| r.starts_with('|') && cells(r) == cells(rows[0])),
            "{table}"
        );
    }
    for (name, svg) in report::charts(&p) {
        assert!(!svg.contains("<img") && !svg.contains('\u{202e}'), "{name}");
    }
    let (_, loss_gap) = &report::charts(&p)[0];
    assert!(loss_gap.contains("&lt;img src=x onerror=alert(1)&gt;"));
}

#[test]
fn write_puts_the_projection_its_report_and_charts_in_a_directory() {
    let p = project(
        &Config::default_config(),
        &[("a.json".into(), result("a", 100_000_000, 100.0, 0.5))],
        vec![],
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("new/projection");
    let written = write(&out, &p).unwrap();
    let names: Vec<String> = written
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "projection.json",
            "report.md",
            "loss-gap.svg",
            "accuracy-gap.svg",
            "tokens-to-distinguish.svg",
            "inference-gap.svg",
            "trend.svg"
        ]
    );
    assert!(written.iter().all(|f| f.parent() == Some(out.as_path())));
    assert_eq!(
        fs::read_to_string(out.join("projection.json")).unwrap(),
        serde_json::to_string_pretty(&p).unwrap()
    );
    assert_eq!(
        fs::read_to_string(out.join("report.md")).unwrap(),
        report::markdown(&p)
    );
    for (name, svg) in report::charts(&p) {
        assert_eq!(fs::read_to_string(out.join(&name)).unwrap(), svg, "{name}");
    }
    // Written again over the same files; an error names the path it could not create.
    assert_eq!(write(&out, &p).unwrap(), written);
    let file = dir.path().join("a-file");
    fs::write(&file, "x").unwrap();
    let e = write(&file.join("sub"), &p).unwrap_err().to_string();
    assert!(e.contains(&file.join("sub").display().to_string()), "{e}");
}

#[test]
fn a_calibration_refuses_what_it_cannot_fit() {
    let start = AccuracyCurve {
        lm: 1.0,
        x0: 2.3,
        k: -5.0,
        b: 0.0,
    };
    // One model measured four times (the published files: SmolLM2 on two machines at 1 and 2 threads).
    let e = fit::calibrate(&[(2.4, 0.3); 4], start).unwrap_err();
    assert!(e.contains("1 model(s) of distinct loss"), "{e}");
    let e = fit::calibrate(&[(2.4, 0.3), (2.2, 0.5), (2.4, 0.31)], start).unwrap_err();
    assert!(e.contains("2 model(s)"), "{e}");
    // Accuracy that rises with loss is not the curve's meaning.
    let e = fit::calibrate(&[(2.0, 0.1), (2.2, 0.3), (2.4, 0.5), (2.6, 0.7)], start).unwrap_err();
    assert!(e.contains("refused"), "{e}");
    assert!(fit::calibrate(&[(2.0, 1.5), (2.2, 0.3), (2.4, 0.1)], start).is_err());
    assert!(fit::calibrate(&[(f64::NAN, 0.5), (2.2, 0.3), (2.4, 0.1)], start).is_err());
    // Eight models on a known curve are recovered, with the midpoint inside the losses measured.
    let truth = AccuracyCurve {
        lm: 0.85,
        x0: 2.3,
        k: -9.0,
        b: 0.0,
    };
    let points: Vec<(f64, f64)> = (0..8)
        .map(|i| {
            let l = 1.95 + 0.1 * i as f64;
            (l, truth.accuracy(l))
        })
        .collect();
    let c = fit::calibrate(&points, start).unwrap();
    assert_eq!((c.models, c.losses), (8, 8));
    assert!(c.rmse < 1e-6, "{c:?}");
    assert!(
        close(c.curve.x0, 2.3, 1e-3) && close(c.curve.k, -9.0, 1e-3),
        "{c:?}"
    );
}

#[test]
fn runs_of_one_model_file_calibrate_nothing() {
    let mut cfg = Config::default_config();
    cfg.calibration
        .training_tokens
        .insert("smollm2".to_string(), 2e12);
    let results: Vec<(String, meek_schema::BenchResult)> = (0..4)
        .map(|i| {
            (
                format!("r{i}.json"),
                result("smollm2", 135_000_000, 100.0, 0.3),
            )
        })
        .collect();
    let p = project(&cfg, &results, Vec::new());
    assert!(p.calibrated_curve.is_none());
    assert!(
        p.calibration_note.contains("1 model(s)") && p.calibration_note.contains("4 runs"),
        "{}",
        p.calibration_note
    );
}

#[test]
fn a_runs_measured_loss_is_reported_as_measured_and_kept_off_the_curves() {
    let cfg = Config::default_config();
    let mut r = result("m", 100_000_000, 100.0, 0.5);
    r.runs[0].perplexity = vec![meek_schema::PerplexityResult {
        name: "prose <b>|x".into(),
        text_sha256: "0".repeat(64),
        text_bytes: 1000,
        context: 512,
        chunks: 8,
        bos: true,
        tokens_scored: 2040,
        nll_mean: 1.7328,
        nll_stderr: 0.0475,
        perplexity: 1.7328f64.exp(),
        perplexity_ci95: [5.1, 6.2],
        bits_per_byte: 0.81,
        seconds: 6.0,
        tokens_per_second: 680.0,
    }];
    let p = project(&cfg, &[("m.json".into(), r)], Vec::new());
    let m = p.points[0].measured_loss.as_ref().unwrap();
    assert_eq!((m.nats_per_token, m.tokens), (1.7328, 2040));
    let md = report::markdown(&p);
    assert!(
        md.contains(
            "1.7328 ± 0.0475 nats/token, 0.8100 bits/byte on prose &lt;b&gt;\\|x (2040 tokens)"
        ),
        "{md}"
    );
    assert!(md.contains("not placed on the curves"));
    // The implied loss still comes from the accuracy alone.
    let plain = project(
        &cfg,
        &[("m.json".into(), result("m", 100_000_000, 100.0, 0.5))],
        Vec::new(),
    );
    assert_eq!(p.points[0].implied_loss, plain.points[0].implied_loss);
    assert!(plain.points[0].measured_loss.is_none());
}

/// Issue #15: a run's budget buys compute at its machine's own FLOP/$ (measured), from the run's date.
#[test]
fn budgets_buy_compute_at_the_machines_measured_price_from_the_runs_date() {
    let cfg = Config::default_config();
    let files = [
        include_str!("../../../results/meekbench-20261201T083240Z-reasoning.json"),
        include_str!("../../../results/meekbench-20261201T122308Z-reasoning.json"),
    ];
    let results: Vec<(String, meek_schema::BenchResult)> = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            (
                format!("published-{i}.json"),
                meek_schema::from_json(f).unwrap(),
            )
        })
        .collect();
    let flops: std::collections::BTreeMap<String, f64> = results
        .iter()
        .flat_map(|(_, r)| &r.runs)
        .map(|run| {
            (
                run.model.id.clone(),
                run.energy.as_ref().unwrap().proxies.flops_per_token,
            )
        })
        .collect();
    let p = project(&cfg, &results, Vec::new());
    assert!(p.points.len() >= 3);
    for q in &p.points {
        let k = q.machine_flop_per_usd.unwrap();
        assert!(
            (k * q.usd_per_token / flops[&q.model] - 1.0).abs() < 1e-9,
            "FLOP/$ = FLOP/token / $/token"
        );
        assert!(
            k < cfg.model.kappa,
            "a small CPU buys less than the study's kappa"
        );
        assert!((q.run_year.unwrap() - 2026.92).abs() < 0.01);
        assert!(
            q.budget_chain.contains("on this machine (measured"),
            "{}",
            q.budget_chain
        );
    }
    // The budget is what the run costs, so what it buys at the start is the model's own FLOPs per token, whatever
    // the machine charges: runs of one model at different prices reach the target in the same years.
    let smol: Vec<&Point> = p
        .points
        .iter()
        .filter(|q| q.model.starts_with("smollm2"))
        .collect();
    assert!(smol.len() >= 2 && smol[0].usd_per_token != smol[1].usd_per_token);
    assert_eq!(smol[0].years_to_target, smol[1].years_to_target);
    // A run without a FLOP count falls back to the study's kappa and says so.
    let plain = project(
        &cfg,
        &[("m.json".into(), result("m", 100_000_000, 100.0, 0.5))],
        Vec::new(),
    );
    assert_eq!(plain.points[0].machine_flop_per_usd, None);
    assert!(plain.points[0].budget_chain.contains("the study's kappa"));
    assert_eq!(calendar_year("2026-01-01T00:00:00Z"), Some(2026.0));
    assert_eq!(calendar_year("garbage"), None);
    assert_eq!(calendar_year("2026-13-01"), None);
}
