"""Report: one self-contained HTML file with metrics, curves and comparisons of runs."""

from gliotype.report.write import write_report

__all__ = ["write_report"]
