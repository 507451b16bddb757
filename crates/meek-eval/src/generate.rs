//! Generated suites: reproducible from a seed, exact answers, a stated number of dependent steps.
//!
//! Families (each item needs `p` dependent operations, `p >= 1`):
//! - `arithmetic`: a bare expression of one-digit numbers evaluated left to right, `3 + 4 - 2` (the meek end:
//!   a 135M model should score above zero at `p = 1`);
//! - `word`: a word problem whose quantity changes `p` times (gets, gives away, doubles);
//! - `comparison`: the largest of `p + 1` two-digit numbers;
//! - `sequence`: an arithmetic sequence continued `p` places past its last shown term.

use crate::Item;

/// The families this module generates.
pub const FAMILIES: &[&str] = &["arithmetic", "word", "comparison", "sequence"];

/// The suites' deterministic generator: [`meek_stats::SplitMix64`] with the draws the generated items were
/// defined with (plain modulo, kept so that a seed gives the same items as before).
#[derive(Debug, Clone)]
pub struct Rng(meek_stats::SplitMix64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Self {
        Self(meek_stats::SplitMix64::new(seed))
    }

    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }

    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[(self.next() % v.len() as u64) as usize]
    }
}

/// Why a generated suite cannot be built.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GenerateError {
    /// A family name this module does not know.
    #[error("unknown family `{0}`; generated families are: {list}", list = FAMILIES.join(", "))]
    UnknownFamily(String),
    /// A step count of 0 or above 12.
    #[error("steps = {0} is out of range; use 1 to 12")]
    BadSteps(u32),
}

/// `count` items of `family` with `steps` dependent steps. The same arguments always give the same items;
/// `split` separates test items (0) from exemplars (1) so exemplars are never test questions.
pub fn items(
    family: &str,
    steps: u32,
    count: usize,
    seed: u64,
    split: u64,
) -> Result<Vec<Item>, GenerateError> {
    if !(1..=12).contains(&steps) {
        return Err(GenerateError::BadSteps(steps));
    }
    let fam = FAMILIES
        .iter()
        .position(|f| *f == family)
        .ok_or_else(|| GenerateError::UnknownFamily(family.to_string()))?;
    let mut rng = Rng::new(seed ^ (fam as u64) << 40 ^ u64::from(steps) << 32 ^ split << 60);
    let mut out: Vec<Item> = Vec::with_capacity(count);
    let mut guard = 0;
    while out.len() < count {
        let (question, solution, answer) = match family {
            "arithmetic" => arithmetic(&mut rng, steps),
            "word" => word(&mut rng, steps),
            "comparison" => comparison(&mut rng, steps),
            _ => sequence(&mut rng, steps),
        };
        guard += 1;
        // Distinct questions within a suite (small families can repeat themselves).
        if out.iter().any(|i| i.question == question) && guard < count * 50 {
            continue;
        }
        let prefix = if split == 0 { "" } else { "shot-" };
        out.push(Item {
            id: format!("{prefix}{family}-p{steps}-{:03}", out.len()),
            family: family.to_string(),
            steps,
            question,
            answer: answer.to_string(),
            target: answer.to_string(),
            solution,
        });
    }
    Ok(out)
}

fn arithmetic(rng: &mut Rng, steps: u32) -> (String, String, i64) {
    let mut v = rng.range(1, 9);
    let mut expr = v.to_string();
    let mut work = Vec::new();
    for _ in 0..steps {
        let b = rng.range(1, 9);
        let add = v < b || rng.range(0, 1) == 0;
        let next = if add { v + b } else { v - b };
        let op = if add { '+' } else { '-' };
        expr.push_str(&format!(" {op} {b}"));
        work.push(format!("{v} {op} {b} = {next}."));
        v = next;
    }
    (
        format!("What is {expr}?"),
        format!("{}\nAnswer: {v}", work.join(" ")),
        v,
    )
}

const NAMES: &[(&str, &str)] = &[
    ("Anna", "She"),
    ("Ben", "He"),
    ("Chloe", "She"),
    ("David", "He"),
    ("Emma", "She"),
    ("Farid", "He"),
    ("Grace", "She"),
    ("Hiro", "He"),
];
const THINGS: &[&str] = &[
    "apples", "marbles", "stickers", "books", "coins", "pencils", "cards", "shells",
];

fn word(rng: &mut Rng, steps: u32) -> (String, String, i64) {
    let &(name, pron) = rng.pick(NAMES);
    let thing = *rng.pick(THINGS);
    let mut v = rng.range(2, 20);
    let mut text = format!("{name} has {v} {thing}.");
    let mut work = Vec::new();
    for _ in 0..steps {
        let kind = rng.range(0, 2);
        if kind == 2 && v <= 40 {
            let next = v * 2;
            text.push_str(&format!(" {pron} doubles the number of {thing}."));
            work.push(format!("{v} x 2 = {next}."));
            v = next;
        } else if kind == 1 && v > 2 {
            let b = rng.range(1, v - 1);
            text.push_str(&format!(" {pron} gives away {b}."));
            work.push(format!("{v} - {b} = {}.", v - b));
            v -= b;
        } else {
            let b = rng.range(2, 20);
            text.push_str(&format!(" {pron} gets {b} more."));
            work.push(format!("{v} + {b} = {}.", v + b));
            v += b;
        }
    }
    text.push_str(&format!(" How many {thing} does {name} have now?"));
    (text, format!("{}\nAnswer: {v}", work.join(" ")), v)
}

