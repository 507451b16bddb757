//! From windows to the result file's energy records: per workload point, per suite, per run.
//!
//! Per-token figures follow the speed definitions: prefill joules / prompt tokens (the window from handing the
//! prompt over to the first token) and decode joules / (generated tokens - 1) (first to last token), as
//! optimum-benchmark splits generate into prefill and decode. Net figures subtract the idle baseline's watts
//! times the window's duration. FLOPs per token follow Kaplan et al. 2020, table 1:
//! `2 x N_non-embedding + 2 x n_layer x n_ctx x d_attn`.

use std::collections::BTreeSet;

use meek_schema::{
    EnergyComponent, EnergyCost, EnergyProxies, EnergyStatus, IdleBaseline, PointEnergy, RunEnergy,
    SuiteEnergy, Summary,
};
use meek_stats::Sample;

use crate::meter::{Baseline, Meter, Window};

/// Joules in one kWh.
pub const JOULES_PER_KWH: f64 = 3.6e6;
/// A baseline whose per-second watts vary more than this (relative standard deviation) is flagged.
pub const NOISY_BASELINE: f64 = 0.10;

/// What the FLOPs proxy needs to know about the model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelShape {
    /// Parameters outside the token embedding (the output matrix counts when it is separate).
    pub non_embedding_params: u64,
    /// Transformer layers.
    pub n_layer: u64,
    /// Attention width (`n_heads x head_dim`, the embedding width in most models).
    pub attention_width: u64,
    /// Bytes of weights read per decoded token.
    pub weight_bytes_per_token: u64,
}

impl ModelShape {
    /// Forward-pass FLOPs of one token attending to `context` positions.
    pub fn flops_per_token(&self, context: f64) -> f64 {
        2.0 * self.non_embedding_params as f64
            + 2.0 * self.n_layer as f64 * context.max(0.0) * self.attention_width as f64
    }
}

/// Electricity price.
#[derive(Debug, Clone, PartialEq)]
pub struct Pricing {
    /// Price per kWh.
    pub price_per_kwh: f64,
    /// Currency label.
    pub currency: String,
}

impl Pricing {
    fn of(&self, joules: f64) -> f64 {
        joules / JOULES_PER_KWH * self.price_per_kwh
    }
}

fn summary(v: Vec<f64>) -> Option<Summary> {
    Sample::new(v).ok().map(|s| Summary::from(&s))
}

fn median(v: &[f64]) -> Option<f64> {
    Sample::new(v.to_vec())
        .ok()
        .map(|s| meek_stats::describe(&s).median)
}

/// Collects every window of one run and builds its records.
pub struct RunEnergyBuilder<'m> {
    meter: &'m Meter,
    baseline: Option<Baseline>,
    pricing: Option<Pricing>,
    prefill: Vec<f64>,
    decode: Vec<f64>,
    net_prefill: Vec<f64>,
    net_decode: Vec<f64>,
    cpu_prefill: Vec<f64>,
    cpu_decode: Vec<f64>,
    joules: f64,
    seconds: f64,
    windows_without_joules: usize,
    component_joules: Vec<f64>,
    component_wraps: Vec<u64>,
    used: BTreeSet<usize>,
    status: Option<EnergyStatus>,
    answers: usize,
    answer_joules: Option<f64>,
    answer_net: Option<f64>,
    answer_cpu: f64,
    correct: usize,
    notes: Vec<String>,
}

