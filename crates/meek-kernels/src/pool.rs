//! A thread pool for the kernels that keeps working when the machine is busy.
//!
//! A barrier pool (Candle's, and llama.cpp's threads) ends every parallel region only when each of its threads has
//! checked in, so one thread descheduled by a neighbour process stalls every multiply of every token until the
//! scheduler runs it again, and the threads that wait spin on their cores, where the late thread could have run.
//! On two cores with one busy neighbour, two such threads run slower than one.
//!
//! Here a region is a set of chunks that any thread may claim ([`Pool::run`]): the calling thread claims too, a
//! worker that has not joined when the chunks run out is not waited for, and only chunks already claimed are. The
//! caller waits by spinning briefly and then blocking, which frees its core for the thread it waits for (an idle
//! core pulls runnable threads to itself). Idle workers spin briefly and then park. Claims carry the region's
//! generation, so a late worker can never take a chunk of a region other than the one it read.
//!
//! That is not enough when the pool has every core and a neighbour takes one: Linux's balancer then leaves two of
//! the three runnable threads on one core (measured on a 2-vCPU guest: the pool's two threads shared a core in 11
//! of 13 samples), and two threads run a multiply no faster than one, or slower when one of them is descheduled
//! holding a chunk. So the pool reads what other processes use ([`crate::load`]) and, while its threads and theirs
//! want more CPUs than this process may run on, runs each short region on as many threads as the others leave free (at
//! least the caller); the workers left out park rather than spin. A long region (a prompt's multiply, whose last
//! call at the same site, [`Parallel::run_site`], took [`LONG`] or more, its time scaled to every thread) still runs
//! on every thread: its many chunks let the threads that run take a stalled one's share, and the threads together
//! get more of the machine than the caller alone (measured at 1B: prompt 120-128 tokens/s on two threads, 115-119
//! on the free one). A control group's CPU quota ([`crate::quota`]) limits every region, long ones too, to the
//! threads it gives (rounded): it caps the time of all the threads together, so threads beyond it only spin it
//! away and stall at the end of each period (measured at 1B with a quota of one CPU on two: two threads decoded at
//! 0.7 of one thread's speed before). [`Pool::counts`] says how many regions ran on fewer threads.

use std::any::Any;
use std::cell::Cell;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::Parallel;
use crate::load::{CpuRoom, Sampler};

/// How long an idle worker spins for the next region before it parks.
const WORKER_SPIN: Duration = Duration::from_micros(100);
/// How long the caller spins for claimed chunks to finish before it blocks.
const CALLER_SPIN: Duration = Duration::from_micros(20);
/// Chunks per thread in a region: enough that a late thread's share is taken by the others, few enough that
/// claiming costs little.
const CHUNKS_PER_THREAD: usize = 8;
/// A region this long at its site's last call (on every thread, or its time scaled to every thread) runs on every
/// thread even when the machine is contended.
pub(crate) const LONG: Duration = Duration::from_millis(2);
/// Sites remembered at most (a model has a few hundred; past this the table starts again, every site short).
const SITES: usize = 4096;
/// CPUs beyond those this process may run on that the pool's threads (as many as the quota gives) and other
/// processes together must want for the machine to count as contended (a quiet machine's daemons use a few
/// hundredths of a CPU).
const CONTENDED: f64 = 0.25;

type Work = dyn Fn(Range<usize>) + Sync;

thread_local! {
    static IN_POOL: Cell<bool> = const { Cell::new(false) };
}

struct Shared {
    /// `generation << 32 | next chunk`: a claim is a compare-and-swap of the generation it read.
    claim: AtomicU64,
    /// Chunks of the current region finished.
    done: AtomicUsize,
    chunks: AtomicUsize,
    chunk: AtomicUsize,
    n: AtomicUsize,
    /// The region's work, `*const Work` boxed as a thin pointer (valid while its chunks run).
    work: AtomicPtr<&'static Work>,
    /// The first panic of a chunk, resumed in the caller.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    /// The caller blocks here until the last claimed chunk is done (it re-checks `done`: a wake-up is only a hint).
    finished: Mutex<()>,
    finished_cv: Condvar,
    caller_blocked: AtomicBool,
    /// Workers parked (each its own flag), woken by the next region.
    parked: Vec<AtomicBool>,
    /// Workers that join regions (those from this index on park instead: other processes hold their CPUs).
    active: AtomicUsize,
    stop: AtomicBool,
}

