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

/// A reasoning model's thinking block (`<think>...</think>`) during generation: stop strings apply only after it
/// closes, and a budget can close it (budget forcing).
#[derive(Debug, Clone, Copy)]
pub struct Thinking<'a> {
    /// The prompt already opened the block (DeepSeek-R1's template ends its generation prompt with `<think>\n`);
    /// otherwise a block counts when the generated text begins with `open`.
    pub open_in_prompt: bool,
    /// The text that opens a block, e.g. `<think>`.
    pub open: &'a str,
    /// The text that closes it, e.g. `</think>`.
    pub close: &'a str,
    /// Most thinking tokens: once the block holds this many without closing, `force` (the token ids of the closing
    /// text) is fed to the model, which then answers, with `max_new_tokens` for the answer. `None`: no cap, and
    /// `max_new_tokens` bounds thinking and answer together.
    pub budget: Option<usize>,
    /// Token ids fed at the budget, e.g. those of `\n</think>\n\n`.
    pub force: &'a [u32],
}

/// What happened to a thinking block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThinkingTrace {
    /// Generated tokens that belong to the block (from its opening, or the first token when the prompt opened it,
    /// up to the token that closed it or the last before the forced close).
    pub tokens: usize,
    /// The budget closed the block: the forced ids were fed after `tokens[..forced_at]`.
    pub forced_at: Option<usize>,
    /// The block was closed (by the model or by forcing); false when generation ended inside it.
    pub closed: bool,
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
    /// The thinking block, when [`Engine::generate_thinking`] was asked to watch for one and one opened.
    pub thinking: Option<ThinkingTrace>,
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
        self.generate_thinking(prompt, opts, until, None, observer)
    }

    /// [`generate_until`](Self::generate_until) for reasoning models: with `thinking`, the text inside a thinking
    /// block is not checked for stop strings, its tokens are counted, and a budget closes it by feeding the forced
    /// ids (which are not generated tokens: they are in neither `tokens` nor `token_times`, and cost one prefill
    /// step). The context must hold the prompt, the budget, the forced ids and `max_new_tokens`.
    pub fn generate_thinking(
        &mut self,
        prompt: &[u32],
        opts: GenOptions,
        until: &[String],
        thinking: Option<Thinking<'_>>,
        observer: &mut dyn TokenObserver,
    ) -> Result<Generation, EngineError> {
        let think_room = thinking
            .and_then(|t| t.budget.map(|b| b + t.force.len()))
            .unwrap_or(0);
        let needed = prompt.len() + think_room + opts.max_new_tokens;
        if prompt.is_empty() || opts.max_new_tokens == 0 || needed > self.max_positions {
            return Err(EngineError::TooLong {
                model: self.name.clone(),
                prompt: prompt.len(),
                n_gen: opts.max_new_tokens,
                needed,
                max: self.max_positions,
                why: self.max_positions_why,
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
        let mut watch = thinking.map(Watch::new);
        // Where the answer's tokens begin (stop strings are looked for there) and how many it may have.
        let mut answer_from = 0;
        let mut cap = opts.max_new_tokens;
        // Positions past the prompt taken by forced ids.
        let mut fed = 0;
        loop {
            let at = Instant::now();
            observer.on_token(tokens.len(), next, at);
            tokens.push(next);
            times.push(at);
            if opts.stop_at_eos && Some(next) == eos {
                stop = StopReason::Eos;
                break;
            }
            let mut force = false;
            if let Some(w) = watch.as_mut()
                && !w.done()
            {
                match w.after_token(self, &tokens) {
                    Phase::Thinking => {}
                    // The block closed: the answer starts here, with its own budget when thinking had one.
                    Phase::Answering if w.trace.is_some() => {
                        answer_from = tokens.len();
                        if w.spec.budget.is_some() {
                            cap = tokens.len() + opts.max_new_tokens;
                        }
                    }
                    // No block opened: the answer began with the first token.
                    Phase::Answering => {}
                    Phase::Force => force = true,
                }
            }
            let undecided = watch.as_ref().is_some_and(|w| !w.done());
            if !undecided && let Some(i) = self.stop_sequence_in(&tokens[answer_from..], until) {
                stop = StopReason::StopSequence(i);
                break;
            }
            // Inside a block with a budget, the budget (forcing) ends thinking, not the answer's cap.
            let budgeted_block = watch
                .as_ref()
                .is_some_and(|w| !w.done() && w.trace.is_some() && w.spec.budget.is_some());
            if tokens.len() >= cap && !force && !budgeted_block {
                break;
            }
            let pos = prompt.len() + fed + tokens.len() - 1;
            if force {
                let w = watch.as_mut().expect("forcing needs a watch");
                let mut ids = vec![next];
                ids.extend_from_slice(w.spec.force);
                next = self.step(&ids, pos)?;
                fed += w.spec.force.len();
                w.forced(tokens.len());
                answer_from = tokens.len();
                cap = tokens.len() + opts.max_new_tokens;
            } else {
                next = self.step(&[next], pos)?;
            }
        }
        Ok(Generation {
            prompt_tokens: prompt.len(),
            tokens,
            started,
            token_times: times,
            stop,
            thinking: watch.and_then(|w| w.trace),
        })
    }
}

/// Where a watched generation is.
enum Phase {
    /// Inside the block (or not yet known whether one opens).
    Thinking,
    /// Outside it: it closed, or none opened.
    Answering,
    /// The budget is spent: feed the forced ids.
    Force,
}

/// Follows a thinking block token by token.
struct Watch<'a> {
    spec: Thinking<'a>,
    /// `None` until a block opens.
    trace: Option<ThinkingTrace>,
    /// Decided: the block closed, or none opened.
    decided: bool,
}

impl<'a> Watch<'a> {
    fn new(spec: Thinking<'a>) -> Self {
        Self {
            trace: spec.open_in_prompt.then_some(ThinkingTrace {
                tokens: 0,
                forced_at: None,
                closed: false,
            }),
            spec,
            decided: false,
        }
    }

    fn done(&self) -> bool {
        self.decided
    }

    fn forced(&mut self, at: usize) {
        if let Some(t) = self.trace.as_mut() {
            t.forced_at = Some(at);
            t.closed = true;
        }
        self.decided = true;
    }

    fn after_token(&mut self, engine: &Engine, tokens: &[u32]) -> Phase {
        if self.trace.is_some() {
            return self.after_open(engine, tokens);
        }
        // Not yet open: the text so far must begin with the opening tag for a block to count.
        let text = engine.tokenizer.decode(tokens, true).unwrap_or_default();
        let lead = text.trim_start();
        if lead.starts_with(self.spec.open) {
            self.trace = Some(ThinkingTrace {
                tokens: tokens.len(),
                forced_at: None,
                closed: false,
            });
            return self.after_open(engine, tokens);
        }
        if self.spec.open.starts_with(lead) {
            return Phase::Thinking;
        }
        self.decided = true;
        Phase::Answering
    }

    fn after_open(&mut self, engine: &Engine, tokens: &[u32]) -> Phase {
        let trace = self.trace.as_mut().expect("open");
        // Every generated token up to the close belongs to the block (its opening tag included).
        trace.tokens = tokens.len();
        let close = [self.spec.close.to_string()];
        if engine.stop_sequence_in(tokens, &close).is_some() {
            trace.closed = true;
            self.decided = true;
            return Phase::Answering;
        }
        if self.spec.budget.is_some_and(|b| trace.tokens >= b) {
            return Phase::Force;
        }
        Phase::Thinking
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
            Weights::Tensor(m) => m
                .forward(tokens, pos)
                .and_then(|l| l.to_vec1::<f32>())
                .ctx(|| "logits".into()),
        }
    }

    /// The negative log-likelihood (nats) of each `tokens[i + 1]` given `tokens[..=i]`, for every `i` in
    /// `first..tokens.len() - 1`, from one sequence run from position 0: a text's teacher-forced loss, as
    /// llama.cpp's perplexity tool scores a chunk. meekbench's CPU path computes all the positions in one pass;
    /// candle-transformers' models give the last position's logits only, so there the positions after `first` are
    /// run one at a time (slower, the same numbers).
    pub fn token_nll(&mut self, tokens: &[u32], first: usize) -> Result<Vec<f64>, EngineError> {
        let n = tokens.len();
        if first + 1 >= n {
            return Ok(Vec::new());
        }
        let mut nll = Vec::with_capacity(n - 1 - first);
        match &mut self.weights {
            Weights::Cpu(m) => {
                m.reserve(n);
                m.forward_rows(tokens, 0, first..n - 1, &mut |i, logits| {
                    nll.push(nll_of(logits, tokens[i + 1]));
                });
            }
            // Every position in one pass on the device; only each target's log-probability comes back.
            Weights::Tensor(m) => {
                let targets = Tensor::new(&tokens[first + 1..], &self.device)
                    .and_then(|t| t.unsqueeze(1))
                    .ctx(|| "perplexity targets".into())?;
                let lp = m
                    .forward_all(&tokens[..n - 1], 0)
                    .and_then(|l| l.narrow(0, first, n - 1 - first))
                    .and_then(|l| candle_nn::ops::log_softmax(&l, D::Minus1))
                    .and_then(|l| l.gather(&targets, 1))
                    .and_then(|l| l.flatten_all())
                    .and_then(|l| l.to_vec1::<f32>())
                    .ctx(|| format!("scoring {} tokens", n - 1 - first))?;
                nll.extend(lp.into_iter().map(|l| -f64::from(l)));
            }
            _ => {
                let mut logits = self.logits(&tokens[..=first], 0)?;
                for i in first..n - 1 {
                    if i > first {
                        logits = self.logits(&tokens[i..=i], i)?;
                    }
                    nll.push(nll_of(&logits, tokens[i + 1]));
                }
            }
        }
        Ok(nll)
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
            Weights::Tensor(m) => m.greedy(tokens, pos).ctx(what),
        }
    }
}

/// `-log softmax(logits)[target]`, in double precision over the exponentials as llama.cpp's perplexity tool
/// computes it (a target outside the vocabulary scores infinity: it is impossible).
pub fn nll_of(logits: &[f32], target: u32) -> f64 {
    let Some(&x) = logits.get(target as usize) else {
        return f64::INFINITY;
    };
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from((l - max).exp())).sum();
    -(f64::from(x - max) - sum.ln())
}

/// Index of the largest value (the first one on ties, like `argmax` in Candle and llama.cpp's greedy sampler): the
/// greedy choice from [`Engine::logits`].
pub fn argmax(v: &[f32]) -> u32 {
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
