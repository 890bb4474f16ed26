"""AWS: private RDS PostgreSQL 16, Secrets Manager, and an SSM bastion in a private VPC."""

from __future__ import annotations

import pulumi

from infra.config import AwsSettings, StackConfig
from infra.enums import BastionMode
from infra.provision.aws.bastion import Bastion
from infra.provision.aws.database import Database
from infra.provision.aws.encryption import DataKey
from infra.provision.aws.network import Network
from infra.provision.aws.pooler import PROXY_CA, PROXY_PORT, Pooler
from infra.provision.aws.replicas import Replicas
from infra.provision.aws.secrets import UserSecrets
from infra.provision.outputs import ProgramOutputs

__all__ = ["deploy"]


def deploy(cfg: StackConfig, settings: AwsSettings, migrations: tuple[str, ...]) -> ProgramOutputs:
    """Declare the AWS stack; return the output contract. ``settings`` is ``cfg.settings``, narrowed."""
    meta, db = cfg.meta, cfg.database
    name = meta.prefix
    key = DataKey(f"{name}-data", meta, settings)
    network = Network(f"{name}-net", meta, settings, cfg.bastion, db_port=db.port, kms_key_arn=key.key.arn)
    region = settings.region
    database = Database(
        f"{name}-db",
        meta,
        settings,
        db,
        subnet_ids=network.private_subnet_ids,
        security_group_id=network.db_sg.id,
        kms_key_arn=key.key.arn,
    )
    secrets = UserSecrets(f"{name}-users", meta, db, kms_key_arn=key.key.arn, host=database.instance.address)
    bastion_subnet = network.private_subnet_ids[0]
    if cfg.bastion.mode is BastionMode.SSH:
        assert network.public_subnet_id is not None  # config requires one in ssh mode
        bastion_subnet = network.public_subnet_id
    bastion = Bastion(
        f"{name}-bastion",
        meta,
        settings,
        cfg.bastion,
        subnet_id=bastion_subnet,
        security_group_id=network.bastion_sg.id,
        kms_key_arn=key.key.arn,
        db_host=database.instance.address,
        db_port=db.port,
        needs=network.bastion_paths,
    )
    # Scale-out (infra.provision.aws.replicas / .pooler): nothing is declared at the defaults.
    replicas = None
    if cfg.scale.read_replicas:
        replicas = Replicas(
            f"{name}-replicas",
            meta,
            settings,
            db,
            cfg.scale,
            primary=database,
            security_group_id=network.db_sg.id,
            kms_key_arn=key.key.arn,
        )
    pooler = None
    if cfg.scale.pooled:
        pooler = Pooler(
            f"{name}-pooler",
            meta,
            settings,
            db,
            vpc_id=network.vpc_id,
            subnet_ids=network.private_subnet_ids,
            db_security_group_id=network.db_sg.id,
            bastion_security_group_id=network.bastion_sg.id,
            instance_identifier=database.instance.identifier,
            secret_arns=secrets.arns,
            kms_key_arn=key.key.arn,
        )
    return ProgramOutputs(
        cloud=cfg.cloud.value,
        environment=cfg.environment.value,
        db_host=database.instance.address,
        db_port=database.instance.port,
        db_name=db.name,
        db_admin_user=db.admin_user,
        db_admin_secret=database.admin_secret_arn,
        db_user_secrets=secrets.arns,
        bastion=bastion.info,
        db_ca=settings.ca_cert_identifier,
        migrations=migrations,
        db_instance=pulumi.Output.all(
            database.instance.identifier, database.subnet_group_name, network.db_sg.id, database.parameter_group_name
        ).apply(
            lambda v: {
                "identifier": v[0],
                "region": region,
                "subnet_group": v[1],
                "security_group_ids": [v[2]],
                "parameter_group": v[3],
            }
        ),
        db_read_endpoints=tuple({"host": r.address, "port": r.port} for r in (replicas.instances if replicas else [])),
        db_pooler=None if pooler is None else {"host": pooler.proxy.endpoint, "port": PROXY_PORT, "ca": PROXY_CA},
    )
