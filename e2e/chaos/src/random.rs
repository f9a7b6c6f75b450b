//! A small seeded generator (SplitMix64), so a run can be repeated from its printed seed.

pub struct Random(u64);

impl Random {
    pub fn new(seed: u64) -> Random {
        Random(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }

    /// One of `items` (which must not be empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.next() as usize % items.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::Random;

    #[test]
    fn the_same_seed_gives_the_same_run() {
        let (mut a, mut b) = (Random::new(7), Random::new(7));
        let run = |r: &mut Random| (0..20).map(|_| r.between(2, 6)).collect::<Vec<_>>();
        let first = run(&mut a);
        assert_eq!(first, run(&mut b));
        assert!(first.iter().all(|n| (2..=6).contains(n)));
        assert!(first.iter().any(|n| *n != first[0]));
    }
}
