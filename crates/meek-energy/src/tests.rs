//! Every backend against fakes: a sysfs tree in a temporary directory (with injected errors), a scripted NVML,
//! a scripted clock and CPU time.
//!
//! One file of ~900 lines on purpose: every test drives the same `Rig` (tree, NVML, clock, CPU time) through the
//! public probe and meter, and the cases read as one specification of which source counts when; split by source,
//! each file would need the whole rig again.

use std::io::ErrorKind;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meek_schema::EnergyStatus;

use super::*;
use crate::nvml::{NvmlApi, NvmlFailure};
use crate::record::{ModelShape, Pricing, RunEnergyBuilder};
use crate::sysfs::FaultyFs;

#[derive(Clone, Default)]
struct FakeClock(Arc<Mutex<f64>>);
impl FakeClock {
    fn advance(&self, s: f64) {
        *self.0.lock().unwrap() += s;
    }
}
impl Clock for FakeClock {
    fn now(&self) -> f64 {
        *self.0.lock().unwrap()
    }
}

#[derive(Clone)]
struct FakeCpu(Arc<Mutex<Option<f64>>>);
impl FakeCpu {
    fn add(&self, s: f64) {
        let mut g = self.0.lock().unwrap();
        *g = g.map(|v| v + s);
    }
}
impl CpuTime for FakeCpu {
    fn cpu_seconds(&self) -> Option<f64> {
        *self.0.lock().unwrap()
    }
}

/// A fake machine: a sysfs tree, a clock, CPU time, and an NVML that is missing unless set.
struct Rig {
    dir: tempfile::TempDir,
    fs: Arc<FaultyFs>,
    clock: FakeClock,
    cpu: FakeCpu,
    nvml: Arc<Mutex<Option<FakeNvml>>>,
}

impl Rig {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let fs = Arc::new(FaultyFs::new(RootFs::new(dir.path())));
        Self {
            dir,
            fs,
            clock: FakeClock::default(),
            cpu: FakeCpu(Arc::new(Mutex::new(Some(0.0)))),
            nvml: Arc::new(Mutex::new(None)),
        }
    }

    fn write(&self, path: &str, content: impl ToString) {
        let p = self.dir.path().join(path.trim_start_matches('/'));
        fs_err::create_dir_all(p.parent().unwrap()).unwrap();
        fs_err::write(p, content.to_string()).unwrap();
    }

    fn zone(&self, dir: &str, name: &str, uj: u64, range: u64) {
        let d = format!("/sys/class/powercap/{dir}");
        self.write(&format!("{d}/name"), name);
        self.write(&format!("{d}/energy_uj"), uj);
        self.write(&format!("{d}/max_energy_range_uj"), range);
    }

    fn set_uj(&self, dir: &str, uj: u64) {
        self.write(&format!("/sys/class/powercap/{dir}/energy_uj"), uj);
    }

    fn env(&self, brand: &str) -> Env {
        let nvml = self.nvml.clone();
        Env {
            fs: self.fs.clone(),
            nvml: Arc::new(move || match nvml.lock().unwrap().clone() {
                Some(f) => Ok(Box::new(f) as Box<dyn NvmlApi>),
                None => Err("NVML could not be loaded: libnvidia-ml.so.1 not found".into()),
            }),
            cpu: CpuIdentity {
                brand: brand.into(),
                logical_cpus: 2,
            },
            clock: Arc::new(self.clock.clone()),
            cpu_time: Arc::new(self.cpu.clone()),
            perf_syscalls: false,
            ioreport: false,
        }
    }
}

const RANGE: u64 = 262_143_328_850;

fn rapl_tree(rig: &Rig) {
    rig.zone("intel-rapl:0", "package-0", 1_000_000, RANGE);
    rig.zone("intel-rapl:0:0", "core", 500_000, RANGE);
    rig.zone("intel-rapl:0:1", "dram", 100_000, RANGE);
    rig.zone("intel-rapl:1", "package-1", 2_000_000, RANGE);
    rig.zone("intel-rapl:2", "psys", 9_000_000, RANGE);
    rig.zone("intel-rapl-mmio:0", "package-0", 1_000_000, RANGE);
}

#[test]
fn rapl_sums_packages_only() {
    let rig = Rig::new();
    rapl_tree(&rig);
    let mut s = rapl::open_rapl(&rig.env("x")).unwrap();
    assert_eq!(s.domains(), ["package-0", "package-1"]);
    assert_eq!(s.label(), "measured:rapl-powercap:package-0+package-1");
    rig.clock.advance(1.0);
    // Every zone moves; only the two packages may count: 3 J + 4 J.
    rig.set_uj("intel-rapl:0", 4_000_000);
    rig.set_uj("intel-rapl:1", 6_000_000);
    rig.set_uj("intel-rapl:0:0", 99_000_000);
    rig.set_uj("intel-rapl:2", 999_000_000);
    rig.set_uj("intel-rapl-mmio:0", 77_000_000);
    let r = s.read().unwrap();
    assert!((r.joules - 7.0).abs() < 1e-9, "{r:?}");
}

