//! Weight matrices repacked at load into groups of eight interleaved rows (what llama.cpp calls REPACK), the
//! portable product of such a group and the dequantization of one of its rows.
//!
//! In GGUF's layout a row is read alone: a K-quant's scales are unpacked for every super-block, its 32-bit lanes
//! hold pieces of one row's sum, so every product ends in a horizontal sum, and a byte-pair dot product needs a
//! `madd` with the scales after it. Interleaved, lane `r` of a 256-bit register belongs to row `r` of the group:
//! four consecutive weights of each of the eight rows sit in one 32-byte chunk, so one `vpdpbusd` against four
//! activations broadcast to every lane adds 32 products into eight row sums; the eight rows' scales of a sub-block
//! are eight bytes, widened and multiplied in one instruction; the result is eight outputs with no horizontal sum.
//!
//! Every format counts in units of 32 weights (`u`); the 4- to 6-bit formats store a unit as four 32-byte chunks
//! `c`: byte `4 r + b` of chunk `c` holds weight `4 c + b` of the unit of row `r` in its low nibble and weight
//! `16 + 4 c + b` in its high nibble (of 5- and 6-bit weights their low four bits). A block of eight rows (a
//! super-block of 256 weights for the K-quants, a block of 32 for the others), offsets in bytes:
//!
//! - Q4_K, [`X8_BYTES_Q4K`] = 1,184 (eight GGUF blocks are 1,152: its 6-bit scales take a byte each here, 2.8%
//!   more to read per token): 0 the rows' `d` (f16), 16 their `dmin`; 32 scales, byte `32 + 8 u + r`; 96
//!   minimums in pairs of units, byte `96 + 16 (u / 2) + 2 r + u % 2`; 160 the nibbles, unit `u` at `160 + 128 u`.
//! - Q6_K, [`X8_BYTES_Q6K`] = 1,680 (the same as eight GGUF blocks): 0 the rows' `d`; 16 the signed scales of
//!   the 16-weight halves, byte `16 + 16 u + 2 r + h`; 144 the nibbles, unit `u` at `144 + 128 u`; 1168 the high
//!   two bits, unit `u` at `1168 + 64 u`: 32 bytes for the low nibbles' weights, then 32 for the high ones', byte
//!   `4 r + b` holding those of chunk `c` in bits `2 c, 2 c + 1`.
//! - Q4_0 (144), Q4_1 (160), Q5_0 (176), Q5_1 (192), the same as eight GGUF blocks: 0 the rows' `d`, 16 their `m`
//!   (Q4_1, Q5_1); then the nibbles; then (Q5) 32 bytes of fifth bits, byte `4 r + b` holding chunk `c`'s in bit `c`
//!   (low nibbles' weights) and bit `4 + c` (high nibbles'). The weights are kept unsigned (`q`, the weight being
//!   `d (q - 8)`, `d (q - 16)`, `d q + m`).
//! - Q8_0 (272): 0 the rows' `d`; 16 eight chunks, byte `4 r + b` of chunk `c` = weight `4 c + b` of row `r` plus
//!   128, unsigned as `vpdpbusd` wants it (the 128 taken off through the activations' sums). Only on paths with a
//!   true byte dot product: AVX2's `maddubs` would saturate at 255 x 127 x 2.

use half::f16;

use crate::acts::{Q8Block, Q8KBlock};
use crate::format::{Format, QK, QK_K, q4k_scale_min};
use crate::path::KernelPath;

/// Rows per interleaved group.
pub const X8_ROWS: usize = 8;

/// Bytes of one super-block of eight interleaved Q4_K rows.
pub const X8_BYTES_Q4K: usize = 1184;

/// Bytes of one super-block of eight interleaved Q6_K rows.
pub const X8_BYTES_Q6K: usize = 1680;

/// Bytes of one block (of [`Format::block_elems`] columns) of eight interleaved rows of `fmt`.
pub fn x8_bytes(fmt: Format) -> usize {
    match fmt {
        Format::Q4K => X8_BYTES_Q4K,
        Format::Q6K => X8_BYTES_Q6K,
        _ => X8_ROWS * fmt.block_bytes(),
    }
}

