//! Issue #15's synthetic check: eight models with known parameters, training tokens, release dates, accuracy curve
//! and yearly cost decline, written as result files with declared model cards; the calibration and the trend fit
//! must recover the generating values within their intervals.

use super::*;
use crate::model::AccuracyCurve;

/// A result file of one model: `correct` of `n` items, `seconds` per correct answer at 30 W, a declared card.
#[allow(clippy::too_many_arguments)]
fn dated(
    id: &str,
    sha: &str,
    n_params: f64,
    tokens: Option<f64>,
    date: Option<&str>,
    correct: usize,
    n: usize,
    seconds: f64,
) -> meek_schema::BenchResult {
    let summary = |v: f64| serde_json::json!({"median": v, "mean": v, "stddev": 0.0, "min": v, "max": v, "samples": [v]});
    let score = serde_json::json!({"correct": correct, "n": n, "accuracy": correct as f64 / n as f64, "ci95": [0.0, 1.0]});
    let mut card = serde_json::json!({"source": format!("https://example.org/{id}")});
    if let Some(t) = tokens {
        card["training_tokens"] = t.into();
    }
    if let Some(d) = date {
        card["release_date"] = d.into();
    }
    let v = serde_json::json!({
        "schema_version": 1, "status": "complete",
        "tool": {"name": "meekbench", "version": "0", "features": [], "target": "t", "rustc": "r", "profile": "release", "engine": "e"},
        "machine": {"cpu": {"brand": "Test CPU", "arch": "x86_64", "logical_cores": 2, "flags": []}, "memory_bytes": 1, "os": "os", "kernel": "k", "gpus": []},
        "started_at": "2026-06-01T00:00:00Z",
        "config": {"source": "s", "sha256": "x", "text": ""},
        "runs": [{
            "model": {"id": id, "file": "f", "sha256": sha, "size_bytes": 1, "source": "cache", "architecture": "llama",
                      "quantization": "Q4_K", "n_params": n_params as u64, "weight_bytes_per_token": 1, "card": card},
            "device": "cpu", "threads": 2, "kernel": "cpu-avx2", "load_seconds": 0.1,
            "speed": [{"n_prompt": 128, "n_gen": 64, "warmup": 1, "repetitions": 1, "ttft_ms": summary(1.0),
                       "prefill_tokens_per_second": summary(100.0), "decode_tokens_per_second": summary(50.0),
                       "itl_ms": {"p50": 1.0, "p90": 1.0, "p99": 1.0, "mean": 1.0, "min": 1.0, "max": 1.0, "samples": [1.0]},
                       "peak_rss_bytes": 1}],
            "accuracy": [{"suite": "gsm8k", "prompt_style": "chat", "shots": 0, "max_new_tokens": 256,
                          "strict": score, "flexible": score, "by_family": [], "by_steps": [],
                          "mean_generated_tokens": 100.0, "seconds_per_answer": seconds * correct as f64 / n as f64,
                          "seconds_per_correct": seconds, "items": [],
                          "energy": {"status": "measured", "label": "measured:rapl", "joules": 30.0 * seconds * correct as f64,
                                     "joules_per_correct_answer": 30.0 * seconds, "cpu_seconds_per_answer": 1.0}}]
        }]
    });
    serde_json::from_value(v).unwrap()
}

/// The generating values.
const DECLINE: f64 = 4.0;
const ITEMS: usize = 1000;

fn truth() -> AccuracyCurve {
    AccuracyCurve {
        lm: 0.85,
        x0: 2.45,
        k: -9.0,
        b: 0.0,
    }
}

/// Eight models released a year apart from 2019, each larger and longer trained than the last, answering with
/// binomial noise (fixed seed) and with costs off the trend by a fixed pattern of up to 12%.
fn eight(cfg: &Config) -> Vec<(String, meek_schema::BenchResult)> {
    let mut rng = meek_stats::SplitMix64::new(15);
    let noise = [1.05, 0.92, 1.10, 0.97, 1.0, 1.12, 0.9, 1.03];
    (0..8)
        .map(|i| {
            let n = 1e8 * 2f64.powi(i);
            let d = 1e11 * 2.2f64.powi(i);
            let loss = cfg.calibration.chinchilla.loss(n, d);
            let p = truth().accuracy(loss);
            let correct = (0..ITEMS)
                .filter(|_| ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p)
                .count();
            let year = 2019 + i;
            let seconds = 50.0 * DECLINE.powi(-i) * noise[i as usize];
            let id = format!("m{i}");
            (
                format!("{id}.json"),
                dated(
                    &id,
                    &format!("sha-{i}"),
                    n,
                    Some(d),
                    Some(&format!("{year}-01-01")),
                    correct,
                    ITEMS,
                    seconds,
                ),
            )
        })
        .collect()
}