#[test]
fn rapl_wrap_is_corrected_and_a_double_wrap_needs_polling() {
    let rig = Rig::new();
    let range = 10_000_000; // 10 J
    rig.zone("intel-rapl:0", "package-0", 0, range);
    let mut s = rapl::open_rapl(&rig.env("x")).unwrap();
    // 24 J in 4 s with two wraps, read every second: 6, 12 -> 2, 18 -> 8, 24 -> 4.
    for uj in [6_000_000, 2_000_000, 8_000_000, 4_000_000] {
        rig.clock.advance(1.0);
        rig.set_uj("intel-rapl:0", uj);
        s.read().unwrap();
    }
    let r = s.read().unwrap();
    assert!((r.joules - 24.0).abs() < 1e-9, "{r:?}");
    assert_eq!(r.wraps, 2);

    // The same energy read only at the edges: the two wraps cannot be seen.
    let rig = Rig::new();
    rig.zone("intel-rapl:0", "package-0", 0, range);
    let mut s = rapl::open_rapl(&rig.env("x")).unwrap();
    rig.clock.advance(4.0);
    rig.set_uj("intel-rapl:0", 4_000_000);
    assert!((s.read().unwrap().joules - 4.0).abs() < 1e-9);
}

#[test]
fn rapl_reset_is_not_taken_for_a_wrap() {
    let rig = Rig::new();
    rig.zone("intel-rapl:0", "package-0", 200_000_000_000, RANGE);
    let mut s = rapl::open_rapl(&rig.env("x")).unwrap();
    rig.clock.advance(1.0);
    rig.set_uj("intel-rapl:0", 200_005_000_000);
    assert!((s.read().unwrap().joules - 5.0).abs() < 1e-9);
    // Back to 1 J a second later: a wrap would mean 62 kJ in one second, so it is a reset.
    rig.clock.advance(1.0);
    rig.set_uj("intel-rapl:0", 1_000_000);
    let r = s.read().unwrap();
    assert_eq!((r.wraps, r.resets), (0, 1));
    assert!((r.joules - 6.0).abs() < 1e-9, "{r:?}");
}

#[test]
fn rapl_unavailable_says_why_and_how() {
    let rig = Rig::new();
    let u = rapl::open_rapl(&rig.env("x")).err().unwrap();
    assert!(u.reason.contains("no RAPL zones"), "{u:?}");
    assert!(u.enable.unwrap().contains("modprobe"));

    rig.zone("intel-rapl:0", "package-0", 1, RANGE);
    rig.fs.fail(
        "/sys/class/powercap/intel-rapl:0/energy_uj",
        ErrorKind::PermissionDenied,
    );
    let u = rapl::open_rapl(&rig.env("x")).err().unwrap();
    assert!(u.reason.contains("permission denied"), "{u:?}");
    assert!(u.enable.unwrap().contains("chmod o+r"));

    fs_err::remove_file(
        rig.dir
            .path()
            .join("sys/class/powercap/intel-rapl:0/energy_uj"),
    )
    .unwrap();
    rig.fs
        .heal(Path::new("/sys/class/powercap/intel-rapl:0/energy_uj"));
    let u = rapl::open_rapl(&rig.env("x")).err().unwrap();
    assert!(u.reason.contains("energy_uj"), "{u:?}");

    let rig = Rig::new();
    rig.zone("intel-rapl:0", "psys", 1, RANGE);
    let u = rapl::open_rapl(&rig.env("x")).err().unwrap();
    assert!(u.reason.contains("none is a package"), "{u:?}");
}

#[test]
fn amd_rapl_naming_is_found() {
    let rig = Rig::new();
    rig.zone("amd-rapl:0", "package-0", 5, RANGE);
    assert_eq!(
        rapl::open_rapl(&rig.env("x")).unwrap().domains(),
        ["package-0"]
    );
}

