"""A sweep's report (``hybrid report``): its jobs as a table (:mod:`~hybrid.reporting.sweep_table`),
figures (:mod:`~hybrid.reporting.figures`), repeated configurations aggregated
(:mod:`~hybrid.reporting.statistics`), architectures compared on accuracy against cost
(:mod:`~hybrid.reporting.comparison`), all written by :func:`~hybrid.reporting.sweep_report.write_report`."""
