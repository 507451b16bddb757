//! lm-evaluation-harness's GSM8K tasks, reproduced: the prompts, the exemplars, the stop strings and the scoring of
//! `gsm8k` (base models, completion prompts) and `gsm8k_cot_llama` (chat models), as lm-eval's task files define
//! them (`lm_eval/tasks/gsm8k/gsm8k.yaml` and `gsm8k-cot-llama.yaml`, task versions 3.0 and 4.0).
//!
//! Why reproduce rather than approximate: a GSM8K score is only comparable with the figures model cards and
//! leaderboards publish if the model saw the same prompt and the answer was judged by the same rule. So:
//! - `gsm8k`: each question gets 5 exemplars drawn from the training split with `random.Random(1234).sample`, one
//!   draw per question in order ([`crate::pyrandom`]), laid out `Question: q\nAnswer: a\n\n` with the training
//!   answer verbatim (calculator annotations and `#### N` included), ending `Question: q\nAnswer:`.
//! - `gsm8k_cot_llama`: the 8 fixed chain-of-thought exemplars as chat turns (`fewshot_as_multiturn`, lm-eval's
//!   default with a chat template), each question in its instruction.
//! - Scoring: lm-eval's `regex` filter (Python `re.findall`, `group_select`, the first non-empty group, `strip`,
//!   `[invalid]` when nothing matches) then `exact_match` with `regexes_to_ignore` (`,`, `\$`, `(?s).*#### `,
//!   `\.$`) and `ignore_case`: a string comparison, so `72.0` is not `72` here as it is not in lm-eval.
//!   meekbench's own extractors ([`crate::extract`]) compare numbers; the two are never mixed in one suite.
//!
//! `scripts/lm-eval-fixture.py` scores a fixture of outputs with lm-eval's own filter and metric code; the tests
//! compare the verdicts here with it item by item.

use std::sync::LazyLock;

use regex::Regex;

use crate::Item;
use crate::pyrandom::PyRandom;

/// An lm-evaluation-harness task this crate reproduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// `gsm8k`: 5-shot completion prompts for base models.
    Gsm8k,
    /// `gsm8k_cot_llama`: 8-shot chain-of-thought chat turns for instruct models.
    Gsm8kCotLlama,
}

/// lm-eval's few-shot seed (`fewshot_random_seed`, default 1234).
pub const FEWSHOT_SEED: u64 = 1234;

/// `gsm8k`'s `num_fewshot`.
pub const GSM8K_SHOTS: usize = 5;

/// What a response's extractor found and whether it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The filtered response (`None`: lm-eval's `[invalid]`, nothing matched).
    pub extracted: Option<String>,
    /// `exact_match` of the filtered response against the reference.
    pub correct: bool,
}

impl Task {
    /// lm-eval's task name.
    pub fn name(self) -> &'static str {
        match self {
            Task::Gsm8k => "gsm8k",
            Task::Gsm8kCotLlama => "gsm8k_cot_llama",
        }
    }

    /// The task for a model with (`chat`) or without a chat template.
    pub fn for_style(chat: bool) -> Self {
        if chat {
            Task::Gsm8kCotLlama
        } else {
            Task::Gsm8k
        }
    }

    /// `generation_kwargs.until`.
    pub fn until(self) -> &'static [&'static str] {
        match self {
            Task::Gsm8k => &["Question:", "</s>", "<|im_end|>"],
            Task::Gsm8kCotLlama => &[
                "<|eot_id|>",
                "<|start_header_id|>user<|end_header_id|>",
                "Q:",
                "</s>",
                "<|im_end|>",
            ],
        }
    }

    /// Exemplars before each question.
    pub fn shots(self) -> usize {
        match self {
            Task::Gsm8k => GSM8K_SHOTS,
            Task::Gsm8kCotLlama => COT_EXEMPLARS.len(),
        }
    }

    /// The `strict-match` verdict on `response` for an item whose reference is `target`.
    pub fn strict(self, response: &str, target: &str) -> Verdict {
        let filter = match self {
            Task::Gsm8k => &*STRICT_GSM8K,
            Task::Gsm8kCotLlama => &*STRICT_COT,
        };
        verdict(filter.apply(response), &self.reference(target))
    }

    /// The `flexible-extract` verdict (the same filter in both tasks).
    pub fn flexible(self, response: &str, target: &str) -> Verdict {
        verdict(FLEXIBLE.apply(response), &self.reference(target))
    }

    /// `doc_to_target` of a GSM8K answer: the whole answer for `gsm8k` (the metric's ignore list removes all but
    /// the final number), the text after the last `####` for `gsm8k_cot_llama`.
    fn reference(self, target: &str) -> String {
        match self {
            Task::Gsm8k => target.to_string(),
            Task::Gsm8kCotLlama => final_answer(target).to_string(),
        }
    }
}