#[test]
fn hwmon_uses_socket_counters_and_known_power_sensors() {
    let rig = Rig::new();
    let d = "/sys/class/hwmon/hwmon0";
    rig.write(&format!("{d}/name"), "zenergy");
    rig.write(&format!("{d}/energy1_label"), "Esocket0");
    rig.write(&format!("{d}/energy1_input"), 1_000_000);
    rig.write(&format!("{d}/energy2_label"), "Ecore000");
    rig.write(&format!("{d}/energy2_input"), 5);
    rig.write("/sys/class/hwmon/hwmon1/name", "amdgpu");
    rig.write("/sys/class/hwmon/hwmon1/power1_average", 50_000_000);
    let env = rig.env("x");
    let mut e = hwmon::open_energy(&env).unwrap();
    assert_eq!(e.domains(), ["zenergy/Esocket0"]);
    rig.clock.advance(1.0);
    rig.write(&format!("{d}/energy1_input"), 3_500_000);
    rig.write(&format!("{d}/energy2_input"), 900_000_000);
    assert!((e.read().unwrap().joules - 2.5).abs() < 1e-9);

    // The GPU's power sensor is not a CPU source.
    let u = hwmon::open_power(&env).err().unwrap();
    assert!(u.reason.contains("hwmon1 (amdgpu)"), "{u:?}");

    rig.write("/sys/class/hwmon/hwmon2/name", "power_meter");
    rig.write("/sys/class/hwmon/hwmon2/power1_average", 100_000_000);
    let mut p = hwmon::open_power(&env).unwrap();
    assert_eq!(p.scope(), Scope::Platform);
    assert!(p.label().starts_with("integrated:hwmon-power:power_meter/"));
    // Trapezoid: 100 W then 200 W over 2 s = 300 J.
    rig.clock.advance(2.0);
    rig.write("/sys/class/hwmon/hwmon2/power1_average", 200_000_000);
    assert!((p.read().unwrap().joules - 300.0).abs() < 1e-9);
}

#[test]
fn perf_pmu_is_described_from_sysfs() {
    let rig = Rig::new();
    let u = perf::describe(rig.fs.as_ref()).unwrap_err();
    assert!(u.reason.contains("no perf `power` PMU"), "{u:?}");
    let d = "/sys/bus/event_source/devices/power";
    rig.write(&format!("{d}/type"), "23\n");
    rig.write(&format!("{d}/cpumask"), "0,64\n");
    rig.write(&format!("{d}/events/energy-pkg"), "event=0x02\n");
    rig.write(
        &format!("{d}/events/energy-pkg.scale"),
        "2.3283064365386962890625e-10\n",
    );
    let e = perf::describe(rig.fs.as_ref()).unwrap();
    assert_eq!((e.pmu_type, e.config, e.cpus.clone()), (23, 2, vec![0, 64]));
    assert!((e.scale - 2f64.powi(-32)).abs() < 1e-20);
    assert_eq!(perf::parse_cpu_list("0-2,8"), vec![0, 1, 2, 8]);
    // Without permission to open events (the rig forbids the syscall), it is unavailable, never guessed.
    assert!(perf::open(&rig.env("x")).is_err());
}

#[derive(Clone)]
struct FakeNvml {
    energy: Arc<Mutex<Result<u64, NvmlFailure>>>,
    power: Arc<Mutex<Result<u32, NvmlFailure>>>,
}

impl FakeNvml {
    fn new(energy: Result<u64, NvmlFailure>, power: Result<u32, NvmlFailure>) -> Self {
        Self {
            energy: Arc::new(Mutex::new(energy)),
            power: Arc::new(Mutex::new(power)),
        }
    }
}

impl NvmlApi for FakeNvml {
    fn device_count(&self) -> Result<u32, NvmlFailure> {
        Ok(1)
    }
    fn name(&self, _: u32) -> Result<String, NvmlFailure> {
        Ok("Fake GPU".into())
    }
    fn total_energy_mj(&self, _: u32) -> Result<u64, NvmlFailure> {
        self.energy.lock().unwrap().clone()
    }
    fn power_mw(&self, _: u32) -> Result<u32, NvmlFailure> {
        self.power.lock().unwrap().clone()
    }
}

