"""Virtual KarMMa-3 safety (CRS, neurotoxicity, tocilizumab, corticosteroids): rates over seeds, structure, streams."""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd
import pytest

from carkin._karmma3 import EVENT_TIME_COLUMNS, PUBLISHED
from carkin.cohorts import karmma3_sim_paths, load_karmma3_config, simulate_karmma3
from carkin.cohorts._cohort import SAFETY_COLUMNS
from carkin.data import DataRequirements, load_dataset

from .helpers import read_csv

N_SEEDS = 20  # fast: ~4,500 infused patients pooled
RATES = {  # figure -> (column, statistic), rates among the infused
    "crs_any": ("CRS_GRADE", 1),
    "crs_grade3": ("CRS_GRADE", 3),
    "nt_any": ("NT_GRADE", 1),
    "nt_grade3": ("NT_GRADE", 3),
    "tocilizumab": ("TOCI_DAY", None),
    "corticosteroids": ("STEROID_DAY", None),
}


@pytest.fixture(scope="module")
def pooled(config) -> pd.DataFrame:
    """The infused patients of seeds 2000.. 2000 + N_SEEDS - 1, with their true CRS predictor and Cmax."""
    frames = []
    for seed in range(2000, 2000 + N_SEEDS):
        c = simulate_karmma3(jax.random.key(seed), config)
        p = c.patients.merge(c.truth[["ID", "CMAX", "CRS_ETA"]], on="ID")
        frames.append(p[p["INFUSED"] == 1].assign(SEED=seed))
    return pd.concat(frames, ignore_index=True)


def _rate(infused: pd.DataFrame, column: str, grade: int | None) -> float:
    values = infused[column]
    return float(values.notna().mean() if grade is None else (values >= grade).mean())


class TestRatesOverSeeds:
    @pytest.mark.parametrize("figure", list(RATES))
    def test_the_pooled_rate_matches_the_published_one_within_monte_carlo_error(self, pooled, figure):
        column, grade = RATES[figure]
        published = PUBLISHED[figure].value
        n = len(pooled)
        se = np.sqrt(published * (1 - published) / n)
        # 4 binomial SEs plus 0.01: calibration on expected values, and the cut-off hides a few early events.
        assert abs(_rate(pooled, column, grade) - published) <= 4 * se + 0.01, (figure, _rate(pooled, column, grade))

    def test_median_onsets_and_durations_are_the_published_ones(self, pooled):
        assert pooled["CRS_ONSET_DAY"].median() == PUBLISHED["crs_onset_median"].value
        assert pooled["NT_ONSET_DAY"].median() == PUBLISHED["nt_onset_median"].value
        assert pooled["CRS_DURATION_DAYS"].median() == PUBLISHED["crs_duration_median"].value
        assert pooled["NT_DURATION_DAYS"].median() == PUBLISHED["nt_duration_median"].value
        # Most CRS starts within days (published range 1-27 days, pooled).
        assert pooled["CRS_ONSET_DAY"].quantile(0.95) <= 7

    def test_higher_exposure_gives_more_severe_crs(self, pooled):
        log_cmax = np.log(pooled["CMAX"])
        assert log_cmax[pooled["CRS_GRADE"] >= 2].mean() > log_cmax[pooled["CRS_GRADE"] <= 1].mean() + 0.3
        # The true predictor is the one of the config: log OR per doubling of Cmax, plus burden.
        cfg = load_karmma3_config()
        x_burden = (pooled["TUMOR_BURDEN"] - cfg.tumor_burden.reference_percent) / cfg.tumor_burden.per_percent
        expected = (
            cfg.crs.log_or_per_doubling_cmax * np.log2(pooled["CMAX"] / cfg.ck.cmax_typical)
            + cfg.crs.log_or_burden * x_burden
        )
        np.testing.assert_allclose(pooled["CRS_ETA"], expected, rtol=1e-9, atol=1e-12)

    def test_corticosteroids_are_given_more_often_at_higher_grade(self, pooled):
        share = pooled.groupby("CRS_GRADE")["STEROID_DAY"].apply(lambda s: s.notna().mean())
        assert share[1] < share[2] < share[3]


