//! Fuzzing on stable Rust of every parser that reads input from outside: the bench config (TOML), result files
//! (JSON), suite files (JSONL, parquet), the answer extractors (model output), GGUF files and chat templates
//! (model files).
//!
//! cargo-fuzz needs a nightly compiler for its sanitizer flags; this is the same loop without coverage feedback: a
//! seeded mutator (bit flips, interesting bytes, format tokens from a per-target dictionary, deletions,
//! duplications, splices of two corpus inputs) over the seed corpus in `fuzz/corpus/<target>/`, each input run
//! under `catch_unwind`. A panic is a finding: the input is saved to `fuzz/artifacts/<target>/` and, once fixed,
//! belongs in `fuzz/regressions/<target>/`, which the tests replay. Errors are fine; panics, hangs and unbounded
//! allocations are not. `scripts/fuzz.sh [SECONDS]` runs every target for a bounded time in release mode.
//!
//! Runs are reproducible: the same seed, corpus and iteration count give the same inputs.

pub mod gguf;
pub mod template;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One fuzzed entry point.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Name, also the corpus folder's.
    pub name: &'static str,
    /// Runs the input; must not panic whatever the bytes.
    pub run: fn(&[u8]),
    /// Tokens of the format, inserted by the mutator.
    pub dictionary: &'static [&'static str],
}

const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1e999",
    "-0.0",
    "18446744073709551616",
    "4294967296",
    "9223372036854775807",
    "NaN",
    "inf",
    "1.5",
    "007",
    "1,000",
];

/// The config the `lock` target's locks pin: two hub models without sha256.
const LOCKED_CONFIG: &str = r#"
[[models]]
id = "llama"
file = "llama.gguf"
sources = [{ hub = "owner/llama-GGUF", revision = "main" }]

