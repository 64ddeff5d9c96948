"""Run the registry on one machine without Docker (not part of the deployed Lambda)."""