impl<'m> RunEnergyBuilder<'m> {
    /// A builder for a run measured with `meter`.
    pub fn new(meter: &'m Meter, baseline: Option<Baseline>, pricing: Option<Pricing>) -> Self {
        let n = meter.components().len();
        let mut notes = Vec::new();
        if let Some(b) = &baseline
            && b.watts > 0.0
            && b.watts_stddev / b.watts > NOISY_BASELINE
        {
            notes.push(format!(
                "noisy idle baseline: {:.2} ± {:.2} W (relative spread above {:.0}%); net figures are uncertain",
                b.watts,
                b.watts_stddev,
                100.0 * NOISY_BASELINE
            ));
        }
        Self {
            meter,
            baseline,
            pricing,
            prefill: Vec::new(),
            decode: Vec::new(),
            net_prefill: Vec::new(),
            net_decode: Vec::new(),
            cpu_prefill: Vec::new(),
            cpu_decode: Vec::new(),
            joules: 0.0,
            seconds: 0.0,
            windows_without_joules: 0,
            component_joules: vec![0.0; n],
            component_wraps: vec![0; n],
            used: BTreeSet::new(),
            status: None,
            answers: 0,
            answer_joules: Some(0.0),
            answer_net: Some(0.0),
            answer_cpu: 0.0,
            correct: 0,
            notes,
        }
    }

    /// Adds a note (deduplicated).
    pub fn note(&mut self, n: impl Into<String>) {
        let n = n.into();
        if !self.notes.contains(&n) {
            self.notes.push(n);
        }
    }

    /// Net joules of a window.
    fn net(&self, w: &Window) -> Option<f64> {
        let b = self.baseline.as_ref()?;
        w.joules.map(|j| j - b.watts * w.seconds)
    }

    /// Records a window in the run's totals; returns its status.
    fn take(&mut self, w: &Window) -> EnergyStatus {
        for n in &w.notes {
            self.note(n.clone());
        }
        for &(i, w) in &w.wraps {
            self.component_wraps[i] += w;
        }
        match w.joules {
            Some(j) => {
                self.joules += j;
                self.seconds += w.seconds;
                for &(i, pj) in &w.parts {
                    self.component_joules[i] += pj;
                    self.used.insert(i);
                }
                self.status = Some(self.status.map_or(w.status, |s| s.worst(w.status)));
            }
            None => self.windows_without_joules += 1,
        }
        w.status
    }

