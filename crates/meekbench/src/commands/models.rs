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
    println!("models in {} (cache: {})", cfg.origin, cache.display());
    for m in &cfg.config.models {
        match fetcher.lookup(m) {
            Some(f) => println!(
                "  {:<32} verified  {:>8.1} MiB  {}",
                m.id,
                f.size_bytes as f64 / (1 << 20) as f64,
                f.path.display()
            ),
            None => println!(
                "  {:<32} not here  fetched on first use from: {}",
                m.id,
                m.sources
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
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
