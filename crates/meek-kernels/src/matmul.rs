//! The matrix multiplies: a weight matrix in its block format ([`QMat`]), as in the file or repacked into groups of
//! eight interleaved rows, its activations quantized once for every format that reads them ([`QActs`]), and the
//! loops that share the weight rows out over a [`Parallel`] pool and walk them in tiles that keep weights and
//! activations in L1.

use crate::interleave::{X8_ROWS, dequantize_x8, interleave, interleaves, x8_bytes};
use crate::{Format, KernelPath, Parallel, Q8Block, Q8KBlock, QK, QK_K};

/// How a [`QMat`]'s bytes are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// GGUF's: one row after another.
    Rows,
    /// Groups of eight interleaved rows, for the kernels of one [`KernelPath`] (see [`QMat::interleaved`]).
    X8,
}

/// A weight matrix in a GGUF block format, `rows` x `cols`: row-major as in the file, or repacked for the kernels
/// ([`QMat::interleaved`]).
#[derive(Debug, Clone)]
pub struct QMat {
    /// Block format.
    pub fmt: Format,
    /// Output features.
    pub rows: usize,
    /// Input features (a multiple of the format's block).
    pub cols: usize,
    layout: Layout,
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
            layout: Layout::Rows,
            data,
        })
    }

    /// The matrix in the layout whose kernels are fastest on `path`: with a multiple of eight rows, in groups of
    /// eight interleaved rows where the path has kernels for them ([`interleaves`]); anything else as it is. Rows
    /// are then read through [`QMat::dequantize_row`], and the matrix is multiplied on the same `path` (Q8_0
    /// interleaves only for the paths with `vpdpbusd`; another path's kernel refuses it).
    pub fn interleaved(self, path: KernelPath) -> Self {
        if !interleaves(self.fmt, path)
            || self.layout != Layout::Rows
            || !self.rows.is_multiple_of(X8_ROWS)
        {
            return self;
        }
        let data = interleave(self.fmt, &self.data, self.rows, self.cols);
        Self {
            layout: Layout::X8,
            data,
            ..self
        }
    }

    /// The layout of the bytes.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The bytes of row `r` (of a matrix in GGUF's row layout).
    #[inline]
    pub fn row(&self, r: usize) -> &[u8] {
        self.rows_bytes(r..r + 1)
    }

    /// The bytes of consecutive rows (of a matrix in GGUF's row layout).
    #[inline]
    pub fn rows_bytes(&self, rows: std::ops::Range<usize>) -> &[u8] {
        assert_eq!(self.layout, Layout::Rows, "rows of an interleaved matrix");
        let rb = self.row_bytes();
        &self.data[rows.start * rb..rows.end * rb]
    }

    /// The bytes of interleaved group `g` (rows `8 g..8 g + 8`).
    #[inline]
    fn group(&self, g: usize) -> &[u8] {
        let gb = self.cols / self.fmt.block_elems() * x8_bytes(self.fmt);
        &self.data[g * gb..(g + 1) * gb]
    }

    /// Row `r` dequantized into `out` (`cols` long), in either layout (an embedding lookup).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        assert!(r < self.rows && out.len() == self.cols);
        match self.layout {
            Layout::Rows => crate::dequantize_row(self.fmt, self.row(r), out),
            Layout::X8 => dequantize_x8(self.fmt, self.group(r / X8_ROWS), r % X8_ROWS, out),
        }
    }

    /// Bytes per row in GGUF's layout.
    #[inline]
    pub fn row_bytes(&self) -> usize {
        self.cols / self.fmt.block_elems() * self.fmt.block_bytes()
    }

    /// Bytes of the whole matrix (what one multiply reads from memory).
    pub fn bytes(&self) -> usize {
        self.data.len()
    }
}

/// A pointer shared by worker threads that write disjoint elements (the multiplies' outputs, and callers' own
/// parallel loops such as attention).
#[derive(Clone, Copy)]
pub struct Shared(*mut f32);
// SAFETY: every user writes only indices no other thread touches during the same parallel call.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

impl Shared {
    /// Shares `buf` for writing; the buffer must outlive every write.
    #[inline]
    pub fn new(buf: &mut [f32]) -> Self {
        Self(buf.as_mut_ptr())
    }

    /// # Safety
    /// `i` is in bounds of the buffer and written by this thread alone.
    #[inline]
    pub unsafe fn write(self, i: usize, v: f32) {
        // SAFETY: guaranteed by the caller.
        unsafe { *self.0.add(i) = v }
    }
}