#[test]
fn nvml_counter_then_fallbacks() {
    let clock: Arc<dyn Clock> = Arc::new(FakeClock::default());
    let fake_clock = FakeClock::default();
    let c: Arc<dyn Clock> = Arc::new(fake_clock.clone());

    // The counter works: measured, with a reset (driver reload) counted from zero.
    let f = FakeNvml::new(Ok(1_000_000), Ok(100_000));
    let mut s = nvml::open_with(Box::new(f.clone()), c.clone(), 0).unwrap();
    assert_eq!(s.label(), "measured:nvml-energy:gpu0");
    fake_clock.advance(1.0);
    *f.energy.lock().unwrap() = Ok(1_100_000);
    assert!((s.read().unwrap().joules - 100.0).abs() < 1e-9);
    fake_clock.advance(1.0);
    *f.energy.lock().unwrap() = Ok(50_000);
    let r = s.read().unwrap();
    assert_eq!(r.resets, 1);
    assert!((r.joules - 150.0).abs() < 1e-9, "{r:?}");

    // Stuck at zero: power is integrated instead, and said so.
    let f = FakeNvml::new(Ok(0), Ok(200_000));
    let mut s = nvml::open_with(Box::new(f), c.clone(), 0).unwrap();
    assert!(!s.uses_counter());
    assert_eq!(s.label(), "integrated:nvml-power:gpu0");
    fake_clock.advance(0.5);
    assert!((s.read().unwrap().joules - 100.0).abs() < 1e-9);

    // Not supported (pre-Volta): power.
    let f = FakeNvml::new(Err(NvmlFailure::NotSupported), Ok(50_000));
    assert!(
        !nvml::open_with(Box::new(f), clock.clone(), 0)
            .unwrap()
            .uses_counter()
    );

    // Neither: unavailable with the reason.
    let f = FakeNvml::new(Ok(0), Err(NvmlFailure::NotSupported));
    let u = nvml::open_with(Box::new(f), clock.clone(), 0)
        .err()
        .unwrap();
    assert!(u.reason.contains("stuck at zero"), "{u:?}");
    let f = FakeNvml::new(Ok(5), Ok(1));
    let u = nvml::open_with(Box::new(f), clock, 3).err().unwrap();
    assert!(u.reason.contains("GPU 3"), "{u:?}");
}

#[test]
fn nvml_counter_between_updates_is_filled_in_monotonically() {
    let fake_clock = FakeClock::default();
    let f = FakeNvml::new(Ok(1_000), Ok(100_000));
    let mut s = nvml::open_with(Box::new(f.clone()), Arc::new(fake_clock.clone()), 0).unwrap();
    // The counter has not moved after 50 ms: 100 W x 0.05 s stands in.
    fake_clock.advance(0.05);
    assert!((s.read().unwrap().joules - 5.0).abs() < 1e-9);
    // It moves by less than the fill-in: the value never goes back.
    fake_clock.advance(0.05);
    *f.energy.lock().unwrap() = Ok(4_000);
    assert!((s.read().unwrap().joules - 5.0).abs() < 1e-9);
}

#[test]
fn missing_nvml_library_is_a_clean_unavailable() {
    let e = nvml::RealNvml::open(Some(Path::new("/nonexistent/libnvidia-ml.so.1")))
        .err()
        .unwrap();
    assert!(e.contains("NVML could not be loaded"), "{e}");
    let rig = Rig::new();
    let p = probe(
        &rig.env("x"),
        &Settings {
            gpu: Some(0),
            ..Settings::default()
        },
    );
    let line = p.lines.iter().find(|l| l.source == nvml::ID).unwrap();
    let u = line.outcome.clone().unwrap_err();
    assert!(u.reason.contains("libnvidia-ml"), "{u:?}");
    assert!(u.enable.unwrap().contains("NVIDIA driver"));
}

#[test]
fn the_curve_at_its_points_and_between() {
    use estimate::curve;
    for (x, y) in [(0.0, 0.12), (0.1, 0.32), (0.5, 0.75), (1.0, 1.02)] {
        assert!((curve(x) - y).abs() < 1e-12, "{x}");
    }
    assert!((curve(0.3) - 0.535).abs() < 1e-12);
    assert!((curve(0.05) - 0.22).abs() < 1e-12);
    assert_eq!(curve(-1.0), 0.12);
    assert_eq!(curve(7.0), 1.02);
    assert_eq!(curve(f64::NAN), 0.12);
}

#[test]
fn tdp_comes_from_user_table_or_a_stated_default() {
    let cpu = |b: &str| CpuIdentity {
        brand: b.into(),
        logical_cpus: 2,
    };
    let t: Arc<dyn CpuTime> = Arc::new(FakeCpu(Arc::new(Mutex::new(Some(0.0)))));
    // This machine: the hypervisor shows only "AMD EPYC".
    let e = estimate::Estimator::new(&cpu("AMD EPYC"), None, t.clone()).unwrap();
    assert_eq!(e.tdp_source, estimate::TdpSource::Default);
    assert_eq!(e.tdp_watts, 8.0);
    assert_eq!(
        e.label(),
        "estimated:tdp-model(curve=teads,tdp=8W,tdp_source=default,util=rusage)"
    );
    let e =
        estimate::Estimator::new(&cpu("AMD EPYC 7763 64-Core Processor"), None, t.clone()).unwrap();
    assert_eq!(e.tdp_source, estimate::TdpSource::Table);
    assert!((e.tdp_watts - 280.0 * 2.0 / 128.0).abs() < 1e-9);
    assert!(e.tdp_reference.contains("2/128"), "{}", e.tdp_reference);
    let e = estimate::Estimator::new(
        &cpu("11th Gen Intel(R) Core(TM) i7-1165G7 @ 2.80GHz"),
        None,
        t.clone(),
    )
    .unwrap();
    assert!((e.tdp_watts - 28.0 * 2.0 / 8.0).abs() < 1e-9);
    assert_eq!(estimate::lookup("Apple M1 Pro").unwrap().watts, 30.0);
    assert!(estimate::lookup("Apple M10").is_none());
    let e = estimate::Estimator::new(&cpu("AMD EPYC"), Some(15.0), t).unwrap();
    assert_eq!(e.tdp_source, estimate::TdpSource::User);
    assert!(e.label().contains("tdp=15W,tdp_source=user"));
    let none: Arc<dyn CpuTime> = Arc::new(FakeCpu(Arc::new(Mutex::new(None))));
    assert!(estimate::Estimator::new(&cpu("x"), None, none).is_err());
}