[[models]]
id = "qwen"
file = "qwen.gguf"
sources = [{ hub = "owner/qwen-GGUF", revision = "v1", file = "sub/qwen.gguf" }]
"#;

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "gguf",
        run: gguf::run,
        dictionary: gguf::DICTIONARY,
    },
    Target {
        name: "template",
        run: template::run,
        dictionary: template::DICTIONARY,
    },
    Target {
        name: "config",
        run: |data| {
            // Bytes that are not UTF-8 are refused before parsing (load_file); the parser sees text.
            let _ = meek_config::parse(&String::from_utf8_lossy(data), "fuzz.toml");
        },
        dictionary: &[
            "[run]",
            "[[models]]",
            "[speed]",
            "[[suites]]",
            "[energy]",
            " = ",
            "\"",
            "'''",
            "[",
            "]",
            "{",
            "}",
            ",",
            "\n",
            "threads",
            "\"auto\"",
            "device",
            "\"cuda:99999999999\"",
            "prompt_tokens",
            "gen_tokens",
            "points",
            "[[1024, 16], [16, 1536, 9]]",
            "repetitions",
            "warmup",
            "steps",
            "items_per_level",
            "shots",
            "max_new_tokens",
            "max_thinking_tokens",
            "[64, 256, 1024]",
            "families",
            "kind",
            "\"jsonl\"",
            "\"generated\"",
            "sources",
            "{ path = \"x\" }",
            "{ hub = \"a/b\", revision = \"c\" }",
            "{ pypi = \"p==1\", member = \"m\" }",
            "sha256",
            "id",
            "file",
        ],
    },
    Target {
        name: "lock",
        run: |data| {
            // A lock file, then a config pinned by it (the entries matched against its models).
            let Ok(lock) =
                meek_config::LoadedLock::parse(&String::from_utf8_lossy(data), "fuzz.lock")
            else {
                return;
            };
            let _ = meek_config::parse_locked(LOCKED_CONFIG, "fuzz.toml", Some(lock));
        },
        dictionary: &[
            "version",
            "[[models]]",
            " = ",
            "\"",
            "\n",
            "id",
            "file",
            "hub",
            "revision",
            "hub_file",
            "commit",
            "sha256",
            "size",
            "\"main\"",
            "\"../x\"",
            "\"a/b/c\"",
            "\"0123456789abcdef0123456789abcdef01234567\"",
        ],
    },
    Target {
        name: "result",
        run: |data| {
            let _ = meek_schema::from_json(&String::from_utf8_lossy(data));
        },
        dictionary: &[
            "{",
            "}",
            "[",
            "]",
            ":",
            ",",
            "\"",
            "null",
            "true",
            "false",
            "\"schema_version\"",
            "\"runs\"",
            "\"speed\"",
            "\"samples\"",
            "\"status\"",
            "\"interrupted\"",
            "\"partial\"",
            "\\u0000",
            "\\ud800",
        ],
    },
    Target {
        name: "suite-parquet",
        run: |data| {
            for format in [
                meek_eval::record::Format::Gsm8k,
                meek_eval::record::Format::Plain,
            ] {
                let bytes = bytes::Bytes::copy_from_slice(data);
                let _ = meek_eval::parquet::parse(bytes.clone(), format, None);
                let _ = meek_eval::parquet::parse(bytes, format, Some(1));
            }
        },
        // Parquet's magic, column names and Thrift compact bytes: field headers (i32, binary, list, struct),
        // stops, and varints at the edges.
        dictionary: &[
            "PAR1",
            "question",
            "answer",
            "id",
            "prompt",
            "steps",
            "\u{15}",
            "\u{18}",
            "\u{19}",
            "\u{1c}",
            "\u{0}",
            "\u{7f}",
            "\u{0}\u{0}\u{0}\u{0}",
            "\u{7f}\u{7f}\u{7f}\u{7f}",
        ],
    },
    Target {
        name: "suite",
        run: |data| {
            if let Ok(text) = std::str::from_utf8(data) {
                for format in [
                    meek_eval::jsonl::Format::Gsm8k,
                    meek_eval::jsonl::Format::Plain,
                ] {
                    let _ = meek_eval::jsonl::parse(text, format, None);
                    let _ = meek_eval::jsonl::parse(text, format, Some(1));
                }
            }
        },
        dictionary: &[
            "{",
            "}",
            "\n",
            ":",
            ",",
            "\"",
            "\"question\"",
            "\"answer\"",
            "\"id\"",
            "\"prompt\"",
            "\"steps\"",
            "\"family\"",
            "####",
            "<<",
            ">>",
            "<<1+1=2>>",
            "\\n",
            "null",
            "[]",
        ],
    },
    Target {
        name: "extract",
        run: |data| {
            let text = String::from_utf8_lossy(data);
            let part = meek_eval::prompt::answer_part(&text);
            let strict = meek_eval::extract::strict(part);
            let flexible = meek_eval::extract::flexible(part);
            let _ = meek_eval::extract::numbers(&text);
            for expected in ["0", "-12", "1234.5", &text] {
                let _ = meek_eval::extract::matches(strict.as_ref(), expected);
                let _ = meek_eval::extract::matches(flexible.as_ref(), expected);
            }
        },
        dictionary: &[
            "Answer:",
            "answer:",
            "####",
            "\\boxed{",
            "}",
            "-",
            ".",
            ",",
            "\n",
            " ",
            "Question:",
            "Solution:",
            "$",
            "١٢٣",
            "½",
            "\u{200b}",
        ],
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// How long a fuzzing run lasts.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    /// This many mutated inputs (deterministic: tests).
    Iterations(u64),
    /// Until this much time has passed.
    Time(Duration),
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Report {
    /// Inputs run, seeds included.
    pub iterations: u64,
    /// Inputs that panicked, with the panic message.
    pub crashes: Vec<(Vec<u8>, String)>,
    /// The slowest input, in microseconds (a hint of quadratic paths).
    pub slowest_micros: u128,
}

/// Reads every file in `dir` (none when it does not exist).
pub fn read_corpus(dir: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = fs_err::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
        .into_iter()
        .filter_map(|p| fs_err::read(p).ok())
        .collect()
}

/// Runs `input` on `target`, returning the panic message if it panicked.
pub fn run_one(target: &Target, input: &[u8]) -> Option<String> {
    catch_unwind(AssertUnwindSafe(|| (target.run)(input)))
        .err()
        .map(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic with a non-string payload".into())
        })
}

/// Largest input the mutator makes: big enough for any real config or suite line, small enough to stay fast.
pub const MAX_INPUT: usize = 64 << 10;

