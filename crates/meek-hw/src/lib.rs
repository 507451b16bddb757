//! What machine is this: a hardware fingerprint for result files, and process memory readings.
//!
//! The fingerprint describes the hardware (CPU model, cores, SIMD extensions, memory, GPUs, virtualisation) and
//! the OS, never the host name: result files are meant to be published. SIMD flags are detected at run time, the
//! same way the kernels choose their code paths.

use meek_schema::{CpuInfo, GpuInfo, MachineInfo};

/// Describes this machine.
pub fn machine() -> MachineInfo {
    let mut sys = sysinfo::System::new();
    sys.refresh_cpu_all();
    sys.refresh_memory();
    let brand = sys
        .cpus()
        .first()
        .map(|c| c.brand().trim().to_string())
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    let logical = std::thread::available_parallelism().map_or(1, usize::from);
    let hypervisor = hypervisor();
    MachineInfo {
        cpu: CpuInfo {
            brand,
            arch: std::env::consts::ARCH.to_string(),
            physical_cores: physical_cores(),
            logical_cores: logical,
            flags: simd_flags(),
            model: cpu_model(),
        },
        memory_bytes: sys.total_memory(),
        os: sysinfo::System::long_os_version().unwrap_or_else(|| std::env::consts::OS.to_string()),
        kernel: sysinfo::System::kernel_version().unwrap_or_else(|| "unknown".to_string()),
        virtualized: hypervisor.as_ref().map(|h| h.is_some()),
        hypervisor: hypervisor.flatten(),
        gpus: gpus(),
    }
}

/// The CPU's family/model/stepping (x86) or implementer/part (Arm) from `/proc/cpuinfo`'s first processor;
/// `None` elsewhere or when the file does not say.
pub fn cpu_model() -> Option<String> {
    let text = fs_err::read_to_string("/proc/cpuinfo").ok()?;
    cpu_model_of(&text)
}

/// [`cpu_model`] on the text of `/proc/cpuinfo`.
pub fn cpu_model_of(cpuinfo: &str) -> Option<String> {
    let first = cpuinfo.split("\n\n").next()?;
    let field = |name: &str| {
        first.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            let v = v.trim();
            (k.trim() == name
                && !v.is_empty()
                && v.len() <= 32
                && v.bytes().all(|b| b.is_ascii_graphic()))
            .then(|| v.to_string())
        })
    };
    if let (Some(f), Some(m)) = (field("cpu family"), field("model")) {
        let stepping = field("stepping").map_or_else(String::new, |s| format!(" stepping {s}"));
        return Some(format!("x86 family {f} model {m}{stepping}"));
    }
    let (i, p) = (field("CPU implementer")?, field("CPU part")?);
    Some(format!("arm implementer {i} part {p}"))
}

/// Memory available to new allocations without swapping, bytes (the OS's "available" figure).
pub fn available_memory() -> u64 {
    let mut sys = sysinfo::System::new();
    sys.refresh_memory();
    sys.available_memory()
}

/// Physical cores usable by this process, or `None` when the OS does not say.
pub fn physical_cores() -> Option<usize> {
    let logical = std::thread::available_parallelism().map_or(1, usize::from);
    // sysinfo counts the machine's cores; a CPU-restricted container may see fewer.
    sysinfo::System::physical_core_count().map(|p| p.clamp(1, logical))
}

/// SIMD extensions the CPU offers, detected at run time.
pub fn simd_flags() -> Vec<String> {
    #[allow(unused_mut)]
    let mut flags: Vec<&str> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! probe {
            ($($f:tt),*) => {$(if std::arch::is_x86_feature_detected!($f) { flags.push($f); })*};
        }
        probe!(
            "sse4.2",
            "avx",
            "f16c",
            "fma",
            "avx2",
            "avx512f",
            "avx512bw",
            "avx512vl",
            "avx512vnni",
            "avxvnni"
        );
    }
    #[cfg(target_arch = "aarch64")]
    {
        macro_rules! probe {
            ($($f:tt),*) => {$(if std::arch::is_aarch64_feature_detected!($f) { flags.push($f); })*};
        }
        probe!("neon", "dotprod", "i8mm", "fp16", "sve");
    }
    flags.into_iter().map(str::to_string).collect()
}

