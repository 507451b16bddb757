//! The x86-64 kernels, one module per instruction set (AVX2, AVX-VNNI, AVX512-VNNI on 256-bit registers), all
//! generated from one macro that differs only in how byte pairs are multiplied and summed. Every function carries
//! its `target_feature`s; [`crate::dispatch`] calls them only on a [`KernelPath`](crate::KernelPath) that
//! detection chose from the CPU's features.

use crate::acts::{Q8Block, Q8KBlock};
use crate::format::{Format, QK, q4k_scales};
use crate::interleave::{X8_ROWS, x8_bytes};

/// The format a kernel's const parameter `F` stands for (0 Q4_0, 1 Q4_1, 2 Q8_0, 3 Q5_0, 4 Q5_1), evaluated at
/// compile time in each instantiation.
const fn format_of(f: u8) -> Format {
    match f {
        0 => Format::Q4_0,
        1 => Format::Q4_1,
        3 => Format::Q5_0,
        4 => Format::Q5_1,
        _ => Format::Q8_0,
    }
}

/// x86-64 kernels, generated once per instruction set: `$pairs` sums the products of unsigned and signed byte
/// pairs of a block into eight i32 lanes, `$acc` adds them to an accumulator.
macro_rules! x86_kernels {
    ($name:ident, $features:literal, $pairs:ident, $acc:ident) => {
        pub(crate) mod $name {
            use std::arch::x86_64::*;

            use super::{
                Format, Q8Block, Q8KBlock, QK, X8_ROWS, format_of, x8_bytes, $acc, $pairs,
            };

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
            pub(crate) unsafe fn dot_k(fmt: Format, row: &[u8], x: &[Q8KBlock]) -> f32 {
                // SAFETY: forwarded from the caller.
                unsafe { dot_k_n(fmt, row, [x])[0] }
            }

            #[target_feature(enable = $features)]
            pub(crate) unsafe fn dot4_k(fmt: Format, row: &[u8], xs: [&[Q8KBlock]; 4]) -> [f32; 4] {
                // SAFETY: forwarded from the caller.
                unsafe { dot_k_n(fmt, row, xs) }
            }

            /// One super-block of eight interleaved Q4_K rows ([`crate::interleave`]) against `N` activation rows:
            /// lane `r` of every register is row `r`. Per sub-block, four 32-byte chunks of nibbles meet four
            /// activations broadcast to every lane (one `$acc` adds 32 products), the eight rows' scales multiply the
            /// sub-block's sums at once; the minimums meet the activations' 32-sums in pairs of sub-blocks.
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn q4k_x8_block<const N: usize>(
                b: *const u8,
                xs: [&Q8KBlock; N],
                acc: &mut [__m256; N],
                accm: &mut [__m256; N],
            ) {
                // SAFETY (every load below): `b` points at a whole interleaved super-block; activation blocks hold
                // 256 values and eight 32-sums.
                let (d8, dm8) = unsafe {
                    (
                        _mm256_cvtph_ps(_mm_loadu_si128(b.cast())),
                        _mm256_cvtph_ps(_mm_loadu_si128(b.add(16).cast())),
                    )
                };
                let m4 = _mm256_set1_epi8(0x0F);
                let mut sumi = [_mm256_setzero_si256(); N];
                for j in 0..8 {
                    let sc =
                        _mm256_cvtepu8_epi32(unsafe { _mm_loadl_epi64(b.add(32 + 8 * j).cast()) });
                    let mut s = [_mm256_setzero_si256(); N];
                    for c in 0..4 {
                        let raw =
                            unsafe { _mm256_loadu_si256(b.add(160 + 128 * j + 32 * c).cast()) };
                        let lo = _mm256_and_si256(raw, m4);
                        let hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
                        for k in 0..N {
                            let q = unsafe { xs[k].qs.as_ptr().add(32 * j + 4 * c) };
                            let (xl, xh) = unsafe {
                                (
                                    _mm256_set1_epi32(std::ptr::read_unaligned(q.cast::<i32>())),
                                    _mm256_set1_epi32(std::ptr::read_unaligned(
                                        q.add(16).cast::<i32>(),
                                    )),
                                )
                            };
                            s[k] = $acc(s[k], lo, xl);
                            s[k] = $acc(s[k], hi, xh);
                        }
                    }
                    for k in 0..N {
                        sumi[k] = _mm256_add_epi32(sumi[k], _mm256_mullo_epi32(s[k], sc));
                    }
                }
                for k in 0..N {
                    let mut ms = _mm256_setzero_si256();
                    for p in 0..4 {
                        let (mv, bs) = unsafe {
                            (
                                _mm256_cvtepu8_epi16(_mm_loadu_si128(b.add(96 + 16 * p).cast())),
                                _mm256_set1_epi32(std::ptr::read_unaligned(
                                    xs[k].bsums32.as_ptr().add(2 * p).cast::<i32>(),
                                )),
                            )
                        };
                        ms = _mm256_add_epi32(ms, _mm256_madd_epi16(mv, bs));
                    }
                    let xd = _mm256_set1_ps(xs[k].d);
                    acc[k] =
                        _mm256_fmadd_ps(_mm256_mul_ps(d8, xd), _mm256_cvtepi32_ps(sumi[k]), acc[k]);
                    accm[k] =
                        _mm256_fmadd_ps(_mm256_mul_ps(dm8, xd), _mm256_cvtepi32_ps(ms), accm[k]);
                }
            }

            /// One super-block of eight interleaved Q6_K rows ([`crate::interleave`]) against `N` activation rows:
            /// per unit of 32 weights, the high two bits put in place beside each chunk's nibbles, the two halves'
            /// sums kept apart for their scales; the offset of 32 taken off through the activations' 16-sums.
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn q6k_x8_block<const N: usize>(
                b: *const u8,
                xs: [&Q8KBlock; N],
                acc: &mut [__m256; N],
            ) {
                // SAFETY (every load below): `b` points at a whole interleaved super-block; activation blocks hold
                // 256 values and sixteen 16-sums.
                let d8 = unsafe { _mm256_cvtph_ps(_mm_loadu_si128(b.cast())) };
                let (m4, m30) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(0x30));
                let mut sumi = [_mm256_setzero_si256(); N];
                let mut off = [_mm256_setzero_si256(); N];
                for u in 0..8 {
                    // Lane pairs (2r, 2r + 1): the scales of the unit's two halves of row r.
                    let sc16 =
                        _mm256_cvtepi8_epi16(unsafe { _mm_loadu_si128(b.add(16 + 16 * u).cast()) });
                    let sc_lo = _mm256_srai_epi32(_mm256_slli_epi32(sc16, 16), 16);
                    let sc_hi = _mm256_srai_epi32(sc16, 16);
                    let (qa, qb) = unsafe {
                        (
                            _mm256_loadu_si256(b.add(1168 + 64 * u).cast()),
                            _mm256_loadu_si256(b.add(1168 + 64 * u + 32).cast()),
                        )
                    };
                    let mut sl = [_mm256_setzero_si256(); N];
                    let mut sh = [_mm256_setzero_si256(); N];
                    for c in 0..4 {
                        let raw =
                            unsafe { _mm256_loadu_si256(b.add(144 + 128 * u + 32 * c).cast()) };
                        // Chunk c's two high bits are bits 2c, 2c + 1: moved to bits 4-5.
                        let (ha, hb) = match c {
                            0 => (_mm256_slli_epi16(qa, 4), _mm256_slli_epi16(qb, 4)),
                            1 => (_mm256_slli_epi16(qa, 2), _mm256_slli_epi16(qb, 2)),
                            2 => (qa, qb),
                            _ => (_mm256_srli_epi16(qa, 2), _mm256_srli_epi16(qb, 2)),
                        };
                        let lo =
                            _mm256_or_si256(_mm256_and_si256(raw, m4), _mm256_and_si256(ha, m30));
                        let hi = _mm256_or_si256(
                            _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4),
                            _mm256_and_si256(hb, m30),
                        );
                        for k in 0..N {
                            let q = unsafe { xs[k].qs.as_ptr().add(32 * u + 4 * c) };
                            let (xl, xh) = unsafe {
                                (
                                    _mm256_set1_epi32(std::ptr::read_unaligned(q.cast::<i32>())),
                                    _mm256_set1_epi32(std::ptr::read_unaligned(
                                        q.add(16).cast::<i32>(),
                                    )),
                                )
                            };
                            sl[k] = $acc(sl[k], lo, xl);
                            sh[k] = $acc(sh[k], hi, xh);
                        }
                    }
                    for k in 0..N {
                        let scaled = _mm256_add_epi32(
                            _mm256_mullo_epi32(sl[k], sc_lo),
                            _mm256_mullo_epi32(sh[k], sc_hi),
                        );
                        sumi[k] = _mm256_add_epi32(sumi[k], scaled);
                        let bs = _mm256_set1_epi32(unsafe {
                            std::ptr::read_unaligned(xs[k].bsums.as_ptr().add(2 * u).cast::<i32>())
                        });
                        off[k] = _mm256_add_epi32(off[k], _mm256_madd_epi16(sc16, bs));
                    }
                }
                for k in 0..N {
                    let t = _mm256_sub_epi32(sumi[k], _mm256_slli_epi32(off[k], 5));
                    acc[k] = _mm256_fmadd_ps(
                        _mm256_mul_ps(d8, _mm256_set1_ps(xs[k].d)),
                        _mm256_cvtepi32_ps(t),
                        acc[k],
                    );
                }
            }

            /// One group of eight interleaved K-quant rows against `N` activation rows: `out[t][r] = row r ·
            /// xs[t]`. Decode (`N` = 1) asks for the bytes at `ahead` into L2 as it reads the group's.
            #[target_feature(enable = $features)]
            pub(crate) unsafe fn dot_x8<const N: usize>(
                fmt: Format,
                group: &[u8],
                xs: [&[Q8KBlock]; N],
                ahead: *const u8,
            ) -> [[f32; X8_ROWS]; N] {
                let xb = x8_bytes(fmt);
                let mut acc = [_mm256_setzero_ps(); N];
                let mut accm = [_mm256_setzero_ps(); N];
                for i in 0..group.len() / xb {
                    if N == 1 {
                        let p = ahead.wrapping_add(i * xb);
                        let mut off = 0;
                        while off < xb {
                            // Never dereferenced: a hint, into L2.
                            _mm_prefetch::<_MM_HINT_T1>(p.wrapping_add(off).cast());
                            off += 64;
                        }
                    }
                    // SAFETY: super-block i is inside `group`; every activation row has one block per super-block.
                    unsafe {
                        let x = xs.map(|x| x.get_unchecked(i));
                        let b = group.as_ptr().add(i * xb);
                        if fmt == Format::Q4K {
                            q4k_x8_block(b, x, &mut acc, &mut accm);
                        } else {
                            q6k_x8_block(b, x, &mut acc);
                        }
                    }
                }
                let mut out = [[0f32; X8_ROWS]; N];
                for k in 0..N {
                    // SAFETY: eight floats into an eight-float array.
                    unsafe {
                        _mm256_storeu_ps(out[k].as_mut_ptr(), _mm256_sub_ps(acc[k], accm[k]))
                    };
                }
                out
            }

            /// One block of eight interleaved rows of the 32-element format `F` ([`crate::interleave`]) against `N`
            /// activation rows: eight registers of four weights per row, each against four activations broadcast to
            /// every lane; the format's offset through the activations' sums, its minimum (Q4_1, Q5_1) through their
            /// real sums.
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn block32_x8<const F: u8, const N: usize>(
                b: *const u8,
                xs: [&Q8Block; N],
                acc: &mut [__m256; N],
            ) {
                let fmt = const { format_of(F) };
                let has_min = matches!(fmt, Format::Q4_1 | Format::Q5_1);
                let offset = match fmt {
                    Format::Q4_0 => 8,
                    Format::Q5_0 => 16,
                    Format::Q8_0 => 128,
                    _ => 0,
                };
                // SAFETY (every load below): `b` points at a whole interleaved block.
                let d8 = unsafe { _mm256_cvtph_ps(_mm_loadu_si128(b.cast())) };
                // Register e holds weights `first[e]..first[e] + 4` of each row.
                let mut w = [_mm256_setzero_si256(); 8];
                let first: [usize; 8] = if fmt == Format::Q8_0 {
                    for (c, w) in w.iter_mut().enumerate() {
                        *w = unsafe { _mm256_loadu_si256(b.add(16 + 32 * c).cast()) };
                    }
                    [0, 4, 8, 12, 16, 20, 24, 28]
                } else {
                    let at = if has_min { 32 } else { 16 };
                    let m4 = _mm256_set1_epi8(0x0F);
                    let five = matches!(fmt, Format::Q5_0 | Format::Q5_1);
                    let qh = if five {
                        unsafe { _mm256_loadu_si256(b.add(at + 128).cast()) }
                    } else {
                        _mm256_setzero_si256()
                    };
                    let m10 = _mm256_set1_epi8(0x10);
                    for c in 0..4 {
                        let raw = unsafe { _mm256_loadu_si256(b.add(at + 32 * c).cast()) };
                        let mut lo = _mm256_and_si256(raw, m4);
                        let mut hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
                        if five {
                            // Chunk c's fifth bits are bits c (low nibbles) and 4 + c (high): moved to bit 4.
                            let (l, h) = match c {
                                0 => (_mm256_slli_epi16(qh, 4), qh),
                                1 => (_mm256_slli_epi16(qh, 3), _mm256_srli_epi16(qh, 1)),
                                2 => (_mm256_slli_epi16(qh, 2), _mm256_srli_epi16(qh, 2)),
                                _ => (_mm256_slli_epi16(qh, 1), _mm256_srli_epi16(qh, 3)),
                            };
                            lo = _mm256_or_si256(lo, _mm256_and_si256(l, m10));
                            hi = _mm256_or_si256(hi, _mm256_and_si256(h, m10));
                        }
                        (w[2 * c], w[2 * c + 1]) = (lo, hi);
                    }
                    [0, 16, 4, 20, 8, 24, 12, 28]
                };
                let m8 = if has_min {
                    unsafe { _mm256_cvtph_ps(_mm_loadu_si128(b.add(16).cast())) }
                } else {
                    _mm256_setzero_ps()
                };
                for k in 0..N {
                    let q = xs[k].qs.as_ptr();
                    let mut sum = _mm256_setzero_si256();
                    for e in 0..8 {
                        // SAFETY: four of the block's 32 activations.
                        let x = unsafe { std::ptr::read_unaligned(q.add(first[e]).cast::<i32>()) };
                        sum = $acc(sum, w[e], _mm256_set1_epi32(x));
                    }
                    if offset != 0 {
                        sum = _mm256_sub_epi32(sum, _mm256_set1_epi32(offset * xs[k].isum));
                    }
                    acc[k] = _mm256_fmadd_ps(
                        _mm256_mul_ps(d8, _mm256_set1_ps(xs[k].d)),
                        _mm256_cvtepi32_ps(sum),
                        acc[k],
                    );
                    if has_min {
                        acc[k] = _mm256_fmadd_ps(m8, _mm256_set1_ps(xs[k].s), acc[k]);
                    }
                }
            }

            /// One group of eight interleaved rows of the 32-element format `F` against `N` activation rows.
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn dot32_x8_fmt<const F: u8, const N: usize>(
                group: &[u8],
                xs: [&[Q8Block]; N],
                ahead: *const u8,
            ) -> [[f32; X8_ROWS]; N] {
                let xb = x8_bytes(const { format_of(F) });
                let mut acc = [_mm256_setzero_ps(); N];
                for i in 0..group.len() / xb {
                    if N == 1 && i % 2 == 0 {
                        // Never dereferenced: a hint, into L2 (the blocks are 144 to 272 bytes).
                        let p = ahead.wrapping_add(i * xb);
                        let mut off = 0;
                        while off < 2 * xb {
                            _mm_prefetch::<_MM_HINT_T1>(p.wrapping_add(off).cast());
                            off += 64;
                        }
                    }
                    // SAFETY: block i is inside `group`; every activation row has one block per block.
                    unsafe {
                        let x = xs.map(|x| x.get_unchecked(i));
                        block32_x8::<F, N>(group.as_ptr().add(i * xb), x, &mut acc);
                    }
                }
                let mut out = [[0f32; X8_ROWS]; N];
                for k in 0..N {
                    // SAFETY: eight floats into an eight-float array.
                    unsafe { _mm256_storeu_ps(out[k].as_mut_ptr(), acc[k]) };
                }
                out
            }

            /// One group of eight interleaved rows of a 32-element format against `N` activation rows.
            #[target_feature(enable = $features)]
            pub(crate) unsafe fn dot32_x8<const N: usize>(
                fmt: Format,
                group: &[u8],
                xs: [&[Q8Block]; N],
                ahead: *const u8,
            ) -> [[f32; X8_ROWS]; N] {
                // SAFETY: forwarded from the caller.
                unsafe {
                    match fmt {
                        Format::Q4_0 => dot32_x8_fmt::<0, N>(group, xs, ahead),
                        Format::Q4_1 => dot32_x8_fmt::<1, N>(group, xs, ahead),
                        Format::Q8_0 => dot32_x8_fmt::<2, N>(group, xs, ahead),
                        Format::Q5_0 => dot32_x8_fmt::<3, N>(group, xs, ahead),
                        Format::Q5_1 => dot32_x8_fmt::<4, N>(group, xs, ahead),
                        Format::Q4K | Format::Q6K => unreachable!("K-quants go through dot_x8"),
                    }
                }
            }

            /// Four K-quant weight rows against one activation row (decode): the rows' blocks are walked together,
            /// so four streams are in flight instead of one, and the bytes of the rows [`super::PREFETCH_GROUPS`]
            /// groups ahead are asked for as this group's are used (one core's bandwidth is bound by the loads it has
            /// outstanding; a 144-byte Q4_K block is more than two cache lines).
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn tile_k_group(
                fmt: Format,
                rows: [*const u8; 4],
                x: &[Q8KBlock],
                ahead: *const u8,
            ) -> [f32; 4] {
                let bb = fmt.block_bytes();
                let mut acc = [[_mm256_setzero_ps(); 1]; 4];
                let mut accm = [[_mm256_setzero_ps(); 1]; 4];
                for (i, xb) in x.iter().enumerate() {
                    let p = ahead.wrapping_add(i * 4 * bb);
                    let mut off = 0;
                    while off < 4 * bb {
                        // Never dereferenced: a hint.
                        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off).cast());
                        off += 64;
                    }
                    for r in 0..4 {
                        // SAFETY: block i of each row is inside it (the caller checked the lengths).
                        unsafe {
                            let b = rows[r].add(i * bb);
                            if fmt == Format::Q4K {
                                q4k_block(b, [xb], &mut acc[r], &mut accm[r]);
                            } else {
                                q6k_block(b, [xb], &mut acc[r]);
                            }
                        }
                    }
                }
                [0, 1, 2, 3].map(|r| hsum(_mm256_sub_ps(acc[r][0], accm[r][0])))
            }

            /// Every group of four K-quant rows in `rows` (`rb` bytes each) against `x`, through [`tile_k_group`].
            #[target_feature(enable = $features)]
            pub(crate) unsafe fn tile_k(
                fmt: Format,
                rows: &[u8],
                rb: usize,
                x: &[Q8KBlock],
                out: &mut [f32],
            ) {
                for (grp, o) in rows.chunks_exact(4 * rb).zip(out.chunks_exact_mut(4)) {
                    let base = grp.as_ptr();
                    let r = [
                        base,
                        base.wrapping_add(rb),
                        base.wrapping_add(2 * rb),
                        base.wrapping_add(3 * rb),
                    ];
                    let ahead = base.wrapping_add(4 * super::PREFETCH_GROUPS_K * rb);
                    // SAFETY: forwarded from the caller.
                    let v = unsafe { tile_k_group(fmt, r, x, ahead) };
                    o.copy_from_slice(&v);
                }
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
                let fmt = const { format_of(F) };
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
            pub(crate) unsafe fn dot(fmt: Format, row: &[u8], x: &[Q8Block]) -> f32 {
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
                let fmt = const { format_of(F) };
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
                let fmt = const { format_of(F) };
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
            pub(crate) unsafe fn tile<const RN: usize>(
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
            pub(crate) unsafe fn dot4(fmt: Format, row: &[u8], xs: [&[Q8Block]; 4]) -> [f32; 4] {
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
const PREFETCH_GROUPS: usize = 2;
/// The same for the K-quants' decode tile.
const PREFETCH_GROUPS_K: usize = 1;

/// AVX2: `maddubs` to i16 pairs, then `madd` with ones to i32.
#[inline]
#[target_feature(enable = "avx2")]
fn pairs_avx2(
    u: std::arch::x86_64::__m256i,
    s: std::arch::x86_64::__m256i,
) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
}

/// AVX2: [`pairs_avx2`] added to `acc`.
#[inline]
#[target_feature(enable = "avx2")]
fn acc_avx2(
    acc: std::arch::x86_64::__m256i,
    u: std::arch::x86_64::__m256i,
    s: std::arch::x86_64::__m256i,
) -> std::arch::x86_64::__m256i {
    std::arch::x86_64::_mm256_add_epi32(acc, pairs_avx2(u, s))
}

/// AVX-VNNI: `vpdpbusd` into `acc`.
#[inline]
#[target_feature(enable = "avx2,avxvnni")]
fn acc_avxvnni(
    acc: std::arch::x86_64::__m256i,
    u: std::arch::x86_64::__m256i,
    s: std::arch::x86_64::__m256i,
) -> std::arch::x86_64::__m256i {
    std::arch::x86_64::_mm256_dpbusd_avx_epi32(acc, u, s)
}

/// AVX512-VNNI on 256-bit registers: `vpdpbusd` into `acc`.
#[inline]
#[target_feature(enable = "avx2,avx512vnni,avx512vl")]
fn acc_avx512vnni(
    acc: std::arch::x86_64::__m256i,
    u: std::arch::x86_64::__m256i,
    s: std::arch::x86_64::__m256i,
) -> std::arch::x86_64::__m256i {
    std::arch::x86_64::_mm256_dpbusd_epi32(acc, u, s)
}

/// AVX-VNNI: one `vpdpbusd`.
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
#[inline]
#[target_feature(enable = "avx2,avx512vnni,avx512vl")]
fn pairs_avx512vnni(
    u: std::arch::x86_64::__m256i,
    s: std::arch::x86_64::__m256i,
) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s)
}

x86_kernels!(avx2, "avx2,fma,f16c", pairs_avx2, acc_avx2);
x86_kernels!(avxvnni, "avx2,fma,f16c,avxvnni", pairs_avxvnni, acc_avxvnni);
x86_kernels!(
    avx512vnni,
    "avx2,fma,f16c,avx512vnni,avx512vl",
    pairs_avx512vnni,
    acc_avx512vnni
);
