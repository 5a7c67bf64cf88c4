"""One- and two-compartment linear PK models as carkin kinetic models (closed forms with a dosing history).

The protocol mirrors ``Multiphasic`` with doses added:

- ``individual_parameters``: names of the natural-scale parameters (depend on the static options);
- ``elementwise = True``: evaluated record by record, as ``patient_terms(individual, doses)`` once per
  patient, gathered to the records (every term's leading axes are the patient's, the dose terms carry the
  doses axis last), then ``log_concentration_from_terms(terms, t)``;
- ``dosed = True``: ``patient_terms``, ``concentration`` and ``log_concentration`` take a ``DoseEvents``;
- ``derived(individual)``: secondary parameters (half-lives, V = CL / ke, AUC per unit dose, ...).

Units are the data's: concentration = amount / volume, rates in 1 / (time unit of the data).
"""

from __future__ import annotations

import abc
import math
from typing import ClassVar, Literal

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ._doses import DoseEvents
from ._one_compartment import one_compartment_concentration_from_terms, one_compartment_terms
from ._two_compartment import hybrid_rates, two_compartment_concentration_from_terms, two_compartment_terms

__all__ = ["OneCompartment", "TwoCompartment", "ROUTES", "ONE_COMPARTMENT_PARAMETERIZATIONS"]

Route = Literal["iv", "oral"]
ROUTES: tuple[str, ...] = ("iv", "oral")
# parameterization -> (IV names, oral names); None where the route does not have it.
ONE_COMPARTMENT_PARAMETERIZATIONS: dict[str, tuple[tuple[str, ...] | None, tuple[str, ...]]] = {
    "cl_v": (("cl", "v"), ("cl", "v", "ka")),
    "ke_v": (("ke", "v"), ("ke", "v", "ka")),
    "ssfol": (None, ("ke", "ka", "cl")),  # R's SSfol / nlme Theoph analysis: lKe, lKa, lCl; V = CL / ke
}
_LN2 = math.log(2.0)


def _check_route(cls: str, route) -> None:
    if route not in ROUTES:
        raise ValueError(
            f"{cls}: unknown route {route!r} (type {type(route).__name__}); valid routes: {', '.join(ROUTES)}"
        )


def _log(c: Float[Array, "..."]) -> Float[Array, "..."]:
    """log c, -inf where c == 0 (before the first dose), with a zero (not NaN) gradient there."""
    positive = c > 0
    return jnp.where(positive, jnp.log(jnp.where(positive, c, 1.0)), -jnp.inf)


