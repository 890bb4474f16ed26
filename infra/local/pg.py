"""An embedded PostgreSQL 16 for the local demo and the tests: TCP, TLS and SCRAM, like a cloud one.

It runs PostgreSQL 16 binaries from :func:`infra.migrations.scratch.pg_bindir` (never the machine's own PostgreSQL 15).
The server listens on TCP with TLS enforced for every TCP client (the local twin of
``rds.force_ssl=1`` / Cloud SQL ``ENCRYPTED_ONLY``) and password auth by SCRAM-SHA-256; the
superuser ``postgres`` is reachable only through a Unix socket in a private directory.

PostgreSQL refuses to run as root, so when we are root the server runs as an unprivileged
system user (created on first use).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import pwd
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from infra.errors import InfraError
from infra.local.privnet import PrivateNetwork
from infra.migrations.binaries import open_for_traversal, pg_bin, server_env, server_user
from infra.postdeploy.tunnel import free_port

if TYPE_CHECKING:
    from infra.migrations.connection import ConnectionSpec

__all__ = ["LocalPostgres", "TlsMaterial", "make_tls", "open_for_traversal", "pg_bin", "server_env"]


PG16_NPM_VERSION = "16.14.0-beta.17"  # keep in step with the Makefile's PG16_NPM_VERSION


@dataclass(frozen=True)
class TlsMaterial:
    """A private CA and a server certificate signed by it (PEM files)."""

    ca_cert: Path
    server_cert: Path
    server_key: Path


def make_tls(directory: Path, names: Sequence[str], ips: Sequence[str] = ()) -> TlsMaterial:
    """Create a throwaway CA and a server certificate for ``names`` (DNS) and ``ips``.

    The certificate carries the names as subjectAltName, so libpq's ``sslmode=verify-full``
    checks them exactly as it checks an RDS or Cloud SQL endpoint.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "private-postgres local CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    alt += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    material = TlsMaterial(
        ca_cert=directory / "ca.pem",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
    )
    material.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    material.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    material.server_key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    material.server_key.chmod(0o600)
    return material


