//! Python's `random.Random(seed).sample(...)`, bit for bit: the Mersenne Twister (MT19937) seeded as CPython
//! seeds it from an integer, `getrandbits`, `_randbelow` and `sample`'s two selection methods.
//!
//! Why: lm-evaluation-harness draws each question's few-shot exemplars with `random.Random(1234).sample(train, k)`,
//! one call per question in order. Drawing the same exemplars is what makes a meekbench GSM8K prompt the prompt
//! lm-eval shows, so that scores are comparable with published lm-eval figures. The test checks the draws against
//! values printed by CPython (`scripts/lm-eval-fixture.py`).

const N: usize = 624;
const M: usize = 397;

/// CPython's `random.Random`, as far as `sample` needs it.
#[derive(Clone)]
pub struct PyRandom {
    mt: Box<[u32; N]>,
    index: usize,
}

impl std::fmt::Debug for PyRandom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PyRandom")
            .field("index", &self.index)
            .finish()
    }
}

impl PyRandom {
    /// `random.Random(seed)` for a non-negative integer seed: `init_by_array` over the seed's 32-bit words, least
    /// significant first (one word for seeds below 2^32, none for 0 as CPython gives `[0]`).
    pub fn new(seed: u64) -> Self {
        let key: Vec<u32> = if seed >> 32 == 0 {
            vec![seed as u32]
        } else {
            vec![seed as u32, (seed >> 32) as u32]
        };
        let mut r = Self {
            mt: Box::new([0; N]),
            index: N,
        };
        r.init_genrand(19_650_218);
        let mut i = 1usize;
        let mut j = 0usize;
        for _ in 0..N.max(key.len()) {
            let prev = r.mt[i - 1] ^ (r.mt[i - 1] >> 30);
            r.mt[i] = (r.mt[i] ^ prev.wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                r.mt[0] = r.mt[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            let prev = r.mt[i - 1] ^ (r.mt[i - 1] >> 30);
            r.mt[i] = (r.mt[i] ^ prev.wrapping_mul(1_566_083_941)).wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                r.mt[0] = r.mt[N - 1];
                i = 1;
            }
        }
        r.mt[0] = 0x8000_0000;
        r
    }

    fn init_genrand(&mut self, s: u32) {
        self.mt[0] = s;
        for i in 1..N {
            let prev = self.mt[i - 1] ^ (self.mt[i - 1] >> 30);
            self.mt[i] = 1_812_433_253u32.wrapping_mul(prev).wrapping_add(i as u32);
        }
        self.index = N;
    }

    fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            for k in 0..N {
                let y = (self.mt[k] & 0x8000_0000) | (self.mt[(k + 1) % N] & 0x7fff_ffff);
                let mag = if y & 1 == 1 { 0x9908_b0df } else { 0 };
                self.mt[k] = self.mt[(k + M) % N] ^ (y >> 1) ^ mag;
            }
            self.index = 0;
        }
        let mut y = self.mt[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `getrandbits(k)` for `1 <= k <= 32`.
    fn getrandbits(&mut self, k: u32) -> u32 {
        debug_assert!((1..=32).contains(&k));
        self.next_u32() >> (32 - k)
    }

    /// `_randbelow(n)` for `1 <= n < 2^32`: rejection sampling on `n.bit_length()` bits.
    fn randbelow(&mut self, n: usize) -> usize {
        let k = usize::BITS - n.leading_zeros();
        loop {
            let r = self.getrandbits(k) as usize;
            if r < n {
                return r;
            }
        }
    }

    /// The indices `random.sample(range(n), k)` returns, in order. `k <= n < 2^32`.
    pub fn sample(&mut self, n: usize, k: usize) -> Vec<usize> {
        assert!(k <= n && n < 1 << 32, "sample of {k} from {n}");
        let mut out = Vec::with_capacity(k);
        let mut setsize = 21usize;
        if k > 5 {
            // 4 ** ceil(log(3k, 4)), computed as CPython does, in floating point.
            setsize += 4usize.pow(((k * 3) as f64).log(4.0).ceil() as u32);
        }
        if n <= setsize {
            let mut pool: Vec<usize> = (0..n).collect();
            for i in 0..k {
                let j = self.randbelow(n - i);
                out.push(pool[j]);
                pool[j] = pool[n - i - 1];
            }
        } else {
            let mut selected = std::collections::HashSet::with_capacity(k);
            for _ in 0..k {
                let mut j = self.randbelow(n);
                while !selected.insert(j) {
                    j = self.randbelow(n);
                }
                out.push(j);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Printed by CPython 3.11: `r = random.Random(1234); [r.sample(range(7473), 5) for _ in range(3)]` (lm-eval's
    /// seed, GSM8K's training set, five shots), `random.Random(7).sample(range(10), 10)` and
    /// `random.Random(3).sample(range(100), 30)` (the pool method, with the set size of k > 5), and
    /// `getrandbits(32)` after seeds `2**40 + 5` (two words) and `0`.
    #[test]
    fn draws_equal_cpythons() {
        let mut r = PyRandom::new(1234);
        let draws: Vec<Vec<usize>> = (0..3).map(|_| r.sample(7473, 5)).collect();
        assert_eq!(
            draws,
            [
                [6374, 3610, 957, 61, 742],
                [7462, 6610, 4769, 286, 5501],
                [5677, 687, 806, 6279, 2905]
            ]
        );
        assert_eq!(
            PyRandom::new(7).sample(10, 10),
            [5, 2, 6, 9, 0, 7, 4, 1, 3, 8]
        );
        assert_eq!(
            PyRandom::new(3).sample(100, 30),
            [
                30, 75, 69, 16, 47, 77, 60, 80, 74, 8, 94, 1, 93, 33, 70, 29, 24, 87, 97, 85, 82,
                50, 19, 84, 89, 66, 49, 88, 90, 20
            ]
        );
        assert_eq!(PyRandom::new((1 << 40) + 5).getrandbits(32), 2_166_296_868);
        assert_eq!(PyRandom::new(0).getrandbits(32), 3_626_764_237);
    }
}
