//! The commands over result files: `compare` (side by side), `leaderboard` (a static site) and `project` (the
//! meek-models projection with measured points).

use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::cli::{CompareArgs, CompareFormat, LeaderboardArgs, ProjectArgs};

pub fn project(args: ProjectArgs) -> Result<ExitCode> {
    let cfg = match &args.config {
        Some(p) => {
            let text = fs_err::read_to_string(p)?;
            meek_projection::config::Config::parse(&text, &p.display().to_string())?
        }
        None => meek_projection::config::Config::default_config(),
    };
    let mut results = Vec::new();
    let mut skipped = Vec::new();
    for p in &args.results {
        // Escaped: result files come from others, and a crafted name must not reach the terminal raw.
        let name = meek_schema::shown(p);
        match meek_schema::read_file(p) {
            Ok(r) => results.push((name, r)),
            Err(e) => skipped.push(format!("{name}: {e}")),
        }
    }
    for s in &skipped {
        eprintln!("skipped {s}");
    }
    let projection = meek_projection::project(&cfg, &results, skipped);
    meek_projection::write(&args.out, &projection)?;
    for k in &projection.peaks {
        if k.scenario.starts_with("baseline") {
            eprintln!(
                "baseline: loss gap peaks at {:.2} years ({:.3} nats/token), {:.3} at 10 years",
                k.t_numeric, k.gap, k.gap_at_10
            );
        }
    }
    for q in &projection.points {
        eprintln!(
            "{} on {}: {:.1} tok/s, {:.2e} $/token ({} energy), accuracy {}, meek-equivalent year {}",
            meek_schema::shown(&q.model),
            meek_schema::shown(&q.setup),
            q.decode_tokens_per_second,
            q.usd_per_token,
            q.energy_basis,
            q.accuracy
                .map_or_else(|| "-".into(), |x| format!("{:.1}%", 100.0 * x)),
            q.implied_year
                .map_or_else(|| q.note.clone().unwrap_or_default(), |y| format!("{y:.1}"))
        );
    }
    println!("{}", args.out.join("report.md").display());
    Ok(ExitCode::SUCCESS)
}

pub fn compare(args: CompareArgs) -> Result<ExitCode> {
    let check = meek_report::input::SchemaCheck::new();
    let mut loaded = Vec::new();
    for f in &args.files {
        match meek_report::input::load(f, &check) {
            Ok(l) => loaded.push(l),
            // Both already escaped by `Skipped::new`; `shown` again is a no-op that keeps this line safe on its own.
            Err(s) => bail!(
                "cannot compare {}: {}",
                meek_schema::shown(&s.path),
                meek_schema::shown(&s.reason)
            ),
        }
    }
    let c = meek_report::compare::compare(&loaded, &meek_report::compare::Options::default())?;
    match args.format {
        CompareFormat::Table => print!("{}", meek_report::compare::terminal(&c)),
        CompareFormat::Markdown => print!("{}", meek_report::compare::markdown(&c)),
        CompareFormat::Json => println!("{}", serde_json::to_string_pretty(&c)?),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn leaderboard(args: LeaderboardArgs) -> Result<ExitCode> {
    let (loaded, skipped) = meek_report::input::load_all(&args.inputs);
    if args.check {
        return Ok(check(&loaded, &skipped));
    }
    let opts = meek_report::board::Options {
        rank_by: args.rank_by.parse().map_err(anyhow::Error::msg)?,
        point: args.point,
        suite: args.suite,
    };
    let board = meek_report::board::build(&loaded, skipped, &opts);
    for s in &board.skipped {
        // Escaped by `Skipped::new` already; again here so the line is safe whoever made the entry.
        eprintln!(
            "skipped {}: {}",
            meek_schema::shown(&s.path),
            meek_schema::shown(&s.reason)
        );
    }
    if board.entries.is_empty() {
        return Err(meek_report::ReportError::NoResults(board.skipped.len()).into());
    }
    let out = args
        .out
        .context("--out SITE is needed to write the leaderboard")?;
    meek_report::site::write(&board, &out)?;
    if let Some(readme) = &args.readme {
        let text = fs_err::read_to_string(readme)?;
        let Some(new) = meek_report::board::splice(&text, &meek_report::board::markdown(&board))
        else {
            bail!(
                "{} has no `<!-- leaderboard:start -->` ... `<!-- leaderboard:end -->` markers; add them where the \
                 table should go",
                readme.display()
            );
        };
        fs_err::write(readme, new)?;
        eprintln!("leaderboard written into {}", readme.display());
    }
    eprintln!(
        "{} entries from {} files ({} skipped), {} machines",
        board.entries.len(),
        board.files,
        board.skipped.len(),
        board.machines.len()
    );
    println!("{}", out.join("index.html").display());
    Ok(ExitCode::SUCCESS)
}

/// `leaderboard --check`: one line per file that a results repository should not accept, and the exit status.
fn check(
    loaded: &[meek_report::input::Loaded],
    skipped: &[meek_report::input::Skipped],
) -> ExitCode {
    let mut bad = 0;
    for s in skipped {
        bad += 1;
        println!(
            "FAIL {}: {}",
            meek_schema::shown(&s.path),
            meek_schema::shown(&s.reason)
        );
    }
    for l in loaded {
        let path = meek_schema::shown(l.path.display().to_string());
        let meek_report::input::Document::Meekbench { result, .. } = &l.document else {
            println!("ok   {path} (llama-bench output, not checked further)");
            continue;
        };
        let mut why = Vec::new();
        if result.tool.profile != "release" {
            why.push(format!(
                "measured by a {} build; its numbers are not the hardware's",
                meek_schema::shown(&result.tool.profile)
            ));
        }
        if result.status != meek_schema::RunStatus::Complete {
            why.push(format!(
                "status is {}, not complete",
                serde_json::to_string(&result.status).unwrap_or_default()
            ));
        }
        if result.runs.is_empty() {
            why.push("it holds no runs".into());
        }
        if why.is_empty() {
            println!("ok   {path}");
        } else {
            bad += 1;
            println!("FAIL {path}: {}", why.join("; "));
        }
    }
    let files = loaded.len() + skipped.len();
    if files == 0 {
        println!("no result files found");
        return ExitCode::FAILURE;
    }
    println!("{} of {files} files pass", files - bad);
    if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