class LocalPostgres:
    """One embedded PostgreSQL 16 cluster under ``root`` (created on first start).

    ``listen`` is the TCP address; ``netns`` runs the server inside that network namespace
    (tests put it where only the bastion can reach it); ``private_network`` starts it as the
    first process of a namespace of its own (:mod:`infra.local.privnet`, the demo). ``settings``
    are extra postgresql.conf lines (e.g. ``log_statement='all'`` in tests). Every child process
    gets a scrubbed environment (no ``PGPASSWORD``, no cloud credentials); the log is 0600.
    """

    def __init__(
        self,
        root: Path,
        *,
        port: int | None = None,
        listen: str = "127.0.0.1",
        server_names: Sequence[str] = ("localhost",),
        settings: Mapping[str, str] | None = None,
        netns: str | None = None,
        private_network: PrivateNetwork | None = None,
        join_network: tuple[PrivateNetwork, Path] | None = None,
    ) -> None:
        self.root = root.resolve()
        self.data = self.root / "data"
        self.socket_dir = self.root / "run"
        self.log_path = self.root / "postgres.log"
        self.listen = listen
        self.port = port if port is not None else free_port()
        self.server_names = tuple(server_names)
        self.settings = dict(settings or {})
        self.netns = netns
        self.private_network = private_network
        # (network, pid file): start inside the private network of that process (a replica beside its primary)
        self.join_network = join_network
        self.tls = TlsMaterial(self.root / "tls/ca.pem", self.root / "tls/server.crt", self.root / "tls/server.key")

    # -- lifecycle ---------------------------------------------------------------------------

    def _run_as(self) -> str | None:
        return server_user()

    def _chown(self, path: Path, user: str | None) -> None:
        if user is None:
            return
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
        for dirpath, _dirs, files in os.walk(path):
            os.chown(dirpath, entry.pw_uid, entry.pw_gid)
            for name in files:
                os.chown(os.path.join(dirpath, name), entry.pw_uid, entry.pw_gid)

    def _cmd(self, argv: list[str], user: str | None = None) -> list[str]:
        if self.join_network is not None:
            network, pid_file = self.join_network
            drop: list[str] = []
            if user is not None:  # root entered the namespace; the server runs as its own user
                account = pwd.getpwnam(user)
                drop = ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--init-groups"]
            return ["sh", "-c", network.enter(pid_file, [*drop, *argv])]
        if self.private_network is not None:
            entry = pwd.getpwnam(user) if user is not None else None
            return self.private_network.launch(argv, run_as=(entry.pw_uid, entry.pw_gid) if entry else None)
        if not self.netns:
            return argv
        prefix = ["ip", "netns", "exec", self.netns]
        if user is not None:
            # entering a namespace needs root: enter it, then drop to the server user
            entry = pwd.getpwnam(user)
            prefix += ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups"]
        return prefix + argv

    def _as(self, user: str | None) -> str | None:
        """The ``user=`` for subprocess: none inside a namespace (``_cmd`` drops privileges there)."""
        return None if self.netns or self.private_network is not None or self.join_network is not None else user

    def postmaster_pid_file(self) -> Path:
        """Its first line is the running server's pid (how the jump host enters its private network)."""
        return self.data / "postmaster.pid"

    def start(self) -> None:
        """Create the cluster if needed, write its configuration and start it; wait until ready."""
        user = self._run_as()
        self.root.mkdir(parents=True, exist_ok=True)
        if user is not None:
            # the unprivileged server user must traverse to its binaries and its directory
            open_for_traversal(pg_bin("postgres").parent.parent)
            # not recursive: on a restart the data directory (0700) and the key (0600) must keep
            # their modes, or the server refuses to start; they are chowned to the server user
            open_for_traversal(self.root, recursive=False)
        if not (self.data / "PG_VERSION").exists():
            self.data.mkdir(parents=True, exist_ok=True)
            self.data.chmod(0o700)
            self._chown(self.data, user)
            subprocess.run(
                [
                    str(pg_bin("initdb")),
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                ],
                check=True,
                capture_output=True,
                user=user,
                env=server_env(),
            )
        if not self.tls.ca_cert.exists():
            names = [*self.server_names]
            ips = ["127.0.0.1"] + ([self.listen] if self.listen not in ("127.0.0.1", "*", "0.0.0.0") else [])  # noqa: S104
            make_tls(self.tls.ca_cert.parent, names, ips)
        self.socket_dir.mkdir(exist_ok=True)
        self.socket_dir.chmod(0o700)
        self._write_conf()
        for path in (self.socket_dir, self.tls.ca_cert.parent, self.data):
            self._chown(path, user)
        # every statement and connection may be logged: for the server's user only
        os.close(os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        self.log_path.chmod(0o600)
        self._chown(self.log_path, user)
        start = [str(pg_bin("pg_ctl")), "-D", str(self.data), "-l", str(self.log_path), "-w", "-t", "60", "start"]
        result = subprocess.run(
            self._cmd(start, user),
            capture_output=True,
            text=True,
            user=self._as(user),
            env=server_env(),
        )
        if result.returncode != 0:
            tail = (result.stderr + self.log_path.read_text(errors="replace"))[-2000:]
            raise InfraError(f"embedded postgres did not start (exit {result.returncode}): {tail.strip()}")

    def _write_conf(self) -> None:
        conf = {
            "listen_addresses": f"'{self.listen}'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            "ssl": "on",
            "ssl_cert_file": f"'{self.tls.server_cert}'",
            "ssl_key_file": f"'{self.tls.server_key}'",
            "ssl_min_protocol_version": "'TLSv1.2'",
            "password_encryption": "'scram-sha-256'",
            "max_connections": "100",
            "shared_buffers": "'32MB'",
            "fsync": "off",  # a throwaway cluster: durability is not what the tests measure
            "full_page_writes": "off",
            "synchronous_commit": "off",
            "log_connections": "on",
            "log_disconnections": "on",
            "log_line_prefix": "'%m [%p] %u@%d '",
        }
        conf.update(self.settings)
        (self.data / "postgresql.auto.conf").write_text("".join(f"{k} = {v}\n" for k, v in sorted(conf.items())))
        # TLS is enforced for TCP the way rds.force_ssl / ENCRYPTED_ONLY enforce it in the cloud.
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            # the superuser over the private socket may stream WAL (infra.local.replica's standby)
            "local replication postgres trust\n"
            "hostssl all all 0.0.0.0/0 scram-sha-256\n"
            "hostssl all all ::/0 scram-sha-256\n"
            "hostnossl all all 0.0.0.0/0 reject\n"
            "hostnossl all all ::/0 reject\n"
        )

    def stop(self) -> None:
        """Stop the server (fast shutdown); a stopped or missing cluster is fine."""
        if not (self.data / "postmaster.pid").exists():
            return
        stop = [str(pg_bin("pg_ctl")), "-D", str(self.data), "-m", "fast", "-w", "stop"]
        # signals cross namespaces: no need to enter the server's network to stop it
        subprocess.run(
            stop if self.private_network or self.join_network else self._cmd(stop, self._run_as()),
            capture_output=True,
            user=self._run_as() if self.private_network or self.join_network else self._as(self._run_as()),
            check=False,
            env=server_env(),
        )

    def destroy(self) -> None:
        """Stop the server and delete the cluster directory."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def running(self) -> bool:
        result = subprocess.run(
            [str(pg_bin("pg_ctl")), "-D", str(self.data), "status"],
            capture_output=True,
            check=False,
            user=self._run_as(),  # pg_ctl refuses to run as root, which read as "not running"
            env=server_env(),
        )
        return result.returncode == 0

    # -- connecting --------------------------------------------------------------------------

    def superuser_conninfo(self, dbname: str = "postgres") -> str:
        """libpq conninfo for the superuser over the private Unix socket (no password, no TCP)."""
        return f"host={self.socket_dir} port={self.port} user=postgres dbname={dbname}"

    def connection_spec(self, user: str, password: str, dbname: str) -> ConnectionSpec:
        """``user`` on ``dbname`` over TCP with verify-full TLS, the password from a supplier."""
        # imported here: this module also runs under the system python3, without psycopg, when the
        # demo starts PostgreSQL as an unprivileged user (tests/integration/local/*_unprivileged.py)
        from infra.migrations.connection import ConnectionSpec

        params = self.tcp_params(user, dbname)
        return ConnectionSpec(
            host=params["host"],
            hostaddr=params["hostaddr"],
            port=int(params["port"]),
            dbname=dbname,
            user=user,
            sslmode="verify-full",
            sslrootcert=params["sslrootcert"],
            password=lambda: password,
        )

    def tcp_params(self, user: str, dbname: str, host: str | None = None) -> dict[str, str]:
        """Keyword arguments for ``psycopg.connect`` over TCP with ``sslmode=verify-full``.

        The password is not included: pass it separately (never in a DSN string).
        """
        return {
            "host": host or self.server_names[0],
            "hostaddr": self.listen if self.listen not in ("*", "0.0.0.0") else "127.0.0.1",  # noqa: S104
            "port": str(self.port),
            "user": user,
            "dbname": dbname,
            "sslmode": "verify-full",
            "sslrootcert": str(self.tls.ca_cert),
        }
