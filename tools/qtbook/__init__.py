"""qtbook: the Quantum-Train book's tooling, apart from the library a user installs (`qt_helpers`).

The chapters' shared helpers (`notebook`: profiles, glued numbers, the environment cell, run tables), the step
timer (`bench`), the published numbers (`published`), the science chapter's experiment grids (`experiments`) run
through one executor (`executor`: a local pool or submitit), their tables and plots (`report`, `verdict`,
`science_page`), the results page (`results_page`) and the notebook runner (`run_notebooks`). It imports
`qt_helpers`; `qt_helpers` never imports it (tests/test_structure.py checks). Installed from the checkout:
`pip install -e tools` (make setup does).
"""
from .bench import time_steps
from .notebook import (
    GLUED,
    check_params,
    environment,
    glue,
    late_gain,
    markdown_table,
    percent,
    pick,
    resolve_profile,
    runs_table,
    save_glued,
    train_models,
    train_run,
    trend,
)
from .published import PUBLISHED, published_qt

__all__ = ["GLUED", "PUBLISHED", "check_params", "environment", "glue", "late_gain", "markdown_table", "percent",
           "pick", "published_qt", "resolve_profile", "runs_table", "save_glued", "time_steps", "train_models",
           "train_run", "trend"]
