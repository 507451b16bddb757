//! The measurement itself: one model, one device, one thread count, every workload point.
//!
//! Runs in a process of its own (see [`crate::Launcher`]) because Candle fixes its thread pools at the first
//! tensor operation of a process.

use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use meek_engine::{DeviceRequest, Engine, GenOptions};
use meek_schema::{Latency, ModelInfo, ModelRun, SpeedPoint, Summary};
use meek_stats::Sample;
use serde::{Deserialize, Serialize};

use crate::BenchError;

/// Everything a measuring process needs, passed as JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MeasureRequest {
    /// Model id from the config.
    pub model_id: String,
    /// Verified model file.
    pub path: PathBuf,
    /// Its SHA-256.
    pub sha256: String,
    /// Its size.
    pub size_bytes: u64,
    /// Where it came from.
    pub source: String,
    /// Device asked for, as in the config (`auto`, `cpu`, `cuda:0`, `metal`).
    pub device: String,
    /// CPU threads.
    pub threads: usize,
    /// (prompt tokens, generated tokens) pairs.
    pub points: Vec<(usize, usize)>,
    /// Unmeasured runs per point.
    pub warmup: usize,
    /// Measured runs per point.
    pub repetitions: usize,
    /// Seed of the synthetic prompts.
    pub seed: u64,
    /// Show a progress bar on standard error.
    pub progress: bool,
    /// Accuracy suites to answer after the speed points.
    #[serde(default)]
    pub suites: Vec<crate::eval::PreparedSuite>,
    /// Keep the generated texts in the item records.
    #[serde(default)]
    pub keep_outputs: bool,
}

/// Loads the model and measures every point. The caller has set the thread count for this process.
pub fn measure(req: &MeasureRequest) -> Result<ModelRun, BenchError> {
    measure_until(req, &|| false)
}

/// [`measure`], asking `stop` before each repetition and each accuracy item: once it says yes, the repetition or
/// item in progress has finished and the run is returned as it stands, marked `partial`. A point keeps the
/// repetitions it completed (its `repetitions` says how many); a point or suite with none is left out.
pub fn measure_until(
    req: &MeasureRequest,
    stop: &dyn Fn() -> bool,
) -> Result<ModelRun, BenchError> {
    let device: DeviceRequest = req.device.parse().map_err(BenchError::Config)?;
    let t0 = Instant::now();
    let mut engine = Engine::load(&req.path, device)?;
    let load_seconds = t0.elapsed().as_secs_f64();
    let info = engine.info().clone();
    for &(p, g) in &req.points {
        if p + g > engine.max_positions() {
            return Err(BenchError::Config(format!(
                "model `{}`: prompt {p} + generation {g} tokens exceed the {} positions it supports; \
                 lower speed.prompt_tokens or speed.gen_tokens",
                req.model_id,
                engine.max_positions()
            )));
        }
    }
    let runs_per_point = (req.warmup + req.repetitions) as u64;
    let answers: usize = req.suites.iter().map(|s| s.items.len()).sum();
    let bar = if req.progress {
        let b = ProgressBar::new(runs_per_point * req.points.len() as u64 + answers as u64);
        b.set_style(
            ProgressStyle::with_template("  {prefix} [{bar:30}] {pos}/{len} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        b.set_prefix(format!(
            "{} t={} {}",
            req.model_id,
            req.threads,
            engine.device_name()
        ));
        b
    } else {
        ProgressBar::hidden()
    };
    let mut speed = Vec::with_capacity(req.points.len());
    let mut partial = false;
    for (k, &(n_prompt, n_gen)) in req.points.iter().enumerate() {
        if partial {
            break;
        }
        bar.set_message(format!("pp{n_prompt} tg{n_gen}"));
        meek_hw::reset_peak_rss();
        let opts = GenOptions {
            max_new_tokens: n_gen,
            stop_at_eos: false,
        };
        let (mut ttft, mut prefill, mut decode, mut itl) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for run in 0..req.warmup + req.repetitions {
            if stop() {
                partial = true;
                break;
            }
            // A fresh prompt per run, reproducible from the seed.
            let prompt =
                engine.synthetic_prompt(n_prompt, req.seed.wrapping_add((k * 1000 + run) as u64));
            let g = engine.generate(&prompt, opts, &mut ())?;
            bar.inc(1);
            if run < req.warmup {
                continue;
            }
            let t = g.ttft().as_secs_f64();
            ttft.push(t * 1e3);
            prefill.push(n_prompt as f64 / t);
            decode.push((g.tokens.len() - 1) as f64 / g.decode_time().as_secs_f64());
            itl.extend(g.inter_token().map(|d| d.as_secs_f64() * 1e3));
        }
        if ttft.is_empty() {
            break;
        }
        let repetitions = ttft.len();
        let sample = |v: Vec<f64>, what: &str| {
            Sample::new(v).map_err(|e| {
                BenchError::Measurement(format!("{what} of pp{n_prompt} tg{n_gen}: {e}"))
            })
        };
        let decode = Summary::from(&sample(decode, "decode rate")?);
        speed.push(SpeedPoint {
            n_prompt,
            n_gen,
            warmup: req.warmup,
            repetitions,
            ttft_ms: Summary::from(&sample(ttft, "time to first token")?),
            prefill_tokens_per_second: Summary::from(&sample(prefill, "prefill rate")?),
            bandwidth_bound_tokens_per_second: None,
            bandwidth_bound_fraction: None,
            decode_tokens_per_second: decode,
            itl_ms: Latency::from(&sample(itl, "inter-token latency")?),
            peak_rss_bytes: meek_hw::peak_rss_bytes().unwrap_or(0),
        });
    }
    // The memory roof for this run's threads, measured in this process after the speed points (its 256 MiB buffer
    // must not count in their peak memory where the OS cannot reset the peak).
    let bandwidth = (engine.device_name().starts_with("cpu") && !partial && !stop())
        .then(|| meek_hw::read_bandwidth(req.threads, 3));
    if let Some(bw) = bandwidth {
        let bound = bw / info.weight_bytes_per_token.max(1) as f64;
        for p in &mut speed {
            p.bandwidth_bound_tokens_per_second = Some(bound);
            p.bandwidth_bound_fraction = Some(p.decode_tokens_per_second.median / bound);
        }
    }
    let mut accuracy = Vec::with_capacity(req.suites.len());
    for suite in &req.suites {
        if partial {
            break;
        }
        let r = crate::eval::evaluate(&mut engine, suite, req.keep_outputs, &bar, stop)?;
        partial = r.items.len() < suite.items.len();
        if !r.items.is_empty() || suite.items.is_empty() {
            accuracy.push(r);
        }
    }
    bar.finish_and_clear();
    Ok(ModelRun {
        model: ModelInfo {
            id: req.model_id.clone(),
            file: req
                .path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            sha256: req.sha256.clone(),
            size_bytes: req.size_bytes,
            source: req.source.clone(),
            architecture: info.architecture,
            quantization: info.quantization,
            n_params: info.n_params,
            context_length: info.context_length,
            weight_bytes_per_token: info.weight_bytes_per_token,
        },
        device: engine.device_name().to_string(),
        threads: req.threads,
        kernel: engine.kernel().to_string(),
        load_seconds,
        memory_read_bytes_per_second: bandwidth,
        speed,
        accuracy,
        partial,
    })
}