/// One mutation of `input`, drawn from `rng`, possibly splicing in `other`.
pub fn mutate(rng: &mut StdRng, input: &mut Vec<u8>, other: &[u8], dictionary: &[&str]) {
    let pos = |rng: &mut StdRng, len: usize| rng.random_range(0..=len);
    match rng.random_range(0..9) {
        0 if !input.is_empty() => {
            let i = rng.random_range(0..input.len());
            input[i] ^= 1 << rng.random_range(0..8);
        }
        1 if !input.is_empty() => {
            let i = rng.random_range(0..input.len());
            input[i] = *[0u8, 0x7f, 0x80, 0xff, b'\n', b'"', b'\\', b'0', b'9', b' ']
                .get(rng.random_range(0..10))
                .unwrap_or(&0);
        }
        2 | 3 => {
            let tokens = if rng.random_bool(0.7) {
                dictionary
            } else {
                NUMBERS
            };
            if !tokens.is_empty() {
                let t = tokens[rng.random_range(0..tokens.len())];
                let at = pos(rng, input.len());
                input.splice(at..at, t.bytes());
            }
        }
        4 if !input.is_empty() => {
            let a = rng.random_range(0..input.len());
            let b = (a + rng.random_range(1..=16)).min(input.len());
            input.drain(a..b);
        }
        5 if !input.is_empty() => {
            let a = rng.random_range(0..input.len());
            let b = (a + rng.random_range(1..=64)).min(input.len());
            let copy = input[a..b].to_vec();
            let at = pos(rng, input.len());
            input.splice(at..at, copy);
        }
        6 if !other.is_empty() => {
            let cut = pos(rng, input.len());
            let from = rng.random_range(0..other.len());
            input.truncate(cut);
            input.extend_from_slice(&other[from..]);
        }
        7 => {
            let n = rng.random_range(1..=8);
            let at = pos(rng, input.len());
            let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            input.splice(at..at, bytes);
        }
        _ if !input.is_empty() => {
            // Repeat a slice many times: deep nesting and long runs.
            let a = rng.random_range(0..input.len());
            let b = (a + rng.random_range(1..=4)).min(input.len());
            let copy = input[a..b].repeat(rng.random_range(2..=512));
            input.splice(a..a, copy);
        }
        _ => input.push(rng.random()),
    }
    input.truncate(MAX_INPUT);
}

/// Fuzzes `target` from `corpus` (the empty input is always added) with `seed` within `budget`. Every seed input
/// is run first, then mutated inputs: one to eight stacked mutations of a random corpus input.
pub fn fuzz(target: &Target, corpus: &[Vec<u8>], seed: u64, budget: Budget) -> Report {
    let mut pool: Vec<Vec<u8>> = corpus.to_vec();
    pool.push(Vec::new());
    let mut rng = StdRng::seed_from_u64(seed);
    let mut report = Report::default();
    let start = Instant::now();
    // Silence the default hook while inputs panic on purpose; findings are reported with their message.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let check = |input: &[u8], report: &mut Report| {
        let t = Instant::now();
        let outcome = run_one(target, input);
        report.slowest_micros = report.slowest_micros.max(t.elapsed().as_micros());
        report.iterations += 1;
        if let Some(msg) = outcome {
            report.crashes.push((input.to_vec(), msg));
        }
    };
    for input in &pool {
        check(input, &mut report);
    }
    let mut i = 0u64;
    loop {
        let done = match budget {
            Budget::Iterations(n) => i >= n,
            Budget::Time(d) => i.is_multiple_of(64) && start.elapsed() >= d,
        };
        if done {
            break;
        }
        i += 1;
        let mut input = pool[rng.random_range(0..pool.len())].clone();
        let other = &pool[rng.random_range(0..pool.len())];
        for _ in 0..rng.random_range(1..=8) {
            mutate(&mut rng, &mut input, other, target.dictionary);
        }
        check(&input, &mut report);
    }
    std::panic::set_hook(hook);
    report
}

/// The repository's `fuzz/` folder.
pub fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A short, deterministic run of every target from its seed corpus: no panic.
    #[test]
    fn every_target_survives_a_short_seeded_run() {
        for t in TARGETS {
            let corpus = read_corpus(&fuzz_dir().join("corpus").join(t.name));
            assert!(!corpus.is_empty(), "fuzz/corpus/{} has seed inputs", t.name);
            let r = fuzz(t, &corpus, 1, Budget::Iterations(3000));
            assert_eq!(r.iterations, 3000 + corpus.len() as u64 + 1);
            let found: Vec<String> = r
                .crashes
                .iter()
                .map(|(input, msg)| format!("{msg}: {:?}", String::from_utf8_lossy(input)))
                .collect();
            assert!(found.is_empty(), "{}: {found:#?}", t.name);
        }
    }

    /// Every input that once made a target panic (`fuzz/regressions/<target>/`) runs cleanly now.
    #[test]
    fn past_findings_stay_fixed() {
        for t in TARGETS {
            for input in read_corpus(&fuzz_dir().join("regressions").join(t.name)) {
                assert_eq!(run_one(t, &input), None, "{}: {input:?}", t.name);
            }
        }
    }

    #[test]
    fn a_panicking_target_is_caught_and_reported() {
        let t = Target {
            name: "boom",
            run: |d| assert!(!d.contains(&b'!'), "found a bang"),
            dictionary: &["!"],
        };
        let r = fuzz(&t, &[b"abc".to_vec()], 7, Budget::Iterations(500));
        assert!(!r.crashes.is_empty());
        assert!(
            r.crashes
                .iter()
                .all(|(i, m)| i.contains(&b'!') && m == "found a bang")
        );
        // The same seed gives the same inputs.
        let again = fuzz(&t, &[b"abc".to_vec()], 7, Budget::Iterations(500));
        assert_eq!(r.crashes.len(), again.crashes.len());
    }
}
