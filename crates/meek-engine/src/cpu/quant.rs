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

    /// Whether this is a K-quant (256-element super-blocks, read against [`Q8KBlock`] activations).
    pub fn is_k(self) -> bool {
        matches!(self, Self::Q4K | Self::Q6K)
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
    /// Scale: `x ≈ qs * d`.
    pub d: f32,
}

impl Default for Q8KBlock {
    fn default() -> Self {
        Self {
            qs: [0; QK_K],
            bsums: [0; 16],
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
        b.d = d;
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
    /// The path to use: `MEEKBENCH_CPU_PATH` (`portable`, `avx2`, `avxvnni`, `avx512vnni`) when it names one this
    /// CPU runs, to compare paths on one machine; otherwise the best this CPU supports. Results record the path.
    pub fn detect() -> Self {
        let wanted = std::env::var("MEEKBENCH_CPU_PATH").unwrap_or_default();
        Self::available()
            .into_iter()
            .find(|p| !wanted.is_empty() && p.name() == format!("cpu-{}", wanted.trim()))
            .unwrap_or_else(Self::best)
    }

    /// The best path this CPU supports.
    pub fn best() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx2") && has!("fma") && has!("f16c") {
                // AVX-512's 32 vector registers hold a larger prefill tile than AVX-VNNI's 16.
                if has!("avx512vnni") && has!("avx512vl") {
                    return Self::Avx512Vnni;
                }
                if has!("avxvnni") {
                    return Self::AvxVnni;
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

/// Calls kernel `$f` of the instruction-set module `$path` names, or evaluates `$portable` on the portable path.
macro_rules! dispatch {
    ($path:expr, $f:ident($($arg:expr),*), $portable:expr) => {
        match $path {
            #[cfg(target_arch = "x86_64")]
            // SAFETY (all x86 paths): `detect` chose the path from the CPU's features; the caller checked the lengths.
            KernelPath::Avx2 => unsafe { avx2::$f($($arg),*) },
            #[cfg(target_arch = "x86_64")]
            KernelPath::AvxVnni => unsafe { avxvnni::$f($($arg),*) },
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx512Vnni => unsafe { avx512vnni::$f($($arg),*) },
            _ => $portable,
        }
    };
}

/// Dot product of one row of weights (`fmt` blocks) with quantized activations.
#[inline]
pub fn dot(path: KernelPath, fmt: Format, row: &[u8], x: &[Q8Block]) -> f32 {
    assert!(
        !fmt.is_k(),
        "{fmt:?} multiplies Q8KBlock activations: use dot_k"
    );
    assert_eq!(row.len(), x.len() * fmt.block_bytes());
    dispatch!(path, dot(fmt, row, x), dot_portable(fmt, row, x))
}

/// One row of weights against four rows of activations (prefill): each weight block is unpacked once.
#[inline]
pub fn dot4(path: KernelPath, fmt: Format, row: &[u8], xs: [&[Q8Block]; 4]) -> [f32; 4] {
    assert!(
        !fmt.is_k(),
        "{fmt:?} multiplies Q8KBlock activations: use dot4_k"
    );
    assert!(xs.iter().all(|x| x.len() * fmt.block_bytes() == row.len()));
    dispatch!(
        path,
        dot4(fmt, row, xs),
        xs.map(|x| dot_portable(fmt, row, x))
    )
}

/// Activation rows per prefill tile of [`tile`] on this path (four weight rows each), 0 where the tile does not pay:
/// 4 with AVX-512's 32 vector registers; with AVX2's 16 a four-by-two tile spills and one weight row against four
/// activation rows ([`dot4`]) is faster.
pub fn tile_acts(path: KernelPath) -> usize {
    match path {
        KernelPath::Avx512Vnni => 4,
        KernelPath::Portable | KernelPath::Avx2 | KernelPath::AvxVnni => 0,
    }
}

/// Weight rows of a 32-element format, four at a time, against `N` activation rows: `out[r][t] = row r · xs[t]`,
/// where `rows` holds `out.len()` consecutive rows of `row_bytes` each and `out.len()` is a multiple of four. One
/// call covers a whole tile of weight rows, so the kernel's set-up is paid once per tile, not per four rows. `N` is
/// [`tile_acts`] of the path for prompts and 1 for decode (any `N` works; the portable path computes each product
/// on its own).
#[inline]
pub fn tile<const N: usize>(
    path: KernelPath,
    fmt: Format,
    rows: &[u8],
    row_bytes: usize,
    xs: [&[Q8Block]; N],
    out: &mut [[f32; N]],
) {
    assert!(
        !fmt.is_k(),
        "{fmt:?} multiplies Q8KBlock activations: use dot4_k"
    );
    assert!(out.len().is_multiple_of(4) && rows.len() == out.len() * row_bytes);
    assert!(xs.iter().all(|x| x.len() * fmt.block_bytes() == row_bytes));
    dispatch!(path, tile(fmt, rows, row_bytes, xs, out), {
        for (r, o) in rows.chunks_exact(row_bytes).zip(out.iter_mut()) {
            *o = xs.map(|x| dot_portable(fmt, r, x));
        }
    })
}

/// Dot product of one row of K-quant weights with [`Q8KBlock`] activations.
#[inline]
pub fn dot_k(path: KernelPath, fmt: Format, row: &[u8], x: &[Q8KBlock]) -> f32 {
    assert!(
        fmt.is_k(),
        "{fmt:?} multiplies Q8Block activations: use dot"
    );
    assert_eq!(row.len(), x.len() * fmt.block_bytes());
    dispatch!(path, dot_k(fmt, row, x), dot_k_portable(fmt, row, x))
}

/// One row of K-quant weights against four rows of [`Q8KBlock`] activations (prefill).
#[inline]
pub fn dot4_k(path: KernelPath, fmt: Format, row: &[u8], xs: [&[Q8KBlock]; 4]) -> [f32; 4] {
    assert!(
        fmt.is_k(),
        "{fmt:?} multiplies Q8Block activations: use dot4"
    );
    assert!(xs.iter().all(|x| x.len() * fmt.block_bytes() == row.len()));
    dispatch!(
        path,
        dot4_k(fmt, row, xs),
        xs.map(|x| dot_k_portable(fmt, row, x))
    )
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

/// All eight 6-bit scales (bytes 0-7) and minimums (bytes 8-15) of a Q4_K block's 12 packed bytes (llama.cpp's
/// `utmp` unpacking; the same values as [`q4k_scale_min`]).
#[inline]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn q4k_scales(s: &[u8]) -> [u8; 16] {
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

/// The portable K-quant dot product, also the reference for the SIMD versions.
pub fn dot_k_portable(fmt: Format, row: &[u8], x: &[Q8KBlock]) -> f32 {
    let mut acc = 0f32;
    for (blk, xb) in row.chunks_exact(fmt.block_bytes()).zip(x) {
        for c in 0..fmt.chunks() {
            let ch = unpack(fmt, blk, c);
            let xq = &xb.qs[c * QK..(c + 1) * QK];
            let (mut s0, mut s1) = (0i32, 0i32);
            for j in 0..16 {
                s0 += i32::from(ch.q[j]) * i32::from(xq[j]);
                s1 += i32::from(ch.q[j + 16]) * i32::from(xq[j + 16]);
            }
            let sum = i32::from(xb.bsums[2 * c]) + i32::from(xb.bsums[2 * c + 1]);
            acc += xb.d * (ch.scale[0] * s0 as f32 + ch.scale[1] * s1 as f32 + ch.min * sum as f32);
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

            use super::{Format, Q8Block, Q8KBlock, QK, $pairs};

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
                    Format::Q4K | Format::Q6K => unreachable!("K-quants go through dot_k_n"),
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

            /// One Q4_K super-block against `N` activation rows: integer sums per row with the sub-block scales
            /// applied by `madd`, one conversion to float, the minimums through the activations' 16-sums.
            /// Adds `d Σ sc q x` to `acc` and `dmin Σ m Σx` to `accm` (to be subtracted).
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn q4k_block<const N: usize>(
                b: *const u8,
                xs: [&Q8KBlock; N],
                acc: &mut [__m256; N],
                accm: &mut [__m256; N],
            ) {
                // SAFETY (every load below): `b` points at a whole 144-byte block; activation blocks are 32-aligned.
                let (d, dmin) = unsafe { (f16_at(b), f16_at(b.add(2))) };
                let sm = super::q4k_scales(unsafe { std::slice::from_raw_parts(b.add(4), 12) });
                // Each minimum twice, for the two 16-sums of its 32 elements.
                let m8 = _mm_cvtepu8_epi16(unsafe { _mm_loadl_epi64(sm.as_ptr().add(8).cast()) });
                let mins = _mm256_set_m128i(_mm_unpackhi_epi16(m8, m8), _mm_unpacklo_epi16(m8, m8));
                let m4 = _mm256_set1_epi8(0x0F);
                let mut sumi = [_mm256_setzero_si256(); N];
                for j in 0..4 {
                    let raw = unsafe { _mm256_loadu_si256(b.add(16 + 32 * j).cast()) };
                    let lo = _mm256_and_si256(raw, m4);
                    let hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
                    let sl = _mm256_set1_epi16(i16::from(sm[2 * j]));
                    let sh = _mm256_set1_epi16(i16::from(sm[2 * j + 1]));
                    for k in 0..N {
                        let q = xs[k].qs.as_ptr();
                        let (xl, xh) = unsafe {
                            (
                                _mm256_load_si256(q.add(64 * j).cast()),
                                _mm256_load_si256(q.add(64 * j + 32).cast()),
                            )
                        };
                        let pl = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, xl), sl);
                        let ph = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, xh), sh);
                        sumi[k] = _mm256_add_epi32(sumi[k], _mm256_add_epi32(pl, ph));
                    }
                }
                for k in 0..N {
                    let xd = xs[k].d;
                    acc[k] = _mm256_fmadd_ps(
                        _mm256_set1_ps(d * xd),
                        _mm256_cvtepi32_ps(sumi[k]),
                        acc[k],
                    );
                    let bs = unsafe { _mm256_load_si256(xs[k].bsums.as_ptr().cast()) };
                    accm[k] = _mm256_fmadd_ps(
                        _mm256_set1_ps(dmin * xd),
                        _mm256_cvtepi32_ps(_mm256_madd_epi16(bs, mins)),
                        accm[k],
                    );
                }
            }

            /// One Q6_K super-block against `N` activation rows: unsigned 6-bit weights (`q`, not `q - 32`) summed
            /// in integers with their 8-bit scales, the offset of 32 taken off through the activations' 16-sums.
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn q6k_block<const N: usize>(
                b: *const u8,
                xs: [&Q8KBlock; N],
                acc: &mut [__m256; N],
            ) {
                // SAFETY (every load below): `b` points at a whole 210-byte block; activation blocks are 32-aligned.
                let d = unsafe { f16_at(b.add(208)) };
                let scales = unsafe { std::slice::from_raw_parts(b.add(192), 16) };
                let sc16 = _mm256_cvtepi8_epi16(unsafe { _mm_loadu_si128(scales.as_ptr().cast()) });
                let (m4, m3) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(3));
                let mut sumi = [_mm256_setzero_si256(); N];
                for n in 0..2 {
                    let (ql0, ql1, qh) = unsafe {
                        (
                            _mm256_loadu_si256(b.add(64 * n).cast()),
                            _mm256_loadu_si256(b.add(64 * n + 32).cast()),
                            _mm256_loadu_si256(b.add(128 + 32 * n).cast()),
                        )
                    };
                    // The two high bits of each weight, in place as bits 4-5.
                    let h0 = _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4);
                    let h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4);
                    let h2 = _mm256_and_si256(qh, _mm256_set1_epi8(0x30));
                    let h3 = _mm256_and_si256(_mm256_srli_epi16(qh, 2), _mm256_set1_epi8(0x30));
                    let q = [
                        _mm256_or_si256(_mm256_and_si256(ql0, m4), h0),
                        _mm256_or_si256(_mm256_and_si256(ql1, m4), h1),
                        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), h2),
                        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4), h3),
                    ];
                    for (kk, &w) in q.iter().enumerate() {
                        let c = 4 * n + kk;
                        let sv = _mm256_set_m128i(
                            _mm_set1_epi16(i16::from(scales[2 * c + 1] as i8)),
                            _mm_set1_epi16(i16::from(scales[2 * c] as i8)),
                        );
                        for k in 0..N {
                            let x =
                                unsafe { _mm256_load_si256(xs[k].qs.as_ptr().add(32 * c).cast()) };
                            let p = _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), sv);
                            sumi[k] = _mm256_add_epi32(sumi[k], p);
                        }
                    }
                }
                for k in 0..N {
                    let bs = unsafe { _mm256_load_si256(xs[k].bsums.as_ptr().cast()) };
                    let offset = _mm256_slli_epi32(_mm256_madd_epi16(sc16, bs), 5);
                    acc[k] = _mm256_fmadd_ps(
                        _mm256_set1_ps(d * xs[k].d),
                        _mm256_cvtepi32_ps(_mm256_sub_epi32(sumi[k], offset)),
                        acc[k],
                    );
                }
            }

            /// `N` activation rows against one K-quant weight row.
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn dot_k_n<const N: usize>(
                fmt: Format,
                row: &[u8],
                xs: [&[Q8KBlock]; N],
            ) -> [f32; N] {
                let bb = fmt.block_bytes();
                let mut acc = [_mm256_setzero_ps(); N];
                let mut accm = [_mm256_setzero_ps(); N];
                for i in 0..row.len() / bb {
                    // SAFETY: block i is inside `row`; every activation row has one block per weight block.
                    unsafe {
                        let b = row.as_ptr().add(i * bb);
                        let x = xs.map(|x| &x[i]);
                        if fmt == Format::Q4K {
                            q4k_block(b, x, &mut acc, &mut accm);
                        } else {
                            q6k_block(b, x, &mut acc);
                        }
                    }
                }
                let mut out = [0f32; N];
                for k in 0..N {
                    out[k] = hsum(_mm256_sub_ps(acc[k], accm[k]));
                }
                out
            }

            #[target_feature(enable = $features)]
            pub(super) unsafe fn dot_k(fmt: Format, row: &[u8], x: &[Q8KBlock]) -> f32 {
                // SAFETY: forwarded from the caller.
                unsafe { dot_k_n(fmt, row, [x])[0] }
            }

            #[target_feature(enable = $features)]
            pub(super) unsafe fn dot4_k(fmt: Format, row: &[u8], xs: [&[Q8KBlock]; 4]) -> [f32; 4] {
                // SAFETY: forwarded from the caller.
                unsafe { dot_k_n(fmt, row, xs) }
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
                        Format::Q4K | Format::Q6K => unreachable!("K-quants go through dot_k"),
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

            /// The f16 at byte `at` of four blocks, as four floats.
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn half4(b: [*const u8; 4], at: usize) -> __m128 {
                // SAFETY: the caller's blocks hold an f16 at `at`.
                let h = unsafe {
                    [
                        std::ptr::read_unaligned(b[0].add(at).cast::<i16>()),
                        std::ptr::read_unaligned(b[1].add(at).cast::<i16>()),
                        std::ptr::read_unaligned(b[2].add(at).cast::<i16>()),
                        std::ptr::read_unaligned(b[3].add(at).cast::<i16>()),
                    ]
                };
                _mm_cvtph_ps(_mm_set_epi16(0, 0, 0, 0, h[3], h[2], h[1], h[0]))
            }

            /// Four weight rows against `RN` activation rows (prefill), 32-element formats: each weight block is
            /// unpacked once per `RN` activation rows and each activation block loaded once per four weight rows;
            /// the four rows' block scales are converted together, and the formats' offsets (Q4_0, Q5_0) or
            /// minimums (Q4_1, Q5_1) are applied through the activations' sums, four rows at a time, so that no
            /// scalar arithmetic is left in the loop. (Q8_0 keeps its signs: 255 x 127 would overflow `maddubs`.)
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn tile_fmt<const F: u8, const RN: usize>(
                rows: [&[u8]; 4],
                xs: [&[Q8Block]; RN],
                ahead: *const u8,
            ) -> [[f32; RN]; 4] {
                let fmt = match F {
                    0 => Format::Q4_0,
                    1 => Format::Q4_1,
                    3 => Format::Q5_0,
                    4 => Format::Q5_1,
                    _ => Format::Q8_0,
                };
                let bb = fmt.block_bytes();
                let offset = match fmt {
                    Format::Q4_0 => -8.0,
                    Format::Q5_0 => -16.0,
                    _ => 0.0,
                };
                let has_min = matches!(fmt, Format::Q4_1 | Format::Q5_1);
                let mut acc = [[_mm256_setzero_ps(); RN]; 4];
                let mut corr = [_mm_setzero_ps(); RN];
                for i in 0..xs[0].len() {
                    // SAFETY (pointers and loads): block i of each row is inside it (the caller checked the
                    // lengths); Q8Block is 32-byte aligned and starts with its 32 values.
                    unsafe {
                        let b = [
                            rows[0].as_ptr().add(i * bb),
                            rows[1].as_ptr().add(i * bb),
                            rows[2].as_ptr().add(i * bb),
                            rows[3].as_ptr().add(i * bb),
                        ];
                        if RN == 1 {
                            // Decode reads each weight once: ask for later rows' bytes now, so that more than
                            // the hardware prefetcher's few streams are in flight (one core's bandwidth is bound by
                            // the loads it has outstanding). Never dereferenced.
                            let p = ahead.wrapping_add(i * 4 * bb);
                            _mm_prefetch::<_MM_HINT_T0>(p.cast());
                            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64).cast());
                        }
                        let dw = half4(b, 0);
                        let m = if has_min {
                            half4(b, 2)
                        } else {
                            _mm_mul_ps(dw, _mm_set1_ps(offset))
                        };
                        let w = [
                            weights(fmt, b[0]),
                            weights(fmt, b[1]),
                            weights(fmt, b[2]),
                            weights(fmt, b[3]),
                        ];
                        for t in 0..RN {
                            let xb = xs[t].get_unchecked(i);
                            let xq = _mm256_load_si256(xb.qs.as_ptr().cast());
                            let ds = _mm_mul_ps(dw, _mm_set1_ps(xb.d));
                            let ds = _mm256_set_m128(ds, ds);
                            corr[t] = _mm_fmadd_ps(m, _mm_set1_ps(xb.s), corr[t]);
                            acc[0][t] = _mm256_fmadd_ps(
                                _mm256_shuffle_ps::<0x00>(ds, ds),
                                block_dot(fmt, w[0], xq),
                                acc[0][t],
                            );
                            acc[1][t] = _mm256_fmadd_ps(
                                _mm256_shuffle_ps::<0x55>(ds, ds),
                                block_dot(fmt, w[1], xq),
                                acc[1][t],
                            );
                            acc[2][t] = _mm256_fmadd_ps(
                                _mm256_shuffle_ps::<0xAA>(ds, ds),
                                block_dot(fmt, w[2], xq),
                                acc[2][t],
                            );
                            acc[3][t] = _mm256_fmadd_ps(
                                _mm256_shuffle_ps::<0xFF>(ds, ds),
                                block_dot(fmt, w[3], xq),
                                acc[3][t],
                            );
                        }
                    }
                }
                let mut out = [[0f32; RN]; 4];
                for t in 0..RN {
                    let mut c = [0f32; 4];
                    // SAFETY: four floats into a four-float array.
                    unsafe { _mm_storeu_ps(c.as_mut_ptr(), corr[t]) };
                    for r in 0..4 {
                        out[r][t] = hsum(acc[r][t]) + c[r];
                    }
                }
                out
            }

            /// Every group of four rows in `rows` through [`tile_fmt`].
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn tile_rows<const F: u8, const RN: usize>(
                rows: &[u8],
                rb: usize,
                xs: [&[Q8Block]; RN],
                out: &mut [[f32; RN]],
            ) {
                for (grp, o) in rows.chunks_exact(4 * rb).zip(out.chunks_exact_mut(4)) {
                    let (r01, r23) = grp.split_at(2 * rb);
                    let (r0, r1) = r01.split_at(rb);
                    let (r2, r3) = r23.split_at(rb);
                    let ahead = grp.as_ptr().wrapping_add(4 * super::PREFETCH_GROUPS * rb);
                    // SAFETY: forwarded from the caller.
                    let v = unsafe { tile_fmt::<F, RN>([r0, r1, r2, r3], xs, ahead) };
                    o.copy_from_slice(&v);
                }
            }

            #[target_feature(enable = $features)]
            pub(super) unsafe fn tile<const RN: usize>(
                fmt: Format,
                rows: &[u8],
                rb: usize,
                xs: [&[Q8Block]; RN],
                out: &mut [[f32; RN]],
            ) {
                // SAFETY: forwarded from the caller.
                unsafe {
                    match fmt {
                        Format::Q4_0 => tile_rows::<0, RN>(rows, rb, xs, out),
                        Format::Q4_1 => tile_rows::<1, RN>(rows, rb, xs, out),
                        Format::Q8_0 => tile_rows::<2, RN>(rows, rb, xs, out),
                        Format::Q5_0 => tile_rows::<3, RN>(rows, rb, xs, out),
                        Format::Q5_1 => tile_rows::<4, RN>(rows, rb, xs, out),
                        Format::Q4K | Format::Q6K => unreachable!("K-quants go through dot4_k"),
                    }
                }
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
                        Format::Q4K | Format::Q6K => unreachable!("K-quants go through dot4_k"),
                    }
                }
            }
        }
    };
}

