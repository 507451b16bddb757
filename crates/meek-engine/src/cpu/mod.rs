//! meekbench's own CPU path: quantized kernels and model forward passes on plain buffers.
//!
//! Candle's CPU backend computes Q4_1 dot products with scalar code, has no blocked multiply for quantized prefill
//! without AVX512-VNNI, and allocates a tensor per operation, which for a 135M-parameter model costs more than the
//! arithmetic. This module keeps the weights in their GGUF block format, quantizes activations once per multiply
//! ([`quant`]), runs every multiply and the attention on Candle's persistent spinning thread pool
//! (`candle_core::utils::barrier_pool`, sized by `CANDLE_NUM_THREADS`), and reuses preallocated buffers and a
//! preallocated KV cache across tokens. Models whose tensors it cannot handle fall back to candle-transformers.

pub mod decoder;
pub mod quant;

use quant::{Format, KernelPath, Q8Block, QK};

/// A weight matrix in a GGUF block format, `rows` x `cols`, row-major.
#[derive(Debug, Clone)]
pub struct QMat {
    /// Block format.
    pub fmt: Format,
    /// Output features.
    pub rows: usize,
    /// Input features (a multiple of the format's block).
    pub cols: usize,
    data: Vec<u8>,
}

impl QMat {
    /// Wraps raw GGUF bytes, checking the size.
    pub fn new(fmt: Format, rows: usize, cols: usize, data: Vec<u8>) -> Result<Self, String> {
        let per = fmt.block_elems();
        if !cols.is_multiple_of(per) {
            return Err(format!(
                "{cols} columns is not a multiple of {per} ({fmt:?} blocks)"
            ));
        }
        let want = rows * cols / per * fmt.block_bytes();
        if data.len() != want {
            return Err(format!(
                "{} bytes for a {rows}x{cols} {fmt:?} matrix, expected {want}",
                data.len()
            ));
        }
        Ok(Self {
            fmt,
            rows,
            cols,
            data,
        })
    }

    /// The bytes of row `r`.
    #[inline]
    pub fn row(&self, r: usize) -> &[u8] {
        let rb = self.cols / self.fmt.block_elems() * self.fmt.block_bytes();
        &self.data[r * rb..(r + 1) * rb]
    }

    /// Bytes of the whole matrix (what one multiply reads from memory).
    pub fn bytes(&self) -> usize {
        self.data.len()
    }
}

/// A pointer shared by worker threads that write disjoint elements.
#[derive(Clone, Copy)]
struct Shared(*mut f32);
// SAFETY: every user writes only indices no other thread touches during the same parallel call.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

impl Shared {
    /// # Safety
    /// `i` is in bounds of the buffer and written by this thread alone.
    #[inline]
    unsafe fn write(self, i: usize, v: f32) {
        // SAFETY: guaranteed by the caller.
        unsafe { *self.0.add(i) = v }
    }
}

/// Runs `f` over `0..n` split across the pool's threads.
pub fn parallel(n: usize, f: impl Fn(std::ops::Range<usize>) + Sync) {
    candle_core::utils::barrier_pool().execute_chunked(n, f);
}

/// `out[t][r] = W[r] · x[t]` for `n` quantized activation rows `xq` (`n * cols / 32` blocks); `out` is `n * rows`.
pub fn matmul(path: KernelPath, w: &QMat, xq: &[Q8Block], n: usize, out: &mut [f32]) {
    matmul_many(path, &mut [(w, out)], xq, n);
}

/// Weight rows per tile of the prefill loop (16 rows of 2048 Q8_0 columns are 34 KiB).
const ROW_TILE: usize = 16;

/// Several multiplies of the same activations (e.g. the query, key and value projections) in one parallel call,
/// so the threads meet once instead of once per matrix.
pub fn matmul_many(path: KernelPath, jobs: &mut [(&QMat, &mut [f32])], xq: &[Q8Block], n: usize) {
    let mut offsets = Vec::with_capacity(jobs.len() + 1);
    offsets.push(0);
    for (w, out) in jobs.iter() {
        assert_eq!(xq.len(), n * w.cols / QK);
        assert_eq!(out.len(), n * w.rows);
        offsets.push(offsets.last().copied().unwrap_or(0) + w.rows);
    }
    let targets: Vec<(&QMat, Shared)> = jobs
        .iter_mut()
        .map(|(w, out)| (*w, Shared(out.as_mut_ptr())))
        .collect();
    let total = offsets[jobs.len()];
    parallel(total, |range| {
        let mut g = range.start;
        while g < range.end {
            // The matrix holding global row `g`, and the part of the range inside it.
            let j = offsets.partition_point(|&o| o <= g) - 1;
            let end = range.end.min(offsets[j + 1]);
            let (w, dst) = targets[j];
            let bpr = w.cols / QK;
            let x = |t: usize| &xq[t * bpr..(t + 1) * bpr];
            // Rows in tiles of ROW_TILE, and within a tile every group of four activation rows against each row:
            // the tile's weights and the group's activations both stay in L1, instead of every row streaming all
            // `n` activation rows from L2 (for a long prompt they exceed L1 many times over).
            let (first, last) = (g - offsets[j], end - offsets[j]);
            for tile in (first..last).step_by(ROW_TILE) {
                let rows = tile..last.min(tile + ROW_TILE);
                let mut t = 0;
                // SAFETY (writes): each (matrix, row) belongs to one thread; t * rows + r < n * rows of that matrix.
                while t + 4 <= n {
                    let xs = [x(t), x(t + 1), x(t + 2), x(t + 3)];
                    for r in rows.clone() {
                        let v = quant::dot4(path, w.fmt, w.row(r), xs);
                        for (k, v) in v.into_iter().enumerate() {
                            unsafe { dst.write((t + k) * w.rows + r, v) };
                        }
                    }
                    t += 4;
                }
                for t in t..n {
                    for r in rows.clone() {
                        unsafe {
                            dst.write(t * w.rows + r, quant::dot(path, w.fmt, w.row(r), x(t)))
                        };
                    }
                }
            }
            g = end;
        }
    });
}
