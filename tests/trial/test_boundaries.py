"""Group-sequential boundaries: recursive integration against the multivariate normal CDF and published values."""

import numpy as np
import pytest
from scipy import optimize, stats

from carkin.trial import (
    FutilityRule,
    SpendingFunction,
    compute_bounds,
    crossing_probabilities,
)


def canonical_cov(t):
    t = np.asarray(t, float)
    return np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))


def mvn_below(b, t, drift=0.0, lower=None):
    """P(lower_j <= Z_j < b_j for all j) under the canonical joint normal, by scipy's mvn CDF (Genz)."""
    k = len(b)
    mean = drift * np.sqrt(np.asarray(t[:k], float))
    lo = np.full(k, -np.inf) if lower is None else np.asarray(lower[:k], float)
    if k == 1:
        return stats.norm.cdf(b[0] - mean[0]) - stats.norm.cdf(lo[0] - mean[0])
    return stats.multivariate_normal.cdf(
        np.asarray(b, float), mean=mean, cov=canonical_cov(t[:k]), lower_limit=lo, maxpts=100_000 * k, abseps=1e-8,
        releps=0, rng=np.random.default_rng(0),
    )


def mvn_crossings(b, t):
    """P(first crossing of the upper boundary at look k) from the mvn CDF."""
    below = [1.0] + [mvn_below(b[: k + 1], t) for k in range(len(b))]
    return -np.diff(below)


def mvn_boundaries(t, spending):
    """Lan-DeMets boundaries solved independently: brentq on the mvn CDF, look by look."""
    spent = np.diff(np.concatenate([[0.0], spending(np.asarray(t))]))
    b = []
    for k in range(len(t)):
        below_before = 1.0 if k == 0 else mvn_below(b, t)
        target = below_before - spent[k]
        b.append(optimize.brentq(lambda x, target=target: target - mvn_below(b + [x], t), 0.5, 12.0, xtol=1e-7))
    return np.array(b)


class TestSpendingFunctions:
    def test_obrien_fleming_type_formula_and_endpoints(self):
        f = SpendingFunction("obf", 0.025)
        assert float(f(0.0)) == 0.0 and float(f(1.0)) == 0.025
        assert float(f(0.5)) == pytest.approx(2 * stats.norm.sf(stats.norm.isf(0.0125) / np.sqrt(0.5)), rel=1e-12)

    def test_pocock_type_and_hsd_formulas(self):
        assert float(SpendingFunction("pocock", 0.025)(0.5)) == pytest.approx(0.025 * np.log(1 + (np.e - 1) * 0.5))
        f = SpendingFunction("hsd", 0.1, gamma=-2.0)
        assert float(f(0.3)) == pytest.approx(0.1 * (1 - np.exp(0.6)) / (1 - np.exp(2.0)))
        assert float(SpendingFunction("hsd", 0.1, gamma=0.0)(0.3)) == pytest.approx(0.03)

    def test_unknown_spending_function_lists_the_valid_ones(self):
        with pytest.raises(ValueError, match="'lan' .*choose one of obf, pocock, hsd"):
            SpendingFunction("lan", 0.025)
        with pytest.raises(ValueError, match="spending total = 1.5 must be a probability"):
            SpendingFunction("obf", 1.5)


class TestLanDeMetsAgainstMultivariateNormal:
    @pytest.mark.parametrize("k", [2, 3, 4, 5])
    @pytest.mark.parametrize("kind", ["obf", "pocock"])
    def test_crossing_probabilities_equal_the_spent_alpha(self, k, kind):
        t = np.arange(1, k + 1) / k
        b = compute_bounds(t, alpha=0.025, spending=SpendingFunction(kind, 0.025))
        spent = np.diff(np.concatenate([[0.0], SpendingFunction(kind, 0.025)(t)]))
        np.testing.assert_allclose(b.null["efficacy"], spent, atol=1e-9)  # the recursion's own accounting
        np.testing.assert_allclose(mvn_crossings(b.efficacy, t), spent, atol=2e-6)  # independent: Genz mvn CDF

    @pytest.mark.parametrize(
        "t, kind, alpha",
        [([0.5, 1.0], "obf", 0.025), ([1 / 3, 2 / 3, 1.0], "pocock", 0.025), ([0.25, 0.6, 0.8, 1.0], "obf", 0.01),
         ([0.33, 0.8, 1.0], "obf", 0.025)],
    )
    def test_boundaries_agree_with_an_independent_mvn_solution_to_3_decimals(self, t, kind, alpha):
        spending = SpendingFunction(kind, alpha)
        ours = compute_bounds(t, alpha=alpha, spending=spending).efficacy
        independent = mvn_boundaries(t, spending)
        np.testing.assert_allclose(ours, independent, atol=5e-4)

    def test_published_obrien_fleming_type_values(self):
        # Lan-DeMets O'Brien-Fleming-type, one-sided 0.025, equally spaced (gsDesign sfLDOF; checked above by mvn)
        assert np.round(compute_bounds([0.5, 1.0], alpha=0.025).efficacy, 3).tolist() == [2.963, 1.969]
        assert np.round(compute_bounds([1 / 3, 2 / 3, 1.0], alpha=0.025).efficacy, 3).tolist() == [3.710, 2.511, 1.993]