/// The final answer of a GSM8K target, the text after its last `####` (`answer.split('####')[-1].strip()`): the
/// reference both tasks' `exact_match` reduces the target to.
pub fn final_answer(target: &str) -> &str {
    target.rsplit("####").next().unwrap_or_default().trim()
}

fn verdict(extracted: Option<String>, reference: &str) -> Verdict {
    let correct = extracted
        .as_deref()
        .is_some_and(|e| exact_match(e, reference));
    Verdict { extracted, correct }
}

/// lm-eval's `regex` filter followed by `take_first`, on one response.
#[derive(Debug)]
pub struct RegexFilter {
    regex: Regex,
    group_select: isize,
}

impl RegexFilter {
    fn new(pattern: &str, group_select: isize) -> Self {
        Self {
            regex: Regex::new(pattern).expect("lm-eval's patterns compile"),
            group_select,
        }
    }

    /// Python's `re.findall(pattern, response)[group_select]`: with one group the group, with several the first
    /// non-empty one, stripped; `None` (`[invalid]`) when there is no match or the selected one is all empty.
    pub fn apply(&self, response: &str) -> Option<String> {
        let matches: Vec<regex::Captures<'_>> = self.regex.captures_iter(response).collect();
        let n = matches.len() as isize;
        let at = if self.group_select < 0 {
            n + self.group_select
        } else {
            self.group_select
        };
        if n == 0 || !(0..n).contains(&at) {
            return None;
        }
        let caps = &matches[at as usize];
        let groups = self.regex.captures_len() - 1;
        let text = match groups {
            0 => caps.get(0).map_or("", |m| m.as_str()),
            // findall gives the group itself, empty when it did not take part.
            1 => caps.get(1).map_or("", |m| m.as_str()),
            _ => match (1..=groups).find_map(|g| caps.get(g).filter(|m| !m.as_str().is_empty())) {
                Some(m) => m.as_str(),
                None => return None,
            },
        };
        // A single group that matched empty is kept as "" by lm-eval; "" never equals a reference.
        Some(py_strip(text).to_string())
    }
}

static STRICT_GSM8K: LazyLock<RegexFilter> =
    LazyLock::new(|| RegexFilter::new(r"#### (\-?[0-9\.\,]+)", 0));
static STRICT_COT: LazyLock<RegexFilter> =
    LazyLock::new(|| RegexFilter::new(r"The final answer is ((-?[$0-9.,]{2,})|(-?[0-9]+))", -1));
static FLEXIBLE: LazyLock<RegexFilter> =
    LazyLock::new(|| RegexFilter::new(r"(-?[$0-9.,]{2,})|(-?[0-9]+)", -1));

/// Python's `str.strip()`: Unicode white space at both ends.
fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c))
}

/// `exact_match` with GSM8K's settings: `regexes_to_ignore` applied in order to both sides (`,` and `$` removed,
/// everything up to the last `#### ` removed, a final `.` removed, as Python's `$` also matches before a final
/// newline), lower case, then equal strings (NumPy's comparison ignores trailing NUL characters).
pub fn exact_match(prediction: &str, reference: &str) -> bool {
    fn normal(s: &str) -> String {
        let s: String = s.chars().filter(|&c| c != ',' && c != '$').collect();
        // `(?s).*#### `: greedy, so up to the last occurrence.
        let s = match s.rfind("#### ") {
            Some(p) => s[p + 5..].to_string(),
            None => s,
        };
        let s = if let Some(stem) = s.strip_suffix(".\n") {
            format!("{stem}\n")
        } else if let Some(stem) = s.strip_suffix('.') {
            stem.to_string()
        } else {
            s
        };
        s.to_lowercase().trim_end_matches('\0').to_string()
    }
    normal(prediction) == normal(reference)
}