fn comparison(rng: &mut Rng, steps: u32) -> (String, String, i64) {
    let mut nums: Vec<i64> = Vec::new();
    while nums.len() < steps as usize + 1 {
        let n = rng.range(10, 99);
        if !nums.contains(&n) {
            nums.push(n);
        }
    }
    let list = nums
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let mut best = nums[0];
    let mut work = Vec::new();
    for &n in &nums[1..] {
        let next = best.max(n);
        work.push(format!("The larger of {best} and {n} is {next}."));
        best = next;
    }
    (
        format!("Which is the largest of these numbers: {list}?"),
        format!("{}\nAnswer: {best}", work.join(" ")),
        best,
    )
}

fn sequence(rng: &mut Rng, steps: u32) -> (String, String, i64) {
    let a = rng.range(1, 20);
    let d = rng.range(2, 9);
    let shown: Vec<i64> = (0..4).map(|i| a + i * d).collect();
    let last = shown[3];
    let list = shown
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let mut v = last;
    let mut work = vec![format!("The numbers go up by {d}.")];
    for _ in 0..steps {
        work.push(format!("{v} + {d} = {}.", v + d));
        v += d;
    }
    let question = if steps == 1 {
        format!("What number comes next in the sequence {list}?")
    } else {
        format!("In the sequence {list}, what number comes {steps} places after {last}?")
    };
    (question, format!("{}\nAnswer: {v}", work.join(" ")), v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::numbers;

    /// Recomputes an item's answer from its question text alone.
    fn solve(item: &Item) -> i64 {
        let n: Vec<i64> = numbers(&item.question)
            .iter()
            .map(|n| n.value as i64)
            .collect();
        match item.family.as_str() {
            "arithmetic" => {
                let q = item
                    .question
                    .trim_start_matches("What is ")
                    .trim_end_matches('?');
                let tokens: Vec<&str> = q.split(' ').collect();
                let mut v: i64 = tokens[0].parse().unwrap();
                for pair in tokens[1..].chunks(2) {
                    let b: i64 = pair[1].parse().unwrap();
                    v = if pair[0] == "+" { v + b } else { v - b };
                }
                v
            }
            "word" => {
                let mut v = n[0];
                for sentence in item.question.split(". ").skip(1) {
                    let k = numbers(sentence).first().map(|x| x.value as i64);
                    if sentence.contains("gets") {
                        v += k.unwrap();
                    } else if sentence.contains("gives away") {
                        v -= k.unwrap();
                    } else if sentence.contains("doubles") {
                        v *= 2;
                    }
                }
                v
            }
            "comparison" => *n.iter().max().unwrap(),
            _ => {
                let d = n[1] - n[0];
                let places = if n.len() > 4 { n[4] } else { 1 };
                n[3] + places * d
            }
        }
    }

    #[test]
    fn answers_are_right_by_independent_computation() {
        for family in FAMILIES {
            for steps in [1, 2, 3, 5, 8] {
                for item in items(family, steps, 20, 7, 0).unwrap() {
                    assert_eq!(item.answer, solve(&item).to_string(), "{item:?}");
                    assert!(
                        item.solution.ends_with(&format!("Answer: {}", item.answer)),
                        "{item:?}"
                    );
                    assert_eq!(item.steps, steps);
                }
            }
        }
    }

    #[test]
    fn suites_are_deterministic_distinct_and_split() {
        let a = items("word", 3, 10, 42, 0).unwrap();
        assert_eq!(a, items("word", 3, 10, 42, 0).unwrap());
        assert_ne!(a, items("word", 3, 10, 43, 0).unwrap());
        let shots = items("word", 3, 10, 42, 1).unwrap();
        assert!(
            shots
                .iter()
                .all(|s| a.iter().all(|t| t.question != s.question && t.id != s.id))
        );
        let mut ids: Vec<&str> = a.iter().map(|i| i.id.as_str()).collect();
        ids.dedup();
        assert_eq!(ids.len(), 10);
        // Word problems never go negative; arithmetic stays non-negative too.
        for f in ["word", "arithmetic"] {
            for i in items(f, 6, 50, 1, 0).unwrap() {
                assert!(!i.answer.starts_with('-'), "{i:?}");
            }
        }
    }

    #[test]
    fn bad_requests_are_refused() {
        assert_eq!(
            items("poetry", 1, 1, 0, 0),
            Err(GenerateError::UnknownFamily("poetry".into()))
        );
        assert_eq!(items("word", 0, 1, 0, 0), Err(GenerateError::BadSteps(0)));
    }
}
