//! GGML block formats and their dot products against 8-bit-quantized activations.
//!
//! Weights stay in the file's block format. Activations are quantized once per matrix multiply into [`Q8Block`]s
//! (32 signed bytes, a scale and their sum), the scheme llama.cpp calls Q8_1, so each weight block costs one
//! integer dot product:
//!
//! - Q4_0 `{d: f16, qs: [u8; 16]}`: `w = (q - 8) d`, so `w·x = d_w d_x (Σ q x_q - 8 Σ x_q)`;
//! - Q4_1 `{d: f16, m: f16, qs: [u8; 16]}`: `w = q d + m`, so `w·x = d_w d_x Σ q x_q + m Σ x`;
//! - Q5_0 `{d: f16, qh: u32, qs: [u8; 16]}` and Q5_1 `{d, m, qh, qs}`: as Q4_0/Q4_1 with a fifth bit per element
//!   in `qh` (bit `j` for element `j`), offset 16 instead of 8;
//! - Q8_0 `{d: f16, qs: [i8; 32]}`: `w·x = d_w d_x Σ q_w x_q`;
//! - the K-quants, super-blocks of 256: Q4_K `{d, dmin: f16, scales: [u8; 12], qs: [u8; 128]}` with a 6-bit scale
//!   and minimum per 32 elements, `w = d sc q - dmin m`; Q6_K `{ql: [u8; 128], qh: [u8; 64], scales: [i8; 16],
//!   d: f16}` with a signed scale per 16 elements, `w = d sc (q - 32)`. Their 32-element chunks meet one activation
//!   block each, so the activations use the same [`Q8Block`]s.
//!
//! In the 4- and 5-bit formats byte `j` holds element `j` in its low nibble and element `j + 16` in its high
//! nibble. Each dot product has a portable version and SIMD versions chosen at run time ([`KernelPath`]).

use half::f16;

/// Elements per activation block, and per block of the 32-element formats.
pub const QK: usize = 32;

/// Elements per super-block of the K-quants.
pub const QK_K: usize = 256;

/// A weight format this module computes with.
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

    /// Activation blocks ([`Q8Block`]) per weight block.
    pub fn chunks(self) -> usize {
        self.block_elems() / QK
    }

    /// The format of a GGML type, when supported.
    pub fn from_ggml(t: candle_core::quantized::GgmlDType) -> Option<Self> {
        use candle_core::quantized::GgmlDType as G;
        match t {
            G::Q4_0 => Some(Self::Q4_0),
            G::Q4_1 => Some(Self::Q4_1),
            G::Q5_0 => Some(Self::Q5_0),
            G::Q5_1 => Some(Self::Q5_1),
            G::Q8_0 => Some(Self::Q8_0),
            G::Q4K => Some(Self::Q4K),
            G::Q6K => Some(Self::Q6K),
            _ => None,
        }
    }
}

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

/// Which implementation the dot products use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelPath {
    /// Portable Rust.
    Portable,
    /// x86-64 AVX2 with FMA and F16C.
    Avx2,
    /// AVX2 plus AVX-VNNI byte dot products.
    AvxVnni,
    /// AVX2 plus AVX512-VNNI byte dot products on 256-bit registers.
    Avx512Vnni,
}

impl KernelPath {
    /// The best path this CPU supports.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx2") && has!("fma") && has!("f16c") {
                if has!("avxvnni") {
                    return Self::AvxVnni;
                }
                if has!("avx512vnni") && has!("avx512vl") {
                    return Self::Avx512Vnni;
                }
                return Self::Avx2;
            }
        }
        Self::Portable
    }

    /// Every path this CPU can run, portable first (for tests and benchmarks that compare them).
    pub fn available() -> Vec<Self> {
        let mut v = vec![Self::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx2") && has!("fma") && has!("f16c") {
                v.push(Self::Avx2);
                if has!("avxvnni") {
                    v.push(Self::AvxVnni);
                }
                if has!("avx512vnni") && has!("avx512vl") {
                    v.push(Self::Avx512Vnni);
                }
            }
        }
        v
    }

    /// Name recorded in results, e.g. `cpu-avx2`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Portable => "cpu-portable",
            Self::Avx2 => "cpu-avx2",
            Self::AvxVnni => "cpu-avxvnni",
            Self::Avx512Vnni => "cpu-avx512vnni",
        }
    }
}

