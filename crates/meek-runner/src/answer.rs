//! Answering a prepared suite on a loaded model: the prompt (meekbench's or lm-evaluation-harness's, as chat turns
//! or a completion), greedy generation to the stop strings, a reasoning model's thinking block (counted, capped by
//! budget forcing, left out of what the extractors read), and the verdicts of the suite's scoring.

use indicatif::ProgressBar;
use meek_energy::record::RunEnergyBuilder;
use meek_energy::{Meter, Window};
use meek_engine::{Engine, GenOptions, Message, StopReason, Thinking, ThinkingTrace};
use meek_eval::lm_eval::Task;
use meek_eval::{Item, extract, lm_eval, prompt};
use meek_schema::{ItemRecord, SuiteResult};

use crate::BenchError;
use crate::eval::{PreparedSuite, summarise};

/// The text that opens a thinking block (Qwen3, DeepSeek-R1 and their distills).
pub const THINK_OPEN: &str = "<think>";
/// The text that closes it.
pub const THINK_CLOSE: &str = "</think>";
/// What budget forcing feeds when a thought reaches `max_thinking_tokens`: the closing tag on its own line and the
/// blank line after it, as Qwen3's template writes an empty block.
pub const THINK_FORCE: &str = "\n</think>\n\n";

/// The stop strings of `suite` for a model with (`chat`) or without a chat template: the suite's `until` when it
/// sets one; for lm-eval suites the task's `until`; otherwise the completion format's separators
/// ([`prompt::COMPLETION_UNTIL`]) for base models, and none for chat models, whose template's end-of-turn token
/// ends the answer.
pub fn stops(suite: &PreparedSuite, chat: bool) -> Vec<String> {
    match (&suite.until, suite.lm_eval, chat) {
        (Some(until), _, _) => until.clone(),
        (None, true, _) => Task::for_style(chat)
            .until()
            .iter()
            .map(|s| s.to_string())
            .collect(),
        (None, false, false) => prompt::COMPLETION_UNTIL.map(String::from).to_vec(),
        (None, false, true) => Vec::new(),
    }
}

/// `text` up to the earliest occurrence of any of `until` (all of it when none occurs), as lm-evaluation-harness
/// cuts a generation at its `until` strings.
pub fn cut_at_stop<'a>(text: &'a str, until: &[String]) -> &'a str {
    let end = until
        .iter()
        .filter_map(|s| text.find(s.as_str()))
        .min()
        .unwrap_or(text.len());
    &text[..end]
}

/// How a suite's answers are judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scoring {
    /// meekbench's extractors, numbers compared as numbers.
    Meek,
    /// An lm-evaluation-harness task's filters and `exact_match`.
    LmEval(Task),
}

/// One answer as generated, before scoring.
#[derive(Debug, Clone, Copy)]
pub struct Outcome<'a> {
    /// The generated text, cut at the first stop string (thinking block included).
    pub output: &'a str,
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Generated tokens (thinking included).
    pub generated_tokens: usize,
    /// Why generation ended (`eos`, `stop_sequence`, `length`, `prompt_too_long`).
    pub stop: &'a str,
    /// Seconds from the prompt to the last token.
    pub seconds: f64,
    /// The thinking block, if one opened.
    pub thinking: Option<ThinkingTrace>,
}

/// Where the answer begins in `text`: after the first closing tag when a thinking block opened (the end of the text
/// when it never closed), at the start otherwise.
fn answer_start(text: &str, thinking: Option<&ThinkingTrace>) -> usize {
    match thinking {
        None => 0,
        Some(_) => text
            .find(THINK_CLOSE)
            .map_or(text.len(), |p| p + THINK_CLOSE.len()),
    }
}

/// The part of `output` the extractors read: after the first closing tag when a thinking block opened (nothing
/// when it never closed), all of it otherwise.
pub fn after_thinking<'a>(output: &'a str, thinking: Option<&ThinkingTrace>) -> &'a str {
    &output[answer_start(output, thinking)..]
}

/// Scores one answer with meekbench's extractors (no thinking block). `output` is the generated text (special
/// tokens removed).
pub fn record(
    item: &Item,
    output: &str,
    prompt_tokens: usize,
    generated_tokens: usize,
    stop: &str,
    seconds: f64,
    keep_output: bool,
) -> ItemRecord {
    let outcome = Outcome {
        output,
        prompt_tokens,
        generated_tokens,
        stop,
        seconds,
        thinking: None,
    };
    score(item, &outcome, Scoring::Meek, keep_output)
}