/// `gsm8k`'s prompt: the exemplars `Question: q\nAnswer: a\n\n` with their answers verbatim, then the question.
pub fn completion(item: &Item, exemplars: &[Item]) -> String {
    let mut s = String::new();
    for e in exemplars {
        s.push_str(&format!(
            "Question: {}\nAnswer: {}\n\n",
            e.question, e.target
        ));
    }
    s.push_str(&format!("Question: {}\nAnswer:", item.question));
    s
}

/// `gsm8k_cot_llama`'s conversation: each exemplar a user turn and the assistant's answer, then the question.
pub fn chat(item: &Item) -> Vec<(String, String)> {
    let mut turns = Vec::with_capacity(2 * COT_EXEMPLARS.len() + 1);
    for (q, a) in COT_EXEMPLARS {
        turns.push(("user".to_string(), cot_text(q)));
        turns.push(("assistant".to_string(), a.to_string()));
    }
    turns.push(("user".to_string(), cot_text(&item.question)));
    turns
}

fn cot_text(question: &str) -> String {
    format!(
        "Given the following problem, reason and give a final answer to the problem.\nProblem: {question}\nYour \
         response should end with \"The final answer is [answer]\" where [answer] is the response to the problem.\n"
    )
}

/// The exemplars of each of `items` questions as lm-eval draws them for `gsm8k`: `shots` indices into `pool` (the
/// training split in file order) per question, from one `random.Random(FEWSHOT_SEED)`, question by question.
pub fn draw_exemplars(items: usize, pool: usize, shots: usize) -> Vec<Vec<usize>> {
    let mut rng = PyRandom::new(FEWSHOT_SEED);
    (0..items).map(|_| rng.sample(pool, shots)).collect()
}

/// `gsm8k_cot_llama`'s `fewshot_config.samples` (question, target), in order (Wei et al. 2022's exemplars).
pub const COT_EXEMPLARS: [(&str, &str); 8] = [
    (
        "There are 15 trees in the grove. Grove workers will plant trees in the grove today. After they are done, there will be 21 trees. How many trees did the grove workers plant today?",
        "There are 15 trees originally. Then there were 21 trees after some more were planted. So there must have been 21 - 15 = 6. The final answer is 6",
    ),
    (
        "If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the parking lot?",
        "There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5. The final answer is 5",
    ),
    (
        "Leah had 32 chocolates and her sister had 42. If they ate 35, how many pieces do they have left in total?",
        "Originally, Leah had 32 chocolates. Her sister had 42. So in total they had 32 + 42 = 74. After eating 35, they had 74 - 35 = 39. The final answer is 39",
    ),
    (
        "Jason had 20 lollipops. He gave Denny some lollipops. Now Jason has 12 lollipops. How many lollipops did Jason give to Denny?",
        "Jason started with 20 lollipops. Then he had 12 after giving some to Denny. So he gave Denny 20 - 12 = 8. The final answer is 8",
    ),
    (
        "Shawn has five toys. For Christmas, he got two toys each from his mom and dad. How many toys does he have now?",
        "Shawn started with 5 toys. If he got 2 toys each from his mom and dad, then that is 4 more toys. 5 + 4 = 9. The final answer is 9",
    ),
    (
        "There were nine computers in the server room. Five more computers were installed each day, from monday to thursday. How many computers are now in the server room?",
        "There were originally 9 computers. For each of 4 days, 5 more computers were added. So 5 * 4 = 20 computers were added. 9 + 20 is 29. The final answer is 29",
    ),
    (
        "Michael had 58 golf balls. On tuesday, he lost 23 golf balls. On wednesday, he lost 2 more. How many golf balls did he have at the end of wednesday?",
        "Michael started with 58 golf balls. After losing 23 on tuesday, he had 58 - 23 = 35. After losing 2 more, he had 35 - 2 = 33 golf balls. The final answer is 33",
    ),
    (
        "Olivia has $23. She bought five bagels for $3 each. How much money does she have left?",
        "Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. So she has 23 - 15 dollars left. 23 - 15 is 8. The final answer is 8",
    ),
];

#[cfg(test)]
mod tests;
