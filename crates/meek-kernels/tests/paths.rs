//! Every path this CPU runs against the portable kernels and a float64 reference, on weight blocks of random bytes
//! (with finite scales): the SIMD kernels checked without any other library's quantizer. meek-engine's tests check
//! the same kernels against Candle's quantization of real weights.

use half::f16;
use meek_kernels::{
    Format, KernelPath, Layout, Q8Block, Q8KBlock, QActs, QK, QK_K, QMat, Serial, dequantize_row,
    dot, dot_k, dot_k_portable, dot_portable, dot4, dot4_k, interleaves, matmul, matmul_many,
    quantize_row, quantize_row_k, tile, tile_k,
};

const FORMATS: [Format; 7] = [
    Format::Q4_0,
    Format::Q4_1,
    Format::Q5_0,
    Format::Q5_1,
    Format::Q8_0,
    Format::Q4K,
    Format::Q6K,
];

/// A fixed stream of 64-bit values (a linear congruential generator).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0
    }

    /// A value in `[-1, 1)`.
    fn unit(&mut self) -> f32 {
        ((self.next() >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
    }
}

/// Where a block of `fmt` keeps its f16 scales (and minimums).
fn f16_offsets(fmt: Format) -> &'static [usize] {
    match fmt {
        Format::Q4_0 | Format::Q5_0 | Format::Q8_0 => &[0],
        Format::Q4_1 | Format::Q5_1 | Format::Q4K => &[0, 2],
        Format::Q6K => &[208],
    }
}

/// `rows` rows of `cols` weights of `fmt`: random bytes, with small random f16 scales.
fn random_rows(fmt: Format, rows: usize, cols: usize, rng: &mut Lcg) -> Vec<u8> {
    let bb = fmt.block_bytes();
    let mut bytes: Vec<u8> = (0..rows * cols / fmt.block_elems() * bb)
        .map(|_| (rng.next() >> 56) as u8)
        .collect();
    for blk in bytes.chunks_exact_mut(bb) {
        for &at in f16_offsets(fmt) {
            let v = f16::from_f32(0.02 * rng.unit());
            blk[at..at + 2].copy_from_slice(&v.to_le_bytes());
        }
    }
    bytes
}

fn random_acts(cols: usize, rng: &mut Lcg) -> Vec<f32> {
    (0..cols).map(|_| rng.unit()).collect()
}

/// An activation block type and the kernels that read it: [`Q8Block`] for the 32-value formats, [`Q8KBlock`] for
/// the k-quants.
trait Block: Clone + Default {
    const ELEMS: usize;
    /// The four-row dot product's name, for the messages.
    const DOT4: &'static str;
    fn quantize_into(x: &[f32], q: &mut [Self]);
    fn dot(path: KernelPath, fmt: Format, row: &[u8], x: &[Self]) -> f32;
    fn dot4(path: KernelPath, fmt: Format, row: &[u8], xs: [&[Self]; 4]) -> [f32; 4];
    fn portable(fmt: Format, row: &[u8], x: &[Self]) -> f32;
    /// The block's values, `qs * d`.
    fn values(&self) -> impl Iterator<Item = f64>;

    /// `x` quantized.
    fn quantize(x: &[f32]) -> Vec<Self> {
        let mut q = vec![Self::default(); x.len() / Self::ELEMS];
        Self::quantize_into(x, &mut q);
        q
    }
}

impl Block for Q8Block {
    const ELEMS: usize = QK;
    const DOT4: &'static str = "dot4";
    fn quantize_into(x: &[f32], q: &mut [Self]) {
        quantize_row(x, q);
    }
    fn dot(path: KernelPath, fmt: Format, row: &[u8], x: &[Self]) -> f32 {
        dot(path, fmt, row, x)
    }
    fn dot4(path: KernelPath, fmt: Format, row: &[u8], xs: [&[Self]; 4]) -> [f32; 4] {
        dot4(path, fmt, row, xs)
    }
    fn portable(fmt: Format, row: &[u8], x: &[Self]) -> f32 {
        dot_portable(fmt, row, x)
    }
    fn values(&self) -> impl Iterator<Item = f64> {
        self.qs
            .map(|v| f64::from(v) * f64::from(self.d))
            .into_iter()
    }
}

