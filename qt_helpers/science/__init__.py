"""The book's tooling, apart from the library: the science chapter's experiment grids (`experiments`) and their
tables and plots (`report`), the notebook runner that records chapters (`run_notebooks`) and the results page
(`results_page`). It imports `qt_helpers`; `qt_helpers` never imports it (tests/test_structure.py checks)."""
