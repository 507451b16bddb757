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

use std::any::Any;
use std::cell::Cell;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::Parallel;

/// How long an idle worker spins for the next region before it parks.
const WORKER_SPIN: Duration = Duration::from_micros(100);
/// How long the caller spins for claimed chunks to finish before it blocks.
const CALLER_SPIN: Duration = Duration::from_micros(20);
/// Chunks per thread in a region: enough that a late thread's share is taken by the others, few enough that
/// claiming costs little.
const CHUNKS_PER_THREAD: usize = 8;

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
    stop: AtomicBool,
}

/// A pool of `threads - 1` workers and the calling thread.
pub struct Pool {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
    /// One region at a time, and its generation.
    call: Mutex<u32>,
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
            if since.elapsed() < WORKER_SPIN {
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
        shared.work_on(generation);
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
            call: Mutex::new(0),
        }
    }

    /// Threads that run a region, the caller's included.
    pub fn threads(&self) -> usize {
        self.handles.len() + 1
    }
}

impl Parallel for Pool {
    fn run(&self, n: usize, f: &(dyn Fn(Range<usize>) + Sync)) {
        if n == 0 {
            return;
        }
        // One thread, a region inside a region (from a worker), or a single item: inline.
        if self.handles.is_empty() || n == 1 || IN_POOL.with(|c| c.get()) {
            f(0..n);
            return;
        }
        let mut generation = self.call.lock().unwrap_or_else(|e| e.into_inner());
        *generation = generation.wrapping_add(1);
        let g = *generation;
        let s = &*self.shared;
        let chunks = n.min(self.threads() * CHUNKS_PER_THREAD);
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
        for (h, parked) in self.handles.iter().zip(&s.parked) {
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
        drop(generation);
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
