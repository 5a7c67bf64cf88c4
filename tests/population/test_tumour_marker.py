"""The CAR-T / tumour model fitted to transgene and a tumour marker: models/cart_tumor.toml with a second analyte,
an M-protein (DVID 2) observing the model's tumour output times an estimated scaling factor.

The likelihood is checked against a hand computation: transgene and tumour burden from the independent diffrax
solution of tests/models/_references.py (linear-scale states, Dopri8, tolerance 1e-12), times the marker's scale,
with scipy's normal log-density and, for BLQ records, its log-CDF at the LLOQ (M3). A simulated cohort writes
both analytes and reads back unchanged.
"""

import copy
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from carkin._resources import resolve_shipped
from carkin._toml import read_toml
from carkin.data import load_dataset, write_ck, write_covariates
from carkin.population import log_likelihood, prepare, spec_from_dict
from carkin.simulate import simulate_cohort

from ..models._references import cart_tumour

MARKER_LLOQ = 0.05  # g/dL, a sensitive M-protein assay (immunofixation-level)


def tumour_marker_spec(marker_residual="proportional"):
    """models/cart_tumor.toml with two analytes: transgene (DVID 1, the toml's [residual] and [blq]) and M-protein
    (DVID 2, g/dL) = scale x tumour burden (% plasma cells), scale ~0.1 g/dL per % (prior SD 1 on its log).

    The ODE tolerances are tightened so that the likelihood agrees with the reference's to ~3e-10 (measured; the
    shipped 1e-6 is the fit's accuracy, not a test's)."""
    raw = copy.deepcopy(read_toml(resolve_shipped("cart_tumor", "models"), what="model spec", example=""))
    residual, blq = raw.pop("residual"), raw.pop("blq")
    raw["analytes"] = {
        "transgene": {"dvid": 1, "unit": "copies/ug", "residual": residual, "blq": blq},
        "mprotein": {"dvid": 2, "unit": "g/dL", "output": "tumour", "scale": {"typical": 0.1, "prior_sd": 1.0},
                     "residual": {"model": marker_residual, "sigma_scale": 0.5}, "blq": {"method": "m3"}},
    }
    raw["ode"] = {**raw["ode"], "rtol": 1e-11, "atol": 1e-12, "max_steps": 100_000}
    raw["simulation"]["analytes"] = {"mprotein": {"times": [0, 7, 14, 21, 28, 56], "lloq": MARKER_LLOQ,
                                                  "sigma": 0.15, "scale": 0.12}}
    return spec_from_dict(raw, source="cart_tumor_mprotein.toml")


# Three patients (% plasma cells 30, 60, 8): transgene on a few days, M-protein from baseline until it falls
# below the LLOQ (patient 1, day 21: predicted ~0.03 g/dL, so the M3 term is not trivially 0).
CK = """ID,TIME,DV,EVID,AMT,MDV,DVID,BLQ,LLOQ,TUMOR_BURDEN
1,0,.,1,450,1,.,0,.,30
1,2,80,0,.,0,1,0,10,30
1,7,2.4,0,.,0,2,0,0.05,30
1,11,25000,0,.,0,1,0,10,30
1,14,0.4,0,.,0,2,0,0.05,30
1,21,0.05,0,.,0,2,1,0.05,30
1,28,3100,0,.,0,1,0,10,30
1,90,240,0,.,0,1,0,10,30
2,0,.,1,300,1,.,0,.,60
2,0,7.5,0,.,0,2,0,0.05,60
2,7,2600,0,.,0,1,0,10,60
2,7,6.9,0,.,0,2,0,0.05,60
2,14,19000,0,.,0,1,0,10,60
2,14,2.2,0,.,0,2,0,0.05,60
2,56,900,0,.,0,1,0,10,60
3,0,.,1,150,1,.,0,.,8
3,2,210,0,.,0,1,0,10,8
3,7,0.35,0,.,0,2,0,0.05,8
3,11,9000,0,.,0,1,0,10,8
3,180,110,0,.,0,1,0,10,8
"""

# Individual parameters (natural scale), around the toml's typical values.
PATIENTS = [dict(e0=6.0, kexp=1.6, ec50=0.003, beta=0.0032, delta=0.157, fb=0.0079),
            dict(e0=3.0, kexp=1.3, ec50=0.005, beta=0.005, delta=0.2, fb=0.02),
            dict(e0=10.0, kexp=1.8, ec50=0.002, beta=0.003, delta=0.12, fb=0.01)]
TUMOUR = [30.0, 60.0, 8.0]
SIGMA = {"transgene": 0.4, "mprotein": 0.15}  # log SD; marker: proportional coefficient or log SD
SCALE = 0.12  # g/dL per % plasma cells


@pytest.fixture(scope="module")
def dataset_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("marker") / "ck.csv"
    path.write_text(CK)
    return path


