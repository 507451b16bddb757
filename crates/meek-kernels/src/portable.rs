//! The portable kernels: blocks unpacked one 32-element chunk at a time and multiplied in scalar integers. They run
//! on every CPU, dequantize embedding rows, and are the reference that the SIMD kernels are tested against.

use half::f16;

use crate::acts::{Q8Block, Q8KBlock};
use crate::format::{Format, QK, q4k_scale_min};

#[inline]
fn half(bytes: &[u8]) -> f32 {
    f16::from_le_bytes([bytes[0], bytes[1]]).to_f32()
}

/// One 32-element chunk of a weight block, unpacked: `w[j] = scale[j / 16] * q[j] + min`.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    q: [i8; QK],
    scale: [f32; 2],
    min: f32,
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