class TestStructure:
    def test_the_safety_columns_are_consistent(self, pooled):
        p = pooled
        assert ((p["CRS"] == 1) == (p["CRS_GRADE"] >= 1)).all() and ((p["NT"] == 1) == (p["NT_GRADE"] >= 1)).all()
        assert p["CRS_GRADE"].between(0, 4).all() and p["NT_GRADE"].between(0, 4).all()
        assert (p["CRS_ONSET_DAY"].notna() == (p["CRS"] == 1)).all()
        assert (p["NT_ONSET_DAY"].notna() == (p["NT"] == 1)).all()
        assert (p.loc[p["CRS"] == 0, "CRS_DURATION_DAYS"].isna()).all()
        assert (p["CRS_ONSET_DAY"].dropna() >= 1).all() and (p["CRS_DURATION_DAYS"].dropna() >= 1).all()
        # Tocilizumab only for CRS, on or after its onset; corticosteroids only with CRS or neurotoxicity.
        toci = p["TOCI_DAY"].notna()
        assert (p.loc[toci, "CRS"] == 1).all() and (p.loc[toci, "TOCI_DAY"] >= p.loc[toci, "CRS_ONSET_DAY"]).all()
        steroid = p["STEROID_DAY"].notna()
        assert ((p.loc[steroid, "CRS"] == 1) | (p.loc[steroid, "NT"] == 1)).all()
        # Nothing recorded after the data cut-off.
        cfg = load_karmma3_config()
        dpm = cfg.trial.days_per_month
        window = np.floor(cfg.trial.cutoff_months * dpm - p["ENTRY_MONTHS"] * dpm - p["INFUSION_DAY"])
        for column in ("CRS_ONSET_DAY", "TOCI_DAY", "STEROID_DAY", "NT_ONSET_DAY"):
            assert (p[column].dropna() <= window[p[column].notna()]).all(), column
        ended = p["CRS_DURATION_DAYS"].notna()
        assert (p.loc[ended, "CRS_ONSET_DAY"] + p.loc[ended, "CRS_DURATION_DAYS"] <= window[ended]).all()

    def test_the_never_infused_and_the_standard_arm_have_no_safety_values(self, config):
        p = simulate_karmma3(jax.random.key(2000), config).patients
        assert p.loc[p["INFUSED"] == 0, list(SAFETY_COLUMNS)].isna().all().all()

    def test_the_shipped_patient_table_has_the_safety_columns(self):
        p = read_csv(karmma3_sim_paths()["patients"])
        assert list(p.columns[-len(SAFETY_COLUMNS) - 1:]) == [*SAFETY_COLUMNS, "SIMULATED"]
        infused = p[p["INFUSED"] == 1]
        assert infused[["CRS", "CRS_GRADE", "NT", "NT_GRADE"]].notna().all().all()


class TestStreams:
    @pytest.mark.slow  # ~40 s: a second config recompiles the generator
    def test_the_safety_and_marker_assumptions_leave_every_other_column_and_record_unchanged(self, config):
        """The safety and marker draws use their own streams: changing them changes nothing else (in particular,
        tocilizumab and corticosteroids have no effect on the kinetics)."""
        base = simulate_karmma3(jax.random.key(3), config)
        other_cfg = (
            config.replace("crs", thresholds=(-3.0, 0.0, 2.0, 4.0))
            .replace("tocilizumab", p_by_crs_grade=(1.0, 1.0, 1.0, 1.0))
            .replace("corticosteroids", p_by_crs_grade=(0.5, 0.9, 1.0, 1.0))
            .replace("marker", decline_half_life_days=10.0)
        )
        other = simulate_karmma3(jax.random.key(3), other_cfg)
        trial_columns = [c for c in base.patients.columns if c not in SAFETY_COLUMNS]
        pd.testing.assert_frame_equal(base.patients[trial_columns], other.patients[trial_columns])
        pd.testing.assert_frame_equal(base.ck, other.ck)
        assert not base.patients["TOCI_DAY"].equals(other.patients["TOCI_DAY"])
        assert not base.markers["DV"].equals(other.markers["DV"])


class TestLoading:
    def test_the_loader_reads_the_tocilizumab_start_as_an_event_time(self):
        paths = karmma3_sim_paths()
        ds = load_dataset(paths["ck"], paths["patients"], requirements=DataRequirements(event_times=("TOCI_DAY",)),
                          allow_extra_ids=True, verbose=False)
        toci = np.asarray(ds.covariate("TOCI_DAY"))
        table = read_csv(paths["patients"]).set_index("ID").loc[list(ds.patient_ids), "TOCI_DAY"]
        never = table.isna().to_numpy()
        assert np.isinf(toci[never]).all() and never.any()
        np.testing.assert_array_equal(toci[~never], table.to_numpy()[~never])

    def test_every_event_time_column_loads(self):
        paths = karmma3_sim_paths()
        ds = load_dataset(paths["ck"], paths["patients"], requirements=DataRequirements(event_times=EVENT_TIME_COLUMNS),
                          allow_extra_ids=True, verbose=False)
        assert ds.covariate_names == EVENT_TIME_COLUMNS
