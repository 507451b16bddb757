//! `meekbench doctor`: probes every energy backend (NVML for GPU 0 included, whatever device a bench would use)
//! and prints what `meek_energy::doctor` says about them, then what the CPU pool would see now: the CPUs this
//! process may run on, its control group's quota and what other processes use, by the rule a bench's regions
//! follow, so that a user learns before a bench whether its points would be marked as measured on a busy machine.

use std::process::ExitCode;

use anyhow::Result;
use meek_config::DeviceRequest;
use meek_engine::CpuRoom;

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
    let threads = meek_hw::physical_cores().unwrap_or(machine.cpu.logical_cores);
    print!(
        "{}",
        cpu_lines(meek_engine::cpu_room(ROOM_READING), threads)
    );
    Ok(ExitCode::SUCCESS)
}

/// How long other processes' use is read for.
const ROOM_READING: std::time::Duration = std::time::Duration::from_millis(500);

/// The CPU pool's view for a bench at `threads` (its default thread count), by [`CpuRoom::plan`].
fn cpu_lines(room: Option<CpuRoom>, threads: usize) -> String {
    let mut s = format!(
        "\nCPU threads (meekbench's own CPU path; a bench's default here: {})\n",
        count(threads, "thread")
    );
    let Some(r) = room else {
        s += "  no reading of the kernel's CPU counters (not Linux, or /proc unreadable): every region runs on every \
              thread, and a busy machine is not detected\n";
        return s;
    };
    s += &format!("  CPUs this process may run on: {}\n", r.cpus);
    if r.quota.is_finite() {
        s += &format!(
            "  its control group's CPU quota: {:.2} CPUs (regions run on at most {})\n",
            r.quota,
            count(r.plan(usize::MAX, true).0, "thread")
        );
    } else {
        s += "  its control group's CPU quota: none found\n";
    }
    let used = format!(
        "  other processes used {:.2} CPUs over {:.1} s",
        r.load,
        ROOM_READING.as_secs_f64()
    );
    let (free, contended) = r.plan(threads, false);
    s += &if threads < 2 {
        // One thread runs every region inline: no pool, no counts, no mark.
        format!("{used}: one thread does not use the pool, and its points are not marked busy\n")
    } else if contended {
        let regions = if free < threads {
            format!("short regions on the {} left free", count(free, "CPU"))
        } else {
            "its regions keep every thread".into()
        };
        format!(
            "{used}: a bench now would be measured on a busy machine at {} ({regions}; its result marks the point)\n",
            count(threads, "thread")
        )
    } else if free < threads {
        format!(
            "{used}: room for {free} of {} (more threads than the CPUs or the quota give; its result counts the \
             regions as reduced)\n",
            count(threads, "thread")
        )
    } else {
        format!("{used}: room for {}\n", count(threads, "thread"))
    };
    s
}

/// `1 thread`, `2 threads`; `1 CPU`, `2 CPUs`.
fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_lines_say_what_a_bench_would_meet() {
        let room = |load, cpus, quota| Some(CpuRoom { load, cpus, quota });
        let quiet = cpu_lines(room(0.05, 2, f64::INFINITY), 2);
        assert!(quiet.contains("CPUs this process may run on: 2"), "{quiet}");
        assert!(quiet.contains("quota: none found"), "{quiet}");
        assert!(quiet.contains("room for 2 threads"), "{quiet}");
        let busy = cpu_lines(room(1.0, 2, f64::INFINITY), 2);
        let want = "busy machine at 2 threads (short regions on the 1 CPU left free";
        assert!(busy.contains(want), "{busy}");
        // A neighbour whose use rounds away contends without reducing.
        let light = cpu_lines(room(0.3, 2, f64::INFINITY), 2);
        let want = "busy machine at 2 threads (its regions keep every thread";
        assert!(light.contains(want), "{light}");
        let limited = cpu_lines(room(0.0, 8, 1.5), 8);
        let want = "quota: 1.50 CPUs (regions run on at most 2 threads)";
        assert!(limited.contains(want), "{limited}");
        assert!(limited.contains("room for 2 of 8 threads"), "{limited}");
        let one = cpu_lines(room(0.5, 1, 1.0), 1);
        assert!(one.contains("at most 1 thread)"), "{one}");
        assert!(one.contains("one thread does not use the pool"), "{one}");
        assert!(cpu_lines(None, 2).contains("not Linux"));
    }
}
