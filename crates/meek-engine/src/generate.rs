//! Generation: greedy decoding with a KV cache, the instant each token id reached the host, and the bare steps and
//! logits that benchmarks and agreement checks use.

use std::time::{Duration, Instant};

use candle_core::{D, Device, Tensor};

use crate::load::CandleModel;
use crate::{Ctx, Engine, EngineError, Weights, hf};

/// Receives each generated token as soon as its id is on the host.
pub trait TokenObserver {
    /// Token number `index` (0 is the one produced by the prompt) arrived at `at`.
    fn on_token(&mut self, index: usize, token: u32, at: Instant);
}

impl TokenObserver for () {
    fn on_token(&mut self, _: usize, _: u32, _: Instant) {}
}

impl<F: FnMut(usize, u32, Instant)> TokenObserver for F {
    fn on_token(&mut self, index: usize, token: u32, at: Instant) {
        self(index, token, at);
    }
}

/// How to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenOptions {
    /// Most tokens to generate.
    pub max_new_tokens: usize,
    /// Stop at the end-of-sequence token (speed runs switch this off to generate exactly `max_new_tokens`).
    pub stop_at_eos: bool,
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The model produced its end-of-sequence token (included in `tokens`).
    Eos,
    /// `max_new_tokens` were generated.
    Length,
    /// The decoded text of the generated tokens came to contain this stop string (index into the list given to
    /// [`Engine::generate_until`]); the token that completed it is included in `tokens`.
    StopSequence(usize),
}

/// One greedy generation with its timings.
#[derive(Debug, Clone)]
pub struct Generation {
    /// Prompt length in tokens.
    pub prompt_tokens: usize,
    /// Generated ids, in order.
    pub tokens: Vec<u32>,
    /// When the prompt was handed to the model.
    pub started: Instant,
    /// When each generated id reached the host (same length as `tokens`).
    pub token_times: Vec<Instant>,
    /// Why it stopped.
    pub stop: StopReason,
}

impl Generation {
    /// Time to first token.
    pub fn ttft(&self) -> Duration {
        self.token_times[0] - self.started
    }

    /// Time from the first to the last generated token.
    pub fn decode_time(&self) -> Duration {
        self.token_times[self.token_times.len() - 1] - self.token_times[0]
    }

    /// Gaps between consecutive tokens.
    pub fn inter_token(&self) -> impl Iterator<Item = Duration> + '_ {
        self.token_times.windows(2).map(|w| w[1] - w[0])
    }
}

impl Engine {
    /// `n` token ids for a speed run: BOS first when the model adds one, then ordinary tokens drawn uniformly
    /// with a fixed seed (like llama-bench's random prompts, so no tokenizer work is timed and no cache can hit).
    pub fn synthetic_prompt(&self, n: usize, seed: u64) -> Vec<u32> {
        let tok = &self.tokenizer;
        let normal: Vec<u32> = (0..tok.vocab_size() as u32)
            .filter(|&i| tok.is_normal(i))
            .collect();
        // SplitMix64: small, good enough to pick token ids (the seed offset keeps the prompts of earlier versions).
        let mut rng = meek_stats::SplitMix64::new(seed ^ 0x9E37_79B9_7F4A_7C15);
        let mut ids = Vec::with_capacity(n);
        if tok.adds_bos()
            && let Some(b) = tok.bos()
        {
            ids.push(b);
        }
        // The header check refuses a vocabulary without ordinary tokens; should one come through anyway (a
        // checkpoint's tokenizer.json), the prompt falls back to every id rather than divide by zero.
        let pool: Vec<u32> = if normal.is_empty() {
            (0..tok.vocab_size() as u32).collect()
        } else {
            normal
        };
        while ids.len() < n && !pool.is_empty() {
            ids.push(pool[(rng.next_u64() % pool.len() as u64) as usize]);
        }
        ids.truncate(n);
        ids
    }

    /// Greedy generation from `prompt` (token ids), starting from an empty KV cache.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        opts: GenOptions,
        observer: &mut dyn TokenObserver,
    ) -> Result<Generation, EngineError> {
        self.generate_until(prompt, opts, &[], observer)
    }

    /// [`generate`](Self::generate) that also stops as soon as the text of the generated tokens (special tokens
    /// left out) contains one of `until` (lm-evaluation-harness's stop sequences). The text is decoded after each
    /// token, only when `until` is not empty; speed runs pass none and pay nothing.
    pub fn generate_until(
        &mut self,
        prompt: &[u32],
        opts: GenOptions,
        until: &[String],
        observer: &mut dyn TokenObserver,
    ) -> Result<Generation, EngineError> {
        let needed = prompt.len() + opts.max_new_tokens;
        if prompt.is_empty() || opts.max_new_tokens == 0 || needed > self.max_positions {
            return Err(EngineError::TooLong {
                model: self.name.clone(),
                prompt: prompt.len(),
                n_gen: opts.max_new_tokens,
                needed,
                max: self.max_positions,
            });
        }
        if let Weights::Cpu(m) = &mut self.weights {
            // The whole run's KV cache up front: no reallocation between tokens.
            m.reserve(needed);
        }
        let eos = self.tokenizer.eos();
        let mut tokens = Vec::with_capacity(opts.max_new_tokens);
        let mut times = Vec::with_capacity(opts.max_new_tokens);
        let started = Instant::now();
        let mut next = self.step(prompt, 0)?;
        let mut stop = StopReason::Length;
        loop {
            let at = Instant::now();
            observer.on_token(tokens.len(), next, at);
            tokens.push(next);
            times.push(at);
            if opts.stop_at_eos && Some(next) == eos {
                stop = StopReason::Eos;
                break;
            }
            if let Some(i) = self.stop_sequence_in(&tokens, until) {
                stop = StopReason::StopSequence(i);
                break;
            }
            if tokens.len() == opts.max_new_tokens {
                break;
            }
            let pos = prompt.len() + tokens.len() - 1;
            next = self.step(&[next], pos)?;
        }
        Ok(Generation {
            prompt_tokens: prompt.len(),
            tokens,
            started,
            token_times: times,
            stop,
        })
    }
}

