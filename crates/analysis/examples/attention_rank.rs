//! The approximate rank k* (τ = 0.9) and column mass m* (η = 0.9) of three 100 × 100 attention
//! matrices: a sink (a lazy layer's signature), uniform causal averaging and the identity.
//! `cargo run -p inheritune-analysis --example attention_rank`

use inheritune_analysis::metrics::{approx_rank, column_mass, synthetic};

fn main() {
    for (name, a) in [
        ("sink", synthetic::sink(100)),
        ("uniform causal", synthetic::uniform_causal(100)),
        ("identity", synthetic::identity(100)),
    ] {
        let k = approx_rank(&a, &[0.9]).int64_value(&[0]);
        let m = column_mass(&a, 0.9, true).int64_value(&[]);
        println!("{name:>15}: k* = {k:>2}, m* = {m:>3}");
    }
}
