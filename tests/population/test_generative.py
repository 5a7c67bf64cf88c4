"""The one generative model: residual SD, individual parameters, censoring at the LLOQ, observation sampling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from carkin.population import (
    censor,
    covariate_design,
    individual_parameters,
    load_spec,
    residual_sd,
    sample_observations,
)


@pytest.fixture(scope="module")
def spec():
    return load_spec("multiphasic")


class TestResidualSD:
    def test_the_additive_log_model_is_sigma_whatever_the_prediction(self):
        assert float(residual_sd("additive_log", jnp.log(jnp.array([1.0, 1e6])), 0.4)) == 0.4

    def test_the_combined_model_matches_the_hand_computed_formula(self):
        # sd = sqrt(sigma^2 + (sigma_add / C)^2): C = 50, sigma = 0.3, sigma_add = 20 -> sqrt(0.09 + 0.16) = 0.5
        sd = residual_sd("combined", jnp.log(jnp.array([50.0, 1e8])), 0.3, 20.0)
        np.testing.assert_allclose(np.asarray(sd), [0.5, np.sqrt(0.09 + (20.0 / 1e8) ** 2)], rtol=1e-14)

    def test_the_combined_model_needs_sigma_add(self):
        with pytest.raises(ValueError, match="the 'combined' error model needs sigma_add; got None"):
            residual_sd("combined", jnp.zeros(2), 0.3)

    def test_an_unknown_error_model_lists_the_valid_ones(self):
        with pytest.raises(ValueError, match="unknown error model 'exponential'; choose one of additive_log, combined, "
                                             "additive, proportional, additive_proportional"):
            residual_sd("exponential", jnp.zeros(2), 0.3)

    @pytest.mark.parametrize(
        ("residual", "expected"),
        [("additive", lambda c: 2.0 + 0 * c), ("proportional", lambda c: 0.3 * c),
         ("additive_proportional", lambda c: np.sqrt(2.0**2 + (0.3 * c) ** 2))],
    )
    def test_the_linear_scale_models_give_the_sd_of_dv(self, residual, expected):
        c = np.array([0.5, 5.0, 50.0])
        np.testing.assert_allclose(residual_sd(residual, jnp.log(c), 0.3, 2.0), expected(c), rtol=1e-14)

    def test_linear_scale_observations_are_c_plus_sd_eps_and_censor_on_dv(self):
        c, eps = jnp.array([0.1, 1.0, 10.0]), jnp.array([-1.0, 0.5, 2.0])
        obs = sample_observations(jnp.log(c), eps, residual="additive", sigma=None, sigma_add=0.4,
                                  log_lloq=jnp.log(0.2))
        np.testing.assert_allclose(obs.value, c + 0.4 * eps, rtol=1e-14)
        assert obs.blq.tolist() == [True, False, False]  # -0.3 < 0.2: below the LLOQ
        np.testing.assert_allclose(obs.dv, [0.2, 1.2, 10.8], rtol=1e-14)
        assert np.isnan(np.asarray(obs.log_value)[0])  # a negative value has no log

    def test_the_likelihood_uses_the_same_formula(self, spec):
        """The fit's per-patient log-likelihood of a combined-error model is the normal density with this SD."""
        from carkin.population import patient_log_likelihood, prepare
        from carkin.simulate import simulate_cohort

        combined = spec.replace(residual="combined")
        cohort = simulate_cohort(combined, key=jax.random.PRNGKey(0), n=3, lloq=1e-6)
        data = prepare(cohort.dataset, combined)
        phi = jnp.stack([jnp.log(jnp.asarray(cohort.individual[p.name])) if p.transform == "log"
                         else jax.scipy.special.logit(jnp.asarray(cohort.individual[p.name]))
                         for p in combined.parameters], axis=-1)
        ll = patient_log_likelihood(combined, data, phi, jnp.asarray(0.3), jnp.asarray(20.0))
        rec = data.records
        model = combined.kinetic_model
        ind = {k: jnp.asarray(v)[np.asarray(rec.patient)] for k, v in cohort.individual.items()}
        log_c = np.asarray(model.log_concentration(ind, rec.times))
        sd = np.sqrt(0.3**2 + (20.0 / np.exp(log_c)) ** 2)
        by_hand = stats.norm.logpdf(np.asarray(rec.log_dv), log_c, sd)
        expected = np.bincount(np.asarray(rec.patient), weights=by_hand)
        np.testing.assert_allclose(np.asarray(ll), expected, rtol=1e-10)


