"""NUTS's stage boundary: patients a chain holds in a minor local mode are found and restarted from a better chain."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from carkin.inference._stages import STRANDED_GAP, patient_log_density, restart_stranded, stranded_patients
from carkin.population import individual_means, load_spec, log_likelihood, prepare

from ..helpers import one_patient_dataset, small_dataset


def test_patient_log_density_is_each_patients_likelihood_plus_its_population_prior():
    spec = load_spec("multiphasic")
    ds = small_dataset()
    data = prepare(ds, spec)
    key = jax.random.split(jax.random.PRNGKey(0), 4)
    chains, draws, params = 2, 3, len(spec.parameters)
    prior_loc = np.asarray([p.prior_loc for p in spec.parameters])
    sample = {
        "mu": prior_loc + 0.1 * np.asarray(jax.random.normal(key[0], (chains, draws, params))),
        "beta": 0.2 * np.asarray(jax.random.normal(key[1], (chains, draws, len(spec.effects)))),
        "omega": np.full((chains, draws, params), 0.5),
        "sigma": np.full((chains, draws), 0.4),
    }
    sample["phi"] = sample["mu"][:, :, None, :] + 0.3 * np.asarray(
        jax.random.normal(key[2], (chains, draws, 2, params))
    )
    got = patient_log_density(spec, data, sample)
    assert got.shape == (chains, draws, 2)
    for c in range(chains):
        for d in range(draws):
            loc = np.asarray(individual_means(spec, jnp.asarray(sample["mu"][c, d]), jnp.asarray(sample["beta"][c, d]),
                                              data.covariate_z))
            phi = sample["phi"][c, d]
            for i in range(2):
                alone = prepare(one_patient_dataset(ds, i), spec)
                loc_i = np.asarray(individual_means(spec, jnp.asarray(sample["mu"][c, d]),
                                                    jnp.asarray(sample["beta"][c, d]), alone.covariate_z))[0]
                np.testing.assert_allclose(loc_i, loc[i], rtol=1e-12)
                expected = float(log_likelihood(spec, alone, jnp.asarray(phi[i:i + 1]), 0.4))
                expected += norm.logpdf(phi[i], loc[i], 0.5).sum()
                assert got[c, d, i] == pytest.approx(expected, rel=1e-10)


def _noise(shape, seed=0):
    return np.asarray(jax.random.normal(jax.random.PRNGKey(seed), shape)) * 1.5


def test_a_chain_far_below_the_best_for_a_patient_is_stranded_and_noise_is_not():
    density = -10.0 + _noise((3, 25, 6))
    density[1, :, 4] -= STRANDED_GAP + 2.0  # chain 1 holds patient 4 in a minor mode
    density[0, 7, :] = -np.inf  # a draw of chain 0 whose solve failed: left out, not a reason to restart
    stranded, best = stranded_patients(density)
    assert stranded.shape == (3, 6) and best.shape == (6,)
    np.testing.assert_array_equal(np.argwhere(stranded), [[1, 4]])
    assert best[4] in (0, 2)
    # just inside the gap: not stranded
    density[1, :, 4] += 3.0
    assert not stranded_patients(density)[0].any()


def test_a_chain_whose_every_draw_failed_is_stranded_everywhere_unless_all_chains_failed():
    density = -10.0 + _noise((2, 10, 3), seed=1)
    density[1] = -np.inf
    stranded, best = stranded_patients(density)
    assert stranded[1].all() and not stranded[0].any() and (best == 0).all()
    assert not stranded_patients(np.full((2, 10, 3), -np.inf))[0].any()


def test_restart_moves_stranded_patients_to_the_best_chain_and_centres_the_whitening_there():
    chains, warmup, patients, params = 3, 40, 4, 2
    phi = np.zeros((chains, warmup, patients, params))
    phi[..., 0] = np.arange(chains)[:, None, None] * 10.0 + np.arange(warmup)[None, :, None] * 0.01
    phi[..., 1] = np.arange(patients)[None, None, :]
    draws = {"phi": phi, "mu": np.zeros((chains, warmup, params))}
    settled = {k: v[:, warmup // 2:] for k, v in draws.items()}
    stranded = np.zeros((chains, patients), bool)
    stranded[2, 1] = stranded[0, 3] = True
    best = np.array([0, 0, 0, 1])
    message = r"chain 0: patients P4 \(from chain 1\); chain 2: patients P2 \(from chain 0\)$"
    with pytest.warns(UserWarning, match=message):
        phi_hat, moved, restarted = restart_stranded(settled, draws, stranded, best, ("P1", "P2", "P3", "P4"))
    assert restarted == [{"chain": 0, "patient": "P4", "from_chain": 1}, {"chain": 2, "patient": "P2", "from_chain": 0}]
    # chain 2's start for patient 2 is one of chain 0's settled draws (the third from the end), others unchanged
    assert moved["phi"][2, -1, 1, 0] == settled["phi"][0, -3, 1, 0]
    assert moved["phi"][0, -1, 3, 0] == settled["phi"][1, -1, 3, 0]
    unchanged = np.ones((chains, patients), bool)
    unchanged[2, 1] = unchanged[0, 3] = False
    np.testing.assert_array_equal(moved["phi"][:, -1][unchanged], phi[:, -1][unchanged])
    assert draws["phi"] is phi and moved["mu"] is draws["mu"]  # the caller's draws are not modified
    # the whitening centre averages the chains that are not stranded for each patient
    chain_means = settled["phi"].mean(axis=1)
    np.testing.assert_allclose(phi_hat[0], chain_means[:, 0].mean(0))
    np.testing.assert_allclose(phi_hat[1], chain_means[:2, 1].mean(0))
    np.testing.assert_allclose(phi_hat[3], chain_means[1:, 3].mean(0))
