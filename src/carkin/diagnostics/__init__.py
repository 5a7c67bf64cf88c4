"""Diagnostics of a population fit: convergence, goodness of fit, NPDE, shrinkage and the pcVPC.

- `convergence_table(fit)`: arviz summary of the population sites; `convergence_verdict(fit)` the gates.
- `goodness_of_fit(fit, dataset, key=...)`: PRED, IPRED, individual residuals (log scale) and NPDE.
- `npde(fit, dataset, key=...)`: normalised prediction discrepancies from posterior predictive simulation.
- `eta_shrinkage(fit, dataset)`: 1 - SD(posterior-mean eta) / omega for each IIV term.
- `vpc(fit, dataset, key=..., stratify=...)`: prediction-corrected VPC with BLQ panel; `auto_bins`.
- `diagnose` / `write_diagnostics`: all of the above in one call, and to a folder.

Plots of these results live in `carkin.plots` (``plot_trace``, ``plot_rank``, ``plot_gof``, ``plot_npde``,
``plot_vpc``).
"""

from ._binning import assign_bins as assign_bins, auto_bins as auto_bins
from ._bundle import (
    Diagnostics as Diagnostics,
    diagnose as diagnose,
    diagnostic_figures as diagnostic_figures,
    write_diagnostics as write_diagnostics,
)
from ._convergence import convergence_table as convergence_table, convergence_verdict as convergence_verdict
from ._gof import GoodnessOfFit as GoodnessOfFit, goodness_of_fit as goodness_of_fit
from ._npde import npde as npde
from ._shrinkage import eta_shrinkage as eta_shrinkage
from ._vpc import VPCResult as VPCResult, strata_of as strata_of, vpc as vpc
