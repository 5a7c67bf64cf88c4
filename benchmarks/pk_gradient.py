"""Value-and-gradient time of a one-compartment oral population log density (closed form, dosing history).

Usage:  python benchmarks/pk_gradient.py [--repeats 200]

Two layouts: Theoph-like (12 patients x 11 records, one oral dose) and 250 patients x 12 records x 3 doses
(ADDL = 2, II = 12 h). The log density is what the population model computes for an elementwise model:
per-patient terms (``patient_terms``) gathered to the flat records, log C per record, a normal residual on
log DV and a centred normal IIV on the log parameters (mu, omega, phi, sigma all differentiated). Reports
the median time of one jitted call after compilation (JSON lines), for the static bolus-only program that
``DoseEvents`` built from concrete data selects, and for the general program (infusions possible, as when
the doses are traced).
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from carkin.models._pk import DoseEvents, OneCompartment, expand_additional_doses, pad_doses


def layout(n_patients: int, times: np.ndarray, doses_per_patient: int, key: int = 0):
    rng = np.random.default_rng(key)
    single = expand_additional_doses([0.0], [4.0], addl=[doses_per_patient - 1], ii=[12.0])
    doses = pad_doses([single] * n_patients)
    patient = np.repeat(np.arange(n_patients), times.size)
    t = np.tile(times, n_patients) + rng.uniform(0, 0.1, patient.size)
    model = OneCompartment(route="oral", parameterization="ssfol")
    mu = np.log([0.08, 1.5, 0.04])
    phi = mu + 0.3 * rng.standard_normal((n_patients, 3))
    terms = model.patient_terms(dict(zip(model.individual_parameters, np.exp(phi.T))), doses)
    log_dv = np.asarray(model.log_concentration_from_terms({k: v[patient] for k, v in terms.items()}, t))
    log_dv = log_dv + 0.1 * rng.standard_normal(log_dv.shape)
    return model, doses, jnp.asarray(patient), jnp.asarray(t), jnp.asarray(log_dv), jnp.asarray(phi)


def log_density(params, model, doses, patient, t, log_dv):
    mu, log_omega, phi, log_sigma = params
    individual = dict(zip(model.individual_parameters, jnp.exp(phi).T))
    terms = model.patient_terms(individual, doses)
    log_c = model.log_concentration_from_terms({k: v[patient] for k, v in terms.items()}, t)
    resid = jax.scipy.stats.norm.logpdf(log_dv, log_c, jnp.exp(log_sigma)).sum()
    iiv = jax.scipy.stats.norm.logpdf(phi, mu, jnp.exp(log_omega)).sum()
    return resid + iiv


def bench(n_patients, times, n_doses, repeats, general):
    model, doses, patient, t, log_dv, phi = layout(n_patients, times, n_doses)
    params = (jnp.log(jnp.asarray([0.08, 1.5, 0.04])), jnp.log(jnp.full(3, 0.3)), phi, jnp.log(0.1))
    if general:  # rebuild the events inside jit: nothing static is known, the program allows infusions
        arrays = (doses.time, doses.amount, doses.duration, doses.cmt, doses.mask)
        f = jax.jit(jax.value_and_grad(lambda p, a: log_density(
            p, model, DoseEvents(time=a[0], amount=a[1], duration=a[2], cmt=a[3], mask=a[4]), patient, t, log_dv)))
        call = lambda: f(params, arrays)
    else:
        f = jax.jit(jax.value_and_grad(lambda p: log_density(p, model, doses, patient, t, log_dv)))
        call = lambda: f(params)
    start = time.perf_counter()
    value, grad = jax.block_until_ready(call())
    compile_s = time.perf_counter() - start
    assert np.isfinite(float(value)) and all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grad))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(call())
        samples.append(time.perf_counter() - start)
    return {
        "patients": n_patients, "records": int(patient.size), "doses_per_patient": n_doses,
        "program": "general" if general else "bolus-only", "median_ms": 1e3 * float(np.median(samples)),
        "p10_ms": 1e3 * float(np.percentile(samples, 10)), "compile_s": compile_s, "device": str(jax.devices()[0]),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)
    theoph = np.array([0.0, 0.25, 0.5, 1.0, 2.0, 3.5, 5.0, 7.0, 9.0, 12.0, 24.0])
    dense = np.array([0.5, 1.0, 2.0, 4.0, 8.0, 12.5, 14.0, 20.0, 24.5, 28.0, 36.0, 48.0])
    for general in (False, True):
        print(json.dumps(bench(12, theoph, 1, args.repeats, general)))
        print(json.dumps(bench(250, dense, 3, args.repeats, general)))


if __name__ == "__main__":
    main()
