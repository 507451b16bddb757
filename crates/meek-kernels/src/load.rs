//! How many CPUs the rest of the machine is using, from the kernel's own counters, so that the pool knows
//! whether its threads have the cores they were sized for ([`crate::Pool`] runs short regions on the CPUs left free
//! while they do not).
//!
//! The pool cannot learn this from its own regions: when it steps back to fewer threads the contention it would
//! see vanishes, and on a quiet machine a region that looks slow (workers waking from a park) is not a neighbour
//! (tried: deciding per multiply from the regions' own times sent 65-80% of SmolLM2's regions to one thread on a
//! quiet machine). What other processes use does not depend on the pool, so it is read from the machine's busy
//! time (`/proc/stat`, steal included, for a virtual machine's host takes CPUs too) less this process's own
//! (`/proc/self/stat`), over windows of [`WINDOW`]. Only the CPUs this process may run on count (its affinity,
//! `Cpus_allowed_list` in `/proc/self/status`, as `taskset` or a container's cpuset sets it): a neighbour on CPUs the
//! pool cannot use takes nothing from it. Without `/proc` (not Linux) there is no reading, and the pool runs every
//! region on every thread. A thread of its own ([`Sampler`]) reads the counters, so no region waits on `/proc`,
//! and every [`REFRESH`] reads the affinity list and the control group's CPU quota ([`crate::quota`]) again, for
//! either may change while a bench runs (`taskset -a -p`, `docker update --cpus`).

use fs_err::File;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the counters are read (they count in ticks of 10 ms, so a window holds 10 per CPU).
pub(crate) const WINDOW: Duration = Duration::from_millis(100);

/// How often the affinity list and the CPU quota are read again.
pub(crate) const REFRESH: Duration = Duration::from_secs(1);

/// What other processes and the control group leave this process's threads, as last read (by the pool, or by
/// [`cpu_room`] for `meekbench doctor`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuRoom {
    /// CPUs other processes use, of those this process may run on.
    pub load: f64,
    /// CPUs this process may run on.
    pub cpus: usize,
    /// CPUs' worth of time the control group of this process allows the processes in it (`f64::INFINITY`: no
    /// limit).
    pub quota: f64,
}

/// Reads what other processes use over `over` (at least one [`WINDOW`]) and the limits, as the pool would;
/// `None` without the kernel's counters (not Linux).
pub fn cpu_room(over: Duration) -> Option<CpuRoom> {
    let mut nb = Neighbours::open()?;
    std::thread::sleep(over.max(WINDOW));
    let (cpus, after) = nb.sample()?;
    Some(CpuRoom {
        load: others(nb.last, after, cpus)?,
        cpus,
        quota: nb.quota,
    })
}

/// The machine's CPU time counters at one moment, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Ticks {
    /// Every CPU's time, idle included (all CPUs together).
    pub total: u64,
    /// Every CPU's time not idle (user, nice, system, interrupts, steal).
    pub busy: u64,
    /// This process's time (user and system, all its threads).
    pub own: u64,
}

/// Reads the CPUs other processes use.
pub(crate) struct Neighbours {
    stat: File,
    own: File,
    /// The CPUs this process may run on, by number (`None`: every CPU).
    allowed: Option<Vec<bool>>,
    cpus: usize,
    /// The control group's quota in CPUs (`f64::INFINITY`: none), and its reader (`None`: no mount table).
    quota: f64,
    quotas: Option<crate::quota::Quota>,
    buf: Vec<u8>,
    last: Ticks,
    at: Instant,
    /// When the affinity list and the quota were last read.
    refreshed: Instant,
    /// CPUs the other processes used, smoothed over the last windows.
    load: f64,
}

impl Neighbours {
    /// Opens the counters; `None` where the system has none.
    pub(crate) fn open() -> Option<Self> {
        let mut stat = File::open("/proc/stat").ok()?;
        let mut own = File::open("/proc/self/stat").ok()?;
        let mut buf = Vec::new();
        let allowed = read_allowed();
        let (cpus, last) = read(&mut stat, &mut own, allowed.as_deref(), &mut buf)?;
        let quotas = crate::quota::Quota::open();
        Some(Self {
            stat,
            own,
            allowed,
            cpus,
            quota: quota_of(quotas.as_ref()),
            quotas,
            buf,
            last,
            at: Instant::now(),
            refreshed: Instant::now(),
            load: 0.0,
        })
    }

