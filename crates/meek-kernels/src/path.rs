//! Which implementation of the kernels runs: portable Rust or one of the x86-64 instruction sets, chosen once at
//! run time from the CPU's features (or the environment, to compare paths on one machine) and recorded in results.

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