fn meter(rig: &Rig, settings: &Settings) -> Meter {
    let env = rig.env("AMD EPYC");
    Meter::new(probe(&env, settings), &env)
}

#[test]
fn without_sensors_every_window_is_a_labelled_estimate() {
    let rig = Rig::new();
    let m = meter(&rig, &Settings::default());
    let a = m.mark();
    rig.clock.advance(2.0);
    rig.cpu.add(2.0); // one of two CPUs busy: load 0.5
    let b = m.mark();
    let w = m.window(&a, &b);
    assert_eq!(w.status, EnergyStatus::Estimated);
    assert!((w.joules.unwrap() - 8.0 * 0.75 * 2.0).abs() < 1e-9);
    assert_eq!(w.cpu_seconds, Some(2.0));
    assert!(m.label_of(&w.parts).starts_with("estimated:tdp-model("));
    assert!(m.unavailable().iter().any(|u| u.source == rapl::ID));

    // Proxies only when the estimate is not allowed.
    let m = meter(
        &rig,
        &Settings {
            sources: SourceChoice::Only(vec![rapl::ID.into()]),
            ..Settings::default()
        },
    );
    let a = m.mark();
    rig.clock.advance(1.0);
    let w = m.window(&a, &m.mark());
    assert_eq!((w.joules, w.status), (None, EnergyStatus::ProxyOnly));
    assert_eq!(w.cpu_seconds, Some(0.0));

    // The estimate is the CPU's only source and the CPU time vanishes: no joules, and a note, not a partial sum.
    let m = meter(&rig, &Settings::default());
    let a = m.mark();
    *rig.cpu.0.lock().unwrap() = None;
    rig.clock.advance(1.0);
    let w = m.window(&a, &m.mark());
    assert_eq!((w.joules, w.status), (None, EnergyStatus::ProxyOnly));
    assert!(
        w.notes[0].contains("CPU time could not be read"),
        "{:?}",
        w.notes
    );
}

#[test]
fn a_sensor_failing_mid_run_degrades_to_the_estimate_and_says_so() {
    let rig = Rig::new();
    rig.zone("intel-rapl:0", "package-0", 0, RANGE);
    let m = meter(&rig, &Settings::default());
    assert_eq!(m.components().len(), 2);
    let a = m.mark();
    rig.clock.advance(1.0);
    rig.set_uj("intel-rapl:0", 30_000_000);
    let b = m.mark();
    let w = m.window(&a, &b);
    assert_eq!(w.status, EnergyStatus::Measured);
    assert!((w.joules.unwrap() - 30.0).abs() < 1e-9);
    assert_eq!(m.label_of(&w.parts), "measured:rapl-powercap:package-0");

    let path = "/sys/class/powercap/intel-rapl:0/energy_uj";
    rig.fs.fail(path, ErrorKind::NotFound);
    rig.clock.advance(1.0);
    rig.cpu.add(2.0);
    let c = m.mark();
    let w = m.window(&b, &c);
    assert_eq!(w.status, EnergyStatus::Estimated);
    assert!((w.joules.unwrap() - 8.0 * 1.02).abs() < 1e-9);
    assert!(w.notes[0].contains("failed") && w.notes[0].contains("estimate stands in"));

    // Without the estimate, that window has no joules at all.
    let m2 = meter(
        &rig,
        &Settings {
            sources: SourceChoice::Only(vec![rapl::ID.into()]),
            ..Settings::default()
        },
    );
    let _ = m2; // opening fails now: the zone is unreadable
    rig.fs.heal(Path::new(path));
    let m2 = meter(
        &rig,
        &Settings {
            sources: SourceChoice::Only(vec![rapl::ID.into()]),
            ..Settings::default()
        },
    );
    let a = m2.mark();
    rig.fs.fail(path, ErrorKind::PermissionDenied);
    let w = m2.window(&a, &m2.mark());
    assert_eq!((w.joules, w.status), (None, EnergyStatus::ProxyOnly));
    assert!(w.notes[0].contains("no joules"));
}

