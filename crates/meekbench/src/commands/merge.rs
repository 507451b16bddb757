//! `meekbench merge`: reads the shards' result files, joins them (`meek_report::merge`) and writes one result file.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::cli::MergeArgs;

pub fn merge(args: MergeArgs) -> Result<ExitCode> {
    let mut parts = Vec::new();
    for f in &args.inputs {
        let name = meek_schema::shown(f.display().to_string());
        let r = meek_schema::read_file(f).with_context(|| format!("cannot read {name}"))?;
        parts.push((name, r));
    }
    let n = parts.len();
    let merged =
        meek_report::merge::merge(parts, args.allow_mixed_machines).map_err(anyhow::Error::msg)?;
    let text = serde_json::to_string_pretty(&merged)?;
    // The merged file must read back as a result file, like every file a bench writes.
    meek_schema::from_json(&text).context("the merged result does not validate")?;
    let out = &args.output;
    let mut file = match fs_err::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            bail!("{} exists; merge writes a new file", out.display())
        }
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", out.display())),
    };
    file.write_all(text.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!(
        "merged {n} shards: {} runs, {} failures",
        merged.runs.len(),
        merged.failures.len()
    );
    println!("{}", out.display());
    Ok(ExitCode::SUCCESS)
}
