"""Plots: functions that take results and return a matplotlib Figure (never ``plt.show()``)."""

from ._individual import plot_individual_fits as plot_individual_fits