/// Whether matrices of `fmt` interleave on `path`: every format on the x86 paths, but Q8_0 only where bytes are
/// multiplied by `vpdpbusd` (see the module's notes); nothing on the portable path, which gains nothing by it.
pub fn interleaves(fmt: Format, path: KernelPath) -> bool {
    match path {
        KernelPath::Portable => false,
        KernelPath::Avx2 => fmt != Format::Q8_0,
        KernelPath::AvxVnni | KernelPath::Avx512Vnni => true,
    }
}

/// Where the 32-element formats' nibbles start in an interleaved block.
fn nibbles_at(fmt: Format) -> usize {
    if matches!(fmt, Format::Q4_1 | Format::Q5_1) {
        32
    } else {
        16
    }
}

/// The unsigned weight `e` (0..32) of a GGUF block of a 32-element format, and the offset it carries (the weight
/// is `d (q - offset)`, plus `m` for Q4_1 and Q5_1).
fn q32_weight(fmt: Format, blk: &[u8], e: usize) -> (u8, i32) {
    let nib = |qs: &[u8]| {
        if e < 16 {
            qs[e] & 0x0F
        } else {
            qs[e - 16] >> 4
        }
    };
    let bit = |qh: &[u8]| (u32::from_le_bytes([qh[0], qh[1], qh[2], qh[3]]) >> e) as u8 & 1;
    match fmt {
        Format::Q4_0 => (nib(&blk[2..]), 8),
        Format::Q4_1 => (nib(&blk[4..]), 0),
        Format::Q5_0 => (nib(&blk[6..]) | (bit(&blk[2..]) << 4), 16),
        Format::Q5_1 => (nib(&blk[8..]) | (bit(&blk[4..]) << 4), 0),
        Format::Q8_0 => ((blk[2 + e] as i8 as i32 + 128) as u8, 128),
        Format::Q4K | Format::Q6K => unreachable!("K-quants pack by super-block"),
    }
}

/// Where weight `w` (0..32) of a unit lives among its four chunks: byte offset `4 r + b` added by the caller, the
/// chunk and whether it is the high nibble.
#[inline]
fn slot(w: usize) -> (usize, usize, bool) {
    let high = w >= 16;
    let w = w % 16;
    (w / 4, w % 4, high)
}

/// Weight `e` (0..256) of a GGUF Q4_K block (0..16).
#[inline]
fn q4k_weight(blk: &[u8], e: usize) -> u8 {
    let (j, w) = (e / 32, e % 32);
    let byte = blk[16 + 32 * (j / 2) + w];
    if j % 2 == 0 { byte & 0x0F } else { byte >> 4 }
}

/// Weight `e` (0..256) of a GGUF Q6_K block, unsigned (0..64; the weight is this minus 32).
#[inline]
fn q6k_weight(blk: &[u8], e: usize) -> u8 {
    let (n, part, l) = (e / 128, e % 128 / 32, e % 32);
    let ql = blk[64 * n + 32 * (part % 2) + l];
    let low = if part < 2 { ql & 0x0F } else { ql >> 4 };
    let high = (blk[128 + 32 * n + l] >> (2 * part)) & 3;
    low | (high << 4)
}

/// The low four bits of a K-quant super-block's 256 weights `q(e)` as row `r`'s nibbles at `at` of `o`.
#[inline]
fn nibbles(o: &mut [u8], at: usize, r: usize, q: impl Fn(usize) -> u8) {
    for u in 0..8 {
        for w in 0..16 {
            let (c, b, _) = slot(w);
            let (lo, hi) = (q(32 * u + w) & 0x0F, q(32 * u + 16 + w) & 0x0F);
            o[at + 128 * u + 32 * c + 4 * r + b] = lo | (hi << 4);
        }
    }
}

