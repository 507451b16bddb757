//! The kernels' entry points: each checks its arguments once and calls the implementation of the chosen
//! [`KernelPath`], so callers name a path instead of an instruction set.

use crate::acts::{Q8Block, Q8KBlock};
use crate::format::Format;
use crate::interleave::{X8_ROWS, dot_x8_portable, dot32_x8_portable, interleaves, x8_bytes};
use crate::path::KernelPath;
use crate::portable::{dot_k_portable, dot_portable};
#[cfg(target_arch = "x86_64")]
use crate::x86::{avx2, avx512vnni, avxvnni};

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

/// Weight rows of a K-quant format, four at a time, against one activation row (decode): `out[r] = row r · x`,
/// where `rows` holds `out.len()` consecutive rows of `row_bytes` each and `out.len()` is a multiple of four.
#[inline]
pub fn tile_k(
    path: KernelPath,
    fmt: Format,
    rows: &[u8],
    row_bytes: usize,
    x: &[Q8KBlock],
    out: &mut [f32],
) {
    assert!(
        fmt.is_k(),
        "{fmt:?} multiplies Q8Block activations: use tile"
    );
    assert!(out.len().is_multiple_of(4) && rows.len() == out.len() * row_bytes);
    assert_eq!(x.len() * fmt.block_bytes(), row_bytes);
    dispatch!(path, tile_k(fmt, rows, row_bytes, x, out), {
        for (r, o) in rows.chunks_exact(row_bytes).zip(out.iter_mut()) {
            *o = dot_k_portable(fmt, r, x);
        }
    })
}

/// How far ahead of the bytes it reads the interleaved decode kernel prefetches.
const PREFETCH_X8_BYTES: usize = 16 << 10;

/// Activation rows per call of [`dot_x8`] in a prompt on `path`: four where AVX-512's 32 vector registers hold
/// their sums, else two.
pub fn tile_acts_x8(path: KernelPath) -> usize {
    match path {
        KernelPath::Avx512Vnni => 4,
        _ => 2,
    }
}

/// The activation blocks of a weight format's interleaved kernels: [`Q8KBlock`] for the K-quants, [`Q8Block`] for
/// the 32-element formats.
pub trait X8Acts: Sized {
    /// One group of eight interleaved rows of `fmt` against `N` activation rows (see [`dot_x8`]).
    fn dot_x8<const N: usize>(
        path: KernelPath,
        fmt: Format,
        group: &[u8],
        xs: [&[Self]; N],
    ) -> [[f32; X8_ROWS]; N];
}

impl X8Acts for Q8KBlock {
    #[inline]
    fn dot_x8<const N: usize>(
        path: KernelPath,
        fmt: Format,
        group: &[u8],
        xs: [&[Self]; N],
    ) -> [[f32; X8_ROWS]; N] {
        assert!(fmt.is_k(), "{fmt:?} multiplies Q8Block activations");
        assert!(xs.iter().all(|x| x.len() * x8_bytes(fmt) == group.len()));
        let ahead = group.as_ptr().wrapping_add(PREFETCH_X8_BYTES);
        dispatch!(
            path,
            dot_x8(fmt, group, xs, ahead),
            xs.map(|x| dot_x8_portable(fmt, group, x))
        )
    }
}

impl X8Acts for Q8Block {
    #[inline]
    fn dot_x8<const N: usize>(
        path: KernelPath,
        fmt: Format,
        group: &[u8],
        xs: [&[Self]; N],
    ) -> [[f32; X8_ROWS]; N] {
        assert!(!fmt.is_k(), "{fmt:?} multiplies Q8KBlock activations");
        assert!(
            interleaves(fmt, path) || path == KernelPath::Portable,
            "{fmt:?} has no interleaved kernel on {path:?}"
        );
        assert!(xs.iter().all(|x| x.len() * x8_bytes(fmt) == group.len()));
        let ahead = group.as_ptr().wrapping_add(PREFETCH_X8_BYTES);
        dispatch!(
            path,
            dot32_x8(fmt, group, xs, ahead),
            xs.map(|x| dot32_x8_portable(fmt, group, x))
        )
    }
}

/// One group of eight interleaved rows ([`QMat::interleaved`](crate::QMat::interleaved)) against `N` activation
/// rows of the blocks its format reads: `out[t][r] = row r · xs[t]`.
#[inline]
pub fn dot_x8<B: X8Acts, const N: usize>(
    path: KernelPath,
    fmt: Format,
    group: &[u8],
    xs: [&[B]; N],
) -> [[f32; X8_ROWS]; N] {
    B::dot_x8(path, fmt, group, xs)
}