/// Activation rows quantized for the weight formats that read them: 32-element [`Q8Block`]s for Q4_0 to Q8_0,
/// 256-element [`Q8KBlock`]s for the K-quants (each once, whatever the number of matrices). Reused across calls.
#[derive(Debug, Default, Clone)]
pub struct QActs {
    n: usize,
    cols: usize,
    q8: Vec<Q8Block>,
    q8k: Vec<Q8KBlock>,
}

impl QActs {
    /// Quantizes the rows of `x` (`cols` wide) for every format in `formats`.
    pub fn quantize(&mut self, x: &[f32], cols: usize, formats: &[Format]) {
        assert!(cols > 0 && x.len().is_multiple_of(cols));
        let n = x.len() / cols;
        (self.n, self.cols) = (n, cols);
        self.q8.clear();
        self.q8k.clear();
        if formats.iter().any(|f| !f.is_k()) {
            quantize_rows(x, cols, QK, &mut self.q8, crate::quantize_row);
        }
        if formats.iter().any(|f| f.is_k()) {
            quantize_rows(x, cols, QK_K, &mut self.q8k, crate::quantize_row_k);
        }
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.n
    }

    /// The blocks of activation row `t`, in the block type `B` of the formats that read it.
    #[inline]
    fn row<B: Blocks>(&self, t: usize) -> &[B] {
        let per = self.cols / B::ELEMS;
        &B::all(self)[t * per..(t + 1) * per]
    }

    /// Checks that `w` can read these activations.
    fn check(&self, w: &QMat) {
        assert_eq!(w.cols, self.cols, "activation width against matrix columns");
        let have = if w.fmt.is_k() {
            self.q8k.len() * QK_K
        } else {
            self.q8.len() * QK
        };
        assert_eq!(
            have,
            self.n * self.cols,
            "activations not quantized for {:?}",
            w.fmt
        );
    }
}

/// An activation block type and where [`QActs`] keeps the rows quantized to it.
trait Blocks: Sized {
    /// Values per block.
    const ELEMS: usize;
    /// Every row's blocks, one row after another.
    fn all(xq: &QActs) -> &[Self];
}

impl Blocks for Q8Block {
    const ELEMS: usize = QK;
    fn all(xq: &QActs) -> &[Self] {
        &xq.q8
    }
}

impl Blocks for Q8KBlock {
    const ELEMS: usize = QK_K;
    fn all(xq: &QActs) -> &[Self] {
        &xq.q8k
    }
}

/// Quantizes each row of `cols` values of `x` into `out` (emptied), `cols / elems` blocks a row, with
/// `quantize_row`.
fn quantize_rows<B: Copy + Default>(
    x: &[f32],
    cols: usize,
    elems: usize,
    out: &mut Vec<B>,
    quantize_row: fn(&[f32], &mut [B]),
) {
    assert!(
        cols.is_multiple_of(elems),
        "{cols} columns is not a multiple of {elems}"
    );
    out.resize(x.len() / cols * cols / elems, B::default());
    for (row, o) in x.chunks_exact(cols).zip(out.chunks_exact_mut(cols / elems)) {
        quantize_row(row, o);
    }
}

/// `out[t][r] = W[r] · x[t]` for the quantized activation rows `xq`; `out` is `xq.rows() * w.rows`. The rows are
/// shared out over `pool`.
pub fn matmul(pool: &dyn Parallel, path: KernelPath, w: &QMat, xq: &QActs, out: &mut [f32]) {
    matmul_many(pool, path, &mut [(w, out)], xq);
}

/// Weight rows per tile of the prefill loop (16 rows of 2048 Q8_0 columns are 34 KiB).
const ROW_TILE: usize = 16;

