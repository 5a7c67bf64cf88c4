"""Posterior predictive replicates do not depend on the chunk size they are computed in (fold_in keys)."""

import jax
import numpy as np

from carkin.diagnostics import _simulation
from carkin.population import load_spec, prepare
from carkin.simulate import simulate_cohort, truth_from_spec


def test_replicates_are_the_same_whatever_the_chunk_size(monkeypatch):
    spec = load_spec("multiphasic")
    cohort = simulate_cohort(spec, key=jax.random.PRNGKey(2), n=12)
    data = prepare(cohort.dataset, spec)
    truth = truth_from_spec(spec)
    n_rep = 23  # not a multiple of either chunk size
    draws = {name: np.broadcast_to(np.asarray(getattr(truth, name)), (n_rep, *np.shape(getattr(truth, name))))
             for name in ("mu", "omega", "beta", "sigma", "sigma_add")}
    draws["mu"] = draws["mu"] + 0.01 * np.arange(n_rep)[:, None]  # a different population draw per replicate
    key = jax.random.PRNGKey(9)
    log_lloq = _simulation.design(cohort.dataset, spec).log_lloq
    first = _simulation.simulate_records(spec, data, draws, key=key, log_lloq=log_lloq)
    reference = np.asarray(first.log_value)
    monkeypatch.setattr(_simulation, "CHUNK", 5)
    second = _simulation.simulate_records(spec, data, draws, key=key, log_lloq=log_lloq)
    rechunked = np.asarray(second.log_value)
    np.testing.assert_array_equal(np.asarray(second.blq), np.asarray(first.blq))
    assert reference.shape == (n_rep, data.records.log_dv.shape[0])
    np.testing.assert_allclose(rechunked, reference, rtol=1e-12, atol=1e-12)
    assert not np.allclose(reference[0], reference[1])  # replicates differ from each other
