"""GCP: private Cloud SQL PostgreSQL 16, Secret Manager, and an IAP bastion in a custom VPC."""

from __future__ import annotations

from infra.config import StackConfig
from infra.provision.gcp.bastion import Bastion
from infra.provision.gcp.database import Database
from infra.provision.gcp.network import Network
from infra.provision.gcp.pooler import POOLER_PORT
from infra.provision.gcp.replicas import Replicas
from infra.provision.gcp.secrets import UserSecrets
from infra.provision.outputs import ProgramOutputs

__all__ = ["deploy"]


def deploy(cfg: StackConfig, migrations: tuple[str, ...]) -> ProgramOutputs:
    """Declare the GCP stack; return the output contract."""
    assert cfg.gcp is not None
    name = cfg.prefix
    network = Network(f"{name}-net", cfg)
    database = Database(
        f"{name}-db",
        cfg,
        network_id=network.network.id,
        private_access=network.private_access,
    )
    secrets = UserSecrets(f"{name}-users", cfg, host=database.host)
    bastion = Bastion(
        f"{name}-bastion",
        cfg,
        network_id=network.network.id,
        subnet_id=network.subnet.id,
        db_range=network.db_range,
    )
    # Scale-out (infra.provision.gcp.replicas / .pooler): nothing is declared at the defaults.
    replicas = None
    if cfg.scale.read_replicas:
        replicas = Replicas(f"{name}-replicas", cfg, primary=database, network_id=network.network.id)
    return ProgramOutputs(
        cloud=cfg.cloud.value,
        environment=cfg.environment.value,
        # The instance DNS name, in the server certificate (shared CA): verify-full checks it.
        db_host=database.host,
        db_port=cfg.database.port,  # Cloud SQL listens on 5432 only (config refuses other ports on gcp)
        db_name=cfg.database.name,
        db_admin_user=cfg.database.admin_user,
        db_admin_secret=database.admin_secret_name,
        db_user_secrets=secrets.names,
        bastion=bastion.info,
        db_ca=database.ca_pem,
        migrations=migrations,
        db_read_endpoints=tuple(
            {"host": host, "port": cfg.database.port, "ca": ca}
            for host, ca in (zip(replicas.hosts, replicas.ca_pems, strict=True) if replicas else [])
        ),
        # The pooler answers on the primary's name (same certificate, same CA) on its own port.
        db_pooler={"host": database.host, "port": POOLER_PORT} if cfg.scale.pooled else None,
    )