/// Several multiplies of the same activations (e.g. the query, key and value projections) in one parallel call,
/// so the threads meet once instead of once per matrix.
pub fn matmul_many(
    pool: &dyn Parallel,
    path: KernelPath,
    jobs: &mut [(&QMat, &mut [f32])],
    xq: &QActs,
) {
    let n = xq.n;
    let mut offsets = Vec::with_capacity(jobs.len() + 1);
    offsets.push(0);
    for (w, out) in jobs.iter() {
        xq.check(w);
        assert_eq!(out.len(), n * w.rows);
        offsets.push(offsets.last().copied().unwrap_or(0) + w.rows);
    }
    let targets: Vec<(&QMat, Shared)> = jobs
        .iter_mut()
        .map(|(w, out)| (*w, Shared::new(out)))
        .collect();
    let total = offsets[jobs.len()];
    // The pool's ranges in groups of eight rows where every matrix allows, so no interleaved group is split.
    let unit = if jobs.iter().all(|(w, _)| w.rows.is_multiple_of(X8_ROWS)) {
        X8_ROWS
    } else {
        1
    };
    // The same matrices by as many activation rows cost about the same each time: one site.
    let site = jobs.first().map_or(0, |(w, _)| w.data.as_ptr() as u64) ^ ((n as u64) << 48);
    pool.run_site(site, total / unit, &|range| {
        let range = range.start * unit..range.end * unit;
        let mut g = range.start;
        while g < range.end {
            // The matrix holding global row `g`, and the part of the range inside it.
            let j = offsets.partition_point(|&o| o <= g) - 1;
            let end = range.end.min(offsets[j + 1]);
            let (w, dst) = targets[j];
            let (first, last) = (g - offsets[j], end - offsets[j]);
            let rows = first..last;
            match (w.layout, w.fmt.is_k()) {
                (Layout::X8, true) => groups_x8::<Q8KBlock>(path, w, xq, rows, dst),
                (Layout::X8, false) => groups_x8::<Q8Block>(path, w, xq, rows, dst),
                // A token or three (decode): four weight rows walked together, the next ones prefetched.
                (Layout::Rows, true) if n < 4 && path != KernelPath::Portable => {
                    tiles_k1(path, w, xq, rows, dst)
                }
                (Layout::Rows, true) => tiles(
                    n,
                    rows,
                    dst,
                    w.rows,
                    |t: usize| xq.row::<Q8KBlock>(t),
                    |r, x| crate::dot4_k(path, w.fmt, w.row(r), x),
                    |r, x| crate::dot_k(path, w.fmt, w.row(r), x),
                ),
                // A token or three (decode): four weight rows per call still share the activation loads and the
                // scale conversions (1.7x to 2x the one-row product on a 1024 x 2048 matrix).
                (Layout::Rows, false) if n < 4 && path != KernelPath::Portable => {
                    tiles_32::<1>(path, w, xq, rows, dst)
                }
                (Layout::Rows, false) if crate::tile_acts(path) == 4 => {
                    tiles_32::<4>(path, w, xq, rows, dst)
                }
                (Layout::Rows, false) => tiles(
                    n,
                    rows,
                    dst,
                    w.rows,
                    |t: usize| xq.row::<Q8Block>(t),
                    |r, x| crate::dot4(path, w.fmt, w.row(r), x),
                    |r, x| crate::dot(path, w.fmt, w.row(r), x),
                ),
            }
            g = end;
        }
    });
}

