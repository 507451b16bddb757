//! `meekbench doctor`: probes every energy backend (NVML for GPU 0 included, whatever device a bench would use)
//! and prints what `meek_energy::doctor` says about them.

use std::process::ExitCode;

use anyhow::Result;
use meek_config::DeviceRequest;

use super::load_config;
use crate::cli::DoctorArgs;

/// Prints the energy sources of this machine, the estimate, and a live reading.
pub fn doctor(args: DoctorArgs) -> Result<ExitCode> {
    let cfg = load_config(args.config.as_deref())?;
    let machine = meek_hw::machine();
    let req = meek_runner::EnergyRequest::new(&cfg.config.energy, &machine);
    let env = req.env();
    // Every backend is probed, NVML for GPU 0 included, whatever device a bench would use.
    let mut settings = req.settings("cuda:0");
    if !matches!(
        cfg.config.run.device,
        DeviceRequest::Cuda(_) | DeviceRequest::Auto
    ) {
        settings.gpu = None;
    }
    let probe = meek_energy::probe(&env, &settings);
    let doctor = meek_energy::doctor::Doctor::new(&env, probe, &machine, &cfg.origin);
    print!("{doctor}");
    if let Some(line) = doctor.live_reading(args.read) {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}