    /// The energy of one workload point from its repetitions' (prefill, decode) windows.
    pub fn point(
        &mut self,
        n_prompt: usize,
        n_gen: usize,
        reps: &[(Window, Window)],
        shape: &ModelShape,
    ) -> PointEnergy {
        let mut status: Option<EnergyStatus> = None;
        let mut parts = Vec::new();
        let (mut jp, mut jd, mut np, mut nd, mut wp, mut wd, mut cp, mut cd) = (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        let decoded = n_gen.saturating_sub(1).max(1) as f64;
        let prompt = n_prompt.max(1) as f64;
        for (p, d) in reps {
            for w in [p, d] {
                let s = self.take(w);
                if w.joules.is_some() {
                    status = Some(status.map_or(s, |x| x.worst(s)));
                    parts.extend(w.parts.iter().copied());
                }
            }
            if let (Some(a), Some(b)) = (p.joules, d.joules) {
                jp.push(a / prompt);
                jd.push(b / decoded);
                wp.extend(p.watts());
                wd.extend(d.watts());
                if let (Some(x), Some(y)) = (self.net(p), self.net(d)) {
                    np.push(x / prompt);
                    nd.push(y / decoded);
                }
            }
            cp.push(p.cpu_seconds.unwrap_or(0.0) / prompt);
            cd.push(d.cpu_seconds.unwrap_or(0.0) / decoded);
        }
        self.prefill.extend(&jp);
        self.decode.extend(&jd);
        self.net_prefill.extend(&np);
        self.net_decode.extend(&nd);
        self.cpu_prefill.extend(&cp);
        self.cpu_decode.extend(&cd);
        PointEnergy {
            status: status.unwrap_or(EnergyStatus::ProxyOnly),
            label: self.meter.label_of(&parts),
            joules_per_prefill_token: summary(jp),
            joules_per_decode_token: summary(jd),
            net_joules_per_prefill_token: summary(np),
            net_joules_per_decode_token: summary(nd),
            prefill_watts: summary(wp),
            decode_watts: summary(wd),
            cpu_seconds_per_prefill_token: summary(cp).unwrap_or_else(zero),
            cpu_seconds_per_decode_token: summary(cd).unwrap_or_else(zero),
            flops_per_prefill_token: shape.flops_per_token(n_prompt as f64 / 2.0),
            flops_per_decode_token: shape.flops_per_token(n_prompt as f64 + n_gen as f64 / 2.0),
        }
    }

    /// The energy of one suite from its items: the window of each answered item (`None` for an item that was
    /// not run, such as a prompt longer than the context) and whether it was correct (flexible extractor).
    pub fn suite(&mut self, items: &[(Option<Window>, bool)]) -> SuiteEnergy {
        let mut status: Option<EnergyStatus> = None;
        let mut parts = Vec::new();
        let mut joules = Some(0.0);
        let mut net = Some(0.0);
        let mut cpu = 0.0;
        let mut correct = 0;
        for (w, ok) in items {
            correct += usize::from(*ok);
            let Some(w) = w else { continue };
            let s = self.take(w);
            cpu += w.cpu_seconds.unwrap_or(0.0);
            match w.joules {
                Some(j) => {
                    status = Some(status.map_or(s, |x| x.worst(s)));
                    parts.extend(w.parts.iter().copied());
                    joules = joules.map(|t| t + j);
                    net = net.zip(self.net(w)).map(|(t, n)| t + n);
                }
                None => {
                    joules = None;
                    net = None;
                }
            }
        }
        let n = items.len();
        self.answers += n;
        self.correct += correct;
        self.answer_cpu += cpu;
        self.answer_joules = self.answer_joules.zip(joules).map(|(a, b)| a + b);
        self.answer_net = self.answer_net.zip(net).map(|(a, b)| a + b);
        let per_correct = joules.filter(|_| correct > 0).map(|j| j / correct as f64);
        let status = if joules.is_none() {
            EnergyStatus::ProxyOnly
        } else {
            status.unwrap_or(EnergyStatus::ProxyOnly)
        };
        SuiteEnergy {
            status,
            label: self
                .meter
                .label_of(if joules.is_some() { &parts } else { &[] }),
            joules,
            joules_per_answer: joules.filter(|_| n > 0).map(|j| j / n as f64),
            joules_per_correct_answer: per_correct,
            net_joules_per_correct_answer: net
                .filter(|_| correct > 0 && self.baseline.is_some())
                .map(|j| j / correct as f64),
            cpu_seconds_per_answer: if n == 0 { 0.0 } else { cpu / n as f64 },
            cost_per_correct_answer: self.pricing.as_ref().zip(per_correct).map(|(p, j)| p.of(j)),
        }
    }

    /// The run's record.
    pub fn finish(mut self, shape: &ModelShape) -> RunEnergy {
        if self.windows_without_joules > 0 {
            let n = self.windows_without_joules;
            self.note(format!(
                "{n} window(s) had no joules (a source failed with nothing to stand in); figures use the others"
            ));
        }
        let negative = self
            .net_decode
            .iter()
            .chain(&self.net_prefill)
            .any(|&x| x < 0.0);
        if negative {
            self.note(
                "a net figure is negative: the window used less power than the idle baseline (baseline noise, or \
                 another load during the baseline)",
            );
        }
        let status = self.status.unwrap_or(EnergyStatus::ProxyOnly);
        let components: Vec<EnergyComponent> = self
            .used
            .iter()
            .map(|&i| {
                let c = &self.meter.components()[i];
                EnergyComponent {
                    source: c.source.clone(),
                    provenance: c.provenance.as_str().to_string(),
                    scope: c.scope.as_str().to_string(),
                    domains: c.domains.clone(),
                    label: c.label.clone(),
                    joules: self.component_joules[i],
                    wraps: self.component_wraps[i],
                    poll_ms: c.poll.map(|p| p.as_millis() as u64),
                }
            })
            .collect();
        let mut scope: Vec<String> = Vec::new();
        for c in &components {
            if !scope.contains(&c.scope) {
                scope.push(c.scope.clone());
            }
        }
        let excludes = excludes(&scope);
        let label = if components.is_empty() {
            "proxy-only".to_string()
        } else {
            components
                .iter()
                .map(|c| c.label.clone())
                .collect::<Vec<_>>()
                .join("+")
        };
        let has_joules = status != EnergyStatus::ProxyOnly;
        let jpp = median(&self.prefill).filter(|_| has_joules);
        let jpd = median(&self.decode).filter(|_| has_joules);
        let answer_joules = self
            .answer_joules
            .filter(|_| has_joules && self.answers > 0);
        let per_correct = answer_joules
            .filter(|_| self.correct > 0)
            .map(|j| j / self.correct as f64);
        let cost = self
            .pricing
            .as_ref()
            .filter(|_| has_joules)
            .map(|p| EnergyCost {
                currency: p.currency.clone(),
                price_per_kwh: p.price_per_kwh,
                per_million_decode_tokens: jpd.map(|j| p.of(j * 1e6)),
                per_million_prefill_tokens: jpp.map(|j| p.of(j * 1e6)),
                per_correct_answer: per_correct.map(|j| p.of(j)),
            });
        RunEnergy {
            status,
            label,
            scope,
            excludes,
            components,
            joules_per_prefill_token: jpp,
            joules_per_decode_token: jpd,
            net_joules_per_prefill_token: median(&self.net_prefill).filter(|_| has_joules),
            net_joules_per_decode_token: median(&self.net_decode).filter(|_| has_joules),
            joules_per_answer: answer_joules.map(|j| j / self.answers as f64),
            joules_per_correct_answer: per_correct,
            net_joules_per_correct_answer: self
                .answer_net
                .filter(|_| has_joules && self.correct > 0 && self.baseline.is_some())
                .map(|j| j / self.correct as f64),
            average_watts: (has_joules && self.seconds > 0.0).then(|| self.joules / self.seconds),
            joules: has_joules.then_some(self.joules),
            seconds: self.seconds,
            baseline: self.baseline.as_ref().map(|b| IdleBaseline {
                method: "pre-run-idle".into(),
                seconds: b.seconds,
                watts: b.watts,
                watts_stddev: b.watts_stddev,
                status: b.status,
                label: b.label.clone(),
            }),
            estimate: self.meter.estimator().map(|e| e.record()),
            unavailable: self.meter.unavailable().iter().map(Into::into).collect(),
            proxies: EnergyProxies {
                cpu_seconds_per_prefill_token: median(&self.cpu_prefill),
                cpu_seconds_per_decode_token: median(&self.cpu_decode),
                cpu_seconds_per_answer: (self.answers > 0)
                    .then(|| self.answer_cpu / self.answers as f64),
                flops_per_token: shape.flops_per_token(0.0),
                attention_flops_per_token_per_position: 2.0
                    * shape.n_layer as f64
                    * shape.attention_width as f64,
                non_embedding_params: shape.non_embedding_params,
                weight_bytes_per_token: shape.weight_bytes_per_token,
            },
            cost,
            notes: self.notes,
        }
    }
}

fn zero() -> Summary {
    Summary {
        median: 0.0,
        mean: 0.0,
        stddev: 0.0,
        min: 0.0,
        max: 0.0,
        samples: Vec::new(),
    }
}

/// What a set of scopes leaves out.
pub fn excludes(scope: &[String]) -> Vec<String> {
    let has = |s: &str| scope.iter().any(|x| x == s);
    if has("platform") {
        return vec!["psu-losses".into()];
    }
    let mut out = Vec::new();
    if !has("cpu-package") && !has("soc") {
        out.push("cpu-package".into());
    }
    if !has("gpu-board") && !has("soc") {
        out.push("gpu-board".into());
    }
    if !has("soc") {
        out.push("dram-chips".into());
    }
    out.extend(["storage", "fans", "psu-losses"].map(String::from));
    out
}
