"""Credential resolution: AWS through botocore's Stubber, GCP through a fake Secret Manager client."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from infra.errors import SecretError
from infra.postdeploy.outputs import load_outputs_file
from infra.postdeploy.secrets import (
    AwsSecretsManager,
    Credential,
    GcpSecretManager,
    StaticSecrets,
    crc32c,
    password_from,
    resolve_credentials,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "outputs"
AWS = load_outputs_file(FIXTURES / "aws-dev.json")
GCP = load_outputs_file(FIXTURES / "gcp-dev.json")


def _rds_secret(user: str, password: str) -> str:
    return json.dumps({"username": user, "password": password, "engine": "postgres", "port": 5432})


@pytest.fixture
def sm_client() -> Any:
    return boto3.client(
        "secretsmanager", region_name="eu-west-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def test_aws_resolves_admin_and_users_with_get_secret_value(sm_client: Any) -> None:
    passwords = {"admin": "Adm1n!pw", "migrator": "M1gr*pw", "app": "A pp:pw", "readonly": "R0{pw}"}
    with Stubber(sm_client) as stub:
        stub.add_response(
            "get_secret_value",
            {"ARN": AWS.db_admin_secret, "SecretString": _rds_secret("pgadmin", passwords["admin"])},
            {"SecretId": AWS.db_admin_secret},
        )
        for role in ("migrator", "app", "readonly"):
            arn = AWS.db_user_secrets[role]
            stub.add_response(
                "get_secret_value",
                {"ARN": arn, "SecretString": _rds_secret(role, passwords[role])},
                {"SecretId": arn},
            )
        creds = resolve_credentials(AWS, AwsSecretsManager(client=sm_client))
        stub.assert_no_pending_responses()
    assert creds.admin == Credential("pgadmin", passwords["admin"])
    assert creds.passwords() == {r: passwords[r] for r in ("migrator", "app", "readonly")}
    assert "Adm1n" not in repr(creds)


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        ("AccessDeniedException", "the caller needs secretsmanager:GetSecretValue"),
        ("ResourceNotFoundException", "check the stack outputs and the region"),
    ],
)
def test_aws_errors_name_the_secret_and_the_fix(sm_client: Any, code: str, hint: str) -> None:
    with Stubber(sm_client) as stub:
        stub.add_client_error("get_secret_value", service_error_code=code, service_message="nope")
        with pytest.raises(SecretError, match=f"cannot read secret '{AWS.db_admin_secret}': {code}; {hint}"):
            AwsSecretsManager(client=sm_client).fetch(AWS.db_admin_secret)


@dataclass
class _Payload:
    data: bytes
    data_crc32c: int | None


@dataclass
class _Response:
    payload: _Payload


class FakeSecretManager:
    """Answers access_secret_version like the real client (payload bytes + crc32c)."""

    def __init__(self, values: dict[str, str], *, corrupt: bool = False) -> None:
        self.values = values
        self.corrupt = corrupt
        self.requests: list[str] = []

    def access_secret_version(self, request: dict[str, str]) -> _Response:
        name = request["name"]
        self.requests.append(name)
        secret = name.rsplit("/versions/", 1)[0]
        if secret not in self.values:
            raise LookupError(f"404 Secret [{secret}] not found")
        data = self.values[secret].encode()
        return _Response(_Payload(data, crc32c(data) ^ (1 if self.corrupt else 0)))


def test_gcp_resolves_latest_versions() -> None:
    values = {GCP.db_admin_secret: "g-admin-pw"} | {GCP.db_user_secrets[r]: f"g-{r}-pw" for r in GCP.db_user_secrets}
    values[GCP.db_user_secrets["app"]] = _rds_secret("app", "g-app-json-pw")  # JSON payloads work too
    fake = FakeSecretManager(values)
    creds = resolve_credentials(GCP, GcpSecretManager(client=fake))
    assert creds.admin.password == "g-admin-pw"
    assert creds.user("app").password == "g-app-json-pw"
    assert creds.user("migrator").password == "g-migrator-pw"
    assert all(name.endswith("/versions/latest") for name in fake.requests)


def test_gcp_crc_mismatch_is_refused() -> None:
    fake = FakeSecretManager({GCP.db_admin_secret: "pw"}, corrupt=True)
    with pytest.raises(SecretError, match="failed its crc32c check"):
        GcpSecretManager(client=fake).fetch(GCP.db_admin_secret)


def test_gcp_error_does_not_leak_and_says_how_to_fix() -> None:
    with pytest.raises(SecretError, match="LookupError; run `gcloud auth application-default login`"):
        GcpSecretManager(client=FakeSecretManager({})).fetch(GCP.db_admin_secret)


def test_crc32c_known_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value


def test_payload_parsing_never_echoes_the_value() -> None:
    with pytest.raises(SecretError) as info:
        password_from('{"password": ', "s1")
    assert 'password": ' not in str(info.value)
    with pytest.raises(SecretError, match="has no 'password' field"):
        password_from('{"username": "x"}', "s1")
    assert password_from("  plain-pw\n", "s1") == "plain-pw"


def test_static_secrets_missing_id() -> None:
    with pytest.raises(SecretError, match="secret 'nope' not found"):
        StaticSecrets({"a": "b"}).fetch("nope")