#[test]
fn the_sampler_polls_sources_that_need_it() {
    struct Counting(Arc<AtomicUsize>);
    impl EnergySource for Counting {
        fn id(&self) -> &'static str {
            "counting"
        }
        fn provenance(&self) -> Provenance {
            Provenance::Measured
        }
        fn scope(&self) -> Scope {
            Scope::CpuPackage
        }
        fn domains(&self) -> Vec<String> {
            vec!["d".into()]
        }
        fn read(&mut self) -> Result<Reading, SourceError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(Reading {
                joules: 0.0,
                wraps: 0,
                resets: 0,
            })
        }
        fn poll_interval(&self) -> Option<Duration> {
            Some(Duration::from_millis(5))
        }
    }
    let rig = Rig::new();
    let reads = Arc::new(AtomicUsize::new(0));
    let probe = Probe {
        sources: vec![Box::new(Counting(reads.clone()))],
        estimate: None,
        lines: Vec::new(),
    };
    let m = Meter::new(probe, &rig.env("x"));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while reads.load(Ordering::SeqCst) < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        reads.load(Ordering::SeqCst) >= 3,
        "the sampler never polled"
    );
    drop(m); // stops and joins the thread
    let after = reads.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(
        reads.load(Ordering::SeqCst),
        after,
        "the sampler outlived its meter"
    );
}