/// Row `r`'s GGUF block `blk` into the interleaved super-block `o`.
fn pack(fmt: Format, o: &mut [u8], r: usize, blk: &[u8]) {
    if !fmt.is_k() {
        o[2 * r..2 * r + 2].copy_from_slice(&blk[0..2]);
        if matches!(fmt, Format::Q4_1 | Format::Q5_1) {
            o[16 + 2 * r..16 + 2 * r + 2].copy_from_slice(&blk[2..4]);
        }
        if fmt == Format::Q8_0 {
            for e in 0..QK {
                o[16 + 32 * (e / 4) + 4 * r + e % 4] = q32_weight(fmt, blk, e).0;
            }
            return;
        }
        let at = nibbles_at(fmt);
        for w in 0..16 {
            let (c, b, _) = slot(w);
            let (lo, hi) = (q32_weight(fmt, blk, w).0, q32_weight(fmt, blk, 16 + w).0);
            o[at + 32 * c + 4 * r + b] = (lo & 0x0F) | ((hi & 0x0F) << 4);
            if matches!(fmt, Format::Q5_0 | Format::Q5_1) {
                o[at + 128 + 4 * r + b] |= ((lo >> 4) << c) | ((hi >> 4) << (4 + c));
            }
        }
    } else if fmt == Format::Q4K {
        o[2 * r..2 * r + 2].copy_from_slice(&blk[0..2]);
        o[16 + 2 * r..16 + 2 * r + 2].copy_from_slice(&blk[2..4]);
        for u in 0..8 {
            let (sc, m) = q4k_scale_min(u, &blk[4..16]);
            o[32 + 8 * u + r] = sc;
            o[96 + 16 * (u / 2) + 2 * r + u % 2] = m;
        }
        nibbles(o, 160, r, |e| q4k_weight(blk, e));
    } else {
        o[2 * r..2 * r + 2].copy_from_slice(&blk[208..210]);
        for s in 0..16 {
            o[16 + 16 * (s / 2) + 2 * r + s % 2] = blk[192 + s];
        }
        nibbles(o, 144, r, |e| q6k_weight(blk, e));
        for u in 0..8 {
            for w in 0..32 {
                let (c, b, high) = slot(w);
                let at = 1168 + 64 * u + 32 * usize::from(high) + 4 * r + b;
                o[at] |= (q6k_weight(blk, 32 * u + w) >> 4) << (2 * c);
            }
        }
    }
}

/// The GGUF rows `data` of `fmt` (`rows` rows of `cols` columns, `rows` a multiple of [`X8_ROWS`]) interleaved:
/// group `g` of eight rows is one block of [`x8_bytes`] per block of a row, one after the other.
pub(crate) fn interleave(fmt: Format, data: &[u8], rows: usize, cols: usize) -> Vec<u8> {
    let xb = x8_bytes(fmt);
    assert!(rows.is_multiple_of(X8_ROWS) && cols.is_multiple_of(fmt.block_elems()));
    let (bb, bpr) = (fmt.block_bytes(), cols / fmt.block_elems());
    let rb = bpr * bb;
    assert_eq!(data.len(), rows * rb);
    let mut out = vec![0u8; rows / X8_ROWS * bpr * xb];
    for (g, dst_group) in out.chunks_exact_mut(bpr * xb).enumerate() {
        for (i, o) in dst_group.chunks_exact_mut(xb).enumerate() {
            for r in 0..X8_ROWS {
                let at = (g * X8_ROWS + r) * rb + i * bb;
                pack(fmt, o, r, &data[at..at + bb]);
            }
        }
    }
    out
}

