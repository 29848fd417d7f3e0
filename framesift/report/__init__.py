"""The report of a dataset folder: one self-contained HTML page with a gallery of the datapoints, their
pre-annotations drawn, and charts of what was collected (and, given the run's summary, of what was not).

`write_report(dataset)` writes it (`framesift report DIR`); see `framesift.report.page`.
"""

from framesift.report.page import Report, write_report

__all__ = ["Report", "write_report"]
