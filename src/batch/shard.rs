//! `--shard I/N`: which articles this process does, decided from the id alone, so that N
//! processes that never talk to each other cover every article exactly once.

use std::fmt;

/// Share `index` of `count` (0 <= index < count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// `I/N`, as `--shard` takes it.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let number = |t: &str| t.trim().parse::<u64>().ok();
        let parsed = text
            .split_once('/')
            .and_then(|(i, n)| Some((number(i)?, number(n)?)));
        match parsed {
            Some((index, count)) if index < count => Ok(Shard { index, count }),
            _ => Err(
                "I/N with 0 <= I < N, such as 0/4 (indices count from 0, as a \
                      Kubernetes completion index does)"
                    .to_string(),
            ),
        }
    }

    /// Whether the article `id` is this shard's. FNV-1a: the same on every machine and
    /// version, which a hasher of the standard library does not promise.
    pub fn contains(&self, id: &str) -> bool {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in id.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash % self.count == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_index_of_count_and_refuses_the_rest() {
        assert_eq!(Shard::parse("0/3"), Ok(Shard { index: 0, count: 3 }));
        assert_eq!(Shard::parse(" 2 / 3 "), Ok(Shard { index: 2, count: 3 }));
        for bad in ["3/3", "1/0", "0/0", "-1/3", "1", "a/b", "1/3/4", ""] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_id_falls_in_exactly_one_shard_and_shares_are_even() {
        let ids: Vec<String> = (0..3000).map(|i| format!("article-{i}.txt")).collect();
        let shards: Vec<Shard> = (0..3).map(|index| Shard { index, count: 3 }).collect();
        let mut sizes = [0usize; 3];
        for id in &ids {
            let owners: Vec<usize> = (0..3).filter(|&s| shards[s].contains(id)).collect();
            assert_eq!(owners.len(), 1, "{id}: {owners:?}");
            sizes[owners[0]] += 1;
        }
        for size in sizes {
            assert!((900..=1100).contains(&size), "{sizes:?}");
        }
        // FNV-1a values worked out apart (0xaf63dc4c8601ec8c for "a"): a changed hash would
        // move finished articles to other shards between runs.
        let owner = |id: &str| {
            (0..3u64)
                .find(|&s| shards[s as usize].contains(id))
                .unwrap()
        };
        assert_eq!(
            [
                owner("a"),
                owner("b"),
                owner("article-1.txt"),
                owner("dépêche-42")
            ],
            [1, 1, 2, 2]
        );
        assert!(Shard { index: 0, count: 1 }.contains("anything"));
    }
}
