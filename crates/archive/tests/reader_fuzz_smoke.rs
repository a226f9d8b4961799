//! The fuzz harness of `fuzz/` run on stable for a bounded number of cases: random inputs and mutations of a
//! valid archive's tar (bit flips, cuts, splices) must never make the reader panic, and whatever it accepts
//! must be consistent; unpacking into folders seeded with links must never write outside them.
//! `cargo +nightly fuzz run read_archive` (and `unpack_dir`) in `fuzz/` explores much further.

#[path = "../../../fuzz/harness.rs"]
mod harness;

use proptest::prelude::*;
use std::sync::OnceLock;

fn seed() -> &'static [u8] {
    static SEED: OnceLock<Vec<u8>> = OnceLock::new();
    SEED.get_or_init(harness::valid_tar)
}

#[test]
fn the_seed_is_a_valid_archive() {
    let mut input = vec![1u8];
    input.extend_from_slice(seed());
    harness::fuzz_one(&input);
    let identities = {
        let mut ids = cmarchive_archive::Identities::new(cmarchive_archive::Interaction::none());
        ids.add_key(harness::TEST_IDENTITY).unwrap();
        ids
    };
    let sealed = harness::seal(&zstd::encode_all(seed(), 1).unwrap());
    let archive = cmarchive_archive::read_archive(sealed.as_slice(), &identities, &Default::default()).unwrap();
    assert_eq!(archive.objects.len(), 2);
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Cut(usize),
    Splice(usize, Vec<u8>),
    Overwrite(usize, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, bits)| Mutation::Flip(at, bits)),
        any::<usize>().prop_map(Mutation::Cut),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..64)).prop_map(|(at, b)| Mutation::Splice(at, b)),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..16)).prop_map(|(at, b)| Mutation::Overwrite(at, b)),
    ]
}

fn apply(mut data: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        if data.is_empty() {
            break;
        }
        let len = data.len();
        match m {
            Mutation::Flip(at, bits) => data[at % len] ^= bits,
            Mutation::Cut(at) => data.truncate(at % len),
            Mutation::Splice(at, bytes) => {
                let at = at % len;
                data.splice(at..at, bytes.iter().copied());
            }
            Mutation::Overwrite(at, bytes) => {
                let at = at % len;
                for (i, b) in bytes.iter().enumerate() {
                    if let Some(slot) = data.get_mut(at + i) {
                        *slot = *b;
                    }
                }
            }
        }
    }
    data
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_inputs_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        harness::fuzz_one(&data);
    }

    #[test]
    fn mutated_archives_never_panic(mode in 0u8..3, mutations in proptest::collection::vec(mutation(), 1..4)) {
        let mut input = vec![mode];
        let base = match mode % 3 {
            0 => harness::seal(&zstd::encode_all(seed(), 1).unwrap()),
            1 => seed().to_vec(),
            _ => zstd::encode_all(seed(), 1).unwrap(),
        };
        input.extend(apply(base, &mutations));
        harness::fuzz_one(&input);
    }

    /// `unpack --dir --force` into folders seeded with links, hard links, FIFOs, files and folders.
    #[test]
    fn unpacking_into_seeded_folders_stays_inside(data in proptest::collection::vec(any::<u8>(), 0..24)) {
        harness::fuzz_unpack_dir(&data);
    }
}
