"""The monolith baseline: the three services' code in one process, steps as function calls."""
