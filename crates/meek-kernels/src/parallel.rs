//! The hook through which the multiplies run in parallel: the kernels split their work into ranges and hand them to
//! a pool they do not own, so that the caller's persistent pool (in meekbench, [`crate::Pool`] or Candle's barrier
//! pool, which also runs the engine's attention) does all the work and no second pool competes with it for cores.

use std::ops::Range;

/// Runs work over `0..n` in ranges, on however many threads the implementation has.
pub trait Parallel: Sync {
    /// Calls `f` on disjoint ranges that together cover `0..n`, possibly at the same time on several threads, and
    /// returns when every call has. Called once per multiply; `f` is called once per chunk of the range.
    fn run(&self, n: usize, f: &(dyn Fn(Range<usize>) + Sync));

    /// [`Parallel::run`] for work that recurs at about the same cost under the same `site` (a multiply of the same
    /// matrices by as many activation rows, once per token), so that a pool may plan a call by the site's last one
    /// ([`crate::Pool`] keeps a long region on every thread when the machine is busy). The default ignores it.
    fn run_site(&self, site: u64, n: usize, f: &(dyn Fn(Range<usize>) + Sync)) {
        let _ = site;
        self.run(n, f);
    }
}

/// No parallelism: the whole range in one call on the calling thread (for tests and tools without a pool).
#[derive(Debug, Clone, Copy, Default)]
pub struct Serial;

impl Parallel for Serial {
    fn run(&self, n: usize, f: &(dyn Fn(Range<usize>) + Sync)) {
        if n > 0 {
            f(0..n);
        }
    }
}