    /// The counters now, over the CPUs of the affinity list as last read.
    fn sample(&mut self) -> Option<(usize, Ticks)> {
        let allowed = self.allowed.as_deref();
        read(&mut self.stat, &mut self.own, allowed, &mut self.buf)
    }

    /// The last readings.
    pub(crate) fn room(&self) -> CpuRoom {
        CpuRoom {
            load: self.load,
            cpus: self.cpus,
            quota: self.quota,
        }
    }

    /// CPUs the other processes used over the last windows, read again once [`WINDOW`] has passed since the last
    /// reading (a call within a window costs a clock comparison).
    pub(crate) fn load(&mut self, now: Instant) -> f64 {
        if now.saturating_duration_since(self.at) < WINDOW {
            return self.load;
        }
        self.at = now;
        // The previous set of CPUs, where this window reads another: the last reading summed the old set's lines,
        // so this one only starts the new set's counting.
        let mut moved = None;
        if now.saturating_duration_since(self.refreshed) >= REFRESH {
            self.refreshed = now;
            self.quota = quota_of(self.quotas.as_ref());
            let allowed = read_allowed();
            if allowed != self.allowed {
                moved = Some(std::mem::replace(&mut self.allowed, allowed));
            }
        }
        match self.sample() {
            Some((cpus, ticks)) => {
                if moved.is_some() {
                    self.load = self.load.min(cpus as f64);
                } else if let Some(used) = others(self.last, ticks, cpus) {
                    // Half of each new window: a neighbour that starts is seen within two windows.
                    self.load += (used - self.load) / 2.0;
                }
                self.cpus = cpus;
                self.last = ticks;
            }
            // The last reading is still the old set's: the next refresh tries the new one again.
            None => {
                if let Some(old) = moved {
                    self.allowed = old;
                }
            }
        }
        self.load
    }
}

/// The quota in CPUs, `f64::INFINITY` where none limits this process or none can be read.
fn quota_of(quotas: Option<&crate::quota::Quota>) -> f64 {
    quotas.and_then(|q| q.read()).unwrap_or(f64::INFINITY)
}

/// The affinity list (`None`: unreadable, every CPU counts).
fn read_allowed() -> Option<Vec<bool>> {
    fs_err::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| parse_allowed(&t))
}

/// Reads both counter files from their start (as bytes: a process's name may be any bytes).
fn read(
    stat: &mut File,
    own: &mut File,
    allowed: Option<&[bool]>,
    buf: &mut Vec<u8>,
) -> Option<(usize, Ticks)> {
    buf.clear();
    stat.seek(SeekFrom::Start(0)).ok()?;
    stat.read_to_end(buf).ok()?;
    let (cpus, total, busy) = parse_stat(&String::from_utf8_lossy(buf), allowed)?;
    buf.clear();
    own.seek(SeekFrom::Start(0)).ok()?;
    own.read_to_end(buf).ok()?;
    let own = parse_own(&String::from_utf8_lossy(buf))?;
    Some((cpus, Ticks { total, busy, own }))
}

/// The last reading of [`Neighbours`], published by the sampler thread.
struct Published {
    /// CPUs the others use, as `f64` bits.
    load: AtomicU64,
    cpus: AtomicUsize,
    /// The quota in CPUs, as `f64` bits.
    quota: AtomicU64,
    stop: AtomicBool,
}

impl Published {
    fn store(&self, room: CpuRoom) {
        self.load.store(room.load.to_bits(), Ordering::Relaxed);
        self.cpus.store(room.cpus, Ordering::Relaxed);
        self.quota.store(room.quota.to_bits(), Ordering::Relaxed);
    }
}

/// A thread that reads [`Neighbours`] every [`WINDOW`], so that no region waits on `/proc` (reading `/proc/stat`
/// costs more the more CPUs and interrupts a machine has): a region reads three atomics. Stopped when dropped.
pub(crate) struct Sampler {
    published: Arc<Published>,
    handle: Option<JoinHandle<()>>,
}

