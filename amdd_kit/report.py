"""Old import path of the series runner, the run registry and the HTML export.

The code lives in one module per concern: :mod:`amdd_kit.series` (notebook discovery,
parameters, kernel, runner), :mod:`amdd_kit.registry` (run registry, comparison, regression
banner) and :mod:`amdd_kit.export` (offline HTML, run-history page). Import from those.
"""
from .export import export_html, external_resources, history_page
from .registry import (HEADLINE_METRICS, REGISTRY_COLUMNS, compare_runs, data_fingerprint,
                       find_run, load_registry, register_run, regression_banner, regressions,
                       run_record)
from .series import (PROJECT_KERNEL, MissingKernelError, SeriesError, SeriesResult,
                     declared_parameters, list_notebooks, notebooks_dir, parameters_for,
                     resolve_kernel, run_series, select_notebooks)
from .viz.runs import recall_delta_figure, trend_figure

__all__ = ["export_html", "external_resources", "history_page", "HEADLINE_METRICS",
           "REGISTRY_COLUMNS", "compare_runs", "data_fingerprint", "find_run", "load_registry",
           "register_run", "regression_banner", "regressions", "run_record", "PROJECT_KERNEL",
           "MissingKernelError", "SeriesError", "SeriesResult", "declared_parameters",
           "list_notebooks", "notebooks_dir", "parameters_for", "resolve_kernel", "run_series",
           "select_notebooks", "recall_delta_figure", "trend_figure"]