/// The prefill loop over weight rows `rows` of one matrix (`stride` rows in all) and `n` activation rows: rows in
/// tiles of [`ROW_TILE`], and within a tile every group of four activation rows (then single ones) against each
/// weight row, so the tile's weights and the group's activations both stay in L1 instead of every weight row
/// streaming all `n` activation rows from L2 (for a long prompt they exceed L1 many times over).
#[inline]
fn tiles<'a, B: 'a>(
    n: usize,
    rows: std::ops::Range<usize>,
    dst: Shared,
    stride: usize,
    x: impl Fn(usize) -> &'a [B],
    dot4: impl Fn(usize, [&'a [B]; 4]) -> [f32; 4],
    dot: impl Fn(usize, &'a [B]) -> f32,
) {
    for tile in rows.clone().step_by(ROW_TILE) {
        let tile = tile..rows.end.min(tile + ROW_TILE);
        let mut t = 0;
        // SAFETY (writes): each (matrix, row) belongs to one thread; t * stride + r < n * stride.
        while t + 4 <= n {
            for r in tile.clone() {
                let v = dot4(r, [x(t), x(t + 1), x(t + 2), x(t + 3)]);
                for (k, v) in v.into_iter().enumerate() {
                    unsafe { dst.write((t + k) * stride + r, v) };
                }
            }
            t += 4;
        }
        for t in t..n {
            for r in tile.clone() {
                unsafe { dst.write(t * stride + r, dot(r, x(t))) };
            }
        }
    }
}

/// The loop over the interleaved groups holding weight rows `rows` of `w`: each group against the activation rows
/// in tiles of [`tile_acts_x8`](crate::tile_acts_x8), then one at a time. A group only partly inside `rows` is
/// computed whole and only its rows inside are written (the pool's ranges are in groups wherever it can be).
#[inline]
fn groups_x8<B: crate::X8Acts + Blocks>(
    path: KernelPath,
    w: &QMat,
    xq: &QActs,
    rows: std::ops::Range<usize>,
    dst: Shared,
) {
    let (n, x) = (xq.n, |t: usize| xq.row::<B>(t));
    let stride = w.rows;
    let tile = crate::tile_acts_x8(path);
    for g in rows.start / X8_ROWS..rows.end.div_ceil(X8_ROWS) {
        let group = w.group(g);
        let r0 = g * X8_ROWS;
        let keep = rows.start.max(r0)..rows.end.min(r0 + X8_ROWS);
        // SAFETY (writes): each (matrix, row) belongs to one thread; t * stride + r < n * stride.
        let put = |t: usize, v: [f32; X8_ROWS]| {
            for r in keep.clone() {
                unsafe { dst.write(t * stride + r, v[r - r0]) };
            }
        };
        let mut t = 0;
        if tile == 4 {
            while t + 4 <= n {
                let v =
                    crate::dot_x8::<B, 4>(path, w.fmt, group, std::array::from_fn(|k| x(t + k)));
                v.into_iter().enumerate().for_each(|(k, v)| put(t + k, v));
                t += 4;
            }
        }
        while t + 2 <= n {
            let v = crate::dot_x8(path, w.fmt, group, [x(t), x(t + 1)]);
            v.into_iter().enumerate().for_each(|(k, v)| put(t + k, v));
            t += 2;
        }
        if t < n {
            put(t, crate::dot_x8(path, w.fmt, group, [x(t)])[0]);
        }
    }
}

/// The decode loop of the K-quant formats: each activation row against weight rows four at a time
/// ([`tile_k`](crate::tile_k)) in tiles of [`ROW_TILE`], leftover rows one product at a time.
#[inline]
fn tiles_k1(path: KernelPath, w: &QMat, xq: &QActs, rows: std::ops::Range<usize>, dst: Shared) {
    let (n, x) = (xq.n, |t: usize| xq.row::<Q8KBlock>(t));
    let stride = w.rows;
    for tile in rows.clone().step_by(ROW_TILE) {
        let tile = tile..rows.end.min(tile + ROW_TILE);
        let r = tile.start + (tile.len() & !3);
        for t in 0..n {
            let mut v = [0f32; ROW_TILE];
            let v = &mut v[..r - tile.start];
            crate::tile_k(
                path,
                w.fmt,
                w.rows_bytes(tile.start..r),
                w.row_bytes(),
                x(t),
                v,
            );
            // SAFETY (writes): each (matrix, row) belongs to one thread; t * stride + r < n * stride.
            for (i, v) in v.iter().enumerate() {
                unsafe { dst.write(t * stride + tile.start + i, *v) };
            }
            for r in r..tile.end {
                unsafe { dst.write(t * stride + r, crate::dot_k(path, w.fmt, w.row(r), x(t))) };
            }
        }
    }
}

/// The prefill loop of the 32-element formats with the path's register tile: four weight rows against `N`
/// activation rows per call ([`tile`](crate::tile)), weight rows in tiles of [`ROW_TILE`] so they stay in L1 while every
/// group of activation rows passes; leftover rows and activation rows one product at a time.
#[inline]
fn tiles_32<const N: usize>(
    path: KernelPath,
    w: &QMat,
    xq: &QActs,
    rows: std::ops::Range<usize>,
    dst: Shared,
) {
    let (n, x) = (xq.n, |t: usize| xq.row::<Q8Block>(t));
    let stride = w.rows;
    for tile in rows.clone().step_by(ROW_TILE) {
        let tile = tile..rows.end.min(tile + ROW_TILE);
        let mut t = 0;
        // SAFETY (writes): each (matrix, row) belongs to one thread; t * stride + r < n * stride.
        while t + N <= n {
            let xs: [&[Q8Block]; N] = std::array::from_fn(|k| x(t + k));
            let r = tile.start + (tile.len() & !3);
            let mut v = [[0f32; N]; ROW_TILE];
            let v = &mut v[..r - tile.start];
            crate::tile(
                path,
                w.fmt,
                w.rows_bytes(tile.start..r),
                w.row_bytes(),
                xs,
                v,
            );
            for (i, v) in v.iter().enumerate() {
                for (k, v) in v.iter().enumerate() {
                    unsafe { dst.write((t + k) * stride + tile.start + i, *v) };
                }
            }
            for r in r..tile.end {
                for (k, x) in xs.iter().enumerate() {
                    unsafe {
                        dst.write((t + k) * stride + r, crate::dot(path, w.fmt, w.row(r), x))
                    };
                }
            }
            t += N;
        }
        for t in t..n {
            for r in tile.clone() {
                unsafe { dst.write(t * stride + r, crate::dot(path, w.fmt, w.row(r), x(t))) };
            }
        }
    }
}
