//! The model commands: `tokenize` (a model's tokenizer on a text), `models` (a config's models and their cache
//! state) and `digest` (the SHA-256 to pin a model with).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use super::load_config;
use crate::cli::{DigestArgs, GenerateArgs, ModelsArgs, TokenizeArgs};

fn resolve_model(model: &str, config: Option<&Path>) -> Result<PathBuf> {
    let p = Path::new(model);
    // A GGUF file, or a Hugging Face checkpoint (its directory, config.json or a .safetensors file).
    if p.is_file() || p.is_dir() {
        return Ok(p.to_path_buf());
    }
    let cfg = load_config(config)?;
    if let Some(waiting) = cfg.unpinned().find(|l| l.spec.id == model) {
        bail!(
            "`{model}` in {} is not pinned yet ({}); run `meekbench lock {}` first",
            cfg.origin,
            waiting.why().unwrap_or_default(),
            cfg.origin
        );
    }
    let Some(spec) = cfg.config.models.iter().find(|m| m.id == model) else {
        let known: Vec<&str> = cfg.config.models.iter().map(|m| m.id.as_str()).collect();
        bail!(
            "`{model}` is neither a file, a checkpoint directory nor a model id in {}; ids there: {}",
            cfg.origin,
            known.join(", ")
        );
    };
    let cache = cfg
        .config
        .run
        .cache
        .clone()
        .unwrap_or_else(meek_hub::default_cache_dir);
    let f = meek_hub::Fetcher::new(cache)
        .with_progress(true)
        .fetch(spec)?;
    Ok(f.path)
}