/// The state of the calls: one region at a time, its generation and the counts.
struct Calls {
    generation: u32,
    counts: Counts,
    /// Each site's last call, in nanoseconds as if on every thread.
    sites: HashMap<u64, u64>,
    /// What other processes use.
    others: Others,
}

/// Where the pool learns what other processes use.
enum Others {
    /// The system does not say: every region runs on every thread.
    Unknown,
    /// The kernel's counters, read by a thread of their own ([`crate::load`]).
    System(Sampler),
    /// A fixed reading, for tests.
    #[cfg(test)]
    Fixed(CpuRoom),
}

impl Others {
    /// CPUs the other processes use, the CPUs this process may run on and its quota, where known.
    fn read(&self) -> Option<CpuRoom> {
        match self {
            Self::Unknown => None,
            Self::System(s) => Some(s.read()),
            #[cfg(test)]
            Self::Fixed(room) => Some(*room),
        }
    }
}

/// The regions a pool has run that more than one thread could have run ([`Pool::counts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub regions: u64,
    /// Of those, run while other processes used CPUs the pool's threads needed.
    pub contended: u64,
    /// Of those, run on fewer threads than the pool has: other processes held the others' CPUs, or the pool has
    /// more threads than the CPUs this process may run on or its control group's CPU quota gives.
    pub reduced: u64,
}

/// A pool of `threads - 1` workers and the calling thread.
pub struct Pool {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
    call: Mutex<Calls>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("threads", &(self.handles.len() + 1))
            .finish()
    }
}

impl Shared {
    /// Claims and runs chunks of generation `gen` until none is left; returns how many it ran.
    fn work_on(&self, generation: u32) -> usize {
        let mut ran = 0;
        loop {
            let cur = self.claim.load(Ordering::Acquire);
            let (g, next) = ((cur >> 32) as u32, (cur & 0xffff_ffff) as usize);
            if g != generation || next >= self.chunks.load(Ordering::Acquire) {
                return ran;
            }
            if self
                .claim
                .compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                continue;
            }
            // The claim holds the region open: its caller waits for this chunk, so the work and sizes are live.
            let (n, chunk) = (
                self.n.load(Ordering::Acquire),
                self.chunk.load(Ordering::Acquire),
            );
            let start = next * chunk;
            let range = start..n.min(start + chunk);
            let work = self.work.load(Ordering::Acquire);
            // SAFETY: `work` points at the caller's `&Work`, alive until every claimed chunk is done (see above).
            let f: &Work = unsafe { *work };
            if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(range))) {
                self.panic
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert(p);
            }
            ran += 1;
            // Sequentially consistent with the caller's `caller_blocked` store and `done` load: one of the two
            // sees the other, so the last chunk's finisher wakes a blocked caller.
            if self.done.fetch_add(1, Ordering::SeqCst) + 1 == self.chunks.load(Ordering::Acquire)
                && self.caller_blocked.load(Ordering::SeqCst)
            {
                let _held = self.finished.lock().unwrap_or_else(|e| e.into_inner());
                self.finished_cv.notify_one();
            }
        }
    }
}

