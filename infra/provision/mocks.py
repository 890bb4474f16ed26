"""The project's own Pulumi mocks: evaluate the program with no engine, no plugins and no cloud.

Used by ``python -m infra synth`` (the offline resource graph for reviewers) and by the unit
tests, through :mod:`infra.provision.recording`. :class:`ProjectMocks` returns realistic state per
resource type (ids, ARNs, endpoints and the attributes the provider computes); in preview mode it
returns no id and no computed attributes, as the engine does for a resource that does not exist yet.

Ids are derived from the resource name, so two runs give the same output.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pulumi

__all__ = ["ACCOUNT", "ProjectMocks"]

ACCOUNT = "123456789012"


def _short_hash(*parts: str, length: int = 17) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def _gcp_path(kind: str, *, regional: bool) -> Callable[[ProjectMocks, str, dict[str, Any]], str]:
    """State maker for a named compute resource: the id is ``projects/p/global/networks/name`` etc."""

    def make(self: ProjectMocks, name: str, state: dict[str, Any]) -> str:
        resource_name = state.get("name") or f"{name}-{_short_hash(name, length=7)}"
        where = f"regions/{state.get('region', 'europe-west1')}" if regional else "global"
        path = f"projects/{self.project}/{where}/{kind}/{resource_name}"
        state.update(name=resource_name, selfLink=f"https://www.googleapis.com/compute/v1/{path}")
        return path

    return make


class ProjectMocks(pulumi.runtime.Mocks):
    """Realistic provider state for the resource types and invokes this program uses."""

    def __init__(self, *, preview: bool, region: str = "eu-west-1", project: str = "my-project-123") -> None:
        self.preview = preview
        self.region = region
        self.project = project

    # -- resources ---------------------------------------------------------------------------

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        state = dict(args.inputs)
        if self.preview:
            # A resource that does not exist yet: no id, nothing computed ("known after apply").
            return "", state
        maker = self._STATE.get(args.typ)
        resource_id = f"{args.name}-{_short_hash(args.typ, args.name, length=8)}"
        if maker is not None:
            resource_id = maker(self, args.name, state) or resource_id
        if args.typ.startswith("aws:") and "arn" not in state:
            service = args.typ.split(":")[1].split("/")[0]
            state["arn"] = f"arn:aws:{service}:{self.region}:{ACCOUNT}:{args.name}"
        if args.typ.startswith("gcp:") and "selfLink" not in state:
            state["selfLink"] = f"https://www.googleapis.com/compute/v1/projects/{self.project}/{args.name}"
        state.setdefault("id", resource_id)
        return resource_id, state

    def _vpc(self, name: str, state: dict[str, Any]) -> str:
        vpc_id = f"vpc-{_short_hash(name)}"
        state.update(
            arn=f"arn:aws:ec2:{self.region}:{ACCOUNT}:vpc/{vpc_id}",
            defaultSecurityGroupId=f"sg-{_short_hash(name, 'default')}",
            mainRouteTableId=f"rtb-{_short_hash(name, 'main')}",
            ownerId=ACCOUNT,
        )
        return vpc_id

    def _subnet(self, name: str, state: dict[str, Any]) -> str:
        subnet_id = f"subnet-{_short_hash(name)}"
        state.update(arn=f"arn:aws:ec2:{self.region}:{ACCOUNT}:subnet/{subnet_id}", ownerId=ACCOUNT)
        return subnet_id

    def _sg(self, name: str, state: dict[str, Any]) -> str:
        sg_id = f"sg-{_short_hash(name)}"
        state.update(arn=f"arn:aws:ec2:{self.region}:{ACCOUNT}:security-group/{sg_id}", ownerId=ACCOUNT)
        return sg_id

    def _kms(self, name: str, state: dict[str, Any]) -> str:
        h = _short_hash(name, length=32)
        key_id = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
        state.update(arn=f"arn:aws:kms:{self.region}:{ACCOUNT}:key/{key_id}", keyId=key_id)
        return key_id

    def _secret(self, name: str, state: dict[str, Any]) -> str:
        secret_name = state.get("name") or f"{name}-{_short_hash(name, length=7)}"
        suffix = _short_hash(name, length=6)
        arn = f"arn:aws:secretsmanager:{self.region}:{ACCOUNT}:secret:{secret_name}-{suffix}"
        state.update(arn=arn, name=secret_name)
        return arn

    def _secret_version(self, name: str, state: dict[str, Any]) -> str:
        version = _short_hash(name, length=32)
        # a version's `secretArn` is its secret's ARN (and a secret's id is its ARN)
        state.update(versionId=version, versionStages=["AWSCURRENT"], secretArn=state.get("secretId"))
        return f"{state.get('secretId')}|{version}"

    def _rds_named(self, name: str, state: dict[str, Any]) -> str:
        # subnet and parameter groups: Pulumi autonames them <name>-<7 hex>; the provider's id is the name
        group_name = state.get("name") or f"{name}-{_short_hash(name, length=7)}"
        state["name"] = group_name
        return str(group_name)

    def _rds(self, name: str, state: dict[str, Any]) -> str:
        identifier = state.get("identifier") or f"{name}{_short_hash(name, length=7)}"
        address = f"{identifier}.c{_short_hash(name, length=11)}.{self.region}.rds.amazonaws.com"
        secret_arn = f"arn:aws:secretsmanager:{self.region}:{ACCOUNT}:secret:rds!db-{_short_hash(name, length=36)}"
        state.update(
            identifier=identifier,
            address=address,
            endpoint=f"{address}:{state.get('port', 5432)}",
            arn=f"arn:aws:rds:{self.region}:{ACCOUNT}:db:{identifier}",
            resourceId=f"db-{_short_hash(name, length=26).upper()}",
            engineVersionActual="16.6",
            hostedZoneId="Z29XKXDKYMONMX",
            status="available",
            masterUserSecrets=[
                {
                    "kmsKeyId": state.get("masterUserSecretKmsKeyId"),
                    "secretArn": secret_arn,
                    "secretStatus": "active",
                }
            ],
        )
        return identifier

    def _rds_proxy(self, name: str, state: dict[str, Any]) -> str:
        proxy = state.get("name") or f"{name}{_short_hash(name, length=7)}"
        state.update(
            arn=f"arn:aws:rds:{self.region}:{ACCOUNT}:db-proxy:prx-{_short_hash(name)}",
            endpoint=f"{proxy}.proxy-c{_short_hash(name, length=11)}.{self.region}.rds.amazonaws.com",
        )
        return proxy

    def _ec2_instance(self, name: str, state: dict[str, Any]) -> str:
        instance_id = f"i-{_short_hash(name)}"
        state.update(
            arn=f"arn:aws:ec2:{self.region}:{ACCOUNT}:instance/{instance_id}",
            privateIp="10.40.0.12",
            publicIp="203.0.113.10" if state.get("associatePublicIpAddress") else "",
            instanceState="running",
        )
        return instance_id

    def _iam_role(self, name: str, state: dict[str, Any]) -> str:
        role_name = state.get("name") or f"{name}-{_short_hash(name, length=7)}"
        state.update(
            arn=f"arn:aws:iam::{ACCOUNT}:role/{role_name}",
            name=role_name,
            uniqueId=f"AROA{_short_hash(name, length=17).upper()}",
        )
        return role_name

    def _instance_profile(self, name: str, state: dict[str, Any]) -> str:
        profile = state.get("name") or f"{name}-{_short_hash(name, length=7)}"
        state.update(arn=f"arn:aws:iam::{ACCOUNT}:instance-profile/{profile}", name=profile)
        return profile

    def _random_password(self, name: str, state: dict[str, Any]) -> str:
        length = int(state.get("length", 32))
        state.update(result=("Mock" + _short_hash("password", name, length=64))[:length], bcryptHash="$2a$10$mock")
        return "none"

    def _random_id(self, name: str, state: dict[str, Any]) -> str:
        # A new draw when the keepers change, as the provider replaces the resource then.
        keepers = json.dumps(state.get("keepers") or {}, sort_keys=True)
        digest = _short_hash("random-id", name, keepers, length=2 * int(state.get("byteLength", 4)))
        state.update(hex=digest, dec=str(int(digest, 16)), b64Url=digest, b64Std=digest)
        return digest

    def _log_group(self, name: str, state: dict[str, Any]) -> str:
        group = state.get("name") or f"{name}-{_short_hash(name, length=7)}"
        state.update(name=group, arn=f"arn:aws:logs:{self.region}:{ACCOUNT}:log-group:{group}")
        return group

    def _key_pair(self, name: str, state: dict[str, Any]) -> str:
        key_name = state.get("keyName") or f"{name}-{_short_hash(name, length=7)}"
        state.update(
            keyName=key_name, fingerprint=_short_hash("fp", name, length=32), keyPairId=f"key-{_short_hash(name)}"
        )
        return key_name

    def _sql_instance(self, name: str, state: dict[str, Any]) -> str:
        instance = state.get("name") or f"{name}-{_short_hash(name, length=7)}"
        ip = "10.91.0.3"  # inside the mocked private service access range (10.91.0.0/prefix)
        if state.get("masterInstanceName"):  # a read replica: its own address in the same range
            ip = f"10.91.0.{4 + int(_short_hash(name, length=4), 16) % 250}"
        region = state.get("region", "europe-west1")
        dns_name = f"{_short_hash(name, length=12)}.{_short_hash(name, length=13)}.{region}.sql.goog."
        # The shared CA (GOOGLE_MANAGED_CAS_CA) lists the root and the regional CA; the per-instance
        # CA lists one certificate.
        shared_ca = (state.get("settings") or {}).get("ipConfiguration", {}).get("serverCaMode") == (
            "GOOGLE_MANAGED_CAS_CA"
        )
        ca_names = ("Google Cloud SQL Root CA", f"Google Cloud SQL {region} CA") if shared_ca else ("Server CA",)
        state.update(
            name=instance,
            connectionName=f"{self.project}:{region}:{instance}",
            privateIpAddress=ip,
            ipAddresses=[{"ipAddress": ip, "type": "PRIVATE"}],
            dnsName=dns_name,
            dnsNames=[{"name": dns_name, "connectionType": "PRIVATE_SERVICES_ACCESS", "dnsScope": "INSTANCE"}],
            serverCaCerts=[
                {
                    "cert": f"-----BEGIN CERTIFICATE-----\nMIID{_short_hash(name, ca, length=40)}\n"
                    "-----END CERTIFICATE-----\n",
                    "commonName": f"CN={ca}",
                    "sha1Fingerprint": _short_hash(name, ca, length=40),
                }
                for ca in ca_names
            ],
            selfLink=f"https://sqladmin.googleapis.com/sql/v1beta4/projects/{self.project}/instances/{instance}",
        )
        return instance

    def _global_address(self, name: str, state: dict[str, Any]) -> str:
        state.setdefault("address", "10.91.0.0")  # Google picks the range when none is given
        return _gcp_path("addresses", regional=False)(self, name, state)

    def _address(self, name: str, state: dict[str, Any]) -> str:
        state.setdefault("address", "203.0.113.20")
        state.update(users=[], addressType=state.get("addressType", "EXTERNAL"))
        return _gcp_path("addresses", regional=True)(self, name, state)

    def _managed_zone(self, name: str, state: dict[str, Any]) -> str:
        state.update(
            managedZoneId=str(int(_short_hash("zone", name, length=15), 16)),
            nameServers=["ns-gcp-private.googledomains.com."],
            creationTime="2026-01-01T00:00:00Z",
        )
        return f"projects/{self.project}/managedZones/{state.get('name')}"

    def _record_set(self, name: str, state: dict[str, Any]) -> str:
        zone = f"projects/{self.project}/managedZones/{state.get('managedZone')}"
        return f"{zone}/rrsets/{state.get('name')}/{state.get('type')}"

    def _psa_connection(self, name: str, state: dict[str, Any]) -> str:
        state.update(peering="servicenetworking-googleapis-com")
        return f"{state.get('network')}:{state.get('service')}"

    def _iam_member(self, name: str, state: dict[str, Any]) -> str:
        state.update(etag=f"BwY{_short_hash('etag', name, length=9)}")
        return f"{name}/{state.get('role')}/{state.get('member')}"

    def _gcp_secret(self, name: str, state: dict[str, Any]) -> str:
        secret_id = state.get("secretId") or name
        full = f"projects/{self.project}/secrets/{secret_id}"
        state.update(name=full)
        return full

    def _gcp_secret_version(self, name: str, state: dict[str, Any]) -> str:
        full = f"{state.get('secret')}/versions/1"
        state.update(name=full, version="1")
        return full

    def _gcp_instance(self, name: str, state: dict[str, Any]) -> str:
        instance = state.get("name") or name
        state.update(
            instanceId=str(int(_short_hash(name, length=15), 16)),
            networkInterfaces=[{**(state.get("networkInterfaces") or [{}])[0], "networkIp": "10.40.0.2"}],
        )
        return f"projects/{self.project}/zones/{state.get('zone')}/instances/{instance}"

    def _service_account(self, name: str, state: dict[str, Any]) -> str:
        email = f"{state.get('accountId', name)}@{self.project}.iam.gserviceaccount.com"
        state.update(email=email, member=f"serviceAccount:{email}", uniqueId=str(int(_short_hash(name, length=15), 16)))
        return f"projects/{self.project}/serviceAccounts/{email}"

    def _vpc_endpoint(self, name: str, state: dict[str, Any]) -> str:
        endpoint_id = f"vpce-{_short_hash(name)}"
        if state.get("vpcEndpointType") == "Gateway":
            # a gateway endpoint is a route to the service's prefix list
            state.update(prefixListId=f"pl-{_short_hash(name, length=8)}", cidrBlocks=["52.218.0.0/17"])
        else:
            service = str(state.get("serviceName", "")).rsplit(".", 1)[-1]
            state.update(
                dnsEntries=[{"dnsName": f"{endpoint_id}.{service}.{self.region}.vpce.amazonaws.com"}],
                networkInterfaceIds=[f"eni-{_short_hash(name, 'eni')}"],
            )
        state.update(arn=f"arn:aws:ec2:{self.region}:{ACCOUNT}:vpc-endpoint/{endpoint_id}", state="available")
        return endpoint_id

    def _custom_role(self, name: str, state: dict[str, Any]) -> str:
        role = f"projects/{state.get('project', self.project)}/roles/{state.get('roleId')}"
        state.update(name=role, deleted=False, stage=state.get("stage", "GA"))
        return role

    def _router_nat(self, name: str, state: dict[str, Any]) -> str:
        return f"{self.project}/{state.get('region')}/{state.get('router')}/{state.get('name')}"

    _STATE: dict[str, Callable[[ProjectMocks, str, dict[str, Any]], str]] = {
        "aws:ec2/vpc:Vpc": _vpc,
        "aws:ec2/subnet:Subnet": _subnet,
        "aws:ec2/securityGroup:SecurityGroup": _sg,
        "aws:kms/key:Key": _kms,
        "aws:secretsmanager/secret:Secret": _secret,
        "aws:secretsmanager/secretVersion:SecretVersion": _secret_version,
        "aws:rds/instance:Instance": _rds,
        "aws:rds/proxy:Proxy": _rds_proxy,
        "aws:rds/subnetGroup:SubnetGroup": _rds_named,
        "aws:rds/parameterGroup:ParameterGroup": _rds_named,
        "aws:rds/proxyDefaultTargetGroup:ProxyDefaultTargetGroup": lambda self, n, s: (
            s.update(name="default", arn=f"arn:aws:rds:{self.region}:{ACCOUNT}:target-group:prx-tg-{_short_hash(n)}")
            or str(s.get("dbProxyName"))
        ),
        "aws:rds/proxyTarget:ProxyTarget": lambda self, n, s: (
            f"{s.get('dbProxyName')},{s.get('targetGroupName')},RDS_INSTANCE,{s.get('dbInstanceIdentifier')}"
        ),
        "aws:ec2/instance:Instance": _ec2_instance,
        "aws:iam/role:Role": _iam_role,
        "aws:iam/instanceProfile:InstanceProfile": _instance_profile,
        "random:index/randomPassword:RandomPassword": _random_password,
        "random:index/randomId:RandomId": _random_id,
        "aws:ec2/routeTable:RouteTable": lambda self, n, s: f"rtb-{_short_hash(n)}",
        "aws:ec2/internetGateway:InternetGateway": lambda self, n, s: f"igw-{_short_hash(n)}",
        "aws:ec2/vpcEndpoint:VpcEndpoint": _vpc_endpoint,
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": lambda self, n, s: f"sgr-{_short_hash(n)}",
        "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": lambda self, n, s: f"sgr-{_short_hash(n)}",
        "aws:ec2/keyPair:KeyPair": _key_pair,
        "aws:cloudwatch/logGroup:LogGroup": _log_group,
        "gcp:sql/databaseInstance:DatabaseInstance": _sql_instance,
        "gcp:compute/network:Network": _gcp_path("networks", regional=False),
        "gcp:compute/subnetwork:Subnetwork": _gcp_path("subnetworks", regional=True),
        "gcp:compute/globalAddress:GlobalAddress": _global_address,
        "gcp:compute/address:Address": _address,
        "gcp:compute/firewall:Firewall": _gcp_path("firewalls", regional=False),
        "gcp:servicenetworking/connection:Connection": _psa_connection,
        "gcp:dns/managedZone:ManagedZone": _managed_zone,
        "gcp:dns/recordSet:RecordSet": _record_set,
        "gcp:sql/database:Database": lambda self, n, s: (
            f"projects/{self.project}/instances/{s.get('instance')}/databases/{s.get('name')}"
        ),
        "gcp:sql/user:User": lambda self, n, s: f"{s.get('name')}//{s.get('instance')}",
        "gcp:projects/iAMMember:IAMMember": _iam_member,
        "gcp:serviceaccount/iAMMember:IAMMember": _iam_member,
        "gcp:compute/instanceIAMMember:InstanceIAMMember": _iam_member,
        "gcp:iap/tunnelInstanceIAMMember:TunnelInstanceIAMMember": _iam_member,
        "gcp:secretmanager/secretIamMember:SecretIamMember": _iam_member,
        "gcp:compute/router:Router": _gcp_path("routers", regional=True),
        "gcp:compute/routerNat:RouterNat": _router_nat,
        "gcp:projects/iAMCustomRole:IAMCustomRole": _custom_role,
        "gcp:organizations/iAMMember:IAMMember": _iam_member,
        "gcp:secretmanager/secret:Secret": _gcp_secret,
        "gcp:secretmanager/secretVersion:SecretVersion": _gcp_secret_version,
        "gcp:compute/instance:Instance": _gcp_instance,
        "gcp:serviceaccount/account:Account": _service_account,
    }

    # -- invokes -----------------------------------------------------------------------------

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        function = args.token
        if function == "aws:index/getAvailabilityZones:getAvailabilityZones":
            names = [f"{self.region}{suffix}" for suffix in "abc"]
            return {"names": names, "zoneIds": [f"euw1-az{i}" for i in (1, 2, 3)], "id": self.region}, []
        if function == "aws:index/getRegion:getRegion":
            return {"name": self.region, "region": self.region, "id": self.region}, []
        if function == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}, []
        if function == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT,
                "arn": f"arn:aws:iam::{ACCOUNT}:user/ci",
                "userId": "AIDA",
                "id": ACCOUNT,
            }, []
        if function == "aws:ssm/getParameter:getParameter":
            return {
                "name": args.args.get("name"),
                "value": "ami-0f3c9c1d2e3a4b5c6",
                "type": "String",
                "id": args.args.get("name"),
            }, []
        if function == "aws:ec2/getVpc:getVpc":
            return {"id": args.args.get("id"), "cidrBlock": "10.20.0.0/16"}, []
        if function == "aws:iam/getPolicyDocument:getPolicyDocument":
            return {"json": '{"Version":"2012-10-17","Statement":[]}', "id": "policy"}, []
        if function == "gcp:compute/getZones:getZones":
            region = args.args.get("region", "europe-west1")
            return {"names": [f"{region}-b", f"{region}-c", f"{region}-d"], "id": region}, []
        if function == "gcp:organizations/getProject:getProject":
            return {"number": "123456789012", "projectId": self.project, "id": self.project}, []
        return dict(args.args), []
