//! A table's ids: unique, row by row, kept as the Arrow text column they were read into (no copy
//! per id), with one index of rows by id that the duplicate check builds and the rules reuse.

use std::hash::BuildHasher;
use std::sync::Arc;

use arrow::array::{Array, StringArray};
use rayon::prelude::*;

/// A seeded 64-bit hash of an id's text: FNV-1a over its UTF-8 bytes, starting from the seed's
/// SplitMix64 mix, finished with SplitMix64's finaliser. Documented and stable across machines
/// and versions: it orders people of equal score (`metrics::tie_key`) and fingerprints the ids a
/// model trained on (`fingerprint`).
pub fn id_hash(id: &str, seed: u64) -> u64 {
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = 0xcbf2_9ce4_8422_2325 ^ splitmix64(seed);
    for byte in id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    splitmix64(hash)
}

/// SplitMix64's output function: a bijection of u64 that mixes every input bit into every output bit.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Shards of the index: built on every core, one shard per task, chosen by `shard_of`.
const SHARD_BITS: u32 = 4;
// A row's shard is kept in a byte while the index is built.
const _: () = assert!(SHARD_BITS <= 8);

/// The ids of a table's rows, unique, with their index.
#[derive(Clone)]
pub struct Ids {
    /// The ids, row by row.
    text: StringArray,
    /// Rows by id, over the table the ids were first read from.
    index: Arc<IdIndex>,
    /// For ids taken from that table: its row -> this set's row (`u32::MAX`: not taken).
    taken: Option<Arc<[u32]>>,
}

impl std::fmt::Debug for Ids {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ids({} rows)", self.len())
    }
}

impl Ids {
    /// The ids in `text` (no nulls), or the first duplicate as (earlier row, later row).
    pub fn new(text: StringArray) -> Result<Ids, (usize, usize)> {
        assert!(
            u32::try_from(text.len()).is_ok(),
            "more than 4 billion rows in one table"
        );
        debug_assert_eq!(text.null_count(), 0);
        let index = IdIndex::build(text.clone())?;
        Ok(Ids {
            text,
            index: Arc::new(index),
            taken: None,
        })
    }

    pub fn len(&self) -> usize {
        self.text.len()
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// The id of `row`.
    pub fn get(&self, row: usize) -> &str {
        self.text.value(row)
    }

    /// The ids in row order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + Clone + '_ {
        (0..self.len()).map(|row| self.text.value(row))
    }

    /// The row holding `id`.
    pub fn row(&self, id: &str) -> Option<usize> {
        let row = self.index.row(id)?;
        match &self.taken {
            None => Some(row),
            Some(taken) => match taken[row] {
                u32::MAX => None,
                here => Some(here as usize),
            },
        }
    }

    /// The ids of `rows` (distinct rows of this set), in that order, indexed by the same index.
    pub fn take(&self, rows: &[usize]) -> Ids {
        let (text, original_rows): (StringArray, Vec<u32>) = {
            let original = |r: usize| match &self.taken {
                // The index speaks of the original table's rows: find this row's there.
                None => r as u32,
                Some(_) => self.index.row(self.get(r)).expect("an id of this set") as u32,
            };
            (
                rows.iter().map(|&r| Some(self.get(r))).collect(),
                rows.iter().map(|&r| original(r)).collect(),
            )
        };
        let mut taken = vec![u32::MAX; self.index.text.len()];
        for (here, &original) in original_rows.iter().enumerate() {
            taken[original as usize] = here as u32;
        }
        Ids {
            text,
            index: self.index.clone(),
            taken: Some(taken.into()),
        }
    }
}

/// Rows by id: hash tables of row numbers over the ids themselves (4 bytes a row rather than a
/// second copy of every id), in shards by hash so that every core builds some.
struct IdIndex {
    text: StringArray,
    shards: Vec<hashbrown::HashTable<u32>>,
    hasher: hashbrown::DefaultHashBuilder,
}

