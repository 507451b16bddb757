//! The commands over result files: `compare` (side by side), `leaderboard` (a static site) and `project` (the
//! meek-models projection with measured points).

use std::process::ExitCode;

use anyhow::{Result, bail};

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
    meek_report::site::write(&board, &args.out)?;
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
    println!("{}", args.out.join("index.html").display());
    Ok(ExitCode::SUCCESS)
}
