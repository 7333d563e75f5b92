//! Exact tail probabilities for the detection test, computed in log space.
//!
//! Under the null hypothesis each scored position `i` hits independently with probability
//! `p_i = 1/|set_i|`. With a single set size the number of hits is binomial; with mixed sizes
//! it is Poisson-binomial. Positions are grouped by `p` (there are only a few set sizes), each
//! group's binomial pmf is computed exactly in log space, the groups are convolved in log
//! space, and the upper tail is summed with log-sum-exp. No normal approximation is used; the
//! only error is floating-point rounding (relative error ~1e-11 for n up to 10^4, from
//! subtracting log-factorials of magnitude n·ln n). Results are
//! natural logs so values far below `f64::MIN_POSITIVE` (e.g. 1e-400) are representable.

/// `ln(a + b + ...)` for log-space terms; `-inf` for an empty or all-`-inf` input.
fn log_sum_exp(terms: &[f64]) -> f64 {
    let m = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    let s: f64 = terms.iter().map(|t| (t - m).exp()).sum();
    m + s.ln()
}

/// `ln(i!)` for `i in 0..=n`.
fn ln_factorials(n: u64) -> Vec<f64> {
    let mut v = Vec::with_capacity(n as usize + 1);
    // Kahan-compensated running sum keeps the error at a few ulps of the result.
    let (mut acc, mut comp) = (0.0f64, 0.0f64);
    v.push(0.0);
    for i in 1..=n {
        let y = (i as f64).ln() - comp;
        let t = acc + y;
        comp = (t - acc) - y;
        acc = t;
        v.push(acc);
    }
    v
}

/// Log pmf vector of Binomial(n, p), indices `0..=n`.
fn ln_binomial_pmf_vec(n: u64, p: f64) -> Vec<f64> {
    let lf = ln_factorials(n);
    let (lp, lq) = (p.ln(), (-p).ln_1p());
    (0..=n)
        .map(|j| {
            let (a, b) = (j as f64, (n - j) as f64);
            // 0 * ln(0) is 0 here (p = 0 or 1 edge cases).
            let t1 = if j == 0 { 0.0 } else { a * lp };
            let t2 = if j == n { 0.0 } else { b * lq };
            lf[n as usize] - lf[j as usize] - lf[(n - j) as usize] + t1 + t2
        })
        .collect()
}

/// Natural log of the exact upper tail `P(X >= k)` for `X ~ Binomial(n, p)`.
pub fn ln_binomial_tail(n: u64, k: u64, p: f64) -> f64 {
    assert!((0.0..=1.0).contains(&p), "p must be a probability");
    if k == 0 {
        return 0.0;
    }
    if k > n {
        return f64::NEG_INFINITY;
    }
    let pmf = ln_binomial_pmf_vec(n, p);
    log_sum_exp(&pmf[k as usize..])
}

/// Exact upper tail `P(X >= k)` for `X ~ Binomial(n, p)` (underflows to 0 below ~1e-308; use
/// [`ln_binomial_tail`] for tiny values).
pub fn exact_binomial_tail(n: u64, k: u64, p: f64) -> f64 {
    ln_binomial_tail(n, k, p).exp()
}

/// Natural log of the exact upper tail `P(X >= k)` where `X` is a sum of independent binomials
/// given as `(n_g, p_g)` groups (a Poisson-binomial with few distinct probabilities).
pub fn ln_poisson_binomial_tail(groups: &[(u64, f64)], k: u64) -> f64 {
    let total: u64 = groups.iter().map(|g| g.0).sum();
    if k == 0 {
        return 0.0;
    }
    if k > total {
        return f64::NEG_INFINITY;
    }
    let mut dist: Vec<f64> = vec![0.0]; // ln P(S = 0) = 0 for the empty sum
    for &(n, p) in groups.iter().filter(|g| g.0 > 0) {
        let g = ln_binomial_pmf_vec(n, p);
        let mut next = vec![f64::NEG_INFINITY; dist.len() + g.len() - 1];
        let mut terms = Vec::with_capacity(g.len());
        for (s, slot) in next.iter_mut().enumerate() {
            terms.clear();
            let lo = s.saturating_sub(g.len() - 1);
            let hi = s.min(dist.len() - 1);
            for i in lo..=hi {
                terms.push(dist[i] + g[s - i]);
            }
            *slot = log_sum_exp(&terms);
        }
        dist = next;
    }
    log_sum_exp(&dist[k as usize..])
}

