//! A categorical feature's training values, looked up by a field's bytes.
//!
//! Every field of a categorical column is looked up once, so the lookup is on the scorer's hot
//! path. Category values are mostly short ("email", "city_023"): a text of at most 16 bytes is
//! held as two machine words and its length, which both hash it and tell it from every other
//! short text, so a lookup is a multiply, a probe and two word compares, never a call to memcmp.
//! Longer values go to an ordinary hash map.

/// The longest text held as words.
const SHORT: usize = 16;

/// A short text as words: with its length, the words determine every byte.
fn words(bytes: &[u8]) -> (u64, u64) {
    let n = bytes.len();
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let half = |at: usize| {
        u64::from(u32::from_le_bytes(
            bytes[at..at + 4].try_into().expect("4 bytes"),
        ))
    };
    match n {
        // Two words that overlap when n < 16 cover every byte.
        8..=SHORT => (word(0), word(n - 8)),
        4..=7 => (half(0) | (half(n - 4) << 32), 0),
        1..=3 => (
            u64::from(bytes[0]) | (u64::from(bytes[n / 2]) << 8) | (u64::from(bytes[n - 1]) << 16),
            0,
        ),
        _ => (0, 0),
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    first: u64,
    second: u64,
    /// The text's length plus one; 0 marks an empty slot.
    len: u32,
    code: usize,
}

/// Training values and their codes (their positions in the category list).
#[derive(Debug, Clone, Default)]
pub struct Vocabulary {
    /// Open addressing, linear probing; at most half full. Empty when no value is short.
    slots: Vec<Slot>,
    shift: u32,
    long: hashbrown::HashMap<Vec<u8>, usize>,
}

impl Vocabulary {
    /// The values, coded by position. A value listed twice keeps its first code.
    pub fn new<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Vocabulary {
        let values: Vec<&[u8]> = values.into_iter().collect();
        let short = values.iter().filter(|v| v.len() <= SHORT).count();
        let size = if short == 0 {
            0
        } else {
            (2 * short).next_power_of_two().max(8)
        };
        let mut vocabulary = Vocabulary {
            slots: vec![Slot::default(); size],
            shift: 64 - size.max(2).trailing_zeros(),
            long: hashbrown::HashMap::new(),
        };
        for (code, value) in values.into_iter().enumerate() {
            if value.len() > SHORT {
                vocabulary.long.entry(value.to_vec()).or_insert(code);
                continue;
            }
            let (first, second) = words(value);
            let len = value.len() as u32 + 1;
            let mut at = vocabulary.home(first, second, len);
            loop {
                let slot = &mut vocabulary.slots[at];
                if slot.len == 0 {
                    *slot = Slot {
                        first,
                        second,
                        len,
                        code,
                    };
                    break;
                }
                if (slot.first, slot.second, slot.len) == (first, second, len) {
                    break;
                }
                at = (at + 1) & (vocabulary.slots.len() - 1);
            }
        }
        vocabulary
    }

    fn home(&self, first: u64, second: u64, len: u32) -> usize {
        let mixed = (first ^ second.rotate_left(29) ^ (u64::from(len) << 56))
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (mixed >> self.shift) as usize
    }

    /// The code of `value`, None when it is not a training value.
    pub fn get(&self, value: &[u8]) -> Option<usize> {
        if value.len() > SHORT {
            return self.long.get(value).copied();
        }
        if self.slots.is_empty() {
            return None;
        }
        let (first, second) = words(value);
        let len = value.len() as u32 + 1;
        let mut at = self.home(first, second, len);
        loop {
            let slot = &self.slots[at];
            if slot.len == 0 {
                return None;
            }
            if (slot.first, slot.second, slot.len) == (first, second, len) {
                return Some(slot.code);
            }
            at = (at + 1) & (self.slots.len() - 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn finds_exactly_the_values_a_hash_map_finds() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        // Texts of every length around the word boundaries, from a small alphabet so that
        // many share their first and last bytes.
        let text = |rng: &mut rand_chacha::ChaCha8Rng| -> Vec<u8> {
            let len = rng.random_range(0..24);
            (0..len)
                .map(|_| b"ab\0\xff"[rng.random_range(0..4)])
                .collect()
        };
        for size in [0usize, 1, 3, 50, 700] {
            let values: Vec<Vec<u8>> = (0..size).map(|_| text(&mut rng)).collect();
            let vocabulary = Vocabulary::new(values.iter().map(Vec::as_slice));
            let mut reference = std::collections::HashMap::new();
            for (code, value) in values.iter().enumerate() {
                reference.entry(value.clone()).or_insert(code);
            }
            for value in &values {
                assert_eq!(vocabulary.get(value), reference.get(value).copied());
            }
            for _ in 0..5000 {
                let probe = text(&mut rng);
                assert_eq!(
                    vocabulary.get(&probe),
                    reference.get(&probe).copied(),
                    "{probe:?}"
                );
            }
        }
    }

    #[test]
    fn texts_that_share_words_are_told_apart() {
        let values: [&[u8]; 6] = [b"", b"a", b"aa", b"aaa", b"ab\0\0\0\0\0\0", b"ab"];
        let vocabulary = Vocabulary::new(values);
        for (code, value) in values.iter().enumerate() {
            assert_eq!(vocabulary.get(value), Some(code));
        }
        for probe in [&b"aaaa"[..], b"ab\0", b"b", b"aaaaaaaaaaaaaaaaa"] {
            assert_eq!(vocabulary.get(probe), None, "{probe:?}");
        }
    }
}