/// Scores one answer of `outcome` with `scoring`.
pub fn score(
    item: &Item,
    outcome: &Outcome<'_>,
    scoring: Scoring,
    keep_output: bool,
) -> ItemRecord {
    let answer = after_thinking(outcome.output, outcome.thinking.as_ref());
    let (expected, strict, flexible) = match scoring {
        Scoring::Meek => {
            let answer = prompt::answer_part(answer);
            let (s, f) = (extract::strict(answer), extract::flexible(answer));
            (
                item.answer.clone(),
                (
                    extract::matches(s.as_ref(), &item.answer),
                    s.map(|n| n.text),
                ),
                (
                    extract::matches(f.as_ref(), &item.answer),
                    f.map(|n| n.text),
                ),
            )
        }
        Scoring::LmEval(task) => {
            let (s, f) = (
                task.strict(answer, &item.target),
                task.flexible(answer, &item.target),
            );
            let expected = lm_eval::final_answer(&item.target).to_string();
            (expected, (s.correct, s.extracted), (f.correct, f.extracted))
        }
    };
    ItemRecord {
        id: item.id.clone(),
        family: item.family.clone(),
        steps: item.steps,
        expected,
        correct_strict: strict.0,
        correct_flexible: flexible.0,
        extracted_strict: strict.1,
        extracted_flexible: flexible.1,
        prompt_tokens: outcome.prompt_tokens,
        generated_tokens: outcome.generated_tokens,
        stop: outcome.stop.to_string(),
        seconds: outcome.seconds,
        output: keep_output.then(|| outcome.output.to_string()),
        thinking_tokens: outcome.thinking.map(|t| t.tokens),
        thinking_forced: outcome.thinking.is_some_and(|t| t.forced_at.is_some()),
        joules: None,
    }
}

/// Refuses, before anything is measured, suites this model cannot answer as asked: a thinking switch on a model
/// whose chat template has none (or that has no template), a thinking budget on a model without a template.
pub fn check(engine: &Engine, model: &str, suites: &[PreparedSuite]) -> Result<(), BenchError> {
    for s in suites {
        if s.max_thinking_tokens.is_some() && engine.chat_template().is_none() {
            return Err(BenchError::Config(format!(
                "suite `{}` sets max_thinking_tokens, but `{model}` has no chat template: thinking blocks are \
                 followed in chat answers only, so the budget would never apply; measure this model with a suite \
                 without max_thinking_tokens",
                s.name
            )));
        }
        let Some(on) = s.thinking else { continue };
        let switch = engine
            .chat_template()
            .is_some_and(|t| t.has_thinking_switch());
        if !switch {
            return Err(BenchError::Config(format!(
                "suite `{}` sets thinking = \"{}\", but {} of `{model}` has no `enable_thinking` switch to pass it \
                 to; set thinking = \"default\" for this model, or measure it with a suite without `thinking`",
                s.name,
                if on { "on" } else { "off" },
                if engine.chat_template().is_some() {
                    "the chat template"
                } else {
                    "the model has no chat template, so the file"
                },
            )));
        }
    }
    Ok(())
}

/// Token ids of `text` without the BOS the tokenizer may put first.
fn encode_bare(engine: &Engine, text: &str) -> Result<Vec<u32>, BenchError> {
    let tok = engine.tokenizer();
    let mut ids = tok.encode(text).map_err(BenchError::Measurement)?;
    if tok.adds_bos() && ids.first().copied() == tok.bos() {
        ids.remove(0);
    }
    Ok(ids)
}

/// The prompt text of `p` for this model.
fn render(
    engine: &Engine,
    suite: &PreparedSuite,
    p: &crate::eval::PreparedItem,
) -> Result<String, BenchError> {
    Ok(match engine.chat_template() {
        Some(t) => {
            let turns = if suite.lm_eval {
                lm_eval::chat(&p.item)
            } else {
                prompt::chat(&p.item, &p.exemplars)
            };
            let turns: Vec<Message> = turns
                .iter()
                .map(|(role, content)| Message::new(role, content))
                .collect();
            t.render_thinking(&turns, true, suite.thinking)
                .map_err(BenchError::Measurement)?
        }
        None if suite.lm_eval => lm_eval::completion(&p.item, &p.exemplars),
        None => prompt::completion(&p.item, &p.exemplars),
    })
}

