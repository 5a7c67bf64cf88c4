"""The validated, immutable CK dataset: padded per-patient arrays plus masks.

Patients have ragged schedules; arrays are padded to the longest schedule along the ``obs`` axis and every
padded array travels with ``obs_mask``. Padded slots hold harmless values (time 0, DV 1, LLOQ 1, not BLQ)
so that nothing downstream produces NaN on them, but they must always be masked out.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

__all__ = ["Dataset", "FlatObservations"]


class Dataset(eqx.Module):
    """CK records of a population, one row per patient (a pytree; pass it through ``jit`` freely).

    Attributes
    ----------
    patient_ids : tuple of str, static
        Patient identifiers in row order (as written in the ID column).
    times : Float[Array, "patients obs"]
        Observation times, days after the infusion (TIME minus the dose record's TIME).
    dv : Float[Array, "patients obs"]
        Observed transgene level, copies/ug gDNA; on a BLQ record it holds the LLOQ.
    blq : Bool[Array, "patients obs"]
        True where the record is below the limit of quantification (censored, M3).
    lloq : Float[Array, "patients obs"]
        Lower limit of quantification, copies/ug gDNA (NaN where the file gave none on a quantified row).
    obs_mask : Bool[Array, "patients obs"]
        True on real records, False on padding.
    source_rows : Int[Array, "patients obs"]
        1-based line of each record in the CK file (0 on padding), so that any later message can point at it.
    dose : Float[Array, " patients"]
        Infused dose, 10^6 CAR+ T cells (AMT of the dose record).
    dose_time : Float[Array, " patients"]
        TIME of the dose record in the file, days.
    covariates : Float[Array, "patients covariates"]
        Per-patient covariates in the order of ``covariate_names``.
    covariate_names : tuple of str, static
        Covariate column names (upper case, as in the file).
    source : str, static
        Where the data came from (file paths), for messages and manifests.
    simulated : bool, static
        The data are simulated (a file's leading comment or a SIMULATED column said so, or a carkin simulator
        made them). Every fit, table, plot and report built on them says so.
    """

    patient_ids: tuple[str, ...] = eqx.field(static=True)
    times: Float[Array, "patients obs"]
    dv: Float[Array, "patients obs"]
    blq: Bool[Array, "patients obs"]
    lloq: Float[Array, "patients obs"]
    obs_mask: Bool[Array, "patients obs"]
    source_rows: Int[Array, "patients obs"]
    dose: Float[Array, " patients"]
    dose_time: Float[Array, " patients"]
    covariates: Float[Array, "patients covariates"]
    covariate_names: tuple[str, ...] = eqx.field(static=True)
    source: str = eqx.field(static=True, default="<memory>")
    simulated: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        n, m = self.times.shape
        for name in ("dv", "blq", "lloq", "obs_mask", "source_rows"):
            shape = getattr(self, name).shape
            if shape != (n, m):
                raise ValueError(f"Dataset.{name} has shape {shape}, expected (patients, obs) = {(n, m)}")
        for name in ("dose", "dose_time"):
            shape = getattr(self, name).shape
            if shape != (n,):
                raise ValueError(f"Dataset.{name} has shape {shape}, expected (patients,) = {(n,)}")
        if self.covariates.shape != (n, len(self.covariate_names)):
            raise ValueError(
                f"Dataset.covariates has shape {self.covariates.shape}, expected "
                f"(patients, covariates) = {(n, len(self.covariate_names))}"
            )
        if len(self.patient_ids) != n:
            raise ValueError(f"Dataset.patient_ids has {len(self.patient_ids)} entries for {n} patients")

    @property
    def n_patients(self) -> int:
        return self.times.shape[0]

    @property
    def n_observations(self) -> int:
        return int(np.asarray(self.obs_mask).sum())

    @property
    def n_blq(self) -> int:
        return int(np.asarray(self.blq & self.obs_mask).sum())

    def covariate(self, name: str) -> Float[Array, " patients"]:
        """One covariate column by name (``"DOSE"`` is always available: the infused dose)."""
        if name.upper() == "DOSE":
            return self.dose
        try:
            return self.covariates[:, self.covariate_names.index(name.upper())]
        except ValueError:
            raise KeyError(
                f"covariate {name!r} is not in the dataset; available: "
                f"{', '.join(('DOSE',) + self.covariate_names) or '(none)'}"
            ) from None

    def flat(self) -> "FlatObservations":
        """The real records as flat arrays (the likelihood's layout: no padding is evaluated)."""
        mask = np.asarray(self.obs_mask)
        patient = np.broadcast_to(np.arange(self.n_patients)[:, None], mask.shape)[mask]
        blq = np.asarray(self.blq)[mask]
        return FlatObservations(
            patient=jnp.asarray(patient, dtype=jnp.int32),
            times=jnp.asarray(np.asarray(self.times)[mask]),
            log_dv=jnp.log(jnp.asarray(np.asarray(self.dv)[mask])),
            blq=jnp.asarray(blq),
            quantified_index=jnp.asarray(np.flatnonzero(~blq), dtype=jnp.int32),
            censored_index=jnp.asarray(np.flatnonzero(blq), dtype=jnp.int32),
        )

    def summary(self) -> str:
        """One line a person reads on load: patients, records, BLQ fraction, doses."""
        n_obs = self.n_observations
        dose = np.asarray(self.dose)
        blq_frac = self.n_blq / n_obs if n_obs else 0.0
        covs = ", ".join(self.covariate_names) if self.covariate_names else "none"
        return (
            ("SIMULATED data: " if self.simulated else "")
            + f"{self.n_patients} patients, {n_obs} observation records "
            f"({self.n_blq} BLQ = {100 * blq_frac:.1f}%), doses {dose.min():g}-{dose.max():g} x10^6 cells "
            f"(median {np.median(dose):g}); covariates: {covs}"
        )


class FlatObservations(eqx.Module):
    """Real records in one flat layout, for the population log-likelihood.

    ``patient`` maps each record to its row in the Dataset; the quantified and censored records are
    addressed by index so that the M3 term is evaluated only on censored records.
    """

    patient: Int[Array, " records"]
    times: Float[Array, " records"]
    log_dv: Float[Array, " records"]
    blq: Bool[Array, " records"]
    quantified_index: Int[Array, " quantified"]
    censored_index: Int[Array, " censored"]