class _LinearPK(eqx.Module):
    """What the closed-form PK models share: concentration and its log from ``patient_terms``."""

    route: eqx.AbstractVar[str]
    lag: eqx.AbstractVar[bool]

    elementwise: ClassVar[bool] = True
    dosed: ClassVar[bool] = True

    @abc.abstractmethod
    def patient_terms(self, individual: dict[str, Float[ArrayLike, "..."]], doses: DoseEvents) -> dict[str, Array]:
        """Per-patient terms: rates (...), dose terms (..., doses)."""

    @abc.abstractmethod
    def concentration_from_terms(self, terms: dict[str, Array], t: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """Concentration at ``t`` from ``patient_terms`` (gathered to ``t``'s shape)."""

    def log_concentration_from_terms(
        self, terms: dict[str, Array], t: Float[ArrayLike, "..."]
    ) -> Float[Array, "..."]:
        """log C(t) from ``patient_terms`` gathered to the records; -inf where C is exactly 0 (t at or before
        the first dose), with a zero gradient there."""
        return _log(self.concentration_from_terms(terms, t))

    def concentration(
        self, individual: dict[str, Float[ArrayLike, "..."]], t: Float[ArrayLike, "..."], doses: DoseEvents
    ) -> Float[Array, "..."]:
        """Concentration (amount / volume) at ``t`` (time unit of the data) after ``doses``.

        Parameters
        ----------
        individual : dict of name -> array (...), natural scale (``individual_parameters``), broadcastable
            against ``t``.
        t : array (...), time.
        doses : DoseEvents (..., doses), batch shape broadcastable against ``t`` (for a grid of times per
            patient, give ``t`` as (patients, times) and doses as (patients, 1, doses), or use ``jax.vmap``).

        Returns
        -------
        array (...), exactly 0 at and before the first dose.
        """
        return self.concentration_from_terms(self.patient_terms(individual, doses), t)

    def log_concentration(
        self, individual: dict[str, Float[ArrayLike, "..."]], t: Float[ArrayLike, "..."], doses: DoseEvents
    ) -> Float[Array, "..."]:
        """log of ``concentration``: -inf where it is exactly 0 (at and before the first dose, gradient 0)."""
        return _log(self.concentration(individual, t, doses))


class OneCompartment(_LinearPK):
    """One-compartment linear PK model, closed form, with any dosing history.

    Parameters
    ----------
    route : "iv" or "oral"
        "iv": doses into the central compartment (CMT 1), bolus or zero-order infusion. "oral": first-order
        absorption from a depot (CMT 1: bolus, or zero-order input into the depot) and doses straight into
        the central compartment (CMT 2).
    parameterization : "cl_v", "ke_v" or "ssfol"
        Individual parameters (natural scale): "cl_v" (cl, v), "ke_v" (ke, v), each with ka for "oral";
        "ssfol" (oral only) (ke, ka, cl) with V = CL / ke, as R's ``SSfol`` (nlme's Theoph analysis).
    lag : bool
        Add ``tlag`` (time unit), the delay of every CMT 1 dose (NONMEM's ALAG1).

    Notes
    -----
    ========  ===================================  =================
    name      meaning                              unit
    ========  ===================================  =================
    cl        clearance                            volume / time
    v         volume of distribution               volume
    ke        elimination rate constant (CL / V)   1 / time
    ka        absorption rate constant             1 / time
    tlag      absorption lag time                  time
    ========  ===================================  =================

    Bioavailability is 1 (apparent CL / F and V / F for oral data). Concentration after a depot bolus D:
    ``D ka / (V (ka - ke)) (exp(-ke t) - exp(-ka t))``, smooth through ka = ke (``D ka / V t exp(-ke t)``).

    Examples
    --------
    >>> model = OneCompartment(route="oral", parameterization="ssfol")
    >>> model.individual_parameters
    ('ke', 'ka', 'cl')
    >>> c = model.concentration({"ke": 0.08, "ka": 1.5, "cl": 0.04}, 1.0, DoseEvents(time=[0.0], amount=[4.0]))
    """

    route: Route = eqx.field(static=True, default="iv")
    parameterization: str = eqx.field(static=True, default="cl_v")
    lag: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        _check_route("OneCompartment", self.route)
        names = ONE_COMPARTMENT_PARAMETERIZATIONS.get(self.parameterization)
        if names is None:
            raise ValueError(
                f"OneCompartment: unknown parameterization {self.parameterization!r} (type "
                f"{type(self.parameterization).__name__}); valid: {', '.join(ONE_COMPARTMENT_PARAMETERIZATIONS)}"
            )
        if names[0] is None and self.route == "iv":
            raise ValueError(
                f'OneCompartment: parameterization={self.parameterization!r} needs route="oral" (it has ka), '
                f"got route={self.route!r}; use parameterization=\"cl_v\" or \"ke_v\" for IV doses"
            )

    @property
    def individual_parameters(self) -> tuple[str, ...]:
        """Names of the individual parameters, in order (see the class docstring)."""
        names = ONE_COMPARTMENT_PARAMETERIZATIONS[self.parameterization][self.route == "oral"]
        return names + (("tlag",) if self.lag else ())

    def rates(self, individual: dict[str, Float[ArrayLike, "..."]]) -> dict[str, Float[Array, "..."]]:
        """ke (1/time) and v (volume), plus ka and tlag where the model has them, from individual parameters."""
        p = {k: jnp.asarray(individual[k]) for k in self.individual_parameters}
        if self.parameterization == "cl_v":
            out = {"ke": p["cl"] / p["v"], "v": p["v"]}
        elif self.parameterization == "ke_v":
            out = {"ke": p["ke"], "v": p["v"]}
        else:
            out = {"ke": p["ke"], "v": p["cl"] / p["ke"]}
        out.update({k: p[k] for k in ("ka", "tlag") if k in p})
        return out

    def patient_terms(self, individual: dict[str, Float[ArrayLike, "..."]], doses: DoseEvents) -> dict[str, Array]:
        """Per-patient terms (``one_compartment_terms``): rates (...), dose terms (..., doses)."""
        r = self.rates(individual)
        return one_compartment_terms(r["ke"], r["v"], doses, ka=r.get("ka"), tlag=r.get("tlag"))

    def concentration_from_terms(self, terms: dict[str, Array], t: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """Concentration at ``t`` from ``patient_terms`` gathered to ``t``'s shape."""
        return one_compartment_concentration_from_terms(terms, t)

    def derived(self, individual: dict[str, Float[ArrayLike, "..."]]) -> dict[str, Float[Array, "..."]]:
        """Secondary parameters, elementwise.

        Returns
        -------
        dict of arrays (...): ``cl``, ``v``, ``ke``, ``half_life`` (ln 2 / ke), ``auc_per_dose`` (AUC 0-inf per
        unit amount, 1 / CL); oral: ``ka``, ``absorption_half_life``, ``tmax`` and ``cmax_per_dose`` (time and
        concentration per unit amount of the peak after one depot bolus, from its end of lag), and ``tlag``.
        """
        r = self.rates(individual)
        ke, v = r["ke"], r["v"]
        out = {"cl": ke * v, "v": v, "ke": ke, "half_life": _LN2 / ke, "auc_per_dose": 1.0 / (ke * v)}
        if "ka" in r:
            ka = r["ka"]
            u = (ka - ke) / ke  # tmax = log(ka / ke) / (ka - ke) = log1p(u) / (u ke), 1 / ke at ka = ke
            narrow = jnp.abs(u) < 1e-4
            u_safe = jnp.where(narrow, 1.0, u)
            ratio = jnp.where(narrow, 1.0 - u / 2.0 + u * u / 3.0, jnp.log1p(u_safe) / u_safe)
            tmax = ratio / ke
            out.update({"ka": ka, "absorption_half_life": _LN2 / ka, "tmax": tmax})
            out["cmax_per_dose"] = jnp.exp(-ke * tmax) / v  # at the peak ka exp(-ka t) = ke exp(-ke t)
        if "tlag" in r:
            out["tlag"] = r["tlag"]
        return out


class TwoCompartment(_LinearPK):
    """Two-compartment linear PK model, closed form, with any dosing history.

    Parameters
    ----------
    route : "iv" or "oral"
        As for ``OneCompartment`` (oral: CMT 1 depot, CMT 2 central; IV: CMT 1 central).
    lag : bool
        Add ``tlag``, the delay of every CMT 1 dose.

    Notes
    -----
    Individual parameters (natural scale): ``cl`` (volume/time), ``v1`` (central volume), ``q``
    (intercompartmental clearance, volume/time, > 0), ``v2`` (peripheral volume), then ``ka`` (1/time) for
    "oral" and ``tlag`` (time) with ``lag``. The oral response is the classic sum of three exponentials in
    alpha, beta and ka, evaluated without cancellation (smooth through ka = alpha or ka = beta).
    """

    route: Route = eqx.field(static=True, default="iv")
    lag: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        _check_route("TwoCompartment", self.route)

    @property
    def individual_parameters(self) -> tuple[str, ...]:
        """Names of the individual parameters, in order (see the class docstring)."""
        return ("cl", "v1", "q", "v2") + (("ka",) if self.route == "oral" else ()) + (("tlag",) if self.lag else ())

    def patient_terms(self, individual: dict[str, Float[ArrayLike, "..."]], doses: DoseEvents) -> dict[str, Array]:
        """Per-patient terms (``two_compartment_terms``): rates (...), dose terms (..., doses)."""
        p = {k: jnp.asarray(individual[k]) for k in self.individual_parameters}
        return two_compartment_terms(p["cl"], p["v1"], p["q"], p["v2"], doses, ka=p.get("ka"), tlag=p.get("tlag"))

    def concentration_from_terms(self, terms: dict[str, Array], t: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """Concentration at ``t`` from ``patient_terms`` gathered to ``t``'s shape."""
        return two_compartment_concentration_from_terms(terms, t)

    def derived(self, individual: dict[str, Float[ArrayLike, "..."]]) -> dict[str, Float[Array, "..."]]:
        """Secondary parameters, elementwise.

        Returns
        -------
        dict of arrays (...): micro-constants ``k10``, ``k12``, ``k21``, hybrid rates ``alpha``, ``beta``,
        ``half_life_alpha``, ``half_life_beta`` (terminal), ``vss`` (V1 + V2), ``auc_per_dose`` (1 / CL);
        oral: ``ka``, ``absorption_half_life``; ``tlag`` with ``lag``.
        """
        p = {k: jnp.asarray(individual[k]) for k in self.individual_parameters}
        h = hybrid_rates(p["cl"], p["v1"], p["q"], p["v2"])
        out = {k: h[k] for k in ("k10", "k12", "k21", "alpha", "beta")}
        out.update({
            "half_life_alpha": _LN2 / h["alpha"], "half_life_beta": _LN2 / h["beta"], "vss": p["v1"] + p["v2"],
            "auc_per_dose": 1.0 / p["cl"],
        })
        if "ka" in p:
            out.update({"ka": p["ka"], "absorption_half_life": _LN2 / p["ka"]})
        if "tlag" in p:
            out["tlag"] = p["tlag"]
        return out
