//! Accuracy suites on a loaded model: items prepared by the parent (so a bad suite file fails before anything
//! loads), answered greedily by the child on the same engine that gave the speed figures, scored by both
//! extractors.

use std::collections::BTreeMap;

use meek_config::{Container, PromptKind, Source, SuiteKind, SuiteSpec};
use meek_eval::{Item, generate, jsonl, lm_eval, parquet};
use meek_schema::{GroupScore, ItemRecord, Score, StepModel, SuiteResult, Summary};
use serde::{Deserialize, Serialize};

use crate::BenchError;
pub use crate::answer::{cut_at_stop, evaluate, record, stops};

/// A suite ready to run: every item with its exemplars.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreparedSuite {
    /// Suite name.
    pub name: String,
    /// Exemplars per item.
    pub shots: usize,
    /// Token budget per answer.
    pub max_new_tokens: usize,
    /// The suite's stop strings; `None`: the prompt style's own ([`stops`]).
    #[serde(default)]
    pub until: Option<Vec<String>>,
    /// Prompts and scoring of lm-evaluation-harness's GSM8K tasks ([`lm_eval::Task`]) instead of meekbench's.
    #[serde(default)]
    pub lm_eval: bool,
    /// The chat template's `enable_thinking`, when the suite sets it.
    #[serde(default)]
    pub thinking: Option<bool>,
    /// Cap on a thinking block (budget forcing); `None`: none.
    #[serde(default)]
    pub max_thinking_tokens: Option<usize>,
    /// One budget of a suite that sweeps its budgets (the result entry says which).
    #[serde(default)]
    pub sweep: bool,
    /// The items.
    pub items: Vec<PreparedItem>,
}

/// An item and the exemplars shown before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreparedItem {
    /// The question.
    pub item: Item,
    /// Worked examples from a separate split.
    pub exemplars: Vec<Item>,
}

/// Builds every configured suite, one prepared suite per budget; errors name the suite and, for files, the file
/// and line.
pub fn prepare(
    suites: &[SuiteSpec],
    origin: &str,
    fetcher: &meek_hub::Fetcher,
) -> Result<Vec<PreparedSuite>, BenchError> {
    let mut out = Vec::new();
    for (i, s) in suites.iter().enumerate() {
        let bad = |m: String| {
            BenchError::Config(format!("{origin}: suite `{}` (suites[{i}]): {m}", s.name))
        };
        let items = match &s.kind {
            SuiteKind::Generated {
                families,
                steps,
                items_per_level,
                seed,
            } => {
                let mut items = Vec::new();
                for f in families {
                    for &p in steps {
                        let test = generate::items(f, p, *items_per_level, *seed, 0)
                            .map_err(|e| bad(e.to_string()))?;
                        let shots = generate::items(f, p, s.shots, *seed, 1)
                            .map_err(|e| bad(e.to_string()))?;
                        items.extend(test.into_iter().map(|item| PreparedItem {
                            item,
                            exemplars: shots.clone(),
                        }));
                    }
                }
                items
            }
            SuiteKind::File {
                container,
                format,
                source,
                exemplars,
                limit,
            } => {
                let fmt = if format == "gsm8k" {
                    jsonl::Format::Gsm8k
                } else {
                    jsonl::Format::Plain
                };
                let load = |src: &Source, limit: Option<usize>| -> Result<Vec<Item>, BenchError> {
                    let path = match src {
                        Source::Path(p) => p.clone(),
                        Source::Hub {
                            repo,
                            revision,
                            file,
                        } => fetcher
                            .fetch_dataset_file(repo, revision, file.as_deref().unwrap_or_default())
                            .map_err(bad)?,
                        Source::Pypi { .. } | Source::PypiParts(_) => {
                            return Err(bad("a suite cannot come from PyPI".into()));
                        }
                    };
                    let read = match container {
                        Container::Jsonl => jsonl::load,
                        Container::Parquet => parquet::load,
                    };
                    read(&path, fmt, limit).map_err(|e| bad(e.to_string()))
                };
                let items = load(source, *limit)?;
                // lm-eval draws each question's exemplars from the whole training split; meekbench shows the
                // first `shots` to every question.
                let lm_eval = s.prompt == PromptKind::LmEval;
                let shots = match exemplars {
                    Some(e) if s.shots > 0 => load(e, (!lm_eval).then_some(s.shots))?,
                    _ => Vec::new(),
                };
                if shots.len() < s.shots {
                    return Err(bad(format!(
                        "shots = {} but the exemplar file has {} items",
                        s.shots,
                        shots.len()
                    )));
                }
                if lm_eval {
                    let draws = lm_eval::draw_exemplars(items.len(), shots.len(), s.shots);
                    items
                        .into_iter()
                        .zip(draws)
                        .map(|(item, draw)| PreparedItem {
                            item,
                            exemplars: draw.into_iter().map(|i| shots[i].clone()).collect(),
                        })
                        .collect()
                } else {
                    items
                        .into_iter()
                        .map(|item| PreparedItem {
                            item,
                            exemplars: shots.clone(),
                        })
                        .collect()
                }
            }
        };
        for b in &s.budgets {
            out.push(PreparedSuite {
                name: s.name.clone(),
                shots: s.shots,
                max_new_tokens: b.max_new_tokens,
                until: s.until.clone(),
                lm_eval: s.prompt == PromptKind::LmEval,
                thinking: s.thinking.switch(),
                max_thinking_tokens: b.max_thinking_tokens,
                sweep: s.budgets.len() > 1,
                items: items.clone(),
            });
        }
    }
    Ok(out)
}

