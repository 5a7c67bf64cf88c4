"""Developer tool: how the "calibrated to <target>" numbers of ``models/karmma3_cohort.toml`` were found.

Not part of the API and not used by the generator. It simulates one large population (the trial
``scale`` times over, same accrual and cut-off, one fixed key: common random numbers) and tunes blocks of
assumptions, each against the published figure(s) it is named after in the TOML comments:

1. closed form: tumour-burden Beta shape (share >= 50%), dose Beta shape (median dose);
2. standard-arm baseline hazard pieces up to 12 months, one at a time (KM median, PFS at 6 and 12 months);
3. ide-cel post-infusion baseline hazard pieces and the standard-arm piece beyond 12 months, jointly
   (ide-cel ITT PFS at 6 / 12 months and median, Cox HR, events at the cut-off);
4. response thresholds, one at a time by bisection (ITT category shares, incl. ORR and CR-or-better);
5. the latent-factor loadings on log Cmax and log delta (responder / non-responder Cmax and AUC0-28
   ratios), the residual log-Cmax variance following so that the total stays fixed;
6. the assay LLOQ and the persistence rate (persistence at 6 / 12 months);
7. the accrual shape (median follow-up);
8. the safety model (`calibrate_safety`): CRS and neurotoxicity cut points, tocilizumab and corticosteroid
   probabilities (rates among the infused). It depends on steps 1-7 only through Cmax and burden, and
   nothing else depends on it; ``python -c "from carkin.cohorts._calibrate import safety_only; safety_only()"``
   reruns it alone on the shipped config.

Steps 2-5 interact (response depends on early events, hazards on the exposure model), so they are
repeated. Run ``python -m carkin.cohorts._calibrate`` and copy the printed values into the TOML; then
check a few hundred trial-size seeds (tests/cohorts/test_karmma3.py, slow) before shipping.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np
import pandas as pd
from scipy import optimize, stats

from .._karmma3 import PUBLISHED
from ._cohort import _tables, simulate_all
from ._config import RESPONSE_CATEGORIES, KarMMa3Config, load_karmma3_config
from ._summary import summarize_karmma3

#: ITT shares of best response used as calibration targets. ORR (sum of sCR..PR) and CR-or-better
#: (sCR + CR) are published ([RodriguezOtero2023], docs/references.md); the split inside them is an assumption.
RESPONSE_TARGETS = {
    "ide_cel": {"sCR": 0.30, "CR": 0.09, "VGPR": 0.21, "PR": 0.11, "MR": 0.03, "SD": 0.06},
    "standard": {"sCR": 0.01, "CR": 0.04, "VGPR": 0.14, "PR": 0.23, "MR": 0.09, "SD": 0.28},
}
#: Cumulative grade shares P(grade >= 1..4) of the infused. Any grade and grade >= 3 are published
#: ([RodriguezOtero2023]: CRS 88% / 5%, neurotoxicity 15% / 3%); grade >= 2 and grade 4 are assumed (CRS:
#: KarMMa's grade 1 : grade 2 split of 46 : 30 [AbecmaHCP] applied to the 83% with grade 1-2).
SAFETY_TARGETS = {
    "crs": (PUBLISHED["crs_any"].value, 0.378, PUBLISHED["crs_grade3"].value, 0.01),
    "nt": (PUBLISHED["nt_any"].value, 0.07, PUBLISHED["nt_grade3"].value, 0.005),
}
TOTAL_LOG_CMAX_VARIANCE = 1.7  # assumed: ~3 logs of spread in expansion ([Kirouac2023], [Stein2019])


def _run(cfg: KarMMa3Config, key) -> dict:
    arrays = simulate_all(key, cfg, jit=False)
    patients, ck, markers, truth = _tables(arrays, cfg)
    return {"arrays": arrays, "patients": patients, "ck": ck, "markers": markers, "truth": truth}


def _km_at(time: np.ndarray, event: np.ndarray, points) -> np.ndarray:
    """Kaplan-Meier survival at ``points`` (`carkin.survival.kaplan_meier`; NaN beyond the last time)."""
    from ..survival import kaplan_meier

    table = pd.DataFrame({"T": np.asarray(time, dtype=float), "E": np.asarray(event, dtype=int)})
    return kaplan_meier(table, time="T", event="E")["all"].survival_at(points)[0]


def _scaled(cfg: KarMMa3Config, scale: int) -> KarMMa3Config:
    t = cfg.trial
    return cfg.replace(
        "trial", n_ide_cel=t.n_ide_cel * scale, n_standard=t.n_standard * scale, n_not_infused=t.n_not_infused * scale
    )


def calibrate_closed_form(cfg: KarMMa3Config) -> KarMMa3Config:
    """Step 1: burden share >= 50% = 0.27 and median dose = 445, from the Beta distributions."""
    tb = cfg.tumor_burden
    share = (
        PUBLISHED["high_burden_ide_cel"].value + PUBLISHED["high_burden_standard"].value
    ) / 2  # 28% / 26% ([TCT2024])
    frac = tb.high_threshold_percent / 100.0
    b = optimize.brentq(lambda b: stats.beta.sf(frac, tb.beta_a, b) - share, 0.1, 50.0)
    inf = cfg.infusion
    target = (inf.dose_max - inf.dose_reference) / (inf.dose_max - inf.dose_min)
    p = inf.dose_low_tail_prob
    # P(dose <= reference) = 0.5, the low tail (uniform on [dose_min, reference]) lying wholly below.
    db = optimize.brentq(lambda b: p + (1 - p) * stats.beta.sf(target, inf.dose_beta_a, b) - 0.5, 0.1, 100.0)
    return cfg.replace("tumor_burden", beta_b=round(b, 3)).replace("infusion", dose_beta_b=round(db, 3))


def calibrate_standard(cfg: KarMMa3Config, key, scale: int) -> KarMMa3Config:
    """Step 2: pieces [0, 4.4), [4.4, 6), [6, 12) solved in turn for S(4.4)=0.5, S(6)=0.40, S(12)=0.30
    (the last piece, beyond 12 months, is tuned in step 3 against the event count)."""
    targets = [(PUBLISHED["median_pfs_standard"].value, 0.50), (6.0, PUBLISHED["pfs6_standard"].value),
               (12.0, PUBLISHED["pfs12_standard"].value)]
    h = list(cfg.pfs_standard.hazard_per_month)
    for piece, (time, surv) in enumerate(targets):

        def gap(log_h, piece=piece, time=time, surv=surv):
            trial = list(h)
            trial[piece] = math.exp(log_h)
            c = cfg.replace("pfs_standard", hazard_per_month=tuple(trial))
            p = _run(c, key)["patients"]
            std = p[p["ARM"] == "standard"]
            return _km_at(std["PFS_MONTHS"], std["PFS_EVENT"], [time])[0] - surv

        h[piece] = math.exp(optimize.brentq(gap, math.log(0.005), math.log(2.0), xtol=1e-3))
    return cfg.replace("pfs_standard", hazard_per_month=tuple(round(v, 4) for v in h))


def calibrate_ide_cel(cfg: KarMMa3Config, key, scale: int) -> KarMMa3Config:
    """Step 3: ide-cel post-infusion pieces and the standard arm's piece beyond 12 months, jointly, for
    ITT S(6)=0.73, S(12)=0.55, S(13.3)=0.5 (ide-cel), the stratified Cox HR 0.49 and 242 events at the
    cut-off (the standard-arm tail is informed mainly by the event count)."""
    n = len(cfg.pfs_ide_cel_infused.hazard_per_month)
    std = list(cfg.pfs_standard.hazard_per_month)

    def configure(log_h):
        c = cfg.replace("pfs_ide_cel_infused", hazard_per_month=tuple(float(v) for v in np.exp(log_h[:n])))
        return c.replace("pfs_standard", hazard_per_month=(*std[:-1], float(np.exp(log_h[n]))))

    def residuals(log_h):
        r = _run(configure(log_h), key)
        s = summarize_karmma3(r["patients"], r["ck"])
        p = r["patients"]
        ide = p[p["ARM"] == "ide-cel"]
        s6, s12, s_median = _km_at(
            ide["PFS_MONTHS"], ide["PFS_EVENT"], [6.0, 12.0, PUBLISHED["median_pfs_ide_cel"].value]
        )
        res = [
            s6 - PUBLISHED["pfs6_ide_cel"].value,
            s12 - PUBLISHED["pfs12_ide_cel"].value,
            s_median - 0.50,
            0.5 * (math.log(s["hazard_ratio"]) - math.log(PUBLISHED["hazard_ratio"].value)),
            (s["events"] / scale - PUBLISHED["events"].value) / 100.0,
        ]
        # Smoothness: neighbouring log hazards of the ide-cel pieces should not jump much (weak penalty).
        res += list(0.02 * np.diff(log_h[:n]))
        return np.asarray(res)

    x0 = np.log(np.asarray([*cfg.pfs_ide_cel_infused.hazard_per_month, std[-1]]))
    sol = optimize.least_squares(residuals, x0, diff_step=0.05, xtol=1e-3, ftol=1e-4, max_nfev=60)
    h = [round(float(v), 4) for v in np.exp(sol.x)]
    cfg = cfg.replace("pfs_ide_cel_infused", hazard_per_month=tuple(h[:n]))
    return cfg.replace("pfs_standard", hazard_per_month=(*std[:-1], h[n]))


def calibrate_thresholds(cfg: KarMMa3Config, key) -> KarMMa3Config:
    """Step 4: each cut point by bisection so that the cumulative ITT share of categories matches."""
    rs = cfg.response
    out = {}
    for arm, name in (("ide_cel", "thresholds_ide_cel"), ("standard", "thresholds_standard")):
        thr = list(getattr(rs, name))
        shares = RESPONSE_TARGETS[arm]
        cum = np.cumsum([shares[c] for c in RESPONSE_CATEGORIES[:-1]])
        label = "ide-cel" if arm == "ide_cel" else "standard"
        for k in range(len(thr)):

            def gap(value, k=k, thr=thr, cfg=cfg, name=name, label=label, cum=cum):
                trial = list(thr)
                trial[k] = value
                # keep the list decreasing while searching
                for j in range(k + 1, len(trial)):
                    trial[j] = min(trial[j], trial[j - 1] - 1e-6)
                c = cfg.replace("response", **{name: tuple(trial)})
                p = _run(c, key)["patients"]
                sub = p[p["ARM"] == label]
                return sub["BEST_RESPONSE"].isin(RESPONSE_CATEGORIES[: k + 1]).mean() - cum[k]

            lo = (thr[k - 1] if k > 0 else 0.0) - 8.0
            hi = thr[k - 1] - 1e-6 if k > 0 else 8.0
            thr[k] = optimize.brentq(gap, lo, hi, xtol=1e-3)
            for j in range(k + 1, len(thr)):
                thr[j] = min(thr[j], thr[j - 1] - 1e-6)
        out[name] = tuple(round(v, 3) for v in thr)
        cfg = cfg.replace("response", **{name: out[name]})
    return cfg


def calibrate_latent(cfg: KarMMa3Config, key) -> KarMMa3Config:
    """Step 5: latent loadings on log Cmax and log delta for Cmax ratio 4.5 and AUC0-28 ratio 5.5."""
    ck = cfg.ck
    other = TOTAL_LOG_CMAX_VARIANCE - ck.latent_log_cmax**2 - ck.omega2_cmax  # burden + dose parts

    def residuals(x):
        lc, ld = x
        omega2 = max(TOTAL_LOG_CMAX_VARIANCE - other - lc**2, 0.05)
        c = cfg.replace("ck", latent_log_cmax=float(lc), latent_log_delta=float(ld), omega2_cmax=omega2)
        r = _run(c, key)
        s = summarize_karmma3(r["patients"], r["ck"], r["truth"], lloq=c.ck.lloq)
        return np.array(
            [math.log(s[name] / PUBLISHED[name].value) for name in ("cmax_ratio_model", "auc28_ratio_model")]
        )

    sol = optimize.least_squares(
        residuals, np.array([ck.latent_log_cmax, ck.latent_log_delta]), diff_step=0.05, xtol=1e-3, max_nfev=40
    )
    lc, ld = (round(float(v), 3) for v in sol.x)
    omega2 = round(max(TOTAL_LOG_CMAX_VARIANCE - other - lc**2, 0.05), 3)
    return cfg.replace("ck", latent_log_cmax=lc, latent_log_delta=ld, omega2_cmax=omega2)


def calibrate_persistence(cfg: KarMMa3Config, key) -> KarMMa3Config:
    """Step 6: LLOQ and typical beta for persistence 59% / 36% at 6 / 12 months."""

    def residuals(x):
        c = cfg.replace("ck", lloq=float(math.exp(x[0])), beta_typical=float(math.exp(x[1])))
        r = _run(c, key)
        s = summarize_karmma3(r["patients"], r["ck"], r["truth"], lloq=c.ck.lloq)
        return np.array([s[name] - PUBLISHED[name].value for name in ("persistence_6m", "persistence_12m")])

    x0 = np.log([cfg.ck.lloq, cfg.ck.beta_typical])
    sol = optimize.least_squares(residuals, x0, diff_step=0.05, xtol=1e-3, max_nfev=40)
    return cfg.replace("ck", lloq=float(round(math.exp(sol.x[0]), 0)), beta_typical=round(float(math.exp(sol.x[1])), 5))


def calibrate_accrual(cfg: KarMMa3Config, key) -> KarMMa3Config:
    """Step 7: accrual shape for a median follow-up (reverse KM) of 18.6 months."""

    def gap(shape):
        c = cfg.replace("trial", accrual_shape=float(shape))
        p = _run(c, key)["patients"]
        from ..survival import median_followup

        return median_followup(p, time="PFS_MONTHS", event="PFS_EVENT").median - PUBLISHED["median_follow_up"].value

    return cfg.replace("trial", accrual_shape=round(optimize.brentq(gap, 0.5, 1.5, xtol=1e-3), 3))


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _grade_probabilities(eta: np.ndarray, thresholds) -> np.ndarray:
    """P(grade = g), g = 0..4, of the proportional-odds model, shape (patients, 5)."""
    at_least = np.concatenate([np.ones((eta.size, 1)), _sigmoid(eta[:, None] - np.asarray(thresholds)[None, :]),
                               np.zeros((eta.size, 1))], axis=1)
    return at_least[:, :-1] - at_least[:, 1:]


def calibrate_safety(cfg: KarMMa3Config, key) -> KarMMa3Config:
    """Step 8: the CRS and neurotoxicity cut points, then the grade-1 tocilizumab and grade-2 corticosteroid
    probabilities, as expected values over the infused of one large population (no further Monte Carlo):
    P(CRS grade >= k) = 88%, 37.8%, 5%, 1%; P(NT grade >= k) = 15%, 7%, 3%, 0.5% (the published any-grade
    and grade >= 3 rates [RodriguezOtero2023], the rest assumed, `SAFETY_TARGETS`); tocilizumab 72% and
    corticosteroids 28% of the infused. The cut-off hides the events of the few patients infused in its last
    days (about 1% of the infused), which the expected values ignore."""
    a = _run(cfg, key)["arrays"]
    infused = a["infused"].astype(bool)
    log2_cmax = np.log2(a["cmax"][infused] / cfg.ck.cmax_typical)
    x_burden = (a["burden_percent"][infused] - cfg.tumor_burden.reference_percent) / cfg.tumor_burden.per_percent
    crs, nt = cfg.crs, cfg.neurotoxicity
    eta = crs.log_or_per_doubling_cmax * log2_cmax + crs.log_or_burden * x_burden

    def cut_points(eta_of_grade, weights, targets):
        """Each cut point so that the mean P(grade >= k) (weighted over the CRS grades) matches."""
        out = []
        for target in targets:
            def gap(theta, target=target):
                return float(np.mean(np.sum(weights * _sigmoid(eta_of_grade - theta), axis=1))) - target
            out.append(round(optimize.brentq(gap, -20.0, 20.0, xtol=1e-6), 3))
        return tuple(out)

    crs_thresholds = cut_points(eta[:, None], np.ones((eta.size, 1)), SAFETY_TARGETS["crs"])
    p_crs = _grade_probabilities(eta, crs_thresholds)  # (patients, 5)
    grades = np.arange(5)[None, :]
    eta_nt = nt.log_or_per_doubling_cmax * log2_cmax[:, None] + nt.log_or_per_crs_grade * grades
    nt_thresholds = cut_points(eta_nt, p_crs, SAFETY_TARGETS["nt"])
    p_nt_any = _sigmoid(eta_nt - nt_thresholds[0])  # (patients, 5): P(NT | CRS grade)

    share = p_crs.mean(axis=0)  # P(CRS grade = g), g = 0..4
    toci = list(cfg.tocilizumab.p_by_crs_grade)
    toci[0] = (PUBLISHED["tocilizumab"].value - float(np.dot(share[2:], toci[1:]))) / share[1]
    cs = cfg.corticosteroids

    def steroid_gap(p2):
        p = np.asarray([0.0, cs.p_by_crs_grade[0], p2, *cs.p_by_crs_grade[2:]])[None, :]
        given = 1.0 - (1.0 - p) * (1.0 - p_nt_any * cs.p_neurotoxicity)
        return float(np.mean(np.sum(p_crs * given, axis=1))) - PUBLISHED["corticosteroids"].value

    p2 = optimize.brentq(steroid_gap, 0.0, 1.0, xtol=1e-6)
    cfg = cfg.replace("crs", thresholds=crs_thresholds).replace("neurotoxicity", thresholds=nt_thresholds)
    cfg = cfg.replace("tocilizumab", p_by_crs_grade=(round(float(toci[0]), 3), *toci[1:]))
    return cfg.replace("corticosteroids", p_by_crs_grade=(cs.p_by_crs_grade[0], round(p2, 3), *cs.p_by_crs_grade[2:]))


def report(cfg: KarMMa3Config, key, scale: int) -> dict[str, float]:
    r = _run(cfg, key)
    s = summarize_karmma3(r["patients"], r["ck"], r["truth"], lloq=cfg.ck.lloq)
    s["events_per_trial"] = s["events"] / scale
    return s


def main(scale: int = 40, rounds: int = 2, seed: int = 12345) -> KarMMa3Config:
    """Run all steps on a population ``scale`` times the trial; print the tuned sections."""
    key = jax.random.key(seed)
    cfg = _scaled(load_karmma3_config(), scale)
    cfg = calibrate_closed_form(cfg)
    for r in range(rounds):
        cfg = calibrate_accrual(cfg, key)
        cfg = calibrate_standard(cfg, key, scale)
        cfg = calibrate_ide_cel(cfg, key, scale)
        cfg = calibrate_thresholds(cfg, key)
        cfg = calibrate_latent(cfg, key)
        cfg = calibrate_persistence(cfg, key)
        s = report(cfg, key, scale)
        print(f"--- round {r + 1}")
        for k in (
            "median_pfs_ide_cel",
            "median_pfs_standard",
            "hazard_ratio",
            "pfs6_ide_cel",
            "pfs12_ide_cel",
            "pfs6_standard",
            "pfs12_standard",
            "orr_ide_cel",
            "orr_standard",
            "cr_ide_cel",
            "cr_standard",
            "events_per_trial",
            "median_follow_up",
            "cmax_ratio_model",
            "auc28_ratio_model",
            "persistence_6m",
            "persistence_12m",
            "blq_fraction",
            "tmax_median_model",
        ):
            print(f"  {k:24s} {s[k]:.4g}")
    cfg = calibrate_safety(cfg, key)
    for section in ("trial", "tumor_burden", "infusion", "ck", "pfs_standard", "pfs_ide_cel_infused", "response",
                    "crs", "neurotoxicity", "tocilizumab", "corticosteroids"):
        print(section, dataclasses.asdict(getattr(cfg, section)))
    return cfg


def safety_only(scale: int = 40, seed: int = 12345) -> KarMMa3Config:
    """Step 8 alone on the shipped config (the trial's assumptions unchanged); print the tuned sections."""
    cfg = calibrate_safety(_scaled(load_karmma3_config(), scale), jax.random.key(seed))
    for section in ("crs", "neurotoxicity", "tocilizumab", "corticosteroids"):
        print(section, dataclasses.asdict(getattr(cfg, section)))
    return cfg


if __name__ == "__main__":
    main()
