//! The quantized kernels of `meek-kernels` against Candle's own quantization: every format at odd shapes, each
//! dot product (one and four activation rows, on every path this CPU runs) against a float64 reference over
//! Candle's quantization and dequantization of the same weights, and the kernels' dequantization against Candle's.
//! (meek-kernels has no Candle, even for its tests, so the comparison with it lives here, where GGUF weights
//! are read. The register tiles against the portable dot product are checked in meek-kernels' own tests.)

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use meek_kernels::{
    Format, KernelPath, Q8Block, Q8KBlock, QK, QK_K, dequantize_row, dot, dot_k, dot4, dot4_k,
    quantize_row, quantize_row_k,
};
use meek_testkit::random_values;

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
            let w = random_values(rows * cols, 11 + cols as u64);
            let x = random_values(cols, 7 + rows as u64);
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
                    .map(|k| Acts::new(fmt, &random_values(cols, 100 + k)))
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
                let mut row = vec![0f32; cols];
                dequantize_row(fmt, &bytes[r * rb..(r + 1) * rb], &mut row);
                assert_eq!(row, deq[r * cols..(r + 1) * cols], "{fmt:?} dequantize");
            }
        }
    }
}