#[test]
fn eight_synthetic_models_recover_the_curve_and_the_decline_within_their_intervals() {
    let cfg = Config::default_config();
    let results = eight(&cfg);
    let p = project(&cfg, &results, Vec::new());
    // Calibration from declared training tokens, with bootstrap intervals covering the truth.
    let c = p.calibrated_curve.expect(&p.calibration_note);
    let i = p
        .calibration_intervals
        .as_ref()
        .expect("bootstrap intervals");
    let t = truth();
    for (name, v, [lo, hi]) in [("Lm", t.lm, i.lm), ("x0", t.x0, i.x0), ("k", t.k, i.k)] {
        assert!(
            lo <= v && v <= hi,
            "{name} = {v} outside its interval {lo}..{hi} (fit {c:?})"
        );
        assert!(lo < hi, "{name}: an interval has width");
    }
    assert!(p.calibration_note.contains("8 measured models"));
    assert!(p.calibration_note.contains("bootstrap intervals"));
    // Every point says where its training tokens and release date come from.
    for q in &p.points {
        let (_, basis) = q.training_tokens.as_ref().unwrap();
        assert!(
            basis.starts_with("declared (https://example.org/"),
            "{basis}"
        );
        assert!(q.release_date.as_ref().unwrap().1.starts_with("declared"));
    }
    // The trend: every threshold with enough models recovers the 4x per year within its interval.
    let tr = &p.trend;
    assert_eq!(tr.entries.len(), 8);
    let fitted: Vec<&trend::ThresholdFit> = tr
        .fits
        .iter()
        .filter(|f| f.decline_per_year.is_some())
        .collect();
    assert!(fitted.len() >= 4, "{:?}", tr.fits);
    for f in fitted {
        let [lo, hi] = f.ci95.unwrap();
        assert!(
            lo <= DECLINE && DECLINE <= hi,
            "at {}: {:?} ({lo}..{hi})",
            f.threshold,
            f.decline_per_year
        );
        // Over every model reaching the threshold, the decline is recovered too.
        let [l, h] = f.all_ci95.unwrap();
        assert!(
            l <= DECLINE && DECLINE <= h,
            "all models at {}: {l}..{h}",
            f.threshold
        );
        // Energy per correct answer falls at the same rate here (constant watts).
        let e = f.energy_decline_per_year.unwrap();
        assert!((e / f.decline_per_year.unwrap() - 1.0).abs() < 1e-9);
    }
    assert!(tr.summary.contains("x per year"), "{}", tr.summary);
    let md = report::markdown(&p);
    assert!(md.contains("The study's claim, tested") && md.contains("trend.svg"));
    let svg = trend_chart::chart(tr);
    assert!(svg.starts_with("<svg") && svg.contains("<line") && svg.ends_with("</svg>"));
}

#[test]
fn the_trend_refuses_to_fit_what_it_cannot_and_says_why() {
    let cfg = Config::default_config();
    // Two models: nothing is fitted.
    let two: Vec<_> = eight(&cfg).into_iter().take(2).collect();
    let tr = trend::trend(&cfg, &two);
    assert!(tr.fits.iter().all(|f| f.decline_per_year.is_none()));
    assert!(tr.summary.starts_with("Not tested"), "{}", tr.summary);
    assert!(
        tr.fits[0].note.as_deref().unwrap().contains("at least 3"),
        "{:?}",
        tr.fits[0].note
    );
    // Runs of one file on several machines count once (pooled items, the cheaper run's cost).
    let mut copies: Vec<_> = eight(&cfg).into_iter().take(1).collect();
    copies.extend(eight(&cfg).into_iter().take(1));
    copies.extend(eight(&cfg).into_iter().take(1));
    let tr = trend::trend(&cfg, &copies);
    assert_eq!(tr.entries.len(), 1);
    assert_eq!(tr.entries[0].items, 3 * ITEMS);
    // Three models released on one day: no line through one date.
    let same_day: Vec<_> = (0..3)
        .map(|i| {
            (
                format!("d{i}.json"),
                dated(
                    &format!("d{i}"),
                    &format!("d-{i}"),
                    1e9,
                    None,
                    Some("2025-03-12"),
                    500 + i,
                    ITEMS,
                    10.0 - i as f64,
                ),
            )
        })
        .collect();
    let tr = trend::trend(&cfg, &same_day);
    assert!(tr.fits.iter().all(|f| f.decline_per_year.is_none()));
    assert!(
        tr.fits[0]
            .note
            .as_deref()
            .unwrap()
            .contains("1 release date")
    );
    // Without declared release dates the results are left out by name, and the summary says so.
    let undated = vec![(
        "u.json".to_string(),
        dated("u", "u-sha", 1e9, None, None, 100, ITEMS, 1.0),
    )];
    let tr = trend::trend(&cfg, &undated);
    assert!(tr.entries.is_empty() && tr.left_out[0].contains("no declared release date"));
    assert!(trend_chart::chart(&tr).contains("no measured model has a declared release date"));
}