impl Block for Q8KBlock {
    const ELEMS: usize = QK_K;
    const DOT4: &'static str = "dot4_k";
    fn quantize_into(x: &[f32], q: &mut [Self]) {
        quantize_row_k(x, q);
    }
    fn dot(path: KernelPath, fmt: Format, row: &[u8], x: &[Self]) -> f32 {
        dot_k(path, fmt, row, x)
    }
    fn dot4(path: KernelPath, fmt: Format, row: &[u8], xs: [&[Self]; 4]) -> [f32; 4] {
        dot4_k(path, fmt, row, xs)
    }
    fn portable(fmt: Format, row: &[u8], x: &[Self]) -> f32 {
        dot_k_portable(fmt, row, x)
    }
    fn values(&self) -> impl Iterator<Item = f64> {
        self.qs
            .map(|v| f64::from(v) * f64::from(self.d))
            .into_iter()
    }
}

/// Each of `xs` quantized.
fn quantized<B: Block>(xs: &[Vec<f32>]) -> Vec<Vec<B>> {
    xs.iter().map(|x| B::quantize(x)).collect()
}

/// Weight row `r` of a `rows` x `cols` matrix (`row`, dequantized `deq`) on every path: its dot product with the
/// first of the four activation rows `xs` against a float64 reference, and its four-row dot product against the
/// portable kernel.
fn check_dots<B: Block>(
    fmt: Format,
    paths: &[KernelPath],
    (rows, cols, r): (usize, usize, usize),
    row: &[u8],
    deq: &[f32],
    xs: &[Vec<f32>],
) {
    let q = quantized::<B>(xs);
    let xdeq: Vec<f64> = q[0].iter().flat_map(B::values).collect();
    let reference: f64 = deq.iter().zip(&xdeq).map(|(a, b)| f64::from(*a) * b).sum();
    for &path in paths {
        let got = f64::from(B::dot(path, fmt, row, &q[0]));
        let tol = 1e-4 * (1.0 + reference.abs()) + 1e-5 * cols as f64;
        assert!(
            (got - reference).abs() < tol,
            "{fmt:?} {path:?} {rows}x{cols} row {r}: {got} vs {reference}"
        );
        let four = B::dot4(path, fmt, row, [&q[0], &q[1], &q[2], &q[3]]);
        for (k, got) in four.into_iter().enumerate() {
            let want = B::portable(fmt, row, &q[k]);
            assert!(
                (got - want).abs() < 1e-4 * (1.0 + want.abs()),
                "{fmt:?} {path:?} {} row {k}: {got} vs {want}",
                B::DOT4
            );
        }
    }
}

