//! LocalScore's score computed from meekbench's own figures, so a machine measured here can be put beside
//! LocalScore's public results (Mozilla's LocalScore, `localscore.ai`).
//!
//! LocalScore runs nine fixed prompt/generation tests ([`TESTS`]) and scores a machine on one model as
//! `10 x cbrt(mean prompt tok/s x mean generation tok/s x 1000 / mean TTFT ms)`, each mean taken over the nine
//! tests. Here each test's figure is the mean over its repetitions (LocalScore runs one by default). What differs
//! from LocalScore's own client, and so what to keep in mind beside its leaderboard: meekbench's decode rate counts
//! the tokens after the first over the time after the first (LocalScore divides all generated tokens by the
//! generation time), every point has its own warm-up (LocalScore warms up once), and the engine is meekbench's, not
//! llamafile's. A run that lacks any of the nine tests has no score: a partial score would not be comparable.

use meek_schema::ModelRun;

/// LocalScore's nine tests as (prompt tokens, generated tokens), in its order.
pub const TESTS: [(usize, usize); 9] = [
    (1024, 16),
    (4096, 256),
    (2048, 256),
    (2048, 768),
    (1024, 1024),
    (1280, 3072),
    (384, 1152),
    (64, 1024),
    (16, 1536),
];

/// A run's LocalScore and the three means it is made of.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LocalScore {
    /// `10 x cbrt(prompt_tps x gen_tps x 1000 / ttft_ms)`.
    pub score: f64,
    /// Mean prefill rate over the nine tests, tokens per second.
    pub prompt_tps: f64,
    /// Mean decode rate over the nine tests, tokens per second.
    pub gen_tps: f64,
    /// Mean time to first token over the nine tests, milliseconds.
    pub ttft_ms: f64,
}

/// The score of `run`, when it measured every one of LocalScore's tests (other points are ignored).
pub fn of_run(run: &ModelRun) -> Option<LocalScore> {
    let mut sums = [0.0f64; 3];
    for &(p, g) in &TESTS {
        let point = run.speed.iter().find(|s| s.n_prompt == p && s.n_gen == g)?;
        sums[0] += point.prefill_tokens_per_second.mean;
        sums[1] += point.decode_tokens_per_second.mean;
        sums[2] += point.ttft_ms.mean;
    }
    let n = TESTS.len() as f64;
    score(sums[0] / n, sums[1] / n, sums[2] / n)
}

/// LocalScore's formula on the three means; `None` unless all three are finite and positive.
pub fn score(prompt_tps: f64, gen_tps: f64, ttft_ms: f64) -> Option<LocalScore> {
    let ok = |x: f64| x.is_finite() && x > 0.0;
    if !(ok(prompt_tps) && ok(gen_tps) && ok(ttft_ms)) {
        return None;
    }
    let score = 10.0 * (prompt_tps * gen_tps * 1000.0 / ttft_ms).cbrt();
    ok(score).then_some(LocalScore {
        score,
        prompt_tps,
        gen_tps,
        ttft_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_formula_is_localscores() {
        // 1000 tok/s prompt, 100 tok/s generation, 100 ms TTFT: 10 x cbrt(1e5 x 10) = 10 x 100 = 1000.
        let s = score(1000.0, 100.0, 100.0).unwrap();
        assert!((s.score - 1000.0).abs() < 1e-9, "{}", s.score);
        assert!(score(1000.0, 0.0, 100.0).is_none());
        assert!(score(f64::NAN, 1.0, 1.0).is_none());
        assert!(score(1.0, 1.0, f64::INFINITY).is_none());
    }

    #[test]
    fn the_shipped_config_runs_exactly_these_tests() {
        let c = meek_config::parse(
            include_str!("../../../configs/localscore.toml"),
            "configs/localscore.toml",
        )
        .unwrap();
        assert_eq!(c.config.speed.points(), TESTS);
    }

    #[test]
    fn a_run_is_scored_only_with_all_nine_tests() {
        let r = meek_schema::from_json(include_str!("../tests/fixtures/machine-b.json")).unwrap();
        let mut run = r.runs[0].clone();
        assert_eq!(
            of_run(&run),
            None,
            "the fixture has none of LocalScore's tests"
        );
        let template = run.speed[0].clone();
        run.speed = TESTS
            .iter()
            .enumerate()
            .map(|(i, &(p, g))| {
                let mut s = template.clone();
                (s.n_prompt, s.n_gen) = (p, g);
                s.prefill_tokens_per_second.mean = 100.0 * (i + 1) as f64;
                s.decode_tokens_per_second.mean = 10.0;
                s.ttft_ms.mean = 50.0;
                s
            })
            .collect();
        let s = of_run(&run).unwrap();
        assert!((s.prompt_tps - 500.0).abs() < 1e-9);
        assert!((s.score - 10.0 * (500.0f64 * 10.0 * 20.0).cbrt()).abs() < 1e-9);
        run.speed.remove(4);
        assert_eq!(of_run(&run), None, "eight of nine tests: no score");
    }
}
