//! The attention-degeneration metrics of METHOD.md §2, on batches of attention matrices, in f64.
//!
//! Inputs are post-softmax causal attention matrices `(..., T, T)` (rows sum to one, upper
//! triangle zero). Everything is computed in f64 with libtorch's batched `linalg_svdvals`, on
//! whatever device the matrices are on. This module must not run models.

use inheritune_model::tch::{Kind, Tensor};

/// Smallest k with cumulative share ≥ threshold, for cumulative shares along the last dimension:
/// the count of entries below the threshold, plus one (a left `searchsorted`), capped at the length.
fn first_reaching(cum: &Tensor, threshold: f64) -> Tensor {
    let n = cum.size().last().copied().unwrap_or(1);
    (cum.lt(threshold).sum_dim_intlist(-1, false, Kind::Int64) + 1).clamp_max(n)
}

/// The eigenvalues (ascending) of each symmetric matrix of `(..., T, T)`, lower triangle read.
/// libtorch runs a CPU batch through LAPACK one matrix at a time, on one core (its threads only
/// contend inside LAPACK), so a large batch is split over the intra-op threads, each chunk its own
/// single-threaded LAPACK calls: the same routine on the same matrices, so the same values, on
/// every core (2.3× on 2 cores for 1200 matrices of 100 × 100).
fn eigvalsh(gram: &Tensor) -> Tensor {
    use inheritune_model::tch;
    let size = gram.size();
    let t = size[size.len() - 1];
    let batch: i64 = size[..size.len() - 2].iter().product();
    let threads = tch::get_num_threads().max(1);
    if gram.device() != tch::Device::Cpu || threads < 2 || batch < 2 * threads as i64 {
        return gram.linalg_eigvalsh("L");
    }
    let flat = gram.reshape([batch, t, t]);
    let chunks = flat.chunk(threads as i64, 0);
    // One LAPACK thread per chunk while they run, the caller's setting restored after.
    tch::set_num_threads(1);
    let parts: Vec<Tensor> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|c| s.spawn(move || c.linalg_eigvalsh("L")))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("an eigensolver thread panicked"))
            .collect()
    });
    tch::set_num_threads(threads);
    let mut out = size[..size.len() - 2].to_vec();
    out.push(t);
    Tensor::cat(&parts, 0).reshape(out)
}

/// Squared Frobenius norm of each matrix, `(...)`.
fn frobenius2(a: &Tensor) -> Tensor {
    a.square().sum_dim_intlist(&[-2i64, -1][..], false, Kind::Double)
}

/// k*(τ) of METHOD.md §2.3 for every matrix and every τ: `(..., T, T)` → `(..., len(taus))` (int64).
///
/// The energy share of the top k singular values is Σ_{i≤k} σ_i² / ‖A‖_F²; k* is the smallest k
/// whose share reaches τ (ties decided by `>=`, no epsilon).
pub fn approx_rank(a: &Tensor, taus: &[f64]) -> Tensor {
    let a = a.to_kind(Kind::Double);
    rank_given_total(&a, &frobenius2(&a).unsqueeze(-1), taus)
}

/// k* of f64 matrices `a` whose squared Frobenius norms `(..., 1)` are known.
fn rank_given_total(a: &Tensor, total: &Tensor, taus: &[f64]) -> Tensor {
    // σ² are the eigenvalues of A·Aᵀ (METHOD.md §2.3 allows either route). tch passes linalg_svdvals a
    // driver string that libtorch accepts only on CUDA, and the legacy svd(compute_uv=false)
    // allocates zero-filled U and V, so the symmetric eigensolver is both available and faster.
    let gram = a.matmul(&a.transpose(-2, -1)); // (..., T, T)
    let s2 = eigvalsh(&gram).clamp_min(0.0).flip([-1]); // (..., T), descending
    let cum = s2.cumsum(-1, Kind::Double) / total;
    let per_tau: Vec<Tensor> = taus.iter().map(|&t| first_reaching(&cum, t)).collect();
    Tensor::stack(&per_tau, -1)
}

/// k*, m* and dom of the same matrices, as [`approx_rank`], [`column_mass`] and [`dominance`]
/// give them one by one.
pub struct Metrics {
    /// k*(τ) for every τ, `(..., len(taus))` int64.
    pub rank: Tensor,
    /// m*(η), `(...)` int64.
    pub mass: Tensor,
    /// dom(A), `(...)` f64.
    pub dom: Tensor,
}

/// k*, m* and dom of `(..., T, T)` attention matrices in one pass over their squared entries:
/// the column masses c_j give the column shares (m*, dom) and ‖A‖_F² = Σ_j c_j (k*), where the
/// functions one by one square every entry three times.
pub fn metrics(a: &Tensor, taus: &[f64], eta: f64, sorted: bool) -> Metrics {
    let a = a.to_kind(Kind::Double);
    let c = a.square().sum_dim_intlist(-2, false, Kind::Double); // (..., T)
    let total = c.sum_dim_intlist(-1, true, Kind::Double); // (..., 1)
    let shares = &c / &total;
    Metrics {
        rank: rank_given_total(&a, &total, taus),
        mass: mass_of_shares(&shares, eta, sorted),
        dom: shares.amax(-1, false),
    }
}

fn mass_of_shares(shares: &Tensor, eta: f64, sorted: bool) -> Tensor {
    let ordered = if sorted {
        shares.sort(-1, true).0
    } else {
        shares.shallow_clone()
    };
    first_reaching(&ordered.cumsum(-1, Kind::Double), eta)
}

