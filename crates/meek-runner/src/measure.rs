//! The measurement itself: one model, one device, one thread count, every workload point.
//!
//! Runs in a process of its own (see [`crate::Launcher`]) because Candle fixes its thread pools at the first
//! tensor operation of a process.

use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use meek_energy::record::{ModelShape, Pricing, RunEnergyBuilder};
use meek_energy::{CpuIdentity, Env, Mark, Meter, Settings, SourceChoice};
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
    /// What to measure energy with.
    #[serde(default)]
    pub energy: EnergyRequest,
    /// Perplexity workloads to score after the suites.
    #[serde(default)]
    pub perplexity: Vec<crate::perplexity::PreparedText>,
}

/// The energy part of a measuring request: the `[energy]` configuration and what the parent knows of the CPU.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EnergyRequest {
    /// Allowed source ids; `None` for all (`auto`), empty for proxies only.
    pub sources: Option<Vec<String>>,
    /// TDP for the estimate, overriding the table.
    pub tdp_watts: Option<f64>,
    /// Electricity price per kWh.
    pub price_per_kwh: Option<f64>,
    /// Its currency label.
    pub currency: String,
    /// Idle baseline before the runs, seconds (0 = none).
    pub idle_baseline_seconds: f64,
    /// CPU name, for the TDP table.
    pub cpu_brand: String,
    /// Whether the machine is a virtual machine.
    pub virtualized: Option<bool>,
}

impl Default for EnergyRequest {
    fn default() -> Self {
        let e = meek_config::EnergySection::default();
        Self {
            sources: e.sources,
            tdp_watts: e.tdp_watts,
            price_per_kwh: e.price_per_kwh,
            currency: e.currency,
            idle_baseline_seconds: 0.0,
            cpu_brand: String::new(),
            virtualized: None,
        }
    }
}

impl EnergyRequest {
    /// From the configuration and the machine fingerprint.
    pub fn new(e: &meek_config::EnergySection, machine: &meek_schema::MachineInfo) -> Self {
        Self {
            sources: e.sources.clone(),
            tdp_watts: e.tdp_watts,
            price_per_kwh: e.price_per_kwh,
            currency: e.currency.clone(),
            idle_baseline_seconds: e.idle_baseline_seconds,
            cpu_brand: machine.cpu.brand.clone(),
            virtualized: machine.virtualized,
        }
    }

    /// The meter settings for a run on `device` (`cuda:N` counts GPU N's board energy).
    pub fn settings(&self, device: &str) -> Settings {
        Settings {
            sources: match &self.sources {
                None => SourceChoice::Auto,
                Some(ids) => SourceChoice::Only(ids.clone()),
            },
            tdp_watts: self.tdp_watts,
            gpu: device
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .or_else(|| (device == "cuda").then_some(0)),
        }
    }

    /// This machine's energy environment.
    pub fn env(&self) -> Env {
        Env::system(CpuIdentity {
            brand: self.cpu_brand.clone(),
            logical_cpus: std::thread::available_parallelism().map_or(1, usize::from),
        })
    }

    /// The price, when set.
    pub fn pricing(&self) -> Option<Pricing> {
        self.price_per_kwh.map(|p| Pricing {
            price_per_kwh: p,
            currency: self.currency.clone(),
        })
    }
}