class TestClassicConstants:
    # Jennison & Turnbull (2000) Table 2.3 / 2.1, two-sided 0.05 = one-sided 0.025: classic O'Brien-Fleming
    # b_k = C sqrt(K / k) and Pocock b_k = C. K = 2 O'Brien-Fleming: 2.797, 1.977.
    @pytest.mark.parametrize("k, c", [(2, 1.977), (3, 2.004), (4, 2.024), (5, 2.040)])
    def test_classic_obrien_fleming_constants_give_alpha(self, k, c):
        t = np.arange(1, k + 1) / k
        up, _ = crossing_probabilities(t, c * np.sqrt(1 / t), np.full(k, -np.inf), 0.0)
        assert up.sum() == pytest.approx(0.025, abs=1e-4)
        assert up.sum() == pytest.approx(mvn_crossings(c * np.sqrt(1 / t), t).sum(), abs=2e-6)

    @pytest.mark.parametrize("k, c", [(2, 2.178), (3, 2.289), (4, 2.361), (5, 2.413)])
    def test_classic_pocock_constants_give_alpha(self, k, c):
        t = np.arange(1, k + 1) / k
        up, _ = crossing_probabilities(t, np.full(k, c), np.full(k, -np.inf), 0.0)
        assert up.sum() == pytest.approx(0.025, abs=1e-4)


class TestFutilityAndAlternative:
    def test_beta_spending_futility_crosses_with_the_spent_beta_under_the_alternative(self):
        t = [0.33, 0.8, 1.0]
        drift = 3.0
        rule = FutilityRule("beta_spending", SpendingFunction("obf", 0.1))
        b = compute_bounds(t, alpha=0.025, efficacy_looks=[False, True, True], futility_looks=[True, True, False],
                           futility=rule, drift=drift)
        beta = rule.spending(np.asarray(t))
        np.testing.assert_allclose(b.alternative["futility"][:2], np.diff(np.concatenate([[0.0], beta[:2]])), atol=1e-9)
        # independent: P(Z1 < a1), and P(Z1 >= a1, Z2 < a2) from the mvn CDF (look 1 tests no efficacy)
        assert stats.norm.cdf(b.futility[0] - drift * np.sqrt(0.33)) == pytest.approx(beta[0], abs=1e-9)
        continue_then_low = mvn_below([np.inf, b.futility[1]], t, drift, lower=[b.futility[0], -np.inf])
        assert continue_then_low == pytest.approx(beta[1] - beta[0], abs=2e-6)

    def test_non_binding_futility_leaves_the_efficacy_boundaries_unchanged(self):
        t = [0.33, 0.8, 1.0]
        plain = compute_bounds(t, alpha=0.025, efficacy_looks=[False, True, True])
        with_futility = compute_bounds(
            t,
            alpha=0.025,
            efficacy_looks=[False, True, True],
            futility_looks=[True, False, False],
            futility=FutilityRule("z", z=(0.0,)),
            drift=3.0,
        )
        np.testing.assert_allclose(plain.efficacy, with_futility.efficacy)
        assert with_futility.futility[0] == 0.0
        assert with_futility.null["efficacy_nonbinding"].sum() == pytest.approx(0.025, abs=1e-10)
        assert with_futility.null["efficacy"].sum() < 0.025  # stopping for futility only lowers the type I error
        assert with_futility.null["futility"][0] == pytest.approx(0.5, abs=1e-12)

    def test_power_under_the_alternative_matches_the_mvn(self):
        t = np.array([0.5, 1.0])
        b = compute_bounds(t, alpha=0.025, drift=3.0)
        power = 1 - mvn_below(b.efficacy, t, drift=3.0)
        assert b.power() == pytest.approx(power, abs=2e-6)

    def test_a_single_look_is_the_fixed_sample_test(self):
        b = compute_bounds([1.0], alpha=0.025, drift=2.8)
        assert b.efficacy[0] == pytest.approx(stats.norm.isf(0.025), abs=1e-10)
        assert b.power() == pytest.approx(stats.norm.cdf(2.8 - stats.norm.isf(0.025)), abs=1e-10)


class TestErrors:
    def test_information_must_increase_and_end_at_one(self):
        with pytest.raises(ValueError, match="strictly increasing"):
            compute_bounds([0.5, 0.4, 1.0], alpha=0.025)
        with pytest.raises(ValueError, match="last information fraction must be 1"):
            compute_bounds([0.5, 0.9], alpha=0.025)

    def test_futility_looks_need_a_rule_and_alpha_must_match(self):
        with pytest.raises(ValueError, match="no futility rule"):
            compute_bounds([0.5, 1.0], alpha=0.025, futility_looks=[True, False])
        with pytest.raises(ValueError, match="spends 0.05 but alpha = 0.025"):
            compute_bounds([0.5, 1.0], alpha=0.025, spending=SpendingFunction("obf", 0.05))
        with pytest.raises(ValueError, match="last look .* must test efficacy"):
            compute_bounds([0.5, 1.0], alpha=0.025, efficacy_looks=[True, False])