impl Engine {
    /// The index of the first of `until` that the text of `tokens` contains, if any. Called after every token,
    /// so a new occurrence ends in the newest tokens: only a tail as long as the longest stop string (in bytes,
    /// and every token is at least a byte of text or part of one) plus a few tokens is decoded, which keeps the
    /// check constant-time however long the answer grows.
    fn stop_sequence_in(&self, tokens: &[u32], until: &[String]) -> Option<usize> {
        let longest = until.iter().map(String::len).max()?;
        let tail = &tokens[tokens.len().saturating_sub(longest + 4)..];
        // A piece that does not decode on its own (half of a multi-byte character) decodes with the next token.
        let text = self.tokenizer.decode(tail, true).ok()?;
        until.iter().position(|s| text.contains(s.as_str()))
    }
}

impl Engine {
    /// Logits of the last of `tokens`, run at positions `pos..` (0 starts a new sequence), for checks such as
    /// teacher-forced agreement between engines.
    pub fn logits(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<f32>, EngineError> {
        match &mut self.weights {
            Weights::Cpu(m) => {
                m.reserve(pos + tokens.len());
                Ok(m.forward(tokens, pos).to_vec())
            }
            Weights::Candle(m) => candle_logits(m, &self.device, tokens, pos)
                .and_then(|l| l.to_vec1::<f32>())
                .ctx(|| "logits".into()),
            Weights::Hf(m) => hf_logits(m, &self.device, tokens, pos)
                .and_then(|l| l.to_vec1::<f32>())
                .ctx(|| "logits".into()),
        }
    }

    /// The bare engine loop's unit: runs `tokens` at positions `pos..` (0 starts a new sequence with an empty cache)
    /// and returns the greedy next id, with no clock reads or bookkeeping (benchmarks compare [`generate`] with
    /// it to show what measuring costs).
    ///
    /// [`generate`]: Self::generate
    pub fn greedy_step(&mut self, tokens: &[u32], pos: usize) -> Result<u32, EngineError> {
        self.step(tokens, pos)
    }

    /// Runs `tokens` at position `pos` (0 starts a new sequence with an empty cache) and returns the greedy next id.
    fn step(&mut self, tokens: &[u32], pos: usize) -> Result<u32, EngineError> {
        let what = || {
            if pos == 0 {
                format!("prefill of {} tokens", tokens.len())
            } else {
                format!("decode step at position {pos}")
            }
        };
        match &mut self.weights {
            Weights::Cpu(m) => {
                m.reserve(pos + tokens.len());
                Ok(argmax(m.forward(tokens, pos)))
            }
            // The arg-max is copied to the host, which waits for the device: the clock read after it is honest
            // on asynchronous GPUs too.
            Weights::Candle(m) => candle_logits(m, &self.device, tokens, pos)
                .and_then(|l| l.argmax(D::Minus1))
                .and_then(|t| t.to_scalar::<u32>())
                .ctx(what),
            Weights::Hf(m) => hf_logits(m, &self.device, tokens, pos)
                .and_then(|l| l.argmax(D::Minus1))
                .and_then(|t| t.to_scalar::<u32>())
                .ctx(what),
        }
    }
}

/// Index of the largest value (the first one on ties, like `argmax` in Candle and llama.cpp's greedy sampler).
fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best as u32
}

/// candle-transformers' forward pass (the cache cleared at a new sequence): the last position's logits, on the device.
fn candle_logits(
    m: &mut CandleModel,
    device: &Device,
    tokens: &[u32],
    pos: usize,
) -> candle_core::Result<Tensor> {
    if pos == 0 {
        m.clear_kv_cache();
    }
    let input = Tensor::new(tokens, device)?.unsqueeze(0)?;
    let logits = m.forward(&input, pos)?.squeeze(0)?;
    if logits.rank() == 2 {
        logits.get(logits.dim(0)? - 1)
    } else {
        Ok(logits)
    }
}

/// candle-transformers' non-quantized forward pass (the cache cleared at a new sequence): the last position's
/// logits as f32, on the device.
fn hf_logits(
    m: &mut hf::HfModel,
    device: &Device,
    tokens: &[u32],
    pos: usize,
) -> candle_core::Result<Tensor> {
    if pos == 0 {
        m.clear_kv_cache(device)?;
    }
    let input = Tensor::new(tokens, device)?.unsqueeze(0)?;
    m.forward(&input, pos)
}
