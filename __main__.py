"""Pulumi entry point: load config, declare the AWS or GCP stack, export the output contract."""

from infra.provision.program import main

main()