fn worker(shared: Arc<Shared>, index: usize) {
    IN_POOL.with(|f| f.set(true));
    let mut seen = 0u32;
    loop {
        let since = Instant::now();
        let generation = loop {
            let g = (shared.claim.load(Ordering::Acquire) >> 32) as u32;
            if g != seen {
                break g;
            }
            if shared.stop.load(Ordering::Acquire) {
                return;
            }
            if since.elapsed() < WORKER_SPIN && index < shared.active.load(Ordering::Relaxed) {
                std::hint::spin_loop();
                continue;
            }
            shared.parked[index].store(true, Ordering::SeqCst);
            // Re-check after announcing the park: a region published in between unparks this thread (a token that
            // makes `park` return at once).
            if (shared.claim.load(Ordering::SeqCst) >> 32) as u32 == seen
                && !shared.stop.load(Ordering::Acquire)
            {
                std::thread::park_timeout(Duration::from_millis(100));
            }
            shared.parked[index].store(false, Ordering::Release);
        };
        seen = generation;
        // Left out of this region (published with it): park until a region wants this thread again.
        if index < shared.active.load(Ordering::Acquire) {
            shared.work_on(generation);
        }
    }
}

impl Pool {
    /// A pool running regions on `threads` threads: the caller and `threads - 1` workers.
    pub fn new(threads: usize) -> Self {
        let workers = threads.max(1) - 1;
        let shared = Arc::new(Shared {
            claim: AtomicU64::new(0),
            done: AtomicUsize::new(0),
            chunks: AtomicUsize::new(0),
            chunk: AtomicUsize::new(1),
            n: AtomicUsize::new(0),
            work: AtomicPtr::new(std::ptr::null_mut()),
            panic: Mutex::new(None),
            finished: Mutex::new(()),
            finished_cv: Condvar::new(),
            caller_blocked: AtomicBool::new(false),
            parked: (0..workers).map(|_| AtomicBool::new(false)).collect(),
            active: AtomicUsize::new(workers),
            stop: AtomicBool::new(false),
        });
        let handles: Vec<JoinHandle<()>> = (0..workers)
            .map(|i| {
                let s = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("meek-pool-{i}"))
                    .spawn(move || worker(s, i))
                    .expect("spawning a kernel pool thread")
            })
            .collect();
        Self {
            shared,
            handles,
            call: Mutex::new(Calls {
                generation: 0,
                counts: Counts::default(),
                sites: HashMap::new(),
                others: match workers {
                    0 => Others::Unknown,
                    _ => Sampler::start().map_or(Others::Unknown, Others::System),
                },
            }),
        }
    }

    /// Threads that run a region, the caller's included.
    pub fn threads(&self) -> usize {
        self.handles.len() + 1
    }

    /// The regions run so far that more than one thread could have run, and how many of them while other
    /// processes used CPUs the threads needed, and on fewer threads.
    pub fn counts(&self) -> Counts {
        self.call.lock().unwrap_or_else(|e| e.into_inner()).counts
    }
}

impl Calls {
    /// Records a site's call that began at `start` and ran on `used` of `threads`, as its time on every thread
    /// (so that a site does not turn long because it ran on fewer, and short again on all).
    fn remember(&mut self, site: Option<u64>, start: Instant, used: usize, threads: usize) {
        let Some(site) = site else { return };
        if self.sites.len() >= SITES && !self.sites.contains_key(&site) {
            self.sites.clear();
        }
        let ns = start.elapsed().as_nanos().saturating_mul(used as u128) / threads.max(1) as u128;
        self.sites
            .insert(site, u64::try_from(ns).unwrap_or(u64::MAX));
    }

    /// Threads for the next region, of `threads` ([`CpuRoom::plan`]). Counts the region.
    fn threads_now(&mut self, threads: usize, long: bool) -> usize {
        self.counts.regions += 1;
        let Some(room) = self.others.read() else {
            return threads;
        };
        let (free, contended) = room.plan(threads, long);
        self.counts.contended += u64::from(contended);
        self.counts.reduced += u64::from(free < threads);
        free
    }
}

impl CpuRoom {
    /// How many of `threads` a region runs on, and whether other processes contend it: as many as the quota gives
    /// (rounded, at least one; all where there is none), and of those, while they and other processes want more
    /// CPUs than this process may run on and the region is not `long`, as many as the others leave free (rounded),
    /// at least one. Threads beyond the CPUs or the quota with nobody else about are the pool's own excess, not
    /// contention.
    pub fn plan(&self, threads: usize, long: bool) -> (usize, bool) {
        let (cpus, wanted) = (self.cpus as f64, threads as f64);
        // A quota caps the time of all threads together, so no region gains from more threads than it gives.
        let given = self.quota.round().max(1.0).min(wanted);
        let beyond_cpus = given + self.load > cpus + CONTENDED;
        let room = if long || !beyond_cpus {
            given
        } else {
            (cpus - self.load).round().max(1.0).min(given)
        };
        // `room` is at most `given`, at most `threads`.
        (room as usize, beyond_cpus && self.load > CONTENDED)
    }
}

