//! The weight formats the kernels read: GGML's block layouts, their sizes, and the packing of the Q4_K scales
//! (what every kernel, portable or SIMD, needs to know about a block before it computes with one).
//!
//! - Q4_0 `{d: f16, qs: [u8; 16]}`: `w = (q - 8) d`, so `w·x = d_w d_x (Σ q x_q - 8 Σ x_q)`;
//! - Q4_1 `{d: f16, m: f16, qs: [u8; 16]}`: `w = q d + m`, so `w·x = d_w d_x Σ q x_q + m Σ x`;
//! - Q5_0 `{d: f16, qh: u32, qs: [u8; 16]}` and Q5_1 `{d, m, qh, qs}`: as Q4_0/Q4_1 with a fifth bit per element
//!   in `qh` (bit `j` for element `j`), offset 16 instead of 8;
//! - Q8_0 `{d: f16, qs: [i8; 32]}`: `w·x = d_w d_x Σ q_w x_q`;
//! - the K-quants, super-blocks of 256: Q4_K `{d, dmin: f16, scales: [u8; 12], qs: [u8; 128]}` with a 6-bit scale
//!   and minimum per 32 elements, `w = d sc q - dmin m`; Q6_K `{ql: [u8; 128], qh: [u8; 64], scales: [i8; 16],
//!   d: f16}` with a signed scale per 16 elements, `w = d sc (q - 32)`. Their 32-element chunks meet one activation
//!   block each, so the activations use the same [`Q8Block`](crate::Q8Block)s.
//!
//! In the 4- and 5-bit formats byte `j` holds element `j` in its low nibble and element `j + 16` in its high
//! nibble.

/// Elements per activation block, and per block of the 32-element formats.
pub const QK: usize = 32;

/// Elements per super-block of the K-quants.
pub const QK_K: usize = 256;

/// A weight format the kernels compute with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// 4-bit, symmetric.
    Q4_0,
    /// 4-bit with a minimum.
    Q4_1,
    /// 5-bit, symmetric.
    Q5_0,
    /// 5-bit with a minimum.
    Q5_1,
    /// 8-bit, symmetric.
    Q8_0,
    /// K-quant, 4-bit with 6-bit scales and minimums per 32.
    Q4K,
    /// K-quant, 6-bit with 8-bit scales per 16.
    Q6K,
}

impl Format {
    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            Self::Q4_0 => 18,
            Self::Q4_1 => 20,
            Self::Q5_0 => 22,
            Self::Q5_1 => 24,
            Self::Q8_0 => 34,
            Self::Q4K => 144,
            Self::Q6K => 210,
        }
    }

    /// Weights per block (32, or 256 for the K-quants).
    pub fn block_elems(self) -> usize {
        match self {
            Self::Q4K | Self::Q6K => QK_K,
            _ => QK,
        }
    }

    /// Whether this is a K-quant (256-element super-blocks, read against [`Q8KBlock`](crate::Q8KBlock) activations).
    pub fn is_k(self) -> bool {
        matches!(self, Self::Q4K | Self::Q6K)
    }

    /// Activation blocks ([`Q8Block`](crate::Q8Block)) per weight block.
    pub fn chunks(self) -> usize {
        self.block_elems() / QK
    }
}

/// The 6-bit scale and minimum of sub-block `j` of a Q4_K block (llama.cpp's `get_scale_min_k4`).
#[inline]
pub(crate) fn q4k_scale_min(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

/// All eight 6-bit scales (bytes 0-7) and minimums (bytes 8-15) of a Q4_K block's 12 packed bytes (llama.cpp's
/// `utmp` unpacking; the same values as [`q4k_scale_min`]).
#[inline]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) fn q4k_scales(s: &[u8]) -> [u8; 16] {
    const K1: u32 = 0x3f3f_3f3f;
    const K2: u32 = 0x0f0f_0f0f;
    const K3: u32 = 0x0303_0303;
    let word = |i: usize| u32::from_le_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]]);
    let (u0, u1, u2) = (word(0), word(4), word(8));
    let words = [
        u0 & K1,
        (u2 & K2) | (((u0 >> 6) & K3) << 4),
        u1 & K1,
        ((u2 >> 4) & K2) | (((u1 >> 6) & K3) << 4),
    ];
    let mut out = [0u8; 16];
    for (o, w) in out.chunks_exact_mut(4).zip(words) {
        o.copy_from_slice(&w.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::random;

    #[test]
    fn q4k_scales_unpack_all_at_once_as_one_at_a_time() {
        let bytes: Vec<u8> = random(12 * 50, 5)
            .iter()
            .map(|v| ((v + 1.0) * 127.9) as u8)
            .collect();
        for s in bytes.chunks_exact(12) {
            let all = q4k_scales(s);
            for j in 0..8 {
                assert_eq!(
                    (all[j], all[8 + j]),
                    q4k_scale_min(j, s),
                    "{s:?} sub-block {j}"
                );
            }
        }
    }
}
