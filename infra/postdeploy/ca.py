"""The CA bundle that ``sslmode=verify-full`` checks the server certificate against.

GCP: the instance's server CA from the ``db_ca`` stack output. AWS: ``--ca-file`` /
``$RDS_CA_BUNDLE``, else the regional RDS bundle, downloaded over HTTPS once and cached.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

from infra.contract import Endpoint, StackOutputs
from infra.enums import Cloud
from infra.errors import ContractError

__all__ = ["AMAZON_ROOT_CA_URLS", "CACHE_DIR", "RDS_CA_URL", "ca_file_for", "configured_ca", "endpoint_ca_file"]

_log = logging.getLogger(__name__)

RDS_CA_URL = "https://truststore.pki.rds.amazonaws.com/{region}/{region}-bundle.pem"
# RDS Proxy presents an ACM certificate; its roots are Amazon Trust Services' (RDS User Guide,
# "rds-proxy-security": download Amazon Root CA 1 from Amazon Trust Services).
AMAZON_ROOT_CA_URLS = {"AmazonRootCA1": "https://www.amazontrust.com/repository/AmazonRootCA1.pem"}
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "private-postgres"


def configured_ca(ca_file: Path | None) -> Path | None:
    """``--ca-file``, else ``$RDS_CA_BUNDLE``, else None (the default bundle for the cloud)."""
    if ca_file is not None:
        return ca_file
    env = os.environ.get("RDS_CA_BUNDLE")
    return Path(env) if env else None


def _check_pem(data: bytes, source: str) -> None:
    from cryptography import x509

    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ContractError(f"{source} is not a PEM certificate bundle") from None
    if not certs:
        raise ContractError(f"{source} holds no certificate")


def ca_file_for(
    outputs: StackOutputs,
    *,
    configured: Path | None = None,
    cache_dir: Path = CACHE_DIR,
    fetch: Callable[[str], bytes] | None = None,
) -> Path:
    """The CA bundle that ``verify-full`` checks the server certificate against.

    GCP: the ``db_ca`` output (the instance's server CA, PEM). AWS: ``configured`` if given,
    else the regional RDS bundle cached under ``cache_dir`` (downloaded over HTTPS once).
    """
    if configured is not None:
        if not configured.is_file():
            raise ContractError(f"ca bundle {str(configured)!r} does not exist; fix --ca-file or RDS_CA_BUNDLE")
        return configured
    cache_dir.mkdir(parents=True, exist_ok=True)
    if outputs.cloud is Cloud.GCP:
        data = outputs.db_ca.encode()
        _check_pem(data, "stack output 'db_ca'")
        path = cache_dir / f"cloudsql-{hashlib.sha256(data).hexdigest()[:16]}.pem"  # one file per CA
        path.write_bytes(data)
        return path
    region = outputs.bastion.region
    if region is None:
        raise ContractError("stack output 'bastion.region' is needed to find the RDS ca bundle; pass --ca-file")
    path = cache_dir / f"rds-{region}-bundle.pem"
    if path.is_file():
        return path
    url = RDS_CA_URL.format(region=region)
    _log.info("fetching the RDS ca bundle from %s", url)
    getter = fetch or _https_get
    data = getter(url)
    _check_pem(data, url)
    with tempfile.NamedTemporaryFile(dir=cache_dir, delete=False) as tmp:
        tmp.write(data)
    Path(tmp.name).replace(path)  # atomic: a half-written bundle is never used
    return path


def endpoint_ca_file(
    outputs: StackOutputs,
    endpoint: Endpoint,
    *,
    configured: Path | None = None,
    cache_dir: Path | None = None,
    fetch: Callable[[str], bytes] | None = None,
) -> Path:
    """The CA bundle for a read replica or the pooler: ``db_ca``'s unless ``endpoint.ca`` names another.

    ``endpoint.ca`` is a PEM bundle (a Cloud SQL replica's own CA list) or the name of a public root
    (:data:`AMAZON_ROOT_CA_URLS`, for RDS Proxy), downloaded over HTTPS once and cached.
    """
    cache_dir = cache_dir or CACHE_DIR  # looked up now, not at import (tests point it elsewhere)
    if endpoint.ca is None:
        return ca_file_for(outputs, configured=configured, cache_dir=cache_dir, fetch=fetch)
    cache_dir.mkdir(parents=True, exist_ok=True)
    if "-----BEGIN CERTIFICATE-----" in endpoint.ca:
        data = endpoint.ca.encode()
        _check_pem(data, f"the CA of endpoint {endpoint.host!r}")
        path = cache_dir / f"endpoint-{hashlib.sha256(data).hexdigest()[:16]}.pem"
        path.write_bytes(data)
        return path
    url = AMAZON_ROOT_CA_URLS.get(endpoint.ca)
    if url is None:
        known = ", ".join(sorted(AMAZON_ROOT_CA_URLS))
        raise ContractError(f"endpoint {endpoint.host!r} names CA {endpoint.ca!r}; known: {known} or a PEM bundle")
    path = cache_dir / f"{endpoint.ca}.pem"
    if not path.is_file():
        data = (fetch or _https_get)(url)
        _check_pem(data, url)
        with tempfile.NamedTemporaryFile(dir=cache_dir, delete=False) as tmp:
            tmp.write(data)
        Path(tmp.name).replace(path)
    return path


def _https_get(url: str) -> bytes:
    if not url.startswith("https://"):
        raise ContractError(f"refusing to fetch a ca bundle over {url!r}")
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - https only, checked above
            data: bytes = response.read()
            return data
    except OSError as exc:
        raise ContractError(f"cannot fetch the RDS ca bundle from {url}: {exc}; pass --ca-file") from None
