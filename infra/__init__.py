"""The CDK constructs of the deployment (see infra/README.md)."""