#[inline]
fn half(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// Weight `e` (0..256) of row `r` of an interleaved super-block, unsigned, and its sub-block's scale (Q4_K per 32,
/// Q6_K per 16) and minimum (Q4_K; 32 for Q6_K, whose weights are `q - 32`).
#[inline]
fn weight(fmt: Format, blk: &[u8], r: usize, e: usize) -> (i32, i32, i32) {
    let (u, w) = (e / 32, e % 32);
    let (c, b, high) = slot(w);
    let at = |base: usize| base + 128 * u + 32 * c + 4 * r + b;
    let nib = |byte: u8| if high { byte >> 4 } else { byte & 0x0F };
    if fmt == Format::Q4K {
        let q = nib(blk[at(160)]);
        let m = blk[96 + 16 * (u / 2) + 2 * r + u % 2];
        (i32::from(q), i32::from(blk[32 + 8 * u + r]), i32::from(m))
    } else {
        let hb = blk[1168 + 64 * u + 32 * usize::from(high) + 4 * r + b];
        let q = nib(blk[at(144)]) | (((hb >> (2 * c)) & 3) << 4);
        let s = e / 16;
        let sc = blk[16 + 16 * (s / 2) + 2 * r + s % 2] as i8;
        (i32::from(q), i32::from(sc), 32)
    }
}

/// Weight `e` (0..32) of row `r` of an interleaved block of a 32-element format, unsigned, its scale `d`, its
/// offset and its minimum `m` (the weight is `d (q - offset) + m`).
#[inline]
fn weight32(fmt: Format, blk: &[u8], r: usize, e: usize) -> (i32, f32, i32, f32) {
    let d = half(blk, 2 * r);
    let m = if matches!(fmt, Format::Q4_1 | Format::Q5_1) {
        half(blk, 16 + 2 * r)
    } else {
        0.0
    };
    let offset = match fmt {
        Format::Q4_0 => 8,
        Format::Q5_0 => 16,
        Format::Q8_0 => 128,
        _ => 0,
    };
    if fmt == Format::Q8_0 {
        return (
            i32::from(blk[16 + 32 * (e / 4) + 4 * r + e % 4]),
            d,
            offset,
            m,
        );
    }
    let (c, b, high) = slot(e);
    let at = nibbles_at(fmt);
    let byte = blk[at + 32 * c + 4 * r + b];
    let mut q = if high { byte >> 4 } else { byte & 0x0F };
    if matches!(fmt, Format::Q5_0 | Format::Q5_1) {
        let bits = blk[at + 128 + 4 * r + b];
        q |= ((bits >> (c + 4 * usize::from(high))) & 1) << 4;
    }
    (i32::from(q), d, offset, m)
}

/// One group of eight interleaved rows of a 32-element format against activations `x`: the eight dot products
/// (the portable reference of the SIMD kernels).
pub fn dot32_x8_portable(fmt: Format, group: &[u8], x: &[Q8Block]) -> [f32; X8_ROWS] {
    assert!(!fmt.is_k());
    let xb = x8_bytes(fmt);
    assert_eq!(group.len(), x.len() * xb);
    let mut out = [0f32; X8_ROWS];
    for (blk, a) in group.chunks_exact(xb).zip(x) {
        for (r, o) in out.iter_mut().enumerate() {
            let mut sum = 0i32;
            let (mut d, mut off, mut m) = (0.0, 0, 0.0);
            for e in 0..QK {
                let (q, dd, oo, mm) = weight32(fmt, blk, r, e);
                sum += q * i32::from(a.qs[e]);
                (d, off, m) = (dd, oo, mm);
            }
            *o += d * a.d * (sum - off * a.isum) as f32 + m * a.s;
        }
    }
    out
}

/// One group of eight interleaved rows of a K-quant against activations `x`: the eight dot products, in scalar
/// integers per super-block (the portable reference of the SIMD kernels).
pub fn dot_x8_portable(fmt: Format, group: &[u8], x: &[Q8KBlock]) -> [f32; X8_ROWS] {
    assert!(fmt.is_k());
    let xb = x8_bytes(fmt);
    assert_eq!(group.len(), x.len() * xb);
    let mut out = [0f32; X8_ROWS];
    for (blk, a) in group.chunks_exact(xb).zip(x) {
        for (r, o) in out.iter_mut().enumerate() {
            // Σ sc q x, and Σ sc 32 x (Q6_K's offset, per weight) or Σ m Σx (Q4_K's minimums, per 32).
            let (mut sum, mut off) = (0i32, 0i32);
            for e in 0..QK_K {
                let (q, sc, m) = weight(fmt, blk, r, e);
                sum += sc * q * i32::from(a.qs[e]);
                if fmt == Format::Q6K {
                    off += sc * m * i32::from(a.qs[e]);
                } else if e % 32 == 0 {
                    off += m * i32::from(a.bsums32[e / 32]);
                }
            }
            *o += a.d
                * if fmt == Format::Q4K {
                    half(blk, 2 * r) * sum as f32 - half(blk, 16 + 2 * r) * off as f32
                } else {
                    half(blk, 2 * r) * (sum - off) as f32
                };
        }
    }
    out
}

/// Row `r` (0..8) of an interleaved group of `fmt`, dequantized into `out` (an embedding lookup).
pub fn dequantize_x8(fmt: Format, group: &[u8], r: usize, out: &mut [f32]) {
    let xb = x8_bytes(fmt);
    assert!(r < X8_ROWS, "row {r} of a group of {X8_ROWS}");
    assert_eq!(group.len() / xb * fmt.block_elems(), out.len());
    if !fmt.is_k() {
        for (blk, o) in group.chunks_exact(xb).zip(out.chunks_exact_mut(QK)) {
            for (e, o) in o.iter_mut().enumerate() {
                let (q, d, off, m) = weight32(fmt, blk, r, e);
                *o = d * (q - off) as f32 + m;
            }
        }
        return;
    }
    for (blk, o) in group.chunks_exact(xb).zip(out.chunks_exact_mut(QK_K)) {
        let d = half(blk, 2 * r);
        for (e, o) in o.iter_mut().enumerate() {
            let (q, sc, m) = weight(fmt, blk, r, e);
            *o = if fmt == Format::Q4K {
                d * sc as f32 * q as f32 - half(blk, 16 + 2 * r) * m as f32
            } else {
                d * sc as f32 * (q - m) as f32
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::portable::{dequantize_row, dot_k_portable, dot_portable};
    use crate::testutil::random;
    use crate::{quantize_row, quantize_row_k};

    /// `n` rows of random blocks (any bytes are a valid block; the f16 scales kept small and finite).
    fn rows(fmt: Format, n: usize, cols: usize, seed: u64) -> Vec<u8> {
        let bb = fmt.block_bytes();
        let mut bytes: Vec<u8> = random(n * cols / fmt.block_elems() * bb, seed)
            .iter()
            .map(|v| ((v + 1.0) * 127.9) as u8)
            .collect();
        let halves: &[usize] = match fmt {
            Format::Q4K | Format::Q4_1 | Format::Q5_1 => &[0, 2],
            Format::Q6K => &[208],
            _ => &[0],
        };
        for blk in bytes.chunks_exact_mut(bb) {
            for (i, &at) in halves.iter().enumerate() {
                let v = if i == 0 { 0.01 } else { 0.003 };
                blk[at..at + 2].copy_from_slice(&f16::from_f32(v).to_le_bytes());
            }
        }
        bytes
    }

    /// Sixteen random rows of `fmt` (`cols` wide) interleaved: each row's product through `got` (a group against
    /// the activations) and `want` (the GGUF row's portable dot), and its dequantization, agree.
    fn check(
        fmt: Format,
        cols: usize,
        got: impl Fn(&[u8]) -> [f32; X8_ROWS],
        want: impl Fn(&[u8]) -> f32,
    ) {
        let (xb, rb) = (x8_bytes(fmt), cols / fmt.block_elems() * fmt.block_bytes());
        let data = rows(fmt, 16, cols, 6);
        let packed = interleave(fmt, &data, 16, cols);
        let gb = cols / fmt.block_elems() * xb;
        assert_eq!(packed.len(), 2 * gb);
        for (g, group) in packed.chunks_exact(gb).enumerate() {
            for (r, got) in got(group).into_iter().enumerate() {
                let row = &data[(8 * g + r) * rb..(8 * g + r + 1) * rb];
                let want = want(row);
                assert!(
                    (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                    "{fmt:?} group {g} row {r}: {got} vs {want}"
                );
                let (mut a, mut b) = (vec![0f32; cols], vec![0f32; cols]);
                dequantize_x8(fmt, group, r, &mut a);
                dequantize_row(fmt, row, &mut b);
                for (e, (a, b)) in a.iter().zip(&b).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-6 * (1.0 + b.abs()),
                        "{fmt:?} {r} {e}: {a} vs {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn interleaved_groups_compute_and_dequantize_what_their_gguf_rows_do() {
        for fmt in [
            Format::Q4_0,
            Format::Q4_1,
            Format::Q5_0,
            Format::Q5_1,
            Format::Q8_0,
        ] {
            let mut xq = vec![Q8Block::default(); 3];
            quantize_row(&random(96, 9), &mut xq);
            check(
                fmt,
                96,
                |g| dot32_x8_portable(fmt, g, &xq),
                |row| dot_portable(fmt, row, &xq),
            );
        }
        for fmt in [Format::Q4K, Format::Q6K] {
            let mut xq = vec![Q8KBlock::default(); 2];
            quantize_row_k(&random(512, 8), &mut xq);
            check(
                fmt,
                512,
                |g| dot_x8_portable(fmt, g, &xq),
                |row| dot_k_portable(fmt, row, &xq),
            );
        }
    }
}