/// The published result files hold one model of known release date (none declared: they predate cards): the
/// test says so instead of fitting, and the calibration is refused.
#[test]
fn the_published_results_are_too_few_to_test_the_claim() {
    let cfg = Config::default_config();
    let results: Vec<(String, meek_schema::BenchResult)> = [
        include_str!("../../../results/meekbench-20261201T083240Z-reasoning.json"),
        include_str!("../../../results/meekbench-20261201T122308Z-reasoning.json"),
    ]
    .iter()
    .enumerate()
    .map(|(i, f)| (format!("p{i}.json"), meek_schema::from_json(f).unwrap()))
    .collect();
    let p = project(&cfg, &results, Vec::new());
    assert!(p.calibrated_curve.is_none());
    assert!(p.calibration_note.starts_with("No calibration"));
    assert!(
        p.trend.summary.starts_with("Not tested"),
        "{}",
        p.trend.summary
    );
    let md = report::markdown(&p);
    // These files predate model cards, and the default config assumes no training tokens.
    let unknown = meek_render::escape::markdown("training tokens unknown");
    assert!(md.contains(&unknown), "{md}");
}

/// Bands are Monte Carlo percentiles over every stated range: collapsed ranges give the baseline itself, and each
/// range widens the band.
#[test]
fn bands_are_percentiles_of_draws_over_every_range() {
    let mut cfg = Config::default_config();
    let base = cfg.baseline();
    let g = base.schedule.constant_growth().unwrap();
    let months = 12.0 / cfg.model.g_alg.log2();
    let u = &mut cfg.uncertainty;
    u.halving_months = [months; 2];
    u.g_h = [cfg.model.g_h; 2];
    u.g_i = [g; 2];
    u.gamma = [cfg.model.gamma; 2];
    u.accuracy_x0 = [cfg.accuracy.x0; 2];
    u.accuracy_k = [cfg.accuracy.k; 2];
    let p = project(&cfg, &[], Vec::new());
    let gap = &p.loss_gap[0];
    for (i, v) in gap.values.iter().enumerate() {
        let (lo, hi) = (gap.low.as_ref().unwrap()[i], gap.high.as_ref().unwrap()[i]);
        assert!(
            (lo - v).abs() < 1e-9 && (hi - v).abs() < 1e-9,
            "t index {i}"
        );
    }
    // Each range alone widens the loss-gap band at ten years (the accuracy curve's ranges the accuracy gap).
    let width = |c: &Curve| {
        let i = p.t.iter().position(|&x| (x - 10.0).abs() < 1e-9).unwrap();
        c.high.as_ref().unwrap()[i] - c.low.as_ref().unwrap()[i]
    };
    let widened = |f: &dyn Fn(&mut Config)| {
        let mut c = cfg.clone();
        f(&mut c);
        project(&c, &[], Vec::new())
    };
    let gi = widened(&|c| c.uncertainty.g_i = [2.0, 10.0]);
    let gamma = widened(&|c| c.uncertainty.gamma = [0.154, 0.178]);
    let k = widened(&|c| c.uncertainty.accuracy_k = [-26.0, -21.5]);
    assert!(width(&gi.loss_gap[0]) > 1e-3 && width(&gamma.loss_gap[0]) > 1e-3);
    assert!(width(&k.loss_gap[0]) < 1e-12 && width(&k.accuracy_gap[1]) > 1e-4);
    assert!(
        gi.assumptions
            .iter()
            .any(|a| a.contains("Monte Carlo") && a.contains("investment 2-10/yr"))
    );
}

