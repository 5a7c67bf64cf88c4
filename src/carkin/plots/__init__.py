"""Plots: functions that take results and return a matplotlib Figure (never ``plt.show()``)."""

from ._gof import plot_gof as plot_gof
from ._individual import plot_individual_fits as plot_individual_fits
from ._npde import plot_npde as plot_npde
from ._rank import plot_rank as plot_rank
from ._trace import plot_trace as plot_trace
from ._vpc import plot_vpc as plot_vpc
