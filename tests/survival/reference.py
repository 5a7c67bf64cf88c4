"""A small tied dataset and reference numbers from R, for tests that compare against other software.

The data were drawn once with numpy (seed 7; integer times, so that many event times are tied) and
analysed with R 4.2 and survival 3.5.3 (Debian packages r-base-core, r-cran-survival). The R calls are
written next to each number; R is not needed to run the tests.
"""

import pandas as pd

TIME = [4, 3, 1, 6, 3, 3, 1, 6, 10, 10, 3, 3, 6, 6, 3, 3, 5, 3, 1, 3, 4, 6, 1, 9, 2, 11, 4, 6, 4, 1]
EVENT = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1]
X1 = [1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 1]
X2 = [
    0.7,
    -1.3,
    -0.5,
    -1.9,
    -1.3,
    -1.8,
    -0.2,
    -1.3,
    0.3,
    0.2,
    -0.2,
    -2.5,
    -0.5,
    -0.0,
    0.1,
    -1.5,
    -0.5,
    -1.0,
    -0.8,
    1.1,
    -0.8,
    -0.0,
    0.9,
    -0.6,
    -0.1,
    0.1,
    0.1,
    -1.2,
    0.1,
    1.4,
]
S = [0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 1, 1, 0, 1, 0, 1]


def tied_data() -> pd.DataFrame:
    return pd.DataFrame({"time": TIME, "event": EVENT, "x1": X1, "x2": X2, "s": S})


# summary(survfit(Surv(time, event) ~ 1, data = d, conf.type = ct), times = c(3, 6, 10))
SURVIVAL_TIMES = (3, 6, 10)
SURVIVAL = (0.5666666667, 0.1648484848, 0.0412121212)
SURVIVAL_BANDS = {
    "log-log": ((0.3732978400, 0.0530795555, 0.0030050599), (0.7208005701, 0.3305808154, 0.1735701197)),
    "log": ((0.4144076964, 0.0684274622, 0.0060930068), (0.7748676337, 0.3971362091, 0.2787521829)),
    "plain": ((0.3893447790, 0.0199050359, 0.0000000000), (0.7439885543, 0.3097919338, 0.1199928304)),
}
# quantile(survfit(...), 0.5): the same for all three conf.type values here
MEDIAN = (4.0, 3.0, 6.0)
# survfit(Surv(time, event) ~ x1): median (0.95LCL, 0.95UCL) per group, log-log
MEDIAN_BY_X1 = {0: (6.0, 3.0, 9.0), 1: (3.0, 1.0, 4.0)}
# summary(survfit(Surv(time, event) ~ 1), rmean = 10)$table[c("rmean", "se(rmean)")]
RMST_10 = (4.683636363636, 0.530148315881)
# summary(survfit(Surv(time, event) ~ x1), rmean = 10)$table
RMST_10_BY_X1 = {0: (5.81333333333, 0.791379480074), 1: (3.41333333333, 0.454064769405)}
# quantile(survfit(Surv(time, 1 - event) ~ 1), 0.5): reverse Kaplan-Meier median follow-up (bounds NA)
MEDIAN_FOLLOWUP = 11.0

# survdiff(Surv(time, event) ~ x1): chisq, observed, expected, var[1, 1]
LOGRANK_CHISQ = 5.2210620076
LOGRANK_OBSERVED = (13, 13)
LOGRANK_EXPECTED = (17.4298484848, 8.5701515152)
LOGRANK_VARIANCE = 3.7585375485
# survdiff(Surv(time, event) ~ x1 + strata(s))$chisq
STRATIFIED_LOGRANK_CHISQ = 4.7272884191

# coxph(Surv(time, event) ~ x1 + x2 [+ strata(s)], ties = ties [, robust = TRUE]): coef, se (and loglik, concordance)
COX = {
    ("breslow", None): {
        "coef": (1.0179942057, 0.2434822974),
        "se": (0.4719669943, 0.2633996073),
        "robust_se": (0.3534702984, 0.1872738308),
        "loglik": -68.0772480467,
        "concordance": 0.6734693878,
    },
    ("breslow", "s"): {
        "coef": (1.1667453428, 0.3634813353),
        "se": (0.5317057090, 0.2927837851),
        "robust_se": (0.4182307517, 0.2342274755),
    },
    ("efron", None): {
        "coef": (1.1854090930, 0.2261890248),
        "se": (0.4831336372, 0.2693428513),
        "robust_se": (0.3887116332, 0.2243648052),
        "loglik": -63.5470613779,
        "concordance": 0.6734693878,
    },
    ("efron", "s"): {
        "coef": (1.3270473739, 0.3550501048),
        "se": (0.5475717643, 0.2973521891),
        "robust_se": (0.4721990440, 0.2584684619),
    },
}