/// One g_alg per row: the years to the target loss use the meek-equivalent year's algorithmic growth, not the
/// inference chart's 3.6.
#[test]
fn a_rows_years_to_target_use_the_same_g_alg_as_its_meek_equivalent_year() {
    let cfg = Config::default_config();
    let results = eight(&cfg);
    let p = project(&cfg, &results[..1], Vec::new());
    let q = &p.points[0];
    let base = cfg.baseline();
    let flops_kappa = base.kappa;
    for &(g_inf, years) in &q.years_to_target {
        let inf = model::Inference {
            b_usd: q.usd_per_token,
            g_inf,
            g_alg: cfg.model.g_alg,
        };
        let expect =
            p.t.iter()
                .find(|&&x| {
                    base.law.loss(inf.compute(flops_kappa, base.g_h, x)) <= cfg.machine.target_loss
                })
                .copied();
        assert_eq!(years, expect, "g_inf {g_inf}");
    }
    assert!(
        p.assumptions
            .iter()
            .any(|a| a.contains("g_alg 2.8 as in the meek-equivalent year"))
    );
}

/// A result file may claim any number of items: the bootstrap draws a huge count in one step, not one per item.
#[test]
fn bootstrap_intervals_take_a_huge_claimed_item_count_in_stride() {
    let t = truth();
    let points: Vec<(f64, usize, usize)> = [2.2, 2.35, 2.45, 2.55, 2.7]
        .iter()
        .map(|&l| {
            let n = 1usize << 40;
            (l, (t.accuracy(l) * n as f64) as usize, n)
        })
        .collect();
    // One uniform number per item would be 2^40 draws a model a round: the test would never end.
    let i = fit::intervals(&points, t, 50, 1).expect("intervals");
    assert!(
        i.x0[0] <= t.x0 && t.x0 <= i.x0[1] && i.x0[1] - i.x0[0] < 1e-3,
        "{i:?}"
    );
}

/// A result file cannot override the user's own training tokens, nor bring absurd ones or impossible dates.
#[test]
fn untrusted_cards_are_bounded_and_the_users_figures_win() {
    let mut cfg = Config::default_config();
    let results = eight(&cfg);
    let run = &results[0].1.runs[0];
    assert!(
        training_tokens(&cfg.calibration, run)
            .unwrap()
            .1
            .starts_with("declared")
    );
    cfg.calibration.training_tokens.insert("m0".into(), 3e12);
    let (d, basis) = training_tokens(&cfg.calibration, run).unwrap();
    assert_eq!(
        (d, basis.as_str()),
        (3e12, "assumed ([calibration] training_tokens)")
    );
    let mut bad = results[1].1.clone();
    let card = bad.runs[0].model.card.as_mut().unwrap();
    card.training_tokens = Some(1e-300);
    card.release_date = Some("2023-02-31".into());
    assert!(training_tokens(&cfg.calibration, &bad.runs[0]).is_none());
    let tr = trend::trend(&cfg, &[("bad.json".into(), bad)]);
    assert!(tr.entries.is_empty() && tr.left_out[0].contains("no declared release date"));
    assert_eq!(calendar_year("2024-02-29"), Some(2024.0 + 59.0 / 365.25));
    assert_eq!(calendar_year("2023-02-29"), None);
}

/// Bootstrap rounds whose curve loses its meaning are left out, and the bands draw the curve's parameters
/// together from the rounds kept.
#[test]
fn bootstrap_rounds_keep_the_curves_meaning_and_feed_joint_draws() {
    let cfg = Config::default_config();
    let p = project(&cfg, &eight(&cfg), Vec::new());
    let i = p.calibration_intervals.as_ref().unwrap();
    assert_eq!(i.draws.len(), i.rounds);
    assert!(
        i.draws
            .iter()
            .all(|[lm, _, k]| *k < 0.0 && *lm > 0.0 && *lm <= 1.0)
    );
    assert!(
        p.assumptions
            .iter()
            .any(|a| a.contains("bootstrap intervals of the calibration"))
    );
}

/// More distinct models than the pooling takes are refused with the reason, not fitted for hours.
#[test]
fn too_many_models_are_refused_by_name() {
    let cfg = Config::default_config();
    let one = eight(&cfg).remove(0).1;
    let many: Vec<(String, meek_schema::BenchResult)> = (0..=pool::MAX_MODELS)
        .map(|i| {
            let mut r = one.clone();
            r.runs[0].model.sha256 = format!("sha-many-{i}");
            (format!("r{i}.json"), r)
        })
        .collect();
    let p = project(&cfg, &many, Vec::new());
    assert!(
        p.calibration_note
            .contains("more than 1000 distinct model files"),
        "{}",
        p.calibration_note
    );
    assert!(
        p.trend.summary.contains("more than 1000"),
        "{}",
        p.trend.summary
    );
}