/// `Some(Some(vendor))` in a guest whose hypervisor names itself, `Some(None)` on bare metal, `None` when this
/// cannot be told (non-x86 CPUs).
#[allow(unused_unsafe)] // `__cpuid` is safe from Rust 1.94 on, unsafe before.
fn hypervisor() -> Option<Option<String>> {
    #[cfg(target_arch = "x86_64")]
    {
        // CPUID leaf 1, ECX bit 31 is the "hypervisor present" bit; leaf 0x4000_0000 names the vendor.
        // SAFETY: CPUID is available on every x86_64 CPU.
        let leaf1 = unsafe { std::arch::x86_64::__cpuid(1) };
        if leaf1.ecx & (1 << 31) == 0 {
            return Some(None);
        }
        // SAFETY: as above; hypervisors answer this leaf, bare metal returns junk we map through a table.
        let r = unsafe { std::arch::x86_64::__cpuid(0x4000_0000) };
        let mut id = Vec::with_capacity(12);
        for reg in [r.ebx, r.ecx, r.edx] {
            id.extend_from_slice(&reg.to_le_bytes());
        }
        let id = String::from_utf8_lossy(&id)
            .trim_matches(char::from(0))
            .to_string();
        let vendor = match id.as_str() {
            "KVMKVMKVM" => "KVM",
            "Microsoft Hv" => "Hyper-V",
            "VMwareVMware" => "VMware",
            "XenVMMXenVMM" => "Xen",
            "TCGTCGTCGTCG" => "QEMU (TCG)",
            " lrpepyh  vr" => "Parallels",
            "VBoxVBoxVBox" => "VirtualBox",
            "ACRNACRNACRN" => "ACRN",
            "bhyve bhyve " => "bhyve",
            _ => "unknown",
        };
        Some(Some(vendor.to_string()))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// GPUs on this machine: NVIDIA ones through `nvidia-smi` when it is installed, with their compute capability
/// where the driver reports it (older drivers refuse the field: then without it).
pub fn gpus() -> Vec<GpuInfo> {
    let query = |fields: &str| {
        let out = std::process::Command::new("nvidia-smi")
            .args([
                &format!("--query-gpu={fields}"),
                "--format=csv,noheader,nounits",
            ])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| parse_nvidia_smi(&String::from_utf8_lossy(&out.stdout)))
    };
    query("name,memory.total,driver_version,compute_cap")
        .or_else(|| query("name,memory.total,driver_version"))
        .unwrap_or_default()
}

fn parse_nvidia_smi(text: &str) -> Vec<GpuInfo> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(',').map(str::trim).collect();
            ((f.len() == 3 || f.len() == 4) && !f[0].is_empty()).then(|| GpuInfo {
                name: f[0].to_string(),
                memory_bytes: f[1].parse::<u64>().ok().map(|mib| mib * 1024 * 1024),
                driver: Some(f[2].to_string()),
                compute_capability: f
                    .get(3)
                    .filter(|c| c.parse::<f32>().is_ok())
                    .map(|c| c.to_string()),
            })
        })
        .collect()
}

/// Sustained memory read bandwidth with `threads` threads, bytes per second: the best of `reps` passes summing a
/// 256 MiB buffer (far larger than any cache), in the manner of the STREAM benchmark (McCalpin, 1995), which also
/// reports the best pass. A decode step of a model must read its weights once, so
/// `bandwidth / weight bytes per token` bounds decode tokens per second.
pub fn read_bandwidth(threads: usize, reps: usize) -> f64 {
    let words = (256usize << 20) / 8;
    let buf: Vec<u64> = (0..words as u64).collect();
    let threads = threads.max(1);
    let chunk = words.div_ceil(threads);
    let mut best = f64::INFINITY;
    for _ in 0..reps.max(1) {
        let t0 = std::time::Instant::now();
        let total: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = buf
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || {
                        // Eight independent sums keep several loads in flight.
                        let mut acc = [0u64; 8];
                        for c in part.chunks_exact(8) {
                            for k in 0..8 {
                                acc[k] = acc[k].wrapping_add(c[k]);
                            }
                        }
                        acc.iter().fold(0u64, |a, b| a.wrapping_add(*b))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(0))
                .fold(0u64, u64::wrapping_add)
        });
        std::hint::black_box(total);
        best = best.min(t0.elapsed().as_secs_f64());
    }
    (words * 8) as f64 / best
}