impl IdIndex {
    fn build(text: StringArray) -> Result<IdIndex, (usize, usize)> {
        let hasher = hashbrown::DefaultHashBuilder::default();
        let hash = |row: u32| hasher.hash_one(text.value(row as usize));
        // Rows by shard, in row order: each shard meets its ids in the order a single table
        // would, so its first duplicate is the first among its ids, and the earliest of the
        // shards' is the table's first. Hashes are computed again where needed rather than
        // kept, 8 bytes a row, beside the table.
        let shard_of_row: Vec<u8> = (0..text.len() as u32)
            .into_par_iter()
            .map(|row| shard_of(hash(row)) as u8)
            .collect();
        let mut shard_rows: Vec<Vec<u32>> = vec![Vec::new(); 1 << SHARD_BITS];
        for (row, &shard) in shard_of_row.iter().enumerate() {
            shard_rows[usize::from(shard)].push(row as u32);
        }
        drop(shard_of_row);
        let built: Vec<Result<hashbrown::HashTable<u32>, (usize, usize)>> = shard_rows
            .into_par_iter()
            .map(|rows_here| {
                let mut rows = hashbrown::HashTable::with_capacity(rows_here.len());
                for row in rows_here {
                    let id = text.value(row as usize);
                    match rows.entry(
                        hash(row),
                        |&r: &u32| text.value(r as usize) == id,
                        |&r: &u32| hash(r),
                    ) {
                        hashbrown::hash_table::Entry::Occupied(first) => {
                            return Err((*first.get() as usize, row as usize));
                        }
                        hashbrown::hash_table::Entry::Vacant(slot) => {
                            slot.insert(row);
                        }
                    }
                }
                Ok(rows)
            })
            .collect();
        let mut shards = Vec::with_capacity(built.len());
        let mut first_duplicate: Option<(usize, usize)> = None;
        for shard in built {
            match shard {
                Ok(rows) => shards.push(rows),
                Err(pair) => {
                    if first_duplicate.is_none_or(|(_, second)| pair.1 < second) {
                        first_duplicate = Some(pair);
                    }
                }
            }
        }
        match first_duplicate {
            Some(pair) => Err(pair),
            None => Ok(IdIndex {
                text,
                shards,
                hasher,
            }),
        }
    }

    fn row(&self, id: &str) -> Option<usize> {
        let hash = self.hasher.hash_one(id);
        self.shards[shard_of(hash)]
            .find(hash, |&r| self.text.value(r as usize) == id)
            .map(|&r| r as usize)
    }
}

/// The shard of a hash: bits that hashbrown does not use inside a shard. It places an entry by
/// the hash's low bits and tells entries of one group apart by its top seven; shards chosen by
/// the top bits left the entries of a shard only three of those seven to differ in, so most
/// probes compared the ids themselves, each a cache miss into the text.
fn shard_of(hash: u64) -> usize {
    ((hash >> 40) & ((1 << SHARD_BITS) - 1)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(values: &[&str]) -> Result<Ids, (usize, usize)> {
        Ids::new(values.iter().map(|v| Some(*v)).collect())
    }

    #[test]
    fn rows_by_id_and_the_first_duplicate() {
        let values: Vec<String> = (0..10_000).map(|i| format!("c{i}")).collect();
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        let all = ids(&refs).unwrap();
        assert_eq!(all.len(), 10_000);
        assert_eq!(all.get(7), "c7");
        for (row, id) in refs.iter().enumerate() {
            assert_eq!(all.row(id), Some(row));
        }
        assert_eq!(all.row(""), None);
        assert_eq!(all.row("c10000"), None);
        assert_eq!(all.iter().nth(3), Some("c3"));

        // c5 at rows 5 and 900, c7 at rows 7 and 8000: row 900 comes first in row order.
        let mut dup = refs.clone();
        dup[900] = "c5";
        dup[8000] = "c7";
        assert_eq!(ids(&dup).unwrap_err(), (5, 900));
        dup[900] = "c900";
        assert_eq!(ids(&dup).unwrap_err(), (7, 8000));
        assert_eq!(ids(&["a", "b", "a", "b"]).unwrap_err(), (0, 2));
        assert!(ids(&[]).unwrap().is_empty());
    }

    #[test]
    fn taken_ids_are_found_at_their_new_rows() {
        let all = ids(&["a", "b", "c", "d", "e"]).unwrap();
        let some = all.take(&[4, 1, 2]);
        assert_eq!(some.iter().collect::<Vec<_>>(), ["e", "b", "c"]);
        assert_eq!(some.row("e"), Some(0));
        assert_eq!(some.row("c"), Some(2));
        assert_eq!(some.row("a"), None);
        assert_eq!(some.row("z"), None);
        // Taken again from the taken set: rows of the second set.
        let fewer = some.take(&[2, 0]);
        assert_eq!(fewer.iter().collect::<Vec<_>>(), ["c", "e"]);
        assert_eq!(fewer.row("e"), Some(1));
        assert_eq!(fewer.row("b"), None);
    }
}
