"""`make bench`: the numbers behind the README's Performance section (see bench/__main__.py)."""
