"""GCP: private Cloud SQL PostgreSQL 16, Secret Manager, and an IAP bastion in a custom VPC."""

from __future__ import annotations

from infra.config import GcpSettings, StackConfig
from infra.provision.gcp.bastion import Bastion
from infra.provision.gcp.database import Database
from infra.provision.gcp.network import Network
from infra.provision.gcp.pooler import POOLER_PORT
from infra.provision.gcp.replicas import Replicas
from infra.provision.gcp.secrets import UserSecrets
from infra.provision.outputs import ProgramOutputs

__all__ = ["deploy"]


def deploy(cfg: StackConfig, settings: GcpSettings, migrations: tuple[str, ...]) -> ProgramOutputs:
    """Declare the GCP stack; return the output contract. ``settings`` is ``cfg.settings``, narrowed."""
    meta, db = cfg.meta, cfg.database
    name = meta.prefix
    network = Network(f"{name}-net", meta, settings, cfg.bastion)
    project, region = settings.project, settings.region
    database = Database(
        f"{name}-db",
        meta,
        settings,
        db,
        network_id=network.network.id,
        private_access=network.private_access,
        scale=cfg.scale,
    )
    secrets = UserSecrets(f"{name}-users", meta, settings, db, host=database.host)
    bastion = Bastion(
        f"{name}-bastion",
        meta,
        settings,
        cfg.bastion,
        network_id=network.network.id,
        subnet_id=network.subnet.id,
        db_range=network.db_range,
        db_host=database.host,
        db_port=db.port,
        nat=network.nat,
    )
    # Scale-out (infra.provision.gcp.replicas / .pooler): nothing is declared at the defaults.
    replicas = None
    if cfg.scale.read_replicas:
        replicas = Replicas(
            f"{name}-replicas", meta, settings, db, cfg.scale, primary=database, network_id=network.network.id
        )
    return ProgramOutputs(
        cloud=cfg.cloud.value,
        environment=cfg.environment.value,
        # The instance DNS name, in the server certificate (shared CA): verify-full checks it.
        db_host=database.host,
        db_port=db.port,  # Cloud SQL listens on 5432 only (config refuses other ports on gcp)
        db_name=db.name,
        db_admin_user=db.admin_user,
        db_admin_secret=database.admin_secret_name,
        db_user_secrets=secrets.names,
        bastion=bastion.info,
        db_ca=database.ca_pem,
        migrations=migrations,
        db_instance=database.instance.name.apply(lambda n: {"name": n, "project": project, "region": region}),
        db_read_endpoints=tuple(
            {"host": host, "port": db.port, "ca": ca}
            for host, ca in (zip(replicas.hosts, replicas.ca_pems, strict=True) if replicas else [])
        ),
        # The pooler answers on the primary's name (same certificate, same CA) on its own port.
        db_pooler={"host": database.host, "port": POOLER_PORT} if cfg.scale.pooled else None,
    )