/// The model's shape for the FLOPs proxy.
pub fn model_shape(info: &meek_engine::GgufInfo) -> ModelShape {
    ModelShape {
        non_embedding_params: info.non_embedding_params,
        n_layer: info.n_layer.unwrap_or(0),
        attention_width: info.attention_width.unwrap_or(0),
        weight_bytes_per_token: info.weight_bytes_per_token,
    }
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
    crate::answer::check(&engine, &req.model_id, &req.suites)?;
    let load_seconds = t0.elapsed().as_secs_f64();
    // Every text is tokenized and checked against the model before anything is measured.
    let texts = req
        .perplexity
        .iter()
        .map(|t| crate::perplexity::tokenize(&engine, &req.model_id, t))
        .collect::<Result<Vec<_>, _>>()?;
    let chunks: usize = texts.iter().map(|t| t.chunks).sum();
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
        let b = ProgressBar::new(
            runs_per_point * req.points.len() as u64 + answers as u64 + chunks as u64,
        );
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
    // Energy: probe the sources for this device, then the idle baseline with the model loaded and nothing running.
    let env = req.energy.env();
    let meter = Meter::new(
        meek_energy::probe(&env, &req.energy.settings(engine.device_name())),
        &env,
    );
    let baseline = if req.energy.idle_baseline_seconds > 0.0 {
        bar.set_message(format!(
            "idle baseline {:.0} s",
            req.energy.idle_baseline_seconds
        ));
        meter.idle_baseline(req.energy.idle_baseline_seconds)
    } else {
        None
    };
    let shape = model_shape(&info);
    let mut energy = RunEnergyBuilder::new(&meter, baseline, req.energy.pricing());
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
        let mut pool_before = None;
        let mut windows = Vec::with_capacity(req.repetitions);
        for run in 0..req.warmup + req.repetitions {
            if stop() {
                partial = true;
                break;
            }
            // A fresh prompt per run, reproducible from the seed.
            let prompt =
                engine.synthetic_prompt(n_prompt, req.seed.wrapping_add((k * 1000 + run) as u64));
            if run < req.warmup {
                engine.generate(&prompt, opts, &mut ())?;
                bar.inc(1);
                continue;
            }
            if run == req.warmup {
                pool_before = engine.pool_counts();
            }
            // The meter is read when the prompt is handed over, when the first token id is on the host (the end
            // of prefill) and after the last one: the prefill and decode windows exactly.
            let start = meter.mark();
            let mut first: Option<Mark> = None;
            let mut at_first = |i: usize, _: u32, _: Instant| {
                if i == 0 {
                    first = Some(meter.mark());
                }
            };
            let g = engine.generate(&prompt, opts, &mut at_first)?;
            let end = meter.mark();
            bar.inc(1);
            let first = first.expect("generate yields a first token");
            windows.push((meter.window(&start, &first), meter.window(&first, &end)));
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
            energy: Some(energy.point(n_prompt, n_gen, &windows, &shape)),
            decode_tokens_per_second: decode,
            itl_ms: Latency::from(&sample(itl, "inter-token latency")?),
            peak_rss_bytes: meek_hw::peak_rss_bytes().unwrap_or(0),
            pool: pool_before
                .zip(engine.pool_counts())
                .map(|(a, b)| meek_schema::PoolRegions {
                    regions: b.regions.saturating_sub(a.regions),
                    contended: b.contended.saturating_sub(a.contended),
                    reduced: b.reduced.saturating_sub(a.reduced),
                }),
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
        let r = crate::eval::evaluate(
            &mut engine,
            suite,
            req.keep_outputs,
            &bar,
            &meter,
            &mut energy,
            stop,
        )?;
        partial = r.items.len() < suite.items.len();
        if !r.items.is_empty() || suite.items.is_empty() {
            accuracy.push(r);
        }
    }
    let mut perplexity = Vec::with_capacity(texts.len());
    for t in &texts {
        if partial {
            break;
        }
        match crate::perplexity::score(&mut engine, t, &bar, stop)? {
            Some(r) => perplexity.push(r),
            None => partial = true,
        }
    }
    bar.finish_and_clear();
    let mut energy = energy.finish(&shape);
    if req.energy.virtualized == Some(true) && energy.status == meek_schema::EnergyStatus::Estimated
    {
        energy.notes.push(
            "virtual machine: the estimate models the visible CPUs only; the host's share of shared parts is \
             unknown"
                .into(),
        );
    }
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
            card: None,
        },
        device: engine.device_name().to_string(),
        threads: req.threads,
        machine: None,
        kernel: engine.kernel().to_string(),
        load_seconds,
        memory_read_bytes_per_second: bandwidth,
        speed,
        accuracy,
        perplexity,
        energy: Some(energy),
        partial,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_and_meter_know_the_same_sources() {
        let mut a: Vec<&str> = meek_config::ENERGY_SOURCES.to_vec();
        let mut b: Vec<&str> = meek_energy::SOURCE_IDS.to_vec();
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b);
    }

    #[test]
    fn energy_settings_follow_the_config_and_the_device() {
        let mut e = meek_config::EnergySection::default();
        let machine = meek_hw::machine();
        let r = EnergyRequest::new(&e, &machine);
        assert_eq!(r.settings("cuda:1").gpu, Some(1));
        assert_eq!(r.settings("cpu").gpu, None);
        assert_eq!(r.settings("metal:0").gpu, None);
        assert_eq!(r.settings("cpu").sources, SourceChoice::Auto);
        assert!(r.pricing().is_none());
        e.sources = Some(vec![]);
        e.price_per_kwh = Some(0.2);
        e.tdp_watts = Some(12.0);
        let r = EnergyRequest::new(&e, &machine);
        let s = r.settings("cpu");
        assert_eq!(s.sources, SourceChoice::Only(vec![]));
        assert_eq!(s.tdp_watts, Some(12.0));
        assert_eq!(r.pricing().unwrap().currency, "USD");
        assert_eq!(r.cpu_brand, machine.cpu.brand);
    }
}
