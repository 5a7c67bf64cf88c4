"""Exposure metrics of CAR-T kinetics: posterior draws per patient, NCA, and quartiles with uncertainty.

- `posterior_exposures(fit, dataset)`: Cmax, Tmax, AUC0-28d, AUC0-90d, AUC over any window, levels at
  months 3/6/12 and time above the LLOQ, as posterior draws (closed form for the multiphasic model, a
  grid method for any other model); ``.summary()`` gives mean, sd and the 90% interval per patient.
- `exposure_metrics(model, individual, metrics)`: the same on arrays (any batch shape).
- `nca(dataset)`: observed Cmax, Tmax and trapezoid AUC0-28d; carkin's one NCA convention (linear-up/log-down,
  BLQ rules and Tmax ties in `carkin.exposure._nca`).
- `exposure_quartiles(draws, patient_ids=...)`: quartile cut points and membership probabilities;
  `quartile_by_dose` the table of quartile by dose level.
"""

from ._closed_form import multiphasic_auc as multiphasic_auc, multiphasic_time_above as multiphasic_time_above
from ._fit_data import load_fit_dataset as load_fit_dataset
from ._metrics import (
    DAYS_PER_MONTH as DAYS_PER_MONTH,
    DEFAULT_METRICS as DEFAULT_METRICS,
    METRICS as METRICS,
    Metric as Metric,
    get_metric as get_metric,
    resolve_metrics as resolve_metrics,
)
from ._nca import NCA_METHODS as NCA_METHODS, nca as nca
from ._numerical import TimeGrid as TimeGrid
from ._posterior import (
    CLOSED_FORMS as CLOSED_FORMS,
    PosteriorExposure as PosteriorExposure,
    exposure_metrics as exposure_metrics,
    patient_lloq as patient_lloq,
    posterior_exposures as posterior_exposures,
)
from ._quartiles import (
    DOSE_LEVELS as DOSE_LEVELS,
    ExposureQuartiles as ExposureQuartiles,
    exposure_quartiles as exposure_quartiles,
    quartile_by_dose as quartile_by_dose,
)
from ._report import write_exposure_report as write_exposure_report
