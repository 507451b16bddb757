//! One module per group of subcommands; each turns parsed arguments into calls of the library crates and prints
//! their results. No measurement, report or projection logic lives here.

pub mod bench;
pub mod doctor;
pub mod lock;
pub mod merge;
pub mod models;
pub mod reports;

use std::path::Path;

use anyhow::Result;
use meek_config::LoadedConfig;

pub fn load_config(path: Option<&Path>) -> Result<LoadedConfig> {
    Ok(match path {
        Some(p) => meek_config::load_file(p)?,
        None => meek_config::load_default(),
    })
}
