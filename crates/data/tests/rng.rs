//! The generator against an independent implementation (fixtures/rng/make_rng.py).

use inheritune_data::rng::{below, mix, unit, SplitMix64};

fn fixture() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rng/rng.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn u(v: &serde_json::Value) -> u64 {
    v.as_str().unwrap().parse().unwrap()
}

#[test]
fn splitmix64_equals_the_reference() {
    let f = fixture();
    for (seed, want) in f["splitmix64"].as_object().unwrap() {
        let mut rng = SplitMix64::new(seed.parse().unwrap());
        let got: Vec<u64> = (0..5).map(|_| rng.next_u64()).collect();
        let want: Vec<u64> = want.as_array().unwrap().iter().map(u).collect();
        assert_eq!(got, want, "seed {seed}");
    }
    for (z, want) in f["mix"].as_object().unwrap() {
        assert_eq!(mix(z.parse().unwrap()), u(want), "mix({z})");
    }
    for case in f["below"].as_array().unwrap() {
        let (v, n, want) = (u(&case[0]), case[1].as_u64().unwrap(), case[2].as_u64().unwrap());
        assert_eq!(below(v, n), want, "below({v}, {n})");
    }
    for case in f["unit"].as_array().unwrap() {
        assert_eq!(unit(u(&case[0])).to_bits(), u(&case[1]), "unit({})", case[0]);
    }
}