/// How many groups of four weight rows ahead the decode tile prefetches.
#[cfg(target_arch = "x86_64")]
const PREFETCH_GROUPS: usize = 2;

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

    /// Activations quantized the way a format reads them.
    enum Acts {
        Q8(Vec<Q8Block>),
        Q8K(Vec<Q8KBlock>),
    }

    impl Acts {
        fn new(fmt: Format, x: &[f32]) -> Self {
            if fmt.is_k() {
                let mut q = vec![Q8KBlock::default(); x.len() / QK_K];
                quantize_row_k(x, &mut q);
                Self::Q8K(q)
            } else {
                let mut q = vec![Q8Block::default(); x.len() / QK];
                quantize_row(x, &mut q);
                Self::Q8(q)
            }
        }

        fn dequantized(&self) -> Vec<f64> {
            match self {
                Self::Q8(q) => q
                    .iter()
                    .flat_map(|b| b.qs.map(|v| f64::from(v) * f64::from(b.d)))
                    .collect(),
                Self::Q8K(q) => q
                    .iter()
                    .flat_map(|b| b.qs.map(|v| f64::from(v) * f64::from(b.d)))
                    .collect(),
            }
        }

        fn dot(&self, path: KernelPath, fmt: Format, row: &[u8]) -> f32 {
            match self {
                Self::Q8(q) => dot(path, fmt, row, q),
                Self::Q8K(q) => dot_k(path, fmt, row, q),
            }
        }

        fn dot4(path: KernelPath, fmt: Format, row: &[u8], xs: [&Self; 4]) -> [f32; 4] {
            match xs {
                [Self::Q8(a), Self::Q8(b), Self::Q8(c), Self::Q8(d)] => {
                    dot4(path, fmt, row, [a, b, c, d])
                }
                [Self::Q8K(a), Self::Q8K(b), Self::Q8K(c), Self::Q8K(d)] => {
                    dot4_k(path, fmt, row, [a, b, c, d])
                }
                _ => unreachable!("four rows of one kind"),
            }
        }
    }

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
            for (v, &qv) in chunk.iter().zip(&b.qs) {
                assert!((v - f32::from(qv) * b.d).abs() <= b.d / 2.0 + 1e-7);
            }
        }
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
                let acts = Acts::new(fmt, &x);
                let xdeq = acts.dequantized();
                let rb = cols / fmt.block_elems() * fmt.block_bytes();
                for r in 0..rows {
                    let reference: f64 = (0..cols)
                        .map(|c| f64::from(deq[r * cols + c]) * xdeq[c])
                        .sum();
                    let row = &bytes[r * rb..(r + 1) * rb];
                    for &path in &paths {
                        let got = f64::from(acts.dot(path, fmt, row));
                        let tol = 1e-4 * (1.0 + reference.abs()) + 1e-5 * cols as f64;
                        assert!(
                            (got - reference).abs() < tol,
                            "{fmt:?} {path:?} {rows}x{cols} row {r}: {got} vs {reference}"
                        );
                    }
                    // Four different activation rows: each result must be its own row's product.
                    let xs: Vec<Acts> = (0..4u64)
                        .map(|k| Acts::new(fmt, &random(cols, 100 + k)))
                        .collect();
                    for &path in &paths {
                        let four = Acts::dot4(path, fmt, row, [&xs[0], &xs[1], &xs[2], &xs[3]]);
                        for (k, got) in four.into_iter().enumerate() {
                            let want = xs[k].dot(KernelPath::Portable, fmt, row);
                            assert!(
                                (got - want).abs() < 1e-4 * (1.0 + want.abs()),
                                "{fmt:?} {path:?} dot4 row {k}: {got} vs {want}"
                            );
                        }
                    }
                    // Four weight rows (this one and the next, wrapping) against two and four activation rows.
                    if let Acts::Q8(_) = &xs[0] {
                        let q: Vec<&[Q8Block]> = xs
                            .iter()
                            .map(|a| match a {
                                Acts::Q8(q) => q.as_slice(),
                                Acts::Q8K(_) => unreachable!(),
                            })
                            .collect();
                        // Eight weight rows (this one and the next, wrapping): two groups of four.
                        let eight: Vec<&[u8]> = (0..8)
                            .map(|i| {
                                let r = (r + i) % rows;
                                &bytes[r * rb..(r + 1) * rb]
                            })
                            .collect();
                        let packed = eight.concat();
                        for &path in &paths {
                            for g in [1, 2] {
                                let w = &packed[..4 * g * rb];
                                let mut t1 = vec![[0f32; 1]; 4 * g];
                                let mut t2 = vec![[0f32; 2]; 4 * g];
                                let mut t4 = vec![[0f32; 4]; 4 * g];
                                tile(path, fmt, w, rb, [q[0]], &mut t1);
                                tile(path, fmt, w, rb, [q[0], q[1]], &mut t2);
                                tile(path, fmt, w, rb, [q[0], q[1], q[2], q[3]], &mut t4);
                                for (i, w) in eight[..4 * g].iter().enumerate() {
                                    for (k, x) in q.iter().enumerate() {
                                        let want = dot_portable(fmt, w, x);
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