pub fn tokenize(args: TokenizeArgs) -> Result<ExitCode> {
    let path = resolve_model(&args.model, args.config.as_deref())?;
    let (tok, chat, _) = meek_engine::load_tokenizer(&path)?;
    let text = if args.chat {
        let Some(t) = chat else {
            bail!("{} has no chat template; leave out --chat", path.display());
        };
        t.render(&[meek_engine::Message::new("user", &args.text)], true)
            .map_err(anyhow::Error::msg)?
    } else {
        args.text
    };
    let ids = tok.encode(&text).map_err(anyhow::Error::msg)?;
    let pieces: Vec<String> = ids
        .iter()
        .map(|&i| tok.decode(&[i], false).unwrap_or_default())
        .collect();
    if args.json {
        let tokens: Vec<_> = ids
            .iter()
            .zip(&pieces)
            .map(|(id, p)| serde_json::json!({"id": id, "piece": p, "raw": tok.piece(*id)}))
            .collect();
        let v = serde_json::json!({"model": path, "text": text, "ids": ids, "tokens": tokens});
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("{} tokens", ids.len());
        for (id, p) in ids.iter().zip(&pieces) {
            println!("{id:>8}  {p:?}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn generate(args: GenerateArgs) -> Result<ExitCode> {
    let path = resolve_model(&args.model, args.config.as_deref())?;
    let mut engine = meek_engine::Engine::load(&path, args.device)?;
    let prompt = if args.chat {
        let Some(t) = engine.chat_template() else {
            bail!("{} has no chat template; leave out --chat", path.display());
        };
        t.render(&[meek_engine::Message::new("user", &args.prompt)], true)
            .map_err(anyhow::Error::msg)?
    } else {
        args.prompt
    };
    let ids = engine
        .tokenizer()
        .encode(&prompt)
        .map_err(anyhow::Error::msg)?;
    if ids.is_empty() {
        bail!("the prompt has no tokens; give a non-empty prompt");
    }
    let opts = meek_engine::GenOptions {
        max_new_tokens: args.n as usize,
        stop_at_eos: true,
    };
    let g = engine
        .generate(&ids, opts, &mut ())
        .with_context(|| format!("generating with {}", path.display()))?;
    // The end-of-sequence token ends the text; it is not part of it (llama-completion prints none either).
    let text_ids = match g.stop {
        meek_engine::StopReason::Eos => &g.tokens[..g.tokens.len() - 1],
        _ => &g.tokens[..],
    };
    let text = engine
        .tokenizer()
        .decode(text_ids, true)
        .map_err(anyhow::Error::msg)?;
    if args.json {
        let stop = match g.stop {
            meek_engine::StopReason::Eos => "eos",
            meek_engine::StopReason::Length => "length",
            meek_engine::StopReason::StopSequence(_) => "stop-sequence",
        };
        let v = serde_json::json!({
            "model": path,
            "kernel": engine.kernel(),
            "prompt": prompt,
            "prompt_ids": ids,
            "ids": g.tokens,
            "text": text,
            "stop": stop,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("{text}");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn models(args: ModelsArgs) -> Result<ExitCode> {
    let cfg = load_config(args.config.as_deref())?;
    let cache = args
        .cache
        .or_else(|| cfg.config.run.cache.clone())
        .unwrap_or_else(meek_hub::default_cache_dir);
    let fetcher = meek_hub::Fetcher::new(&cache);
    let available = meek_hw::available_memory();
    let threads = meek_hw::physical_cores().unwrap_or(1);
    // Measured here and now (best of 3 passes over 256 MiB): what bounds decode speed on the CPU.
    let bandwidth = meek_hw::read_bandwidth(threads, 3);
    println!("models in {} (cache: {})", cfg.origin, cache.display());
    println!(
        "this machine: {} available; memory read {:.1} GB/s with {threads} threads (measured now); \"fits\" counts \
         the weights, the KV cache of the longest speed point (when the file is here) and 0.5 GiB; the decode \
         roof is that bandwidth over the bytes read per token",
        gib(available),
        bandwidth / 1e9
    );
    println!(
        "  {:<40} {:<11} {:>10}  {:<5} {:>12}  where",
        "id", "state", "size", "fits", "decode roof"
    );
    let longest = cfg
        .config
        .speed
        .points()
        .iter()
        .map(|(p, g)| p + g)
        .max()
        .unwrap_or(0) as u64;
    let row = |id: &str,
               state: &str,
               size: Option<u64>,
               per_token: Option<u64>,
               kv: u64,
               where_: String| {
        let fits = match size {
            Some(s) if available > 0 => {
                if s.saturating_add(kv).saturating_add(512 << 20) <= available {
                    "yes"
                } else {
                    "no"
                }
            }
            _ => "?",
        };
        let roof = per_token.filter(|&b| b > 0).map_or_else(
            || "?".to_string(),
            |b| format!("{:.1} tok/s", bandwidth / b as f64),
        );
        println!(
            "  {id:<40} {state:<11} {:>10}  {fits:<5} {roof:>12}  {where_}",
            size.map_or_else(|| "?".to_string(), gib)
        );
    };
    // In config order: the pinned models (`config.models` keeps their order) and those the lock does not pin.
    let mut pinned = cfg.config.models.iter();
    for i in 0..cfg.config.models.len() + cfg.unpinned().count() {
        let waiting = cfg.unpinned().find(|l| l.index == i);
        let next = if waiting.is_none() {
            pinned.next()
        } else {
            None
        };
        match (waiting, next) {
            (None, Some(m)) => match fetcher.lookup(m) {
                Some(f) => {
                    let info = meek_engine::inspect(&f.path).ok();
                    let kv = info
                        .as_ref()
                        .and_then(|i| i.kv_bytes_per_position)
                        .unwrap_or(0)
                        .saturating_mul(longest);
                    let per_token = info.map_or(f.size_bytes, |i| i.weight_bytes_per_token);
                    row(
                        &m.id,
                        "verified",
                        Some(f.size_bytes),
                        Some(per_token),
                        kv,
                        f.path.display().to_string(),
                    );
                }
                None => {
                    // Not here: a locked model's size is in the lock (the whole file is taken as read per token).
                    let size = cfg
                        .lock
                        .as_ref()
                        .and_then(|l| l.lock.get(&m.id))
                        .map(|e| e.size);
                    let state = if size.is_some() { "locked" } else { "not here" };
                    let from: Vec<String> = m.sources.iter().map(ToString::to_string).collect();
                    row(
                        &m.id,
                        state,
                        size,
                        size,
                        0,
                        format!("fetched on first use from {}", from.join(", ")),
                    );
                }
            },
            (Some(l), _) => row(
                &l.spec.id,
                if l.state == meek_config::LockState::Missing {
                    "not locked"
                } else {
                    "stale lock"
                },
                None,
                None,
                0,
                format!(
                    "hub:{}@{}: run `meekbench lock {}` for its size",
                    l.hub.repo, l.hub.revision, cfg.origin
                ),
            ),
            (None, None) => {}
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn gib(bytes: u64) -> String {
    if bytes < 1 << 30 {
        format!("{:.0} MiB", bytes as f64 / (1 << 20) as f64)
    } else {
        format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
    }
}

pub fn digest(args: DigestArgs) -> Result<ExitCode> {
    let digest = if args.path.is_dir() {
        meek_hub::checkpoint_digest(&args.path).map_err(anyhow::Error::msg)?
    } else {
        meek_hub::sha256_file(&args.path).with_context(|| args.path.display().to_string())?
    };
    println!("{digest}");
    Ok(ExitCode::SUCCESS)
}
