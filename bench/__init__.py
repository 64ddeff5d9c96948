"""`make bench`: the numbers behind docs/performance.md (see bench/__main__.py)."""