fn group<K: Ord + ToString>(
    items: &[ItemRecord],
    key: impl Fn(&ItemRecord) -> K,
) -> Vec<GroupScore> {
    let mut groups: BTreeMap<K, (usize, usize, usize)> = BTreeMap::new();
    for r in items {
        let g = groups.entry(key(r)).or_default();
        g.0 += usize::from(r.correct_strict);
        g.1 += usize::from(r.correct_flexible);
        g.2 += 1;
    }
    groups
        .into_iter()
        .map(|(k, (s, f, n))| GroupScore {
            key: k.to_string(),
            strict: Score::new(s, n),
            flexible: Score::new(f, n),
        })
        .collect()
}

/// Summarises the records of a suite.
pub fn summarise(
    suite: &PreparedSuite,
    style: &str,
    items: Vec<ItemRecord>,
    decode_rates: Vec<f64>,
) -> SuiteResult {
    let n = items.len();
    let strict = items.iter().filter(|r| r.correct_strict).count();
    let flexible = items.iter().filter(|r| r.correct_flexible).count();
    let total_seconds: f64 = items.iter().map(|r| r.seconds).sum();
    let mean = |v: f64| if n == 0 { 0.0 } else { v / n as f64 };
    SuiteResult {
        suite: suite.name.clone(),
        prompt_style: style.to_string(),
        shots: suite.shots,
        max_new_tokens: suite.max_new_tokens,
        max_thinking_tokens: suite.max_thinking_tokens,
        sweep: suite.sweep,
        strict: Score::new(strict, n),
        flexible: Score::new(flexible, n),
        by_family: group(&items, |r| r.family.clone()),
        by_steps: group(&items, |r| r.steps),
        step_model: StepModel::from_outcomes(items.iter().map(|r| (r.steps, r.correct_flexible))),
        mean_generated_tokens: mean(items.iter().map(|r| r.generated_tokens as f64).sum()),
        seconds_per_answer: mean(total_seconds),
        seconds_per_correct: (flexible > 0).then(|| total_seconds / flexible as f64),
        decode_tokens_per_second: meek_stats::Sample::new(decode_rates)
            .ok()
            .map(|s| Summary::from(&s)),
        task: None,
        thinking: suite
            .thinking
            .map(|on| if on { "on" } else { "off" }.to_string()),
        mean_thinking_tokens: items.iter().any(|r| r.thinking_tokens.is_some()).then(|| {
            mean(
                items
                    .iter()
                    .filter_map(|r| r.thinking_tokens)
                    .sum::<usize>() as f64,
            )
        }),
        thinking_forced: Some(items.iter().filter(|r| r.thinking_forced).count())
            .filter(|&n| n > 0),
        items,
        until: Vec::new(),
        energy: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_cut_at_the_earliest_stop_and_base_models_get_the_format_stops() {
        let until = vec!["Question:".to_string(), "\n\n".to_string()];
        assert_eq!(
            cut_at_stop(" 7.\nAnswer: 7\n\nQuestion: 1+1?", &until),
            " 7.\nAnswer: 7"
        );
        assert_eq!(cut_at_stop("no stop here", &until), "no stop here");
        assert_eq!(cut_at_stop("Question: at once", &until), "");
        let mut s = suite();
        assert_eq!(stops(&s, true), Vec::<String>::new());
        assert_eq!(stops(&s, false), ["\n\nQuestion:", "Question:"]);
        s.lm_eval = true;
        assert_eq!(stops(&s, false), ["Question:", "</s>", "<|im_end|>"]);
        assert_eq!(stops(&s, true)[2], "Q:");
        s.until = Some(vec!["</s>".into()]);
        assert_eq!(stops(&s, true), ["</s>"]);
        assert_eq!(stops(&s, false), ["</s>"]);
    }

    fn suite() -> PreparedSuite {
        let items = generate::FAMILIES
            .iter()
            .flat_map(|f| generate::items(f, 2, 5, 3, 0).unwrap())
            .map(|item| PreparedItem {
                item,
                exemplars: vec![],
            })
            .collect();
        PreparedSuite {
            name: "t".into(),
            shots: 0,
            max_new_tokens: 16,
            until: None,
            lm_eval: false,
            thinking: None,
            max_thinking_tokens: None,
            sweep: false,
            items,
        }
    }

    #[test]
    fn an_oracle_scores_everything_and_a_mute_model_nothing() {
        let s = suite();
        let oracle: Vec<ItemRecord> = s
            .items
            .iter()
            .map(|p| record(&p.item, &p.item.solution, 10, 5, "eos", 0.5, true))
            .collect();
        let r = summarise(&s, "chat", oracle, vec![10.0, 12.0]);
        assert_eq!(
            (r.strict.correct, r.flexible.correct, r.strict.n),
            (20, 20, 20)
        );
        assert_eq!(r.strict.accuracy, 1.0);
        assert!(r.strict.ci95[0] > 0.8 && r.strict.ci95[1] == 1.0);
        assert_eq!(r.by_family.len(), 4);
        assert!(r.by_family.iter().all(|g| g.flexible.correct == 5));
        assert_eq!(r.by_steps[0].key, "2");
        // One step count: no p-step model.
        assert_eq!(r.step_model, None);
        assert_eq!(r.seconds_per_correct, Some(0.5));
        assert_eq!(r.decode_tokens_per_second.unwrap().median, 11.0);

        let mute: Vec<ItemRecord> = s
            .items
            .iter()
            .map(|p| record(&p.item, "", 10, 1, "length", 0.1, false))
            .collect();
        let r = summarise(&s, "chat", mute, vec![]);
        assert_eq!((r.strict.correct, r.flexible.correct), (0, 0));
        assert_eq!(r.seconds_per_correct, None);
        assert!(
            r.items
                .iter()
                .all(|i| i.output.is_none() && i.extracted_flexible.is_none())
        );
    }

    #[test]
    fn strict_and_flexible_disagree_where_they_should() {
        let item = &suite().items[0].item;
        let r = record(
            item,
            &format!("I think it is {}.", item.answer),
            1,
            1,
            "eos",
            0.0,
            false,
        );
        assert!(!r.correct_strict && r.correct_flexible);
        // Completion-style outputs are cut where the model starts the next question.
        let r = record(
            item,
            &format!("x\nAnswer: {}\n\nQuestion: 1+1?\nSolution: 2", item.answer),
            1,
            1,
            "length",
            0.0,
            false,
        );
        assert!(r.correct_strict && r.correct_flexible);
    }
}