#[test]
fn every_path_matches_the_portable_kernels_and_a_float64_reference() {
    let paths = KernelPath::available();
    let mut rng = Lcg(17);
    for fmt in FORMATS {
        let shapes: &[(usize, usize)] = if fmt.is_k() {
            &[(1, 256), (3, 512), (2, 2048)]
        } else {
            &[(1, 32), (5, 96), (8, 576), (2, 1536)]
        };
        for &(rows, cols) in shapes {
            let w = random_rows(fmt, rows, cols, &mut rng);
            let rb = w.len() / rows;
            let xs: Vec<Vec<f32>> = (0..4).map(|_| random_acts(cols, &mut rng)).collect();
            for (r, row) in w.chunks_exact(rb).enumerate() {
                let mut deq = vec![0f32; cols];
                dequantize_row(fmt, row, &mut deq);
                if fmt.is_k() {
                    check_dots::<Q8KBlock>(fmt, &paths, (rows, cols, r), row, &deq, &xs);
                } else {
                    check_dots::<Q8Block>(fmt, &paths, (rows, cols, r), row, &deq, &xs);
                }
            }
            // The register tiles: one and two groups of four weight rows (eight rows from each row on, wrapping,
            // so every shape has them) against one, two and four activation rows.
            if fmt.is_k() {
                let q = quantized::<Q8KBlock>(&xs);
                // The decode tile of the K-quants: one and two groups of four rows, as above.
                for start in 0..rows {
                    let eight: Vec<&[u8]> = (0..8)
                        .map(|i| &w[((start + i) % rows) * rb..((start + i) % rows + 1) * rb])
                        .collect();
                    let packed = eight.concat();
                    for &path in &paths {
                        for g in [1, 2] {
                            let mut out = vec![0f32; 4 * g];
                            tile_k(path, fmt, &packed[..4 * g * rb], rb, &q[0], &mut out);
                            for (i, row) in eight[..4 * g].iter().enumerate() {
                                let want = dot_k_portable(fmt, row, &q[0]);
                                assert!(
                                    (out[i] - want).abs() < 1e-4 * (1.0 + want.abs()),
                                    "{fmt:?} {path:?} tile_k {i}: {} vs {want}",
                                    out[i]
                                );
                            }
                        }
                    }
                }
            }
            if !fmt.is_k() {
                let q = quantized::<Q8Block>(&xs);
                for start in 0..rows {
                    let eight: Vec<&[u8]> = (0..8)
                        .map(|i| {
                            let r = (start + i) % rows;
                            &w[r * rb..(r + 1) * rb]
                        })
                        .collect();
                    let packed = eight.concat();
                    for &path in &paths {
                        for g in [1, 2] {
                            let w = &packed[..4 * g * rb];
                            let mut t1 = vec![[0f32; 1]; 4 * g];
                            let mut t2 = vec![[0f32; 2]; 4 * g];
                            let mut t4 = vec![[0f32; 4]; 4 * g];
                            tile(path, fmt, w, rb, [&q[0]], &mut t1);
                            tile(path, fmt, w, rb, [&q[0], &q[1]], &mut t2);
                            tile(path, fmt, w, rb, [&q[0], &q[1], &q[2], &q[3]], &mut t4);
                            for (i, row) in eight[..4 * g].iter().enumerate() {
                                for (k, x) in q.iter().enumerate() {
                                    let want = dot_portable(fmt, row, x);
                                    let tol = 1e-4 * (1.0 + want.abs());
                                    assert!(
                                        (t4[i][k] - want).abs() < tol,
                                        "{fmt:?} {path:?} tile4 {i} {k}"
                                    );
                                    if k < 2 {
                                        assert!(
                                            (t2[i][k] - want).abs() < tol,
                                            "{fmt:?} {path:?} tile2 {i} {k}"
                                        );
                                    }
                                    if k == 0 {
                                        assert!(
                                            (t1[i][0] - want).abs() < tol,
                                            "{fmt:?} {path:?} tile1 {i}"
                                        );
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The multiply of a matrix by 1, 3, 9 and 15 activation rows (the decode, short and tiled prefill loops: 15 is a
/// group of eight, one of four and three single rows) on every path, run serially: each output is its row's
/// portable dot product.
#[test]
fn matmul_on_every_path_is_the_portable_dot_of_each_row() {
    let mut rng = Lcg(29);
    for fmt in FORMATS {
        let (rows, cols) = (37, if fmt.is_k() { 512 } else { 96 });
        let w = QMat::new(fmt, rows, cols, random_rows(fmt, rows, cols, &mut rng)).unwrap();
        for n in [1, 3, 9, 15] {
            let x = random_acts(n * cols, &mut rng);
            let mut xq = QActs::default();
            xq.quantize(&x, cols, &[fmt]);
            assert_eq!(xq.rows(), n);
            for path in KernelPath::available() {
                let mut out = vec![0f32; n * rows];
                matmul(&Serial, path, &w, &xq, &mut out);
                for t in 0..n {
                    let xt = &x[t * cols..(t + 1) * cols];
                    for r in 0..rows {
                        let want = if fmt.is_k() {
                            Q8KBlock::portable(fmt, w.row(r), &Q8KBlock::quantize(xt))
                        } else {
                            Q8Block::portable(fmt, w.row(r), &Q8Block::quantize(xt))
                        };
                        let got = out[t * rows + r];
                        assert!(
                            (got - want).abs() < 1e-4 * (1.0 + want.abs()),
                            "{fmt:?} {path:?} n={n} token {t} row {r}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}

/// Every format interleaved in groups of eight rows on every path (the portable path, and Q8_0 on AVX2, keep the
/// file's layout): 1, 2, 5, 9 and 15 activation rows (decode, the
/// tiles of four and two and single rows), through the pool's ranges in groups and, beside a matrix of 37 rows, in
/// rows (groups computed whole and written in part); each output is the portable dot of its GGUF row, and each row
/// dequantizes as in the file's layout.
#[test]
fn interleaved_matrices_on_every_path_are_the_portable_dot_of_each_row() {
    let mut rng = Lcg(41);
    for fmt in FORMATS {
        let cols = if fmt.is_k() { 768 } else { 96 };
        let plain = QMat::new(fmt, 40, cols, random_rows(fmt, 40, cols, &mut rng)).unwrap();
        let odd = QMat::new(fmt, 37, cols, random_rows(fmt, 37, cols, &mut rng)).unwrap();
        let pool = meek_kernels::Pool::new(2);
        for path in KernelPath::available() {
            let w = plain.clone().interleaved(path);
            let want_layout = if interleaves(fmt, path) {
                Layout::X8
            } else {
                Layout::Rows
            };
            assert_eq!(w.layout(), want_layout, "{fmt:?} {path:?}");
            assert_eq!(odd.clone().interleaved(path).layout(), Layout::Rows);
            let (mut a, mut b) = (vec![0f32; cols], vec![0f32; cols]);
            for r in [0, 7, 8, 39] {
                w.dequantize_row(r, &mut a);
                plain.dequantize_row(r, &mut b);
                assert!(
                    a.iter()
                        .zip(&b)
                        .all(|(a, b)| (a - b).abs() <= 1e-6 * (1.0 + b.abs()))
                );
            }
            for n in [1, 2, 5, 9, 15] {
                let x = random_acts(n * cols, &mut rng);
                let mut xq = QActs::default();
                xq.quantize(&x, cols, &[fmt]);
                let mut out = vec![0f32; n * 40];
                let (mut pooled, mut mixed, mut out_odd) =
                    (vec![0f32; n * 40], vec![0f32; n * 40], vec![0f32; n * 37]);
                matmul(&Serial, path, &w, &xq, &mut out);
                matmul(&pool, path, &w, &xq, &mut pooled);
                let jobs = &mut [(&odd, &mut out_odd[..]), (&w, &mut mixed[..])];
                matmul_many(&pool, path, jobs, &xq);
                for t in 0..n {
                    let xt = &x[t * cols..(t + 1) * cols];
                    let want_odd = |r: usize| {
                        if fmt.is_k() {
                            dot_k_portable(fmt, odd.row(r), &Q8KBlock::quantize(xt))
                        } else {
                            dot_portable(fmt, odd.row(r), &Q8Block::quantize(xt))
                        }
                    };
                    for r in 0..37 {
                        let (got, want) = (out_odd[t * 37 + r], want_odd(r));
                        assert!(
                            (got - want).abs() < 1e-4 * (1.0 + want.abs()),
                            "{fmt:?} {path:?} 37 rows n={n} token {t} row {r}: {got} vs {want}"
                        );
                    }
                    for r in 0..40 {
                        let want = if fmt.is_k() {
                            dot_k_portable(fmt, plain.row(r), &Q8KBlock::quantize(xt))
                        } else {
                            dot_portable(fmt, plain.row(r), &Q8Block::quantize(xt))
                        };
                        let i = t * 40 + r;
                        for (what, got) in
                            [("serial", out[i]), ("pool", pooled[i]), ("mixed", mixed[i])]
                        {
                            assert!(
                                (got - want).abs() < 1e-4 * (1.0 + want.abs()),
                                "{fmt:?} {path:?} {what} n={n} token {t} row {r}: {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn a_matrix_of_the_wrong_size_is_refused() {
    assert!(QMat::new(Format::Q4_0, 2, 48, vec![0; 2 * 18]).is_err());
    assert!(QMat::new(Format::Q4_0, 2, 64, vec![0; 3 * 18]).is_err());
    let m = QMat::new(Format::Q8_0, 2, 64, vec![0; 4 * 34]).unwrap();
    assert_eq!((m.bytes(), m.row_bytes(), m.row(1).len()), (136, 68, 68));
}