#[test]
fn soc_sampler_integrates_without_gaps() {
    // A fake sampler that advances the fake clock by its interval and reports 10 W, then 20 W.
    struct Fake(FakeClock, Vec<f64>, Arc<AtomicUsize>);
    impl apple::SocSampler for Fake {
        fn sample(&mut self, ms: u32) -> Result<f64, String> {
            let i = self.2.fetch_add(1, Ordering::SeqCst);
            match self.1.get(i) {
                Some(w) => {
                    self.0.advance(f64::from(ms) / 1000.0);
                    Ok(*w)
                }
                None => Err("sampler stopped".into()),
            }
        }
    }
    let clock = FakeClock::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let (c2, n2) = (clock.clone(), calls.clone());
    let mut s = apple::SocEnergy::start(
        move || Ok(Box::new(Fake(c2, vec![10.0, 20.0], n2)) as _),
        Arc::new(clock.clone()),
        500,
        vec!["cpu".into()],
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while calls.load(Ordering::SeqCst) < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    // Two samples of 0.5 s: 5 J + 10 J; then the sampler failed, which the next read reports.
    let e = s.read().unwrap_err().to_string();
    assert!(e.contains("sampler stopped"), "{e}");
    assert_eq!(s.label(), "modeled:ioreport:cpu");
}

#[test]
fn idle_baseline_gives_mean_and_spread() {
    let rig = Rig::new();
    rig.zone("intel-rapl:0", "package-0", 0, RANGE);
    let m = meter(&rig, &Settings::default());
    let uj = Arc::new(Mutex::new(0u64));
    let b = m
        .idle_baseline_with(3.0, &|d| {
            rig.clock.advance(d.as_secs_f64());
            let mut u = uj.lock().unwrap();
            *u += 5_000_000; // 5 W
            rig.set_uj("intel-rapl:0", *u);
        })
        .unwrap();
    assert!(
        (b.watts - 5.0).abs() < 1e-9 && b.watts_stddev.abs() < 1e-9,
        "{b:?}"
    );
    assert_eq!(b.status, EnergyStatus::Measured);
    assert!(m.idle_baseline(0.0).is_none());
}

fn shape() -> ModelShape {
    ModelShape {
        non_embedding_params: 1_000,
        n_layer: 2,
        attention_width: 10,
        weight_bytes_per_token: 4_000,
    }
}

#[test]
fn flops_follow_kaplan() {
    // A 7B-class decoder: 6.5e9 non-embedding parameters, 32 layers of 4096, at 1000 positions ≈ 1.3e10.
    let s = ModelShape {
        non_embedding_params: 6_500_000_000,
        n_layer: 32,
        attention_width: 4096,
        weight_bytes_per_token: 0,
    };
    let f = s.flops_per_token(1000.0);
    assert!((f - (1.3e10 + 2.0 * 32.0 * 1000.0 * 4096.0)).abs() < 1.0);
    assert_eq!(shape().flops_per_token(0.0), 2_000.0);
}

/// Runs a small fake bench through the builder: 2 repetitions, one suite of 3 items (2 correct).
fn fake_run(rig: &Rig, m: &Meter, fail_midway: bool) -> meek_schema::RunEnergy {
    let baseline = m.idle_baseline_with(2.0, &|d| {
        rig.clock.advance(d.as_secs_f64());
        rig.cpu.add(0.0);
        bump(rig, 1.0 * d.as_secs_f64());
    });
    let mut b = RunEnergyBuilder::new(
        m,
        baseline,
        Some(Pricing {
            price_per_kwh: 0.36,
            currency: "USD".into(),
        }),
    );
    let mut reps = Vec::new();
    for i in 0..2 {
        let m0 = m.mark();
        rig.clock.advance(0.5);
        rig.cpu.add(1.0);
        bump(rig, 10.0);
        let m1 = m.mark();
        if fail_midway && i == 1 {
            rig.fs.fail(
                "/sys/class/powercap/intel-rapl:0/energy_uj",
                ErrorKind::NotFound,
            );
        }
        rig.clock.advance(1.0);
        rig.cpu.add(1.0);
        bump(rig, 20.0);
        let m2 = m.mark();
        reps.push((m.window(&m0, &m1), m.window(&m1, &m2)));
    }
    let p = b.point(100, 11, &reps, &shape());
    let mut items = Vec::new();
    for ok in [true, false, true] {
        let a = m.mark();
        rig.clock.advance(1.0);
        rig.cpu.add(1.0);
        bump(rig, 6.0);
        items.push((Some(m.window(&a, &m.mark())), ok));
    }
    items.push((None, false));
    let s = b.suite(&items);
    let run = b.finish(&shape());
    // Every level of the record, serialised.
    for v in [
        serde_json::to_value(&p).unwrap(),
        serde_json::to_value(&s).unwrap(),
    ] {
        check_contract(&v, "record");
    }
    run
}

fn bump(rig: &Rig, joules: f64) {
    let p = rig
        .dir
        .path()
        .join("sys/class/powercap/intel-rapl:0/energy_uj");
    if let Ok(t) = fs_err::read_to_string(&p) {
        let v: u64 = t.trim().parse().unwrap();
        fs_err::write(&p, (v + (joules * 1e6) as u64).to_string()).unwrap();
    }
}

/// The contract: any object with a joules figure carries a non-empty label, and its status is `estimated`
/// whenever its label names an estimate.
fn check_contract(v: &serde_json::Value, at: &str) {
    match v {
        serde_json::Value::Object(o) => {
            let has_joules = o
                .iter()
                .any(|(k, x)| k.contains("joules") && !x.is_null() && k != "joules_per_kwh");
            let label = o.get("label").and_then(|l| l.as_str());
            if has_joules && o.contains_key("status") {
                let label = label.unwrap_or("");
                assert!(!label.is_empty(), "{at}: joules without a label: {v}");
                let status = o["status"].as_str().unwrap();
                if label.split('+').any(|p| p.starts_with("estimated:")) {
                    assert_eq!(status, "estimated", "{at}: an estimate labelled {status}");
                }
                assert_ne!(status, "proxy-only", "{at}: proxy-only with joules");
            }
            if let Some(c) = o.get("components").and_then(|c| c.as_array())
                && c.iter().any(|c| c["provenance"] == "estimated")
            {
                assert_eq!(o["status"], "estimated", "{at}: estimated component");
            }
            for (k, x) in o {
                check_contract(x, &format!("{at}.{k}"));
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                check_contract(x, &format!("{at}[{i}]"));
            }
        }
        _ => {}
    }
}

#[test]
fn run_records_keep_the_contract_measured_estimated_degraded() {
    // Measured: RAPL works throughout.
    let rig = Rig::new();
    rig.zone("intel-rapl:0", "package-0", 0, RANGE);
    let m = meter(&rig, &Settings::default());
    let r = fake_run(&rig, &m, false);
    check_contract(&serde_json::to_value(&r).unwrap(), "measured");
    assert_eq!(r.status, EnergyStatus::Measured);
    assert_eq!(r.label, "measured:rapl-powercap:package-0");
    assert_eq!(r.joules_per_prefill_token, Some(0.1)); // 10 J / 100 tokens
    assert_eq!(r.joules_per_decode_token, Some(2.0)); // 20 J / 10 tokens
    let base = r.baseline.as_ref().unwrap();
    assert!((base.watts - 1.0).abs() < 1e-9);
    // Net decode: (20 J - 1 W x 1 s) / 10 tokens.
    assert!((r.net_joules_per_decode_token.unwrap() - 1.9).abs() < 1e-9);
    assert!((r.joules_per_answer.unwrap() - 6.0 * 3.0 / 4.0).abs() < 1e-9);
    assert!((r.joules_per_correct_answer.unwrap() - 9.0).abs() < 1e-9);
    let cost = r.cost.as_ref().unwrap();
    // 2 J x 1e6 tokens = 2 MJ = 0.556 kWh at 0.36/kWh = 0.2.
    assert!((cost.per_million_decode_tokens.unwrap() - 0.2).abs() < 1e-9);
    assert!((cost.per_correct_answer.unwrap() - 9.0 / 3.6e6 * 0.36).abs() < 1e-15);
    assert_eq!(r.proxies.cpu_seconds_per_decode_token, Some(0.1));
    assert_eq!(r.proxies.weight_bytes_per_token, 4_000);
    assert_eq!(r.scope, ["cpu-package"]);
    assert!(r.excludes.contains(&"dram-chips".to_string()));

    // Estimated: no sensor at all.
    let rig = Rig::new();
    let m = meter(&rig, &Settings::default());
    let r = fake_run(&rig, &m, false);
    check_contract(&serde_json::to_value(&r).unwrap(), "estimated");
    assert_eq!(r.status, EnergyStatus::Estimated);
    assert!(r.label.starts_with("estimated:tdp-model("));
    assert!(r.estimate.is_some() && !r.unavailable.is_empty());
    // Decode: 1 CPU-s in 1 s on 2 CPUs = load 0.5: 0.75 x 8 W = 6 J over 10 tokens.
    assert!((r.joules_per_decode_token.unwrap() - 0.6).abs() < 1e-9);

    // Degraded: RAPL disappears in the second repetition; the run becomes estimated, with a note.
    let rig = Rig::new();
    rig.zone("intel-rapl:0", "package-0", 0, RANGE);
    let m = meter(&rig, &Settings::default());
    let r = fake_run(&rig, &m, true);
    check_contract(&serde_json::to_value(&r).unwrap(), "degraded");
    assert_eq!(r.status, EnergyStatus::Estimated);
    assert!(r.label.contains("measured:rapl-powercap") && r.label.contains("estimated:"));
    assert!(r.notes.iter().any(|n| n.contains("estimate stands in")));
    assert!(r.proxies.cpu_seconds_per_decode_token.is_some());

    // Proxy-only: no joules anywhere, the proxies stay.
    let rig = Rig::new();
    let m = meter(
        &rig,
        &Settings {
            sources: SourceChoice::Only(vec![]),
            ..Settings::default()
        },
    );
    let r = fake_run(&rig, &m, false);
    check_contract(&serde_json::to_value(&r).unwrap(), "proxy-only");
    assert_eq!(r.status, EnergyStatus::ProxyOnly);
    assert_eq!(r.label, "proxy-only");
    assert!(r.joules.is_none() && r.cost.is_none() && r.joules_per_decode_token.is_none());
    assert_eq!(r.proxies.flops_per_token, 2_000.0);
}

#[test]
fn source_ids_are_all_listed() {
    for id in [
        rapl::ID,
        perf::ID,
        hwmon::ENERGY_ID,
        hwmon::POWER_ID,
        nvml::ID,
        apple::ID,
        estimate::ID,
    ] {
        assert!(SOURCE_IDS.contains(&id));
    }
}

/// On a machine with readable RAPL: `cargo test -p meek-energy -- --ignored real_rapl`.
#[test]
#[ignore = "needs readable RAPL (bare metal, root or a chmod/udev rule)"]
fn real_rapl_reads_plausible_package_power() {
    let env = Env::system(CpuIdentity {
        brand: "unknown".into(),
        logical_cpus: 1,
    });
    let mut s = rapl::open(&env).expect("RAPL must be readable for this test");
    let a = s.read().unwrap();
    let t = std::time::Instant::now();
    let mut x = 0u64;
    while t.elapsed() < Duration::from_secs(2) {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
    }
    std::hint::black_box(x);
    let b = s.read().unwrap();
    let watts = (b.joules - a.joules) / t.elapsed().as_secs_f64();
    assert!(
        (0.5..1000.0).contains(&watts),
        "{watts} W from {}",
        s.label()
    );
}

/// On a machine with an NVIDIA GPU: `cargo test -p meek-energy -- --ignored real_nvml`.
#[test]
#[ignore = "needs an NVIDIA GPU and driver"]
fn real_nvml_reads_plausible_board_power() {
    let env = Env::system(CpuIdentity {
        brand: "unknown".into(),
        logical_cpus: 1,
    });
    let mut s = nvml::open(&env, 0).expect("NVML and GPU 0 must be present for this test");
    let a = s.read().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let b = s.read().unwrap();
    // An idle board still draws power: tens of watts on data-centre parts, a few on laptops.
    let watts = (b.joules - a.joules) / 2.0;
    assert!(
        (1.0..1500.0).contains(&watts),
        "{watts} W from {}",
        s.label()
    );
}