/// Peak resident memory of this process since start or since the last [`reset_peak_rss`], in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let status = fs_err::read_to_string("/proc/self/status").ok()?;
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .ok()?;
        Some(kb * 1024)
    }
    #[cfg(not(target_os = "linux"))]
    {
        // SAFETY: getrusage only writes into the struct we pass.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
            return None;
        }
        // macOS reports bytes, other BSDs kilobytes.
        let v = ru.ru_maxrss as u64;
        Some(if cfg!(target_os = "macos") {
            v
        } else {
            v * 1024
        })
    }
}

/// Resets the peak-resident-memory mark where the OS allows it (Linux: `/proc/self/clear_refs`), so the next
/// [`peak_rss_bytes`] covers only what follows. Returns whether it was reset; where it was not, the peak is the
/// process's lifetime peak.
pub fn reset_peak_rss() -> bool {
    #[cfg(target_os = "linux")]
    {
        fs_err::write("/proc/self/clear_refs", "5").is_ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_model_reads_the_first_processor() {
        let x86 = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC 9B14\n\
                   stepping\t: 1\n\nprocessor\t: 1\ncpu family\t: 99\n";
        assert_eq!(
            cpu_model_of(x86).as_deref(),
            Some("x86 family 25 model 17 stepping 1")
        );
        let arm = "processor\t: 0\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\nCPU part\t: 0xd0c\n";
        assert_eq!(
            cpu_model_of(arm).as_deref(),
            Some("arm implementer 0x41 part 0xd0c")
        );
        assert_eq!(cpu_model_of("model name : x\n"), None);
        assert_eq!(cpu_model_of("cpu family : 6\nmodel : \x1b[2J\n"), None);
    }

    #[test]
    fn machine_is_described_without_host_name() {
        let m = machine();
        assert!(m.cpu.logical_cores >= 1);
        assert!(m.memory_bytes > 0);
        assert!(!m.cpu.arch.is_empty());
        let host = sysinfo::System::host_name().unwrap_or_default();
        if host.len() > 3 {
            let json = format!("{m:?}");
            assert!(
                !json.contains(&host),
                "host name leaked into the fingerprint"
            );
        }
    }

    #[test]
    fn nvidia_smi_lines_are_parsed() {
        let g = parse_nvidia_smi("NVIDIA H200, 143771, 570.86.15\n\n");
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].name, "NVIDIA H200");
        assert_eq!(g[0].memory_bytes, Some(143_771 * 1024 * 1024));
        assert_eq!(g[0].driver.as_deref(), Some("570.86.15"));
        assert_eq!(g[0].compute_capability, None);
        let g = parse_nvidia_smi(
            "NVIDIA H200, 143771, 580.159.04, 9.0\nNVIDIA L4, 23034, 580.159.04, [N/A]\n",
        );
        assert_eq!(g[0].compute_capability.as_deref(), Some("9.0"));
        assert_eq!(g[1].compute_capability, None);
        assert!(parse_nvidia_smi("garbage").is_empty());
    }

    #[test]
    fn bandwidth_probe_gives_a_plausible_figure() {
        let bw = read_bandwidth(1, 1);
        // Anything from an old laptop to a server socket: 0.5 GB/s to 2 TB/s.
        eprintln!("read bandwidth, one thread: {:.2} GB/s", bw / 1e9);
        assert!((5e8..2e12).contains(&bw), "{bw}");
    }

    #[test]
    fn peak_rss_grows_with_a_big_allocation() {
        let before = peak_rss_bytes().unwrap();
        let v = vec![1u8; 64 << 20];
        std::hint::black_box(&v);
        let after = peak_rss_bytes().unwrap();
        assert!(after >= before + (32 << 20), "{before} -> {after}");
    }
}