class TestIndividualParameters:
    def test_phi_is_mu_plus_covariate_effects_plus_omega_eta(self, spec):
        mu = jnp.asarray([p.prior_loc for p in spec.parameters])
        omega = jnp.linspace(0.1, 0.6, len(spec.parameters))
        beta = jnp.asarray([0.7, -0.3])  # spec.effect_names: log dose and tumour burden, both on cmax
        z = jnp.asarray([[0.5, -1.0], [0.0, 2.0]])
        eta = jnp.asarray(np.random.default_rng(0).standard_normal((2, len(spec.parameters))))
        phi = np.asarray(individual_parameters(spec, mu, omega, beta, z, eta))
        expected = np.asarray(mu)[None, :] + np.asarray(omega)[None, :] * np.asarray(eta)
        for e, (_, target) in enumerate(spec.effects):
            expected[:, spec.parameter_names.index(target)] += np.asarray(beta)[e] * np.asarray(z)[:, e]
        np.testing.assert_allclose(phi, expected, rtol=1e-14)

    def test_covariates_standardised_by_the_fit_give_the_same_means(self, spec):
        from carkin.simulate import simulate_cohort

        cohort = simulate_cohort(spec, key=jax.random.PRNGKey(1), n=4)
        z = jnp.asarray(covariate_design(cohort.dataset, spec))
        n_params = len(spec.parameters)
        phi = individual_parameters(
            spec, jnp.zeros(n_params), jnp.ones(n_params), jnp.ones(2), z, jnp.zeros((4, n_params))
        )
        dose = np.asarray(cohort.dataset.dose)
        burden = np.asarray(cohort.dataset.covariate("TUMOR_BURDEN"))
        np.testing.assert_allclose(np.asarray(phi[:, 0]), np.log(dose / 450.0) + np.log(burden / 30.0), rtol=1e-12)


class TestCensoring:
    def test_records_below_the_lloq_are_flagged_and_recorded_at_the_lloq(self):
        log_lloq = np.log(10.0)
        log_y = np.log(np.array([9.999, 10.0, 10.001, 1e-3, 1e4]))
        log_dv, blq = censor(log_y, log_lloq)
        assert np.asarray(blq).tolist() == [True, False, False, True, False]
        np.testing.assert_allclose(np.exp(np.asarray(log_dv)), [10.0, 10.0, 10.001, 10.0, 1e4], rtol=1e-14)

    def test_a_record_without_an_lloq_is_never_censored(self):
        _, blq = censor(jnp.asarray([-50.0, 3.0]), jnp.asarray([-jnp.inf, 2.0]))
        assert np.asarray(blq).tolist() == [False, False]


class TestSampleObservations:
    def test_observations_are_the_prediction_plus_scaled_noise(self):
        log_c = jnp.log(jnp.asarray([5.0, 50.0, 5000.0]))
        eps = jnp.asarray([0.3, -1.2, 2.0])
        obs = sample_observations(log_c, eps, residual="combined", sigma=0.2, sigma_add=10.0, log_lloq=jnp.log(20.0))
        sd = np.sqrt(0.04 + (10.0 / np.array([5.0, 50.0, 5000.0])) ** 2)
        log_y = np.log([5.0, 50.0, 5000.0]) + sd * np.asarray(eps)
        np.testing.assert_allclose(np.asarray(obs.log_value), log_y, rtol=1e-14)
        np.testing.assert_array_equal(np.asarray(obs.blq), np.exp(log_y) < 20.0)
        np.testing.assert_allclose(
            np.asarray(obs.log_dv), np.where(np.exp(log_y) < 20.0, np.log(20.0), log_y), rtol=1e-14
        )

    def test_without_an_lloq_nothing_is_censored(self):
        obs = sample_observations(jnp.zeros(4), -10.0 * jnp.ones(4), residual="additive_log", sigma=1.0)
        assert not np.asarray(obs.blq).any()
        np.testing.assert_array_equal(np.asarray(obs.log_dv), np.asarray(obs.log_value))

    def test_the_blq_fraction_is_the_closed_form_probability(self):
        # P(BLQ) = Phi((log LLOQ - log C) / sigma) per prediction; averaged over 20,000 draws per prediction
        log_c = jnp.log(jnp.asarray([8.0, 20.0, 60.0]))
        eps = jax.random.normal(jax.random.PRNGKey(0), (20_000, 3))
        obs = sample_observations(log_c[None, :], eps, residual="additive_log", sigma=0.6, log_lloq=jnp.log(20.0))
        expected = stats.norm.cdf((np.log(20.0) - np.log([8.0, 20.0, 60.0])) / 0.6)
        se = np.sqrt(expected * (1 - expected) / 20_000)
        np.testing.assert_array_less(np.abs(np.asarray(obs.blq).mean(axis=0) - expected), 4 * se)

    def test_it_jits_vmaps_and_differentiates(self):
        def log_value(sigma, log_c, eps):
            return sample_observations(log_c, eps, residual="combined", sigma=sigma, sigma_add=5.0,
                                       log_lloq=jnp.log(10.0)).log_value

        log_c, eps = jnp.log(jnp.asarray([[20.0, 200.0]] * 3)), jnp.ones((3, 2))
        batched = jax.jit(jax.vmap(log_value, in_axes=(None, 0, 0)))(0.4, log_c, eps)
        assert batched.shape == (3, 2)
        np.testing.assert_allclose(np.asarray(batched), np.asarray(log_value(0.4, log_c, eps)), rtol=1e-14)
        grad = jax.grad(lambda s: log_value(s, log_c[0], eps[0]).sum())(0.4)
        c = np.array([20.0, 200.0])
        np.testing.assert_allclose(float(grad), np.sum(0.4 / np.sqrt(0.16 + (5.0 / c) ** 2)), rtol=1e-12)