impl Sampler {
    /// Starts reading; `None` where the system has no counters or no thread can start.
    pub(crate) fn start() -> Option<Self> {
        let mut nb = Neighbours::open()?;
        let published = Arc::new(Published {
            load: AtomicU64::new(0),
            cpus: AtomicUsize::new(0),
            quota: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        published.store(nb.room());
        let p = Arc::clone(&published);
        let handle = std::thread::Builder::new()
            .name("meek-load".into())
            .spawn(move || {
                while !p.stop.load(Ordering::Acquire) {
                    std::thread::park_timeout(WINDOW);
                    nb.load(Instant::now());
                    p.store(nb.room());
                }
            })
            .ok()?;
        Some(Self {
            published,
            handle: Some(handle),
        })
    }

    /// The room as last read (each field on its own: a region may see one reading's load beside the next's
    /// CPUs, which is as good as either).
    pub(crate) fn read(&self) -> CpuRoom {
        let p = &self.published;
        CpuRoom {
            load: f64::from_bits(p.load.load(Ordering::Relaxed)),
            cpus: p.cpus.load(Ordering::Relaxed),
            quota: f64::from_bits(p.quota.load(Ordering::Relaxed)),
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.published.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}

/// The CPUs other processes used between two readings: the machine's busy time less this process's, as a share
/// of all CPUs' time, times the CPUs. `None` when no time passed or a counter went back.
pub(crate) fn others(before: Ticks, after: Ticks, cpus: usize) -> Option<f64> {
    let total = after.total.checked_sub(before.total)?;
    let busy = after.busy.checked_sub(before.busy)?;
    let own = after.own.checked_sub(before.own)?;
    if total == 0 {
        return None;
    }
    Some(busy.saturating_sub(own) as f64 / total as f64 * cpus as f64)
}

/// `/proc/stat`: the CPUs counted and their total and busy ticks; with `allowed`, the sum of those CPUs' own
/// `cpuN` lines, else the first line's (every CPU) and the count of `cpuN` lines.
pub(crate) fn parse_stat(text: &str, allowed: Option<&[bool]>) -> Option<(usize, u64, u64)> {
    let mut lines = text.lines();
    let all = ticks(lines.next()?.strip_prefix("cpu ")?)?;
    let (mut cpus, mut total, mut busy) = (0usize, 0u64, 0u64);
    for line in lines {
        let Some((n, rest)) = line
            .strip_prefix("cpu")
            .and_then(|r| r.split_once(' '))
            .and_then(|(n, rest)| Some((n.parse::<usize>().ok()?, rest)))
        else {
            continue;
        };
        let Some(allowed) = allowed else {
            cpus += 1;
            continue;
        };
        if allowed.get(n).copied().unwrap_or(false) {
            let (t, b) = ticks(rest)?;
            cpus += 1;
            total = total.checked_add(t)?;
            busy = busy.checked_add(b)?;
        }
    }
    if allowed.is_none() {
        (total, busy) = all;
    }
    (cpus > 0).then_some((cpus, total, busy))
}

/// One `cpu` line's fields: user nice system idle iowait irq softirq steal (guest time is already in user), as
/// total and busy (all but idle and iowait) ticks.
fn ticks(fields: &str) -> Option<(u64, u64)> {
    let f: Vec<u64> = fields
        .split_whitespace()
        .take(8)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    if f.len() < 8 {
        return None;
    }
    let total = f.iter().try_fold(0u64, |a, &v| a.checked_add(v))?;
    let busy = total.checked_sub(f[3])?.checked_sub(f[4])?;
    Some((total, busy))
}

/// Most CPUs an affinity list may name (a larger one is not believed).
const MAX_CPUS: usize = 1 << 16;

/// `/proc/self/status`: the CPUs of `Cpus_allowed_list` (`0-3,8`), as a mask by CPU number.
pub(crate) fn parse_allowed(status: &str) -> Option<Vec<bool>> {
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?
        .trim();
    let mut mask = Vec::new();
    for part in list.split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<usize>().ok()?, b.parse::<usize>().ok()?),
            None => {
                let a = part.parse::<usize>().ok()?;
                (a, a)
            }
        };
        if a > b || b >= MAX_CPUS {
            return None;
        }
        if mask.len() <= b {
            mask.resize(b + 1, false);
        }
        mask[a..=b].fill(true);
    }
    mask.contains(&true).then_some(mask)
}

/// `/proc/self/stat`: this process's user and system ticks (fields 14 and 15; the command name before them is in
/// parentheses and may hold spaces).
pub(crate) fn parse_own(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    let user: u64 = f.next()?.parse().ok()?;
    let system: u64 = f.next()?.parse().ok()?;
    user.checked_add(system)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counters_parse() {
        let stat = "cpu  100 5 50 800 10 3 2 30 7 0\ncpu0 50 2 25 400 5 1 1 15 3 0\ncpu1 50 3 25 400 5 2 1 15 4 0\nintr 1 2\n";
        // total = 100+5+50+800+10+3+2+30; busy = total - idle - iowait.
        assert_eq!(parse_stat(stat, None), Some((2, 1000, 190)));
        // Only CPU 1 allowed: its own line (total 501, busy 501 - 400 - 5).
        let one = [false, true];
        assert_eq!(parse_stat(stat, Some(&one)), Some((1, 501, 96)));
        assert_eq!(
            parse_stat(stat, Some(&[false, false, true])),
            None,
            "no allowed CPU"
        );
        assert_eq!(parse_stat("cpu  1 2 3\ncpu0 1 2 3\n", None), None);
        assert_eq!(
            parse_stat("cpu  1 1 1 1 1 1 1 1\ncpu0 1 2 3\n", Some(&[true])),
            None
        );
        assert_eq!(parse_stat("intr 1\n", None), None);
        assert_eq!(
            parse_stat("cpu  1 1 1 1 1 1 1 1\n", None),
            None,
            "no CPU lines"
        );
        let own = "4242 (meek bench) (x) R 1 2 3 4 5 6 7 8 9 10 120 34 0 0 20 0 3 0 5 6 7";
        assert_eq!(parse_own(own), Some(154));
        assert_eq!(parse_own("4242 (meek"), None);
        assert_eq!(parse_own("1 (a) R 1 2"), None);
    }

    #[test]
    fn the_affinity_list_parses() {
        let status = "Name:\tmeekbench\nCpus_allowed:\t1d\nCpus_allowed_list:\t0,2-4\n";
        assert_eq!(
            parse_allowed(status),
            Some(vec![true, false, true, true, true])
        );
        assert_eq!(
            parse_allowed("Cpus_allowed_list:\t3-1\n"),
            None,
            "backwards"
        );
        assert_eq!(
            parse_allowed("Cpus_allowed_list:\t0-99999999999\n"),
            None,
            "too many"
        );
        assert_eq!(parse_allowed("Cpus_allowed_list:\t\n"), None);
        assert_eq!(parse_allowed("Name:\tx\n"), None);
    }

    #[test]
    fn other_processes_are_the_busy_time_not_ours() {
        let a = Ticks {
            total: 1000,
            busy: 100,
            own: 50,
        };
        // 200 ticks of two CPUs: 150 busy, 50 of them ours, so one CPU's worth is someone else's.
        let b = Ticks {
            total: 1200,
            busy: 250,
            own: 100,
        };
        assert_eq!(others(a, b, 2), Some(1.0));
        assert_eq!(others(a, a, 2), None, "no time passed");
        assert_eq!(others(b, a, 2), None, "counters went back");
    }

    #[test]
    fn the_machine_reads_where_it_has_counters() {
        if let Some(mut n) = Neighbours::open() {
            assert!(n.room().cpus >= 1);
            let load = n.load(Instant::now() + WINDOW);
            assert!((0.0..=n.room().cpus as f64).contains(&load), "{load}");
            // A refresh (a second later) reads the same set and goes on counting.
            let later = n.load(Instant::now() + REFRESH + WINDOW);
            assert!((0.0..=n.room().cpus as f64).contains(&later), "{later}");
        }
        if let Some(r) = cpu_room(WINDOW) {
            assert!(
                r.cpus >= 1 && (0.0..=r.cpus as f64).contains(&r.load),
                "{r:?}"
            );
        }
        if let Some(s) = Sampler::start() {
            std::thread::sleep(WINDOW * 2);
            let r = s.read();
            assert!(
                r.cpus >= 1 && (0.0..=r.cpus as f64).contains(&r.load) && r.quota > 0.0,
                "{r:?}"
            );
        }
    }
}