#[inline]
fn half(bytes: &[u8]) -> f32 {
    f16::from_le_bytes([bytes[0], bytes[1]]).to_f32()
}

/// Dot product of one row of weights (`fmt` blocks) with quantized activations.
#[inline]
pub fn dot(path: KernelPath, fmt: Format, row: &[u8], x: &[Q8Block]) -> f32 {
    assert_eq!(row.len() * fmt.chunks(), x.len() * fmt.block_bytes());
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY (all x86 paths): `detect` chose the path from the CPU's features; lengths checked above.
        KernelPath::Avx2 => unsafe { avx2::dot(fmt, row, x) },
        #[cfg(target_arch = "x86_64")]
        KernelPath::AvxVnni => unsafe { avxvnni::dot(fmt, row, x) },
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx512Vnni => unsafe { avx512vnni::dot(fmt, row, x) },
        _ => dot_portable(fmt, row, x),
    }
}

/// One row of weights against four rows of activations (prefill): each weight block is unpacked once.
#[inline]
pub fn dot4(path: KernelPath, fmt: Format, row: &[u8], xs: [&[Q8Block]; 4]) -> [f32; 4] {
    assert!(
        xs.iter()
            .all(|x| x.len() * fmt.block_bytes() == row.len() * fmt.chunks())
    );
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY (all x86 paths): `detect` chose the path from the CPU's features; lengths checked above.
        KernelPath::Avx2 => unsafe { avx2::dot4(fmt, row, xs) },
        #[cfg(target_arch = "x86_64")]
        KernelPath::AvxVnni => unsafe { avxvnni::dot4(fmt, row, xs) },
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx512Vnni => unsafe { avx512vnni::dot4(fmt, row, xs) },
        _ => xs.map(|x| dot_portable(fmt, row, x)),
    }
}

/// One 32-element chunk of a weight block, unpacked: `w[j] = scale[j / 16] * q[j] + min`.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    q: [i8; QK],
    scale: [f32; 2],
    min: f32,
}