/// Groups per-position hit probabilities into `(count, p)` pairs (exact equality of `p`).
pub fn group_probabilities(ps: &[f64]) -> Vec<(u64, f64)> {
    let mut groups: Vec<(u64, f64)> = Vec::new();
    for &p in ps {
        match groups.iter_mut().find(|g| g.1 == p) {
            Some(g) => g.0 += 1,
            None => groups.push((1, p)),
        }
    }
    groups
}

/// z-score `(k - Σp) / sqrt(Σp(1-p))` for display only (the p-value is exact).
pub fn z_score(hits: u64, ps: &[f64]) -> f64 {
    let mu: f64 = ps.iter().sum();
    let var: f64 = ps.iter().map(|p| p * (1.0 - p)).sum();
    if var == 0.0 {
        0.0
    } else {
        (hits as f64 - mu) / var.sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choose(n: u64, k: u64) -> f64 {
        let mut c: u128 = 1;
        for i in 0..k {
            c = c * (n - i) as u128 / (i + 1) as u128;
        }
        c as f64
    }

    #[test]
    fn binomial_tail_matches_direct_sum() {
        for n in 0..=30u64 {
            for &p in &[0.5f64, 1.0 / 3.0, 0.25, 0.1] {
                for k in 0..=n + 1 {
                    let direct: f64 = (k..=n)
                        .map(|j| choose(n, j) * p.powi(j as i32) * (1.0 - p).powi((n - j) as i32))
                        .sum();
                    let got = exact_binomial_tail(n, k, p);
                    assert!(
                        (got - direct).abs() <= 1e-12 * direct.max(1e-300) + 1e-300,
                        "n={n} k={k} p={p}: {got} vs {direct}"
                    );
                }
            }
        }
    }

    #[test]
    fn poisson_binomial_matches_brute_force() {
        let ps = [
            0.5,
            0.5,
            1.0 / 3.0,
            0.25,
            0.5,
            1.0 / 3.0,
            0.25,
            0.25,
            0.5,
            1.0 / 3.0,
            0.5,
        ];
        let n = ps.len();
        let mut pmf = vec![0.0f64; n + 1];
        for mask in 0u32..(1 << n) {
            let mut pr = 1.0;
            for (i, p) in ps.iter().enumerate() {
                pr *= if mask >> i & 1 == 1 { *p } else { 1.0 - p };
            }
            pmf[mask.count_ones() as usize] += pr;
        }
        let groups = group_probabilities(&ps);
        assert_eq!(groups.len(), 3);
        for k in 0..=n + 1 {
            let brute: f64 = pmf.iter().skip(k).sum();
            let got = ln_poisson_binomial_tail(&groups, k as u64).exp();
            assert!((got - brute).abs() < 1e-13, "k={k}: {got} vs {brute}");
        }
    }

    #[test]
    fn log_space_for_large_n() {
        // P(X >= 1000 | n = 1000, p = 1/2) = 2^-1000: far below f64::MIN_POSITIVE.
        let l = ln_binomial_tail(1000, 1000, 0.5);
        assert!((l - (-1000.0 * 2f64.ln())).abs() < 1e-9, "{l}");
        // 1e-40 region: n = 200, all hits at p = 0.5 is 2^-200 ≈ 6.2e-61.
        let l = ln_binomial_tail(200, 200, 0.5) / 10f64.ln();
        assert!((l + 60.2).abs() < 0.01, "{l}");
        // Poisson-binomial agrees with binomial when all p equal.
        let a = ln_poisson_binomial_tail(&[(300, 0.5), (500, 0.5)], 600);
        let b = ln_binomial_tail(800, 600, 0.5);
        assert!((a - b).abs() < 1e-9 * b.abs(), "{a} vs {b}");
        // Lower tail region: tail near 1.
        assert!((exact_binomial_tail(10_000, 1, 0.5) - 1.0).abs() < 1e-9);
    }
}
