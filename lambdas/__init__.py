"""Not a package: `lambdas/` is the Lambda asset root (Lambda's /var/task).

The function's package is imported as `registry` everywhere -- in Lambda, in the local runner, in
the tests -- because the project installs it under that one name (pyproject.toml). A second name
would load every module twice, with two distinct classes for each error, and an `except` across
them would silently miss.
"""

raise ImportError("import the Lambda package as `registry`, not `registry` (see pyproject.toml)")
