"""Pulumi entry point: load config, declare the AWS or GCP stack, export the output contract."""

from infra.program import main

main()
