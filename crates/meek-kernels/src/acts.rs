//! Activation quantization: each multiply's activation rows are quantized once into 8-bit blocks, so that every
//! weight block costs one integer dot product. [`Q8Block`]s (32 signed bytes, a scale and their sum, the scheme
//! llama.cpp calls Q8_1) serve the 32-element formats; [`Q8KBlock`]s (256 bytes, one scale, sums per 16 and 32,
//! llama.cpp's Q8_K) serve the K-quants.

use crate::format::{QK, QK_K};

/// 32 activations quantized to signed bytes.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(32))]
pub struct Q8Block {
    /// The 32 quantized values.
    pub qs: [i8; QK],
    /// Scale: `x ≈ qs * d`.
    pub d: f32,
    /// `d * Σ qs`, i.e. the block's sum in real units.
    pub s: f32,
    /// `Σ qs`.
    pub isum: i32,
}

/// Rounds `x` (|x| < 2^22) to the nearest integer, ties to even, without a call into libm: adding 1.5 * 2^23 leaves
/// the rounded value in the low mantissa bits (llama.cpp's `nearest_int`).
#[inline]
fn nearest_int(x: f32) -> i32 {
    let v = x + 12_582_912.0;
    (v.to_bits() & 0x007F_FFFF) as i32 - 0x0040_0000
}

/// Quantizes `x` (a multiple of 32 long) into `out` (one block per 32 values).
pub fn quantize_row(x: &[f32], out: &mut [Q8Block]) {
    debug_assert_eq!(x.len(), out.len() * QK);
    for (chunk, b) in x.chunks_exact(QK).zip(out.iter_mut()) {
        let amax = chunk.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
        let mut sum = 0i32;
        for (q, v) in b.qs.iter_mut().zip(chunk) {
            let r = nearest_int(v * inv);
            *q = r as i8;
            sum += r;
        }
        b.d = d;
        b.isum = sum;
        b.s = d * sum as f32;
    }
}

/// 256 activations quantized to signed bytes with one scale, and the sums of each 16 (llama.cpp's Q8_K): what the
/// K-quants multiply against. One scale per super-block lets their kernels sum the whole super-block in integers,
/// applying the weights' sub-block scales with integer multiplies, and convert to float once per 256 elements.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(32))]
pub struct Q8KBlock {
    /// The 256 quantized values.
    pub qs: [i8; QK_K],
    /// Sums of `qs` over each 16 consecutive values.
    pub bsums: [i16; 16],
    /// Sums of `qs` over each 32 consecutive values (the interleaved Q4_K kernels' minimums; within the block's
    /// alignment padding, so free).
    pub bsums32: [i16; 8],
    /// Scale: `x ≈ qs * d`.
    pub d: f32,
}

impl Default for Q8KBlock {
    fn default() -> Self {
        Self {
            qs: [0; QK_K],
            bsums: [0; 16],
            bsums32: [0; 8],
            d: 0.0,
        }
    }
}

/// Quantizes `x` (a multiple of 256 long) into `out` (one block per 256 values).
pub fn quantize_row_k(x: &[f32], out: &mut [Q8KBlock]) {
    debug_assert_eq!(x.len(), out.len() * QK_K);
    for (chunk, b) in x.chunks_exact(QK_K).zip(out.iter_mut()) {
        let amax = chunk.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
        for ((q16, v16), s) in
            b.qs.chunks_exact_mut(16)
                .zip(chunk.chunks_exact(16))
                .zip(b.bsums.iter_mut())
        {
            let mut sum = 0i32;
            for (q, v) in q16.iter_mut().zip(v16) {
                let r = nearest_int(v * inv);
                *q = r as i8;
                sum += r;
            }
            *s = sum as i16;
        }
        for (s32, pair) in b.bsums32.iter_mut().zip(b.bsums.chunks_exact(2)) {
            *s32 = pair[0] + pair[1];
        }
        b.d = d;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::random;

    #[test]
    fn k_activations_sum_per_16() {
        let x = random(512, 9);
        let mut q = vec![Q8KBlock::default(); 2];
        quantize_row_k(&x, &mut q);
        for (chunk, b) in x.chunks(QK_K).zip(&q) {
            for (i, s) in b.bsums.iter().enumerate() {
                let want: i32 = b.qs[16 * i..16 * i + 16]
                    .iter()
                    .map(|&v| i32::from(v))
                    .sum();
                assert_eq!(i32::from(*s), want);
            }
            for (i, s) in b.bsums32.iter().enumerate() {
                assert_eq!(*s, b.bsums[2 * i] + b.bsums[2 * i + 1]);
            }
            assert_eq!(std::mem::size_of::<Q8KBlock>(), 320);
            for (v, &qv) in chunk.iter().zip(&b.qs) {
                assert!((v - f32::from(qv) * b.d).abs() <= b.d / 2.0 + 1e-7);
            }
        }
    }

    #[test]
    fn activation_quantization_is_close_and_sums_are_consistent() {
        let x = random(64, 3);
        let mut q = vec![Q8Block::default(); 2];
        quantize_row(&x, &mut q);
        for (chunk, b) in x.chunks(32).zip(&q) {
            assert_eq!(b.isum, b.qs.iter().map(|&v| i32::from(v)).sum::<i32>());
            for (v, &qv) in chunk.iter().zip(&b.qs) {
                assert!((v - f32::from(qv) * b.d).abs() <= b.d / 2.0 + 1e-7);
            }
        }
        for (v, want) in [
            (0.5f32, 0),
            (1.5, 2),
            (-0.5, 0),
            (-1.5, -2),
            (126.6, 127),
            (-127.0, -127),
        ] {
            assert_eq!(nearest_int(v), want, "{v}");
        }
        let mut z = vec![Q8Block::default(); 1];
        quantize_row(&[0.0; 32], &mut z);
        assert_eq!((z[0].d, z[0].isum), (0.0, 0));
    }
}
