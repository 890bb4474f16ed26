"""AWS: private RDS PostgreSQL 16, Secrets Manager, and an SSM bastion in a private VPC."""

from __future__ import annotations

from infra.config import StackConfig
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


def deploy(cfg: StackConfig, migrations: tuple[str, ...]) -> ProgramOutputs:
    """Declare the AWS stack; return the output contract."""
    assert cfg.aws is not None
    name = cfg.prefix
    key = DataKey(f"{name}-data", cfg)
    network = Network(f"{name}-net", cfg)
    database = Database(
        f"{name}-db",
        cfg,
        subnet_ids=network.private_subnet_ids,
        security_group_id=network.db_sg.id,
        kms_key_arn=key.key.arn,
    )
    secrets = UserSecrets(f"{name}-users", cfg, kms_key_arn=key.key.arn, host=database.instance.address)
    bastion_subnet = network.private_subnet_ids[0]
    if cfg.bastion.mode is BastionMode.SSH:
        assert network.public_subnet_id is not None
        bastion_subnet = network.public_subnet_id
    bastion = Bastion(
        f"{name}-bastion",
        cfg,
        subnet_id=bastion_subnet,
        security_group_id=network.bastion_sg.id,
        kms_key_arn=key.key.arn,
    )
    # Scale-out (infra.provision.aws.replicas / .pooler): nothing is declared at the defaults.
    replicas = None
    if cfg.scale.read_replicas:
        replicas = Replicas(
            f"{name}-replicas", cfg, primary=database, security_group_id=network.db_sg.id, kms_key_arn=key.key.arn
        )
    pooler = None
    if cfg.scale.pooled:
        pooler = Pooler(
            f"{name}-pooler",
            cfg,
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
        db_name=cfg.database.name,
        db_admin_user=cfg.database.admin_user,
        db_admin_secret=database.admin_secret_arn,
        db_user_secrets=secrets.arns,
        bastion=bastion.info,
        db_ca=cfg.aws.ca_cert_identifier,
        migrations=migrations,
        db_read_endpoints=tuple({"host": r.address, "port": r.port} for r in (replicas.instances if replicas else [])),
        db_pooler=None if pooler is None else {"host": pooler.proxy.endpoint, "port": PROXY_PORT, "ca": PROXY_CA},
    )
