"""The HTML report: one self-contained file (figures embedded) for a fit and its downstream outputs."""

from ._report import build_report as build_report, write_report as write_report