/// Column-mass shares c_j / ‖A‖_F² with c_j = Σ_i A_ij², `(..., T)`.
pub fn column_shares(a: &Tensor) -> Tensor {
    let a = a.to_kind(Kind::Double);
    let c = a.square().sum_dim_intlist(-2, false, Kind::Double); // (..., T)
    &c / c.sum_dim_intlist(-1, true, Kind::Double)
}

/// m*(η) of METHOD.md §2.6: the fewest columns whose shares reach η; `sorted = false` gives the
/// index-order variant (columns 0, 1, 2, … as printed in the paper's formula). `(..., T, T)` → `(...)`.
pub fn column_mass(a: &Tensor, eta: f64, sorted: bool) -> Tensor {
    mass_of_shares(&column_shares(a), eta, sorted)
}

/// dom(A) = max_j c_j / ‖A‖_F², `(..., T, T)` → `(...)` (f64).
pub fn dominance(a: &Tensor) -> Tensor {
    column_shares(a).amax(-1, false)
}

/// Synthetic matrices of METHOD.md §2.3 / §8.1, for tests and benchmarks.
pub mod synthetic {
    use inheritune_model::tch::{Device, Kind, Tensor};

    /// Every row one-hot on column 0.
    pub fn sink(t: i64) -> Tensor {
        let a = Tensor::zeros([t, t], (Kind::Double, Device::Cpu));
        let _ = a.narrow(1, 0, 1).fill_(1.0);
        a
    }

    /// Row i averages columns 0..=i.
    pub fn uniform_causal(t: i64) -> Tensor {
        let ones = Tensor::ones([t, t], (Kind::Double, Device::Cpu)).tril(0);
        let counts = Tensor::arange_start(1, t + 1, (Kind::Double, Device::Cpu)).unsqueeze(1);
        ones / counts
    }

    /// The identity (every token attends to itself).
    pub fn identity(t: i64) -> Tensor {
        Tensor::eye(t, (Kind::Double, Device::Cpu))
    }
}

#[cfg(test)]
mod tests {
    use super::synthetic::*;
    use super::*;

    fn scalar(t: &Tensor) -> f64 {
        t.double_value(&[])
    }

    #[test]
    fn hand_derived_references_at_t100() {
        // Spec §2.3, §2.6, §8.1 at T = 100, τ = η = 0.9.
        assert_eq!(scalar(&approx_rank(&sink(100), &[0.9])), 1.0);
        assert_eq!(scalar(&column_mass(&sink(100), 0.9, true)), 1.0);
        assert_eq!(scalar(&dominance(&sink(100))), 1.0);
        let u = uniform_causal(100);
        assert_eq!(scalar(&approx_rank(&u, &[0.9])), 5.0);
        assert_eq!(scalar(&column_mass(&u, 0.9, true)), 30.0);
        assert_eq!(scalar(&column_mass(&u, 0.9, false)), 30.0);
        assert!(
            (scalar(&dominance(&u)) - 0.315).abs() < 5e-4,
            "{}",
            scalar(&dominance(&u))
        );
        // σ_1² carries 51.2 % of the energy.
        let s = u.matmul(&u.tr()).linalg_eigvalsh("L").flip([-1]);
        assert!((scalar(&(s.get(0) / s.sum(Kind::Double))) - 0.512).abs() < 5e-4);
        assert_eq!(scalar(&approx_rank(&identity(100), &[0.9])), 90.0);
        assert_eq!(scalar(&column_mass(&identity(100), 0.9, true)), 90.0);
    }

    /// The one-pass [`metrics`] gives what the functions give one by one, on causal softmax
    /// attention from sharp to flat and on the hand-derived matrices.
    #[test]
    fn one_pass_equals_the_functions_one_by_one() {
        inheritune_model::tch::manual_seed(7);
        let t = 40;
        let mask = Tensor::ones([t, t], (Kind::Bool, inheritune_model::tch::Device::Cpu)).triu(1);
        let mut batch: Vec<Tensor> = [0.3, 2.0, 8.0]
            .iter()
            .map(|&sharp| {
                (Tensor::randn([4, t, t], (Kind::Float, inheritune_model::tch::Device::Cpu)) * sharp)
                    .masked_fill(&mask, f64::NEG_INFINITY)
                    .softmax(-1, Kind::Double)
            })
            .collect();
        batch.push(Tensor::stack(&[sink(t), uniform_causal(t), identity(t)], 0));
        let a = Tensor::cat(&batch, 0).view([5, 3, t, t]);
        let taus = [0.8, 0.9, 0.95];
        for sorted in [true, false] {
            let all = metrics(&a, &taus, 0.9, sorted);
            assert!(all.rank.equal(&approx_rank(&a, &taus)));
            assert!(all.mass.equal(&column_mass(&a, 0.9, sorted)));
            let diff = (&all.dom - dominance(&a)).abs().max().double_value(&[]);
            assert!(diff <= 1e-15, "dom differs by {diff}");
        }
    }

    #[test]
    fn batched_shapes_and_tau_sweep() {
        let batch = Tensor::stack(&[sink(20), uniform_causal(20), identity(20)], 0).view([3, 1, 20, 20]);
        let k = approx_rank(&batch, &[0.8, 0.85, 0.9, 0.95]);
        assert_eq!(k.size(), vec![3, 1, 4]);
        let ident: Vec<i64> = Vec::try_from(k.get(2).get(0)).unwrap_or_default();
        assert_eq!(ident, vec![16, 17, 18, 19]);
        assert_eq!(column_mass(&batch, 0.9, true).size(), vec![3, 1]);
    }
}