def _records():
    """The CK file's observation records: (patient index, time, DV, DVID, BLQ, LLOQ)."""
    lines = [line.split(",") for line in CK.strip().splitlines()[1:]]
    ids = sorted({int(r[0]) for r in lines})
    return [(ids.index(int(r[0])), float(r[1]), float(r[2]), int(r[6]), r[7] == "1", float(r[8]))
            for r in lines if r[3] == "0"]


@pytest.mark.parametrize("marker_residual", ["proportional", "additive_log"])
def test_the_likelihood_of_transgene_and_marker_is_the_hand_computation_on_a_reference_solve(
        dataset_path, marker_residual):
    spec = tumour_marker_spec(marker_residual)
    assert [(a.name, a.code, a.output, a.residual) for a in spec.analytes] == [
        ("transgene", 1, "transgene", "additive_log"), ("mprotein", 2, "tumour", marker_residual)]
    dataset = load_dataset(dataset_path, spec=spec, verbose=False)
    data = prepare(dataset, spec)
    np.testing.assert_array_equal(np.asarray(data.inputs["tumor0"]), TUMOUR)
    phi = jnp.asarray([[math.log(p[n]) if spec.parameters[k].transform == "log" else math.log(p[n] / (1 - p[n]))
                        for k, n in enumerate(spec.parameter_names)] for p in PATIENTS])
    sigma = jnp.asarray([SIGMA["transgene"], SIGMA["mprotein"]])
    sigma_add = jnp.asarray([99.0, 99.0])  # used by neither error model: must be ignored
    got = float(log_likelihood(spec, data, phi, sigma, sigma_add, log_scale=jnp.asarray([0.0, math.log(SCALE)])))

    records = _records()
    model = spec.kinetic_model
    constants = {n: getattr(model, n) for n in model.constants}
    predicted = {}
    for i, p in enumerate(PATIENTS):
        ts = np.unique([t for j, t, *_ in records if j == i])
        log_c, log_t = cart_tumour({**p, "tumor0": TUMOUR[i]}, constants, ts)
        predicted.update({(i, t, 1): c for t, c in zip(ts, log_c, strict=True)})
        predicted.update({(i, t, 2): math.log(SCALE) + lt for t, lt in zip(ts, log_t, strict=True)})
    expected = 0.0
    for i, t, dv, dvid, blq, lloq in records:
        mu = predicted[(i, t, dvid)]
        if dvid == 1 or marker_residual == "additive_log":  # normal on log DV
            sd, y, mean = SIGMA["transgene" if dvid == 1 else "mprotein"], math.log(dv), mu
            y = math.log(lloq) if blq else y
        else:  # proportional: normal on DV with SD sigma x prediction
            mean = math.exp(mu)
            sd, y = SIGMA["mprotein"] * mean, (lloq if blq else dv)
        expected += stats.norm.logcdf(y, mean, sd) if blq else stats.norm.logpdf(y, mean, sd)
    assert sum(blq for *_, blq, _ in records) == 1
    assert got == pytest.approx(expected, rel=1e-8)


def test_a_simulated_cohort_writes_both_analytes_and_reads_them_back(tmp_path):
    spec = tumour_marker_spec()
    cohort = simulate_cohort(spec, key=jax.random.PRNGKey(0), n=4)
    ds = cohort.dataset
    codes = np.asarray(ds.analyte)
    times = np.asarray(ds.times)
    # Transgene on the toml's 12 days, M-protein on [simulation.analytes.mprotein] times.
    assert sorted(times[0][codes[0] == 1].tolist()) == spec.simulation["times"]
    assert sorted(times[0][codes[0] == 2].tolist()) == [0, 7, 14, 21, 28, 56]
    dv, blq = np.asarray(ds.dv), np.asarray(ds.blq)
    marker = codes == 2
    # Baseline M-protein: the scale times the patient's tumour burden (the true scale 0.12, within noise);
    # its collapse after the CAR-T expansion drives it below the LLOQ.
    baseline = marker & (times == 0)
    ratio = dv[baseline] / cohort.covariates["TUMOR_BURDEN"]
    assert np.all((ratio > 0.12 * 0.4) & (ratio < 0.12 * 2.5))
    assert blq[marker & (times >= 56)].all() and np.all(dv[marker & blq] == MARKER_LLOQ)

    ck, covariates = tmp_path / "ck.csv", tmp_path / "cov.csv"
    write_ck(ck, ds)
    write_covariates(covariates, ds.patient_ids, {c: cohort.covariates[c] for c in ("TUMOR_BURDEN",)})
    back = load_dataset(ck, covariates_path=covariates, spec=spec, verbose=False)
    # records in the simulated order (time, then analyte), as written; DV exactly (write_ck writes it exactly)
    for got, want in ((back.analyte, codes), (back.times, times), (back.dv, dv), (back.blq, blq)):
        np.testing.assert_array_equal(np.asarray(got), want)
    np.testing.assert_array_equal(np.asarray(prepare(back, spec).inputs["tumor0"]), cohort.covariates["TUMOR_BURDEN"])