impl Parallel for Pool {
    fn run(&self, n: usize, f: &(dyn Fn(Range<usize>) + Sync)) {
        self.run_at(None, n, f);
    }

    fn run_site(&self, site: u64, n: usize, f: &(dyn Fn(Range<usize>) + Sync)) {
        self.run_at(Some(site), n, f);
    }
}

impl Pool {
    /// Runs `f` over `0..n`, timing the call where it has a site.
    fn run_at(&self, site: Option<u64>, n: usize, f: &(dyn Fn(Range<usize>) + Sync)) {
        if n == 0 {
            return;
        }
        // One thread, a region inside a region (from a worker), or a single item: inline.
        if self.handles.is_empty() || n == 1 || IN_POOL.with(|c| c.get()) {
            f(0..n);
            return;
        }
        let mut calls = self.call.lock().unwrap_or_else(|e| e.into_inner());
        let long = site
            .and_then(|k| calls.sites.get(&k))
            .is_some_and(|&ns| ns >= LONG.as_nanos() as u64);
        let threads = calls.threads_now(self.threads(), long);
        let start = Instant::now();
        if threads == 1 {
            // The caller alone: no region to publish, and the workers park.
            self.shared.active.store(0, Ordering::Relaxed);
            IN_POOL.with(|c| c.set(true));
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(0..n)));
            IN_POOL.with(|c| c.set(false));
            calls.remember(site, start, 1, self.threads());
            drop(calls);
            if let Err(p) = r {
                std::panic::resume_unwind(p);
            }
            return;
        }
        calls.generation = calls.generation.wrapping_add(1);
        let g = calls.generation;
        let s = &*self.shared;
        s.active.store(threads - 1, Ordering::Release);
        let chunks = n.min(threads * CHUNKS_PER_THREAD);
        let chunk = n.div_ceil(chunks);
        let chunks = n.div_ceil(chunk);
        // SAFETY (of the lifetime): workers dereference `work` only under a claim of generation `g`, and this call
        // returns only when every claimed chunk of `g` is done; the next generation republishes it.
        let f_static: &'static Work =
            unsafe { std::mem::transmute::<&(dyn Fn(Range<usize>) + Sync + '_), &'static Work>(f) };
        let mut slot: &'static Work = f_static;
        s.work
            .store(&mut slot as *mut &'static Work, Ordering::Release);
        s.n.store(n, Ordering::Release);
        s.chunk.store(chunk, Ordering::Release);
        s.chunks.store(chunks, Ordering::Release);
        s.done.store(0, Ordering::Release);
        s.caller_blocked.store(false, Ordering::Release);
        // Sequentially consistent with a parking worker's flag store and generation load: either it sees this
        // region, or this sees it parked and wakes it.
        s.claim.store(u64::from(g) << 32, Ordering::SeqCst);
        for (h, parked) in self.handles.iter().zip(&s.parked).take(threads - 1) {
            if parked.load(Ordering::SeqCst) {
                h.thread().unpark();
            }
        }
        IN_POOL.with(|c| c.set(true));
        s.work_on(g);
        IN_POOL.with(|c| c.set(false));
        // Close the region to late workers, then wait for the chunks already claimed.
        s.claim
            .store((u64::from(g) << 32) | 0xffff_ffff, Ordering::Release);
        let since = Instant::now();
        while s.done.load(Ordering::Acquire) < chunks {
            if since.elapsed() < CALLER_SPIN {
                std::hint::spin_loop();
                continue;
            }
            let mut held = s.finished.lock().unwrap_or_else(|e| e.into_inner());
            s.caller_blocked.store(true, Ordering::SeqCst);
            while s.done.load(Ordering::SeqCst) < chunks {
                held = s
                    .finished_cv
                    .wait_timeout(held, Duration::from_millis(1))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        calls.remember(site, start, threads, self.threads());
        drop(calls);
        if let Some(p) = s.panic.lock().unwrap_or_else(|e| e.into_inner()).take() {
            std::panic::resume_unwind(p);
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        for h in &self.handles {
            h.thread().unpark();
        }
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn every_item_runs_once_on_any_number_of_threads() {
        for threads in [1, 2, 3, 5] {
            let pool = Pool::new(threads);
            for n in [0, 1, 2, 7, 64, 1000] {
                let hits: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(0)).collect();
                for _ in 0..50 {
                    pool.run(n, &|r: Range<usize>| {
                        for i in r {
                            hits[i].fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
                assert!(
                    hits.iter().all(|h| h.load(Ordering::Relaxed) == 50),
                    "{threads} threads, {n} items"
                );
            }
        }
    }

    #[test]
    fn a_region_inside_a_region_runs_inline() {
        let pool = Pool::new(2);
        let total = AtomicUsize::new(0);
        pool.run(4, &|r: Range<usize>| {
            for _ in r {
                pool.run(3, &|inner: Range<usize>| {
                    total.fetch_add(inner.len(), Ordering::Relaxed);
                });
            }
        });
        assert_eq!(total.load(Ordering::Relaxed), 12);
    }

    #[test]
    fn a_panic_in_a_chunk_reaches_the_caller_and_the_pool_goes_on() {
        let pool = Pool::new(3);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.run(100, &|r: Range<usize>| {
                if r.contains(&57) {
                    panic!("chunk 57");
                }
            })
        }));
        assert!(r.is_err());
        let count = AtomicUsize::new(0);
        pool.run(100, &|r: Range<usize>| {
            count.fetch_add(r.len(), Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 100);
    }

    /// A pool that sees `load` CPUs of `cpus` used by other processes.
    fn beside(threads: usize, load: f64, cpus: usize) -> Pool {
        limited(threads, load, cpus, f64::INFINITY)
    }

    /// The same, with a CPU quota of `quota` CPUs.
    fn limited(threads: usize, load: f64, cpus: usize, quota: f64) -> Pool {
        let pool = Pool::new(threads);
        pool.call.lock().unwrap().others = Others::Fixed(CpuRoom { load, cpus, quota });
        pool
    }

    /// Runs `n` items, each recording the thread that ran it; returns how many threads took part.
    fn threads_used(pool: &Pool, site: Option<u64>, n: usize, each: Duration) -> usize {
        let ids = Mutex::new(std::collections::HashSet::new());
        let hits: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(0)).collect();
        let f = |r: Range<usize>| {
            ids.lock().unwrap().insert(std::thread::current().id());
            for i in r {
                hits[i].fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(each);
            }
        };
        match site {
            Some(site) => pool.run_site(site, n, &f),
            None => pool.run(n, &f),
        }
        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        ids.into_inner().unwrap().len()
    }

    #[test]
    fn a_busy_machine_runs_short_regions_on_the_cpus_left_free() {
        // Two CPUs, one taken by another process: the caller alone, the worker never called.
        let pool = beside(2, 1.0, 2);
        for _ in 0..20 {
            assert_eq!(threads_used(&pool, None, 64, Duration::ZERO), 1);
        }
        assert_eq!(
            pool.counts(),
            Counts {
                regions: 20,
                contended: 20,
                reduced: 20
            }
        );
        // Eight CPUs, five taken: three of the four threads.
        let pool = beside(4, 5.0, 8);
        threads_used(&pool, None, 64, Duration::ZERO);
        assert_eq!(pool.shared.active.load(Ordering::Relaxed), 2);
        // A light neighbour (a tenth of a CPU) leaves a quiet machine's pool as it is.
        let pool = beside(2, 0.1, 2);
        threads_used(&pool, None, 64, Duration::ZERO);
        assert_eq!(pool.counts().contended, 0);
        assert_eq!(pool.shared.active.load(Ordering::Relaxed), 1);
        // Four threads on two quiet CPUs: two, and no neighbour to blame.
        let pool = beside(4, 0.0, 2);
        threads_used(&pool, None, 64, Duration::ZERO);
        assert_eq!(pool.shared.active.load(Ordering::Relaxed), 1);
        assert_eq!(
            pool.counts(),
            Counts {
                regions: 1,
                contended: 0,
                reduced: 1
            }
        );
    }

    #[test]
    fn a_cpu_quota_runs_short_regions_on_the_time_it_gives() {
        // Two quiet CPUs and a quota of one: the caller alone, reduced and not contended.
        let pool = limited(2, 0.0, 2, 1.0);
        assert_eq!(threads_used(&pool, None, 64, Duration::ZERO), 1);
        let one = Counts {
            regions: 1,
            contended: 0,
            reduced: 1,
        };
        assert_eq!(pool.counts(), one);
        // A quota of three CPUs on eight, four threads: three of them.
        let pool = limited(4, 0.0, 8, 3.0);
        threads_used(&pool, None, 64, Duration::ZERO);
        assert_eq!(pool.shared.active.load(Ordering::Relaxed), 2);
        // A quota above the threads leaves them all; the tighter of quota and neighbour wins.
        let pool = limited(2, 0.0, 2, 2.0);
        threads_used(&pool, None, 64, Duration::ZERO);
        assert_eq!(pool.counts().reduced, 0);
        let pool = limited(4, 1.0, 8, 2.0);
        threads_used(&pool, None, 64, Duration::ZERO);
        assert_eq!(pool.shared.active.load(Ordering::Relaxed), 1);
        assert_eq!(pool.counts().contended, 0, "the CPUs had room");
        // Threads the quota gives that have their CPUs are no neighbour's concern.
        let pool = limited(8, 1.0, 8, 2.0);
        threads_used(&pool, None, 64, Duration::ZERO);
        assert_eq!(pool.counts().contended, 0);
        assert_eq!(pool.shared.active.load(Ordering::Relaxed), 1);
        // A quota of 1.5 gives two threads (rounded): a long region beside a busy process keeps both.
        let pool = limited(2, 1.0, 2, 1.5);
        threads_used(&pool, Some(5), 16, LONG / 4);
        assert_eq!(threads_used(&pool, Some(5), 16, LONG / 4), 2);
        // Long regions too: the quota caps the threads' time together.
        let pool = limited(2, 0.0, 2, 1.0);
        threads_used(&pool, Some(3), 16, LONG / 4);
        assert_eq!(threads_used(&pool, Some(3), 16, LONG / 4), 1);
        assert_eq!(pool.counts().reduced, 2);
    }

    #[test]
    fn a_long_site_keeps_every_thread_on_a_busy_machine() {
        let pool = beside(2, 1.0, 2);
        // The site's first call is not known to be long: on the caller alone, 8 ms (4 ms on both threads).
        assert_eq!(threads_used(&pool, Some(7), 16, LONG / 4), 1);
        let before = pool.counts();
        threads_used(&pool, Some(7), 16, LONG / 4);
        let after = pool.counts();
        assert_eq!(after.contended - before.contended, 1);
        assert_eq!(
            after.reduced, before.reduced,
            "the second call ran on every thread"
        );
        // Another site, and the same matrices by another number of tokens, start short.
        threads_used(&pool, Some(7 ^ (1 << 48)), 16, Duration::ZERO);
        assert_eq!(pool.counts().reduced, before.reduced + 1);
    }

    /// Regions run back to back after the workers parked (the wake-up path), and long ones meanwhile.
    #[test]
    fn parked_workers_wake_for_the_next_region() {
        let pool = Pool::new(2);
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(2));
            let count = AtomicUsize::new(0);
            pool.run(1000, &|r: Range<usize>| {
                count.fetch_add(r.len(), Ordering::Relaxed);
            });
            assert_eq!(count.load(Ordering::Relaxed), 1000);
        }
    }
}
