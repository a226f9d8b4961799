//! Hash maps and sets for the identities, names and paths of a pack's or an archive's objects.
//!
//! std's SipHash was a tenth of reading a large manifest and an eighth of the selection's profile samples, for keys
//! that are hashed tens of thousands of times per run. foldhash is several times faster on short strings and still
//! seeded at random per process, so crafted names cannot be aimed at one run's buckets in advance.

/// A `HashMap` with foldhash.
pub(crate) type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
/// A `HashSet` with foldhash.
pub(crate) type Set<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// An empty set with room for `capacity` items.
pub(crate) fn set_with_capacity<K>(capacity: usize) -> Set<K> {
    Set::with_capacity_and_hasher(capacity, Default::default())
}