/// Answers every item of `suite` with `engine` (greedy, stopping at end-of-sequence, a stop string or the
/// budget), with an energy window around each answer, asking `stop` before each item: once it says yes, the
/// result holds the items answered so far.
pub fn evaluate(
    engine: &mut Engine,
    suite: &PreparedSuite,
    keep_outputs: bool,
    bar: &ProgressBar,
    meter: &Meter,
    energy: &mut RunEnergyBuilder<'_>,
    stop: &dyn Fn() -> bool,
) -> Result<SuiteResult, BenchError> {
    let chat = engine.chat_template().is_some();
    let style = if chat { "chat" } else { "completion" };
    let until = stops(suite, chat);
    let scoring = if suite.lm_eval {
        Scoring::LmEval(Task::for_style(chat))
    } else {
        Scoring::Meek
    };
    let force = encode_bare(engine, THINK_FORCE)?;
    let mut records = Vec::with_capacity(suite.items.len());
    let mut windows: Vec<Option<Window>> = Vec::with_capacity(suite.items.len());
    let mut rates = Vec::new();
    for p in &suite.items {
        if stop() {
            break;
        }
        bar.set_message(format!("{} {}", suite.name, p.item.id));
        let text = render(engine, suite, p)?;
        let ids = engine
            .tokenizer()
            .encode(&text)
            .map_err(BenchError::Measurement)?;
        let room = engine.max_positions().saturating_sub(ids.len());
        // With a thinking budget the context holds the thought, the forced close and the answer; both budgets
        // shrink to what fits, as the answer's alone does without one.
        let think_budget = suite
            .max_thinking_tokens
            .map(|b| b.min(room.saturating_sub(force.len() + 1)));
        let budget = suite
            .max_new_tokens
            .min(room.saturating_sub(think_budget.map_or(0, |b| b + force.len())));
        if budget == 0 || think_budget == Some(0) {
            // Recorded as wrong, never dropped.
            records.push(record(
                &p.item,
                "",
                ids.len(),
                0,
                "prompt_too_long",
                0.0,
                keep_outputs,
            ));
            windows.push(None);
            bar.inc(1);
            continue;
        }
        let thinking = Thinking {
            open_in_prompt: text.trim_end().ends_with(THINK_OPEN),
            open: THINK_OPEN,
            close: THINK_CLOSE,
            budget: think_budget,
            force: &force,
        };
        let start = meter.mark();
        let g = engine.generate_thinking(
            &ids,
            GenOptions {
                max_new_tokens: budget,
                stop_at_eos: true,
            },
            &until,
            chat.then_some(thinking),
            &mut (),
        )?;
        let end = meter.mark();
        windows.push(Some(meter.window(&start, &end)));
        let seconds =
            (*g.token_times.last().expect("one token at least") - g.started).as_secs_f64();
        if g.tokens.len() >= 2 {
            rates.push((g.tokens.len() - 1) as f64 / g.decode_time().as_secs_f64());
        }
        // The text as the model saw it: a forced close sits where it was fed.
        let mut shown = g.tokens.clone();
        if let Some(at) = g.thinking.and_then(|t| t.forced_at) {
            shown.splice(at..at, force.iter().copied());
        }
        let decoded = engine
            .tokenizer()
            .decode(&shown, true)
            .map_err(BenchError::Measurement)?;
        // Every generated token is spent (counted, timed, metered); the answer is the text before the first stop
        // after the thinking block.
        let output = cut_after_thinking(&decoded, &until, g.thinking.as_ref());
        let stop = match g.stop {
            StopReason::Eos => "eos",
            StopReason::Length => "length",
            StopReason::StopSequence(_) => "stop_sequence",
        };
        let outcome = Outcome {
            output,
            prompt_tokens: ids.len(),
            generated_tokens: g.tokens.len(),
            stop,
            seconds,
            thinking: g.thinking,
        };
        records.push(score(&p.item, &outcome, scoring, keep_outputs));
        bar.inc(1);
    }
    for (r, w) in records.iter_mut().zip(&windows) {
        r.joules = w.as_ref().and_then(|w| w.joules);
    }
    let items: Vec<(Option<Window>, bool)> = windows
        .into_iter()
        .zip(&records)
        .map(|(w, r)| (w, r.correct_flexible))
        .collect();
    let suite_energy = energy.suite(&items);
    let mut result = summarise(suite, style, records, rates);
    if let Scoring::LmEval(task) = scoring {
        result.task = Some(task.name().to_string());
        // The chat task's exemplars are its own eight, whatever `shots` drew for completion prompts.
        if task == Task::Gsm8kCotLlama {
            result.shots = task.shots();
        }
    }
    result.until = until;
    result.energy = Some(suite_energy);
    Ok(result)
}

/// `decoded` cut at the first stop string found after the thinking block (a thought may mention a stop string).
fn cut_after_thinking<'a>(
    decoded: &'a str,
    until: &[String],
    thinking: Option<&ThinkingTrace>,
) -> &'a str {
    let from = answer_start(decoded, thinking);
    let cut = cut_at_stop(&decoded[from..], until);
    &decoded[..from + cut.len()]
}

#[cfg(test)]
mod tests;