/// The 6-bit scale and minimum of sub-block `j` of a Q4_K block (llama.cpp's `get_scale_min_k4`).
#[inline]
fn q4k_scale_min(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

/// Chunk `c` (of [`Format::chunks`]) of the block `blk`.
fn unpack(fmt: Format, blk: &[u8], c: usize) -> Chunk {
    let mut q = [0i8; QK];
    let nibbles = |q: &mut [i8; QK], qs: &[u8], offset: i8| {
        for j in 0..16 {
            q[j] = (qs[j] & 0x0F) as i8 - offset;
            q[j + 16] = (qs[j] >> 4) as i8 - offset;
        }
    };
    let fifth = |q: &mut [i8; QK], qh: &[u8]| {
        let bits = u32::from_le_bytes([qh[0], qh[1], qh[2], qh[3]]);
        for (j, v) in q.iter_mut().enumerate() {
            *v += (((bits >> j) & 1) << 4) as i8;
        }
    };
    match fmt {
        Format::Q4_0 => {
            nibbles(&mut q, &blk[2..18], 8);
            Chunk {
                q,
                scale: [half(blk); 2],
                min: 0.0,
            }
        }
        Format::Q4_1 => {
            nibbles(&mut q, &blk[4..20], 0);
            Chunk {
                q,
                scale: [half(blk); 2],
                min: half(&blk[2..4]),
            }
        }
        Format::Q5_0 => {
            nibbles(&mut q, &blk[6..22], 0);
            fifth(&mut q, &blk[2..6]);
            q.iter_mut().for_each(|v| *v -= 16);
            Chunk {
                q,
                scale: [half(blk); 2],
                min: 0.0,
            }
        }
        Format::Q5_1 => {
            nibbles(&mut q, &blk[8..24], 0);
            fifth(&mut q, &blk[4..8]);
            Chunk {
                q,
                scale: [half(blk); 2],
                min: half(&blk[2..4]),
            }
        }
        Format::Q8_0 => {
            for (v, &b) in q.iter_mut().zip(&blk[2..34]) {
                *v = b as i8;
            }
            Chunk {
                q,
                scale: [half(blk); 2],
                min: 0.0,
            }
        }
        Format::Q4K => {
            let (d, dmin) = (half(blk), half(&blk[2..4]));
            let (sc, m) = q4k_scale_min(c, &blk[4..16]);
            let qs = &blk[16 + 32 * (c / 2)..16 + 32 * (c / 2) + 32];
            let shift = 4 * (c % 2);
            for (v, &b) in q.iter_mut().zip(qs) {
                *v = ((b >> shift) & 0x0F) as i8;
            }
            let s = d * f32::from(sc);
            Chunk {
                q,
                scale: [s, s],
                min: -dmin * f32::from(m),
            }
        }
        Format::Q6K => {
            let (n, k) = (c / 4, c % 4);
            let ql = &blk[64 * n + 32 * (k % 2)..64 * n + 32 * (k % 2) + 32];
            let qh = &blk[128 + 32 * n..128 + 32 * n + 32];
            let (lshift, hshift) = (4 * (k / 2), 2 * k);
            for ((v, &l), &h) in q.iter_mut().zip(ql).zip(qh) {
                *v = (((l >> lshift) & 0x0F) | (((h >> hshift) & 3) << 4)) as i8 - 32;
            }
            let d = half(&blk[208..210]);
            let sc = |i: usize| f32::from(blk[192 + 8 * n + 2 * k + i] as i8);
            Chunk {
                q,
                scale: [d * sc(0), d * sc(1)],
                min: 0.0,
            }
        }
    }
}

/// The portable dot product, also the reference for the SIMD versions.
pub fn dot_portable(fmt: Format, row: &[u8], x: &[Q8Block]) -> f32 {
    let (bb, cpb) = (fmt.block_bytes(), fmt.chunks());
    let mut acc = 0f32;
    for (blk, xs) in row.chunks_exact(bb).zip(x.chunks_exact(cpb)) {
        for (c, xb) in xs.iter().enumerate() {
            let ch = unpack(fmt, blk, c);
            let (mut s0, mut s1) = (0i32, 0i32);
            for j in 0..16 {
                s0 += i32::from(ch.q[j]) * i32::from(xb.qs[j]);
                s1 += i32::from(ch.q[j + 16]) * i32::from(xb.qs[j + 16]);
            }
            acc += xb.d * (ch.scale[0] * s0 as f32 + ch.scale[1] * s1 as f32) + ch.min * xb.s;
        }
    }
    acc
}

/// Dequantizes one row (used for embedding lookups).
pub fn dequantize_row(fmt: Format, row: &[u8], out: &mut [f32]) {
    let (bb, cpb) = (fmt.block_bytes(), fmt.chunks());
    for (blk, o) in row
        .chunks_exact(bb)
        .zip(out.chunks_exact_mut(fmt.block_elems()))
    {
        for (c, o) in o.chunks_exact_mut(QK).enumerate().take(cpb) {
            let ch = unpack(fmt, blk, c);
            for (j, (o, &q)) in o.iter_mut().zip(&ch.q).enumerate() {
                *o = ch.scale[j / 16] * f32::from(q) + ch.min;
            }
        }
    }
}

/// x86-64 kernels, generated once per instruction set: `$pairs` sums the products of unsigned and signed byte
/// pairs of a block into eight i32 lanes.
#[cfg(target_arch = "x86_64")]
macro_rules! x86_kernels {
    ($name:ident, $features:literal, $pairs:ident) => {
        mod $name {
            use std::arch::x86_64::*;

            use super::{Format, Q8Block, QK, $pairs};

            #[inline]
            #[target_feature(enable = $features)]
            fn hsum(v: __m256) -> f32 {
                let lo = _mm256_castps256_ps128(v);
                let hi = _mm256_extractf128_ps(v, 1);
                let s = _mm_add_ps(lo, hi);
                let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
                let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
                _mm_cvtss_f32(s)
            }

            /// f16 at `p` (unaligned) to f32 with the F16C instruction.
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn f16_at(p: *const u8) -> f32 {
                // SAFETY: the caller points at two readable bytes.
                let bits = unsafe { std::ptr::read_unaligned(p.cast::<u16>()) };
                _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
            }

            /// The 32 weights of a block as bytes in element order: unsigned nibbles for Q4, signed bytes for Q8.
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn weights(fmt: Format, blk: *const u8) -> __m256i {
                match fmt {
                    Format::Q8_0 => unsafe { _mm256_loadu_si256(blk.add(2).cast()) },
                    Format::Q4_0 | Format::Q4_1 => {
                        let off = if fmt == Format::Q4_0 { 2 } else { 4 };
                        unsafe { nibbles(blk.add(off)) }
                    }
                    Format::Q5_0 | Format::Q5_1 => {
                        let (qh, qs) = if fmt == Format::Q5_0 { (2, 6) } else { (4, 8) };
                        // SAFETY: the caller points at a whole block.
                        let bits = unsafe { std::ptr::read_unaligned(blk.add(qh).cast::<u32>()) };
                        let high = _mm256_and_si256(bytes_from_bits(bits), _mm256_set1_epi8(0x10));
                        _mm256_or_si256(unsafe { nibbles(blk.add(qs)) }, high)
                    }
                    Format::Q4K | Format::Q6K => unreachable!("K-quants go through dot_k"),
                }
            }

            /// 16 bytes of packed nibbles at `p` as 32 bytes: low nibbles first, then high nibbles.
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn nibbles(p: *const u8) -> __m256i {
                let raw = unsafe { _mm_loadu_si128(p.cast()) };
                let mask = _mm_set1_epi8(0x0F);
                let lo = _mm_and_si128(raw, mask);
                let hi = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);
                _mm256_set_m128i(hi, lo)
            }

            /// Byte `j` is 0xFF when bit `j` of `bits` is set, else 0 (llama.cpp's `bytes_from_bits_32`).
            #[inline]
            #[target_feature(enable = $features)]
            fn bytes_from_bits(bits: u32) -> __m256i {
                let shuf = _mm256_set_epi64x(
                    0x0303030303030303,
                    0x0202020202020202,
                    0x0101010101010101,
                    0,
                );
                let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(bits as i32), shuf);
                let bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
                _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1))
            }

            /// Weights of chunk `c` of a K-quant block as bytes: unsigned nibbles (Q4_K) or signed `q - 32` (Q6_K).
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn k_weights(fmt: Format, blk: *const u8, c: usize) -> __m256i {
                let mask = _mm256_set1_epi8(0x0F);
                // SAFETY (loads): the caller points at a whole block; every offset below is inside it.
                if fmt == Format::Q4K {
                    let raw = unsafe { _mm256_loadu_si256(blk.add(16 + 32 * (c / 2)).cast()) };
                    if c % 2 == 0 {
                        _mm256_and_si256(raw, mask)
                    } else {
                        _mm256_and_si256(_mm256_srli_epi16(raw, 4), mask)
                    }
                } else {
                    let (n, k) = (c / 4, c % 4);
                    let ql = unsafe { _mm256_loadu_si256(blk.add(64 * n + 32 * (k % 2)).cast()) };
                    let qh = unsafe { _mm256_loadu_si256(blk.add(128 + 32 * n).cast()) };
                    let lo = if k < 2 {
                        _mm256_and_si256(ql, mask)
                    } else {
                        _mm256_and_si256(_mm256_srli_epi16(ql, 4), mask)
                    };
                    let hb = _mm256_and_si256(
                        _mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * k as i32)),
                        _mm256_set1_epi8(3),
                    );
                    let q = _mm256_or_si256(lo, _mm256_slli_epi16(hb, 4));
                    _mm256_sub_epi8(q, _mm256_set1_epi8(32))
                }
            }

            /// Per-lane scales of chunk `c` times `dx`, and the minimum term per unit of `Σx` (Q4_K only).
            #[inline]
            #[target_feature(enable = $features)]
            fn k_scales(
                fmt: Format,
                blk: &[u8],
                c: usize,
                d: f32,
                dmin: f32,
                dx: f32,
            ) -> (__m256, f32) {
                if fmt == Format::Q4K {
                    let (sc, m) = super::q4k_scale_min(c, &blk[4..16]);
                    (_mm256_set1_ps(d * f32::from(sc) * dx), -dmin * f32::from(m))
                } else {
                    let (n, k) = (c / 4, c % 4);
                    let s0 = f32::from(blk[192 + 8 * n + 2 * k] as i8);
                    let s1 = f32::from(blk[193 + 8 * n + 2 * k] as i8);
                    let dd = d * dx;
                    (
                        _mm256_set_m128(_mm_set1_ps(dd * s1), _mm_set1_ps(dd * s0)),
                        0.0,
                    )
                }
            }

            /// Σ w·x of a K-quant chunk as 8 lanes (lanes 0-3: elements 0-15).
            #[inline]
            #[target_feature(enable = $features)]
            fn k_dot(fmt: Format, w: __m256i, xq: __m256i) -> __m256 {
                let sums = if fmt == Format::Q4K {
                    $pairs(w, xq)
                } else {
                    $pairs(_mm256_sign_epi8(w, w), _mm256_sign_epi8(xq, w))
                };
                _mm256_cvtepi32_ps(sums)
            }

            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn dot_k<const F: u8>(row: &[u8], x: &[Q8Block]) -> f32 {
                let fmt = if F == 0 { Format::Q4K } else { Format::Q6K };
                let bb = fmt.block_bytes();
                let mut acc = [_mm256_setzero_ps(); 2];
                let mut extra = 0f32;
                for (blk, xs) in row.chunks_exact(bb).zip(x.chunks_exact(8)) {
                    let b = blk.as_ptr();
                    // SAFETY: `blk` is a whole block.
                    let (d, dmin) = unsafe {
                        if fmt == Format::Q4K {
                            (f16_at(b), f16_at(b.add(2)))
                        } else {
                            (f16_at(b.add(208)), 0.0)
                        }
                    };
                    for (c, xb) in xs.iter().enumerate() {
                        // SAFETY: as above.
                        let w = unsafe { k_weights(fmt, b, c) };
                        let xq = unsafe { _mm256_loadu_si256(xb.qs.as_ptr().cast()) };
                        let (sv, m) = k_scales(fmt, blk, c, d, dmin, xb.d);
                        acc[c % 2] = _mm256_fmadd_ps(sv, k_dot(fmt, w, xq), acc[c % 2]);
                        extra += m * xb.s;
                    }
                }
                hsum(_mm256_add_ps(acc[0], acc[1])) + extra
            }

            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn dot4_k<const F: u8>(row: &[u8], xs: [&[Q8Block]; 4]) -> [f32; 4] {
                let fmt = if F == 0 { Format::Q4K } else { Format::Q6K };
                let bb = fmt.block_bytes();
                let mut acc = [_mm256_setzero_ps(); 4];
                let mut extra = [0f32; 4];
                for (i, blk) in row.chunks_exact(bb).enumerate() {
                    let b = blk.as_ptr();
                    // SAFETY: `blk` is a whole block.
                    let (d, dmin) = unsafe {
                        if fmt == Format::Q4K {
                            (f16_at(b), f16_at(b.add(2)))
                        } else {
                            (f16_at(b.add(208)), 0.0)
                        }
                    };
                    for c in 0..8 {
                        // SAFETY: as above.
                        let w = unsafe { k_weights(fmt, b, c) };
                        for k in 0..4 {
                            let xb = &xs[k][i * 8 + c];
                            let xq = unsafe { _mm256_loadu_si256(xb.qs.as_ptr().cast()) };
                            let (sv, m) = k_scales(fmt, blk, c, d, dmin, xb.d);
                            acc[k] = _mm256_fmadd_ps(sv, k_dot(fmt, w, xq), acc[k]);
                            extra[k] += m * xb.s;
                        }
                    }
                }
                [0, 1, 2, 3].map(|k| hsum(acc[k]) + extra[k])
            }

            /// Σ w·x over one block as 8 lanes of i32 converted to f32.
            #[inline]
            #[target_feature(enable = $features)]
            fn block_dot(fmt: Format, w: __m256i, xq: __m256i) -> __m256 {
                let sums = match fmt {
                    // The left operand is unsigned: move the weights' signs onto the activations.
                    Format::Q8_0 => $pairs(_mm256_sign_epi8(w, w), _mm256_sign_epi8(xq, w)),
                    _ => $pairs(w, xq),
                };
                _mm256_cvtepi32_ps(sums)
            }

            /// The scalar correction of a block with weight scale `dw`: `-8 dw d_x Σx_q` (Q4_0), `-16 dw d_x Σx_q`
            /// (Q5_0), `m Σx` (Q4_1, Q5_1), none (Q8_0); `xb.s` holds `d_x Σx_q`.
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn correction(fmt: Format, blk: *const u8, dw: f32, xb: &Q8Block) -> f32 {
                match fmt {
                    Format::Q4_0 => -8.0 * dw * xb.s,
                    Format::Q5_0 => -16.0 * dw * xb.s,
                    Format::Q4_1 | Format::Q5_1 => xb.s * unsafe { f16_at(blk.add(2)) },
                    _ => 0.0,
                }
            }

            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn dot_fmt<const F: u8>(row: &[u8], x: &[Q8Block]) -> f32 {
                let fmt = match F {
                    0 => Format::Q4_0,
                    1 => Format::Q4_1,
                    3 => Format::Q5_0,
                    4 => Format::Q5_1,
                    _ => Format::Q8_0,
                };
                let bb = fmt.block_bytes();
                let base = row.as_ptr();
                let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
                let mut extra = 0f32;
                let n = x.len();
                let mut i = 0;
                while i + 1 < n {
                    // SAFETY: blocks i and i + 1 are inside `row` (checked by the caller's length assertion).
                    unsafe {
                        let (b0, b1) = (base.add(i * bb), base.add((i + 1) * bb));
                        let (x0, x1) = (&x[i], &x[i + 1]);
                        let (w0, w1) = (f16_at(b0), f16_at(b1));
                        let (d0, d1) = (w0 * x0.d, w1 * x1.d);
                        let p0 = block_dot(
                            fmt,
                            weights(fmt, b0),
                            _mm256_loadu_si256(x0.qs.as_ptr().cast()),
                        );
                        let p1 = block_dot(
                            fmt,
                            weights(fmt, b1),
                            _mm256_loadu_si256(x1.qs.as_ptr().cast()),
                        );
                        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(d0), p0, acc0);
                        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(d1), p1, acc1);
                        extra += correction(fmt, b0, w0, x0) + correction(fmt, b1, w1, x1);
                    }
                    i += 2;
                }
                if i < n {
                    // SAFETY: as above.
                    unsafe {
                        let b0 = base.add(i * bb);
                        let w0 = f16_at(b0);
                        let d0 = w0 * x[i].d;
                        let p0 = block_dot(
                            fmt,
                            weights(fmt, b0),
                            _mm256_loadu_si256(x[i].qs.as_ptr().cast()),
                        );
                        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(d0), p0, acc0);
                        extra += correction(fmt, b0, w0, &x[i]);
                    }
                }
                hsum(_mm256_add_ps(acc0, acc1)) + extra
            }

            #[target_feature(enable = $features)]
            pub(super) unsafe fn dot(fmt: Format, row: &[u8], x: &[Q8Block]) -> f32 {
                // SAFETY: forwarded from the caller.
                unsafe {
                    match fmt {
                        Format::Q4_0 => dot_fmt::<0>(row, x),
                        Format::Q4_1 => dot_fmt::<1>(row, x),
                        Format::Q8_0 => dot_fmt::<2>(row, x),
                        Format::Q5_0 => dot_fmt::<3>(row, x),
                        Format::Q5_1 => dot_fmt::<4>(row, x),
                        Format::Q4K => dot_k::<0>(row, x),
                        Format::Q6K => dot_k::<1>(row, x),
                    }
                }
            }

            /// One weight row against four activation rows: each weight block is loaded and unpacked once.
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn dot4_fmt<const F: u8>(row: &[u8], xs: [&[Q8Block]; 4]) -> [f32; 4] {
                let fmt = match F {
                    0 => Format::Q4_0,
                    1 => Format::Q4_1,
                    3 => Format::Q5_0,
                    4 => Format::Q5_1,
                    _ => Format::Q8_0,
                };
                let bb = fmt.block_bytes();
                let base = row.as_ptr();
                let mut acc = [_mm256_setzero_ps(); 4];
                let mut extra = [0f32; 4];
                for i in 0..row.len() / bb {
                    // SAFETY: block i is inside `row`; every activation row has as many blocks.
                    unsafe {
                        let b = base.add(i * bb);
                        let dw = f16_at(b);
                        let w = weights(fmt, b);
                        for k in 0..4 {
                            let xb = &xs[k][i];
                            let d = dw * xb.d;
                            let p = block_dot(fmt, w, _mm256_loadu_si256(xb.qs.as_ptr().cast()));
                            acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(d), p, acc[k]);
                            extra[k] += correction(fmt, b, dw, xb);
                        }
                    }
                }
                [0, 1, 2, 3].map(|k| hsum(acc[k]) + extra[k])
            }

            #[target_feature(enable = $features)]
            pub(super) unsafe fn dot4(fmt: Format, row: &[u8], xs: [&[Q8Block]; 4]) -> [f32; 4] {
                debug_assert_eq!(QK, 32);
                // SAFETY: forwarded from the caller.
                unsafe {
                    match fmt {
                        Format::Q4_0 => dot4_fmt::<0>(row, xs),
                        Format::Q4_1 => dot4_fmt::<1>(row, xs),
                        Format::Q8_0 => dot4_fmt::<2>(row, xs),
                        Format::Q5_0 => dot4_fmt::<3>(row, xs),
                        Format::Q5_1 => dot4_fmt::<4>(row, xs),
                        Format::Q4K => dot4_k::<0>(row, xs),
                        Format::Q6K => dot4_k::<1>(row, xs),
                    }
                }
            }
        }
    };
}

