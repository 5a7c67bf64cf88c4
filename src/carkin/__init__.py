"""carkin: CAR-T cellular kinetics and exposure-response in JAX.

The public API is small; everything else lives in the subpackages (``carkin.data``, ``carkin.models``,
``carkin.population``, ``carkin.inference``, ``carkin.simulate``, ``carkin.survival``, ``carkin.plots``).

Typical use::

    import carkin
    spec = carkin.load_spec("models/multiphasic.toml")
    data = carkin.load_dataset("ck.csv", "patients.csv", covariate_columns=["TUMOR_BURDEN"])
    fit = carkin.fit(data, spec, seed=1)
    fit.summary()
"""

__version__ = "0.1.0"

from .data import Dataset as Dataset, load_dataset as load_dataset
from .errors import ConvergenceWarning as ConvergenceWarning, DataError as DataError, SpecError as SpecError
from .inference import (
    Fit as Fit,
    SamplerSettings as SamplerSettings,
    fit as fit,
    load_fit as load_fit,
    save_fit as save_fit,
)
from .models import Multiphasic as Multiphasic, MultiphasicParams as MultiphasicParams
from .population import PopulationSpec as PopulationSpec, load_spec as load_spec
from .simulate import simulate_cohort as simulate_cohort
from .survival import (
    analyze_trial as analyze_trial,
    cox_ph as cox_ph,
    kaplan_meier as kaplan_meier,
    logrank_test as logrank_test,
)