/// AVX2: `maddubs` to i16 pairs, then `madd` with ones to i32.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
fn pairs_avx2(
    u: std::arch::x86_64::__m256i,
    s: std::arch::x86_64::__m256i,
) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
}

/// AVX-VNNI: one `vpdpbusd`.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,avxvnni")]
fn pairs_avxvnni(
    u: std::arch::x86_64::__m256i,
    s: std::arch::x86_64::__m256i,
) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, s)
}

/// AVX512-VNNI on 256-bit registers: one `vpdpbusd`.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,avx512vnni,avx512vl")]
fn pairs_avx512vnni(
    u: std::arch::x86_64::__m256i,
    s: std::arch::x86_64::__m256i,
) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s)
}

#[cfg(target_arch = "x86_64")]
x86_kernels!(avx2, "avx2,fma,f16c", pairs_avx2);
#[cfg(target_arch = "x86_64")]
x86_kernels!(avxvnni, "avx2,fma,f16c,avxvnni", pairs_avxvnni);
#[cfg(target_arch = "x86_64")]
x86_kernels!(
    avx512vnni,
    "avx2,fma,f16c,avx512vnni,avx512vl",
    pairs_avx512vnni
);

#[cfg(test)]
mod tests {
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    use super::*;

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Every format, odd shapes: our dot products against a float64 reference over candle's own quantization
    /// and dequantization of the same weights.
    #[test]
    fn dot_products_match_a_float64_reference() {
        let paths = KernelPath::available();
        for (fmt, ggml) in [
            (Format::Q4_0, GgmlDType::Q4_0),
            (Format::Q4_1, GgmlDType::Q4_1),
            (Format::Q8_0, GgmlDType::Q8_0),
            (Format::Q5_0, GgmlDType::Q5_0),
            (Format::Q5_1, GgmlDType::Q5_1),
            (Format::Q4K, GgmlDType::Q4K),
            (Format::Q6K, GgmlDType::Q6K),
        ] {
            let shapes: &[(usize, usize)] = if fmt.block_elems() == QK {
                &[(1, 32), (3, 64), (5, 96), (7, 576), (2, 1536)]
            } else {
                &[(1, 256), (3, 512), (5, 768), (2, 2048)]
            };
            for &(rows, cols) in shapes {
                let w = random(rows * cols, 11 + cols as u64);
                let x = random(cols, 7 + rows as u64);
                let qt = QTensor::quantize(
                    &Tensor::from_vec(w, (rows, cols), &Device::Cpu).unwrap(),
                    ggml,
                )
                .unwrap();
                let bytes = qt.data().unwrap();
                let deq: Vec<f32> = qt
                    .dequantize(&Device::Cpu)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                let mut xq = vec![Q8Block::default(); cols / QK];
                quantize_row(&x, &mut xq);
                let xdeq: Vec<f64> = xq
                    .iter()
                    .flat_map(|b| b.qs.map(|q| f64::from(q) * f64::from(b.d)))
                    .collect();
                let rb = cols / fmt.block_elems() * fmt.block_bytes();
                for r in 0..rows {
                    let reference: f64 = (0..cols)
                        .map(|c| f64::from(deq[r * cols + c]) * xdeq[c])
                        .sum();
                    for &path in &paths {
                        let got = f64::from(dot(path, fmt, &bytes[r * rb..(r + 1) * rb], &xq));
                        let tol = 1e-4 * (1.0 + reference.abs()) + 1e-5 * cols as f64;
                        assert!(
                            (got - reference).abs() < tol,
                            "{fmt:?} {path:?} {rows}x{cols} row {r}: {got} vs {reference}"
                        );
                    }
                    // Four different activation rows: each result must be its own row's product.
                    let xs: Vec<Vec<Q8Block>> = (0..4u64)
                        .map(|k| {
                            let mut q = vec![Q8Block::default(); cols / QK];
                            quantize_row(&random(cols, 100 + k), &mut q);
                            q
                        })
                        .collect();
                    let row = &bytes[r * rb..(r + 1) * rb];
                    for &path in &paths {
                        let four = dot4(path, fmt, row, [&xs[0], &xs[1], &xs[2], &xs[3]]);
                        for (k, got) in four.into_iter().enumerate() {
                            let want = dot_portable(fmt, row, &xs[k]);
                            assert!(
                                (got - want).abs() < 1e-4 * (1.0 + want.abs()),
                                "{fmt:?} {path:?} dot4 row {k}"
                            );
                        }
                    }
                    let mut row = vec![0f32; cols];
                    dequantize_row(fmt, &bytes[r * rb..(r + 1) * rb], &mut row);
                    assert_eq!(row, deq[r * cols..(r + 1) * cols], "{fmt:?} dequantize");
                }
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
