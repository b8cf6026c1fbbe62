"""Benign CloudTrail background: four weeks of a small company's AWS account, deterministic
for a seed, to mix real attack records into (``bench/eval_anomaly.py``).

The account (``ACCOUNT``) has about twenty-five principals:

- IAM users: developers, operations, finance and data people in two offices (Berlin,
  UTC+1, and New York, UTC-5; the default four weeks start on Monday 2025-02-03, before
  either clock changes). They work in sessions during business hours with a lunch dip, a
  little on weekends (operations on call more than others), each from one to three usual
  addresses (office, home, VPN) with stable tools (console, aws-cli, boto3, terraform).
  Console users sign in with MFA first. One engineer joins on day 15 (operations creates
  the user the day before): a new principal that is not an attack.
- ``ci-deploy``: a GitHub Actions role (web identity, then AssumedRole) that deploys on
  weekdays from many runner addresses.
- ``monitoring-readonly``: a monitoring integration polling Describe/List/Get every five
  minutes around the clock.
- two Lambda execution roles (cold starts: secrets, KMS, log streams; S3 objects).

About 1–2 % of people's calls fail, mostly AccessDenied. Records carry the fields real
CloudTrail records carry (``eventVersion``, ``userIdentity``, ``requestParameters``,
``responseElements``, ``eventID``, ``readOnly``, ``eventType``, ``recipientAccountId``,
``errorCode``/``errorMessage`` on failures, ``resources`` on S3 data events).

``python bench/cloudtrail_background.py [--days 28] [--seed 0] [--out FILE]`` writes them as
``{"Records": [...]}`` (what CloudTrail delivers to S3) and prints a summary.
"""

from __future__ import annotations

import argparse
import random
import sys
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

ACCOUNT = "314159265358"
START = datetime(2025, 2, 3, tzinfo=UTC)  # a Monday, 00:00 UTC
HOME_REGION = "eu-central-1"
US_REGION = "us-east-1"
MFA_SERIAL = f"arn:aws:iam::{ACCOUNT}:mfa/"

BUCKETS = ("acme-prod-assets", "acme-build-artifacts", "acme-data-lake",
           "acme-finance-reports", "acme-logs-archive", "acme-tfstate")
FUNCTIONS = ("orders-api", "thumbnailer", "invoice-mailer", "nightly-etl")
INSTANCES = ("i-0a3f9c2e71b45d810", "i-0b77e1d2c94a3f521", "i-0c19d5e8a2f6b7340",
             "i-0d4e2a9b81c7f6053", "i-0e8b3c6d2a1f97c44", "i-0f2a7d9e4b6c18d95")
DB_INSTANCES = ("orders-db", "analytics-db")
LOG_GROUPS = tuple(f"/aws/lambda/{f}" for f in FUNCTIONS) + (
    "/ecs/web", "/aws/rds/instance/orders-db/postgresql")
ROLES = ("ci-deploy", "monitoring-readonly", "orders-api-role", "thumbnailer-role",
         "data-analyst", "OrganizationAccountAccessRole")
SECURITY_GROUPS = ("sg-0a1b2c3d4e5f60718", "sg-0f9e8d7c6b5a40312", "sg-03c5e7a9b1d2f4e68")
SECRETS = ("prod/orders/db", "prod/stripe/api-key", "prod/mailer/smtp")
PARAMETERS = ("/prod/orders/db-host", "/prod/web/feature-flags")
KMS_KEY = f"arn:aws:kms:{HOME_REGION}:{ACCOUNT}:key/6f1c2b3a-9d8e-4f70-a1b2-c3d4e5f60718"

CONSOLE_UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/121.0.0.0 Safari/537.36",
              "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
              "Gecko) Version/17.2.1 Safari/605.1.15",
              "Mozilla/5.0 (X11; Linux x86_64; rv:122.0) Gecko/20100101 Firefox/122.0")
CLI_UA = ("aws-cli/2.15.17 Python/3.11.6 Darwin/23.2.0 exe/x86_64 prompt/off command/{cmd}",
          "aws-cli/2.15.10 Python/3.11.6 Linux/6.5.0-15-generic exe/x86_64.ubuntu.22 "
          "prompt/off command/{cmd}")
BOTO_UA = ("Boto3/1.34.34 md/Botocore#1.34.34 ua/2.0 os/macos#23.2.0 md/arch#arm64 "
           "lang/python#3.11.7 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.34")
TERRAFORM_UA = ("APN/1.0 HashiCorp/1.0 Terraform/1.7.2 (+https://www.terraform.io) "
                "terraform-provider-aws/5.35.0 (+https://registry.terraform.io/providers/"
                "hashicorp/aws) aws-sdk-go-v2/1.24.1 os/{os} lang/go#1.21.6 md/GOOS#{goos} "
                "md/GOARCH#amd64 api/{api}")
MONITOR_UA = ("aws-sdk-go/1.50.8 (go1.21.6; linux; amd64) exec-env/monitoring-agent")
LAMBDA_UA = ("Boto3/1.34.23 md/Botocore#1.34.23 ua/2.0 os/linux#5.10.205-215.807.amzn2.x86_64 "
             "md/arch#x86_64 lang/python#3.11.6 md/pyimpl#CPython exec-env/AWS_Lambda_python3.11 "
             "cfg/retry-mode#legacy Botocore/1.34.23")
CI_UA = ("aws-cli/2.15.17 Python/3.11.6 Linux/6.2.0-1019-azure exe/x86_64.ubuntu.22 "
         "prompt/off command/{cmd}")


# --- what each call looks like ---------------------------------------------------------------

def _pick(rng: random.Random, values: tuple[str, ...]) -> str:
    return values[rng.randrange(len(values))]


def _instance_params(rng):
    return {"instancesSet": {"items": [{"instanceId": _pick(rng, INSTANCES)}]},
            "filterSet": {}}


# "service:EventName" -> (readOnly, request parameters, response elements)
API: dict[str, tuple[bool, Any, Any]] = {
    "ec2:DescribeInstances": (True, lambda r: {"instancesSet": {}, "filterSet": {
        "items": [{"name": "instance-state-name", "valueSet": {"items": [{"value": "running"}]}}]}},
        None),
    "ec2:DescribeInstanceStatus": (True, lambda r: {"instancesSet": {}, "filterSet": {},
                                                    "includeAllInstances": False}, None),
    "ec2:DescribeSecurityGroups": (True, lambda r: {"securityGroupSet": {}, "securityGroupIdSet": {
        "items": [{"groupId": _pick(r, SECURITY_GROUPS)}]}, "filterSet": {}}, None),
    "ec2:DescribeVpcs": (True, lambda r: {"vpcSet": {}, "filterSet": {}}, None),
    "ec2:DescribeSubnets": (True, lambda r: {"subnetSet": {}, "filterSet": {}}, None),
    "ec2:DescribeVolumes": (True, lambda r: {"volumeSet": {}, "filterSet": {}}, None),
    "ec2:DescribeImages": (True, lambda r: {"executableBySet": {}, "imagesSet": {},
                                            "ownersSet": {"items": [{"owner": "self"}]}}, None),
    "ec2:DescribeRegions": (True, lambda r: {"regionSet": {}}, None),
    "ec2:StartInstances": (False, _instance_params, lambda r: {"instancesSet": {"items": [
        {"currentState": {"code": 0, "name": "pending"}}]}}),
    "ec2:StopInstances": (False, lambda r: dict(_instance_params(r), force=False), None),
    "ec2:CreateTags": (False, lambda r: {"resourcesSet": {"items": [
        {"resourceId": _pick(r, INSTANCES)}]}, "tagSet": {"items": [
            {"key": "owner", "value": "platform"}]}}, lambda r: {"_return": True}),
    "s3:ListBuckets": (True, lambda r: {"Host": "s3.amazonaws.com"}, None),
    "s3:GetBucketLocation": (True, lambda r: {"bucketName": _pick(r, BUCKETS), "location": ""},
                             None),
    "s3:GetBucketPolicy": (True, lambda r: {"bucketName": _pick(r, BUCKETS), "policy": ""}, None),
    "s3:ListObjects": (True, lambda r: {"bucketName": _pick(r, BUCKETS), "prefix": "",
                                        "list-type": "2"}, None),
    "s3:GetObject": (True, None, None),  # data events: built by _s3_object
    "s3:PutObject": (False, None, None),
    "iam:ListUsers": (True, lambda r: {"maxItems": 100}, None),
    "iam:ListRoles": (True, lambda r: {"maxItems": 100}, None),
    "iam:GetRole": (True, lambda r: {"roleName": _pick(r, ROLES)}, None),
    "iam:ListAttachedRolePolicies": (True, lambda r: {"roleName": _pick(r, ROLES)}, None),
    "iam:GetUser": (True, lambda r: {}, None),
    "iam:ListAccessKeys": (True, lambda r: {}, None),
    "iam:ListPolicies": (True, lambda r: {"scope": "Local", "onlyAttached": False}, None),
    "iam:GetAccountSummary": (True, lambda r: None, None),
    "sts:GetCallerIdentity": (True, lambda r: None, None),
    "sts:AssumeRole": (False, None, None),  # built by _assume_role
    "lambda:ListFunctions20150331": (True, lambda r: None, None),
    "lambda:GetFunction20150331v2": (True, lambda r: {"functionName": _pick(r, FUNCTIONS)}, None),
    "lambda:GetFunctionConfiguration20150331v2": (
        True, lambda r: {"functionName": _pick(r, FUNCTIONS)}, None),
    "lambda:UpdateFunctionCode20150331v2": (
        False, lambda r: {"functionName": _pick(r, FUNCTIONS), "publish": True,
                          "s3Bucket": "acme-build-artifacts"}, None),
    "lambda:UpdateFunctionConfiguration20150331v2": (
        False, lambda r: {"functionName": _pick(r, FUNCTIONS), "timeout": r.choice((30, 60)),
                          "memorySize": r.choice((256, 512, 1024))}, None),
    "lambda:PublishVersion20150331": (False, lambda r: {"functionName": _pick(r, FUNCTIONS)},
                                      None),
    "monitoring:GetMetricData": (True, lambda r: {"startTime": "", "endTime": "",
                                                  "metricDataQueries": [{"id": "m1"}]}, None),
    "monitoring:DescribeAlarms": (True, lambda r: {"stateValue": r.choice(("ALARM", "OK"))},
                                  None),
    "monitoring:ListMetrics": (True, lambda r: {"namespace": r.choice(
        ("AWS/EC2", "AWS/Lambda", "AWS/RDS"))}, None),
    "monitoring:PutMetricAlarm": (False, lambda r: {"alarmName": "orders-api-5xx",
                                                    "threshold": 5.0}, None),
    "logs:DescribeLogGroups": (True, lambda r: {"limit": 50}, None),
    "logs:DescribeLogStreams": (True, lambda r: {"logGroupName": _pick(r, LOG_GROUPS),
                                                 "orderBy": "LastEventTime",
                                                 "descending": True}, None),
    "logs:FilterLogEvents": (True, lambda r: {"logGroupName": _pick(r, LOG_GROUPS),
                                              "filterPattern": "ERROR"}, None),
    "logs:GetLogEvents": (True, lambda r: {"logGroupName": _pick(r, LOG_GROUPS),
                                           "logStreamName": "2025/02/03/[$LATEST]9c2e71b4"},
                          None),
    "logs:StartQuery": (True, lambda r: {"logGroupName": _pick(r, LOG_GROUPS),
                                         "queryString": "fields @timestamp, @message"}, None),
    "logs:CreateLogStream": (False, lambda r: {"logGroupName": _pick(r, LOG_GROUPS),
                                               "logStreamName": f"{r.getrandbits(32):08x}"},
                             None),
    "rds:DescribeDBInstances": (True, lambda r: {"dBInstanceIdentifier": _pick(r, DB_INSTANCES)},
                                None),
    "rds:DescribeDBSnapshots": (True, lambda r: {"dBInstanceIdentifier": _pick(r, DB_INSTANCES)},
                                None),
    "rds:DescribeDBClusters": (True, lambda r: {}, None),
    "rds:CreateDBSnapshot": (False, lambda r: {"dBInstanceIdentifier": "orders-db",
                                               "dBSnapshotIdentifier": f"orders-db-manual-"
                                                                       f"{r.randrange(1000):03d}"},
                             None),
    "ssm:DescribeInstanceInformation": (True, lambda r: {"maxResults": 50}, None),
    "ssm:GetParameter": (True, lambda r: {"name": _pick(r, PARAMETERS), "withDecryption": False},
                         None),
    "ssm:StartSession": (False, lambda r: {"target": _pick(r, INSTANCES)}, None),
    "ssm:TerminateSession": (False, lambda r: {"sessionId": f"ops-{r.getrandbits(40):010x}"},
                             None),
    "secretsmanager:GetSecretValue": (True, lambda r: {"secretId": _pick(r, SECRETS)}, None),
    "secretsmanager:ListSecrets": (True, lambda r: {}, None),
    "secretsmanager:DescribeSecret": (True, lambda r: {"secretId": _pick(r, SECRETS)}, None),
    "kms:Decrypt": (True, lambda r: {"encryptionAlgorithm": "SYMMETRIC_DEFAULT"}, None),
    "ce:GetCostAndUsage": (True, lambda r: {"granularity": "MONTHLY",
                                            "metrics": ["UnblendedCost"]}, None),
    "ce:GetCostForecast": (True, lambda r: {"granularity": "MONTHLY",
                                            "metric": "UNBLENDED_COST"}, None),
    "budgets:DescribeBudgets": (True, lambda r: {"accountId": ACCOUNT}, None),
}
GLOBAL = {"iam", "ce", "budgets"}  # logged in us-east-1
IAM_ADMIN = ("iam:CreateUser", "iam:CreateLoginProfile", "iam:AddUserToGroup",
             "iam:CreateAccessKey")

# Tasks: (weight, steps); a step is "service:EventName" or (name, min, max) repeated.
DEV_TASKS = [
    (6, [("logs:DescribeLogStreams", 1, 3), ("logs:FilterLogEvents", 1, 6),
         ("logs:GetLogEvents", 0, 4)]),
    (4, ["lambda:ListFunctions20150331", ("lambda:GetFunction20150331v2", 1, 3),
         ("lambda:GetFunctionConfiguration20150331v2", 0, 2)]),
    (2, ["lambda:GetFunction20150331v2", "lambda:UpdateFunctionCode20150331v2",
         "lambda:GetFunctionConfiguration20150331v2"]),
    (1, ["lambda:GetFunctionConfiguration20150331v2",
         "lambda:UpdateFunctionConfiguration20150331v2"]),
    (4, ["s3:ListBuckets", ("s3:ListObjects", 1, 4), ("s3:GetObject", 0, 5)]),
    (2, [("s3:ListObjects", 1, 2), ("s3:PutObject", 1, 4)]),
    (4, [("ec2:DescribeInstances", 1, 3), ("ec2:DescribeSecurityGroups", 0, 2),
         ("ec2:DescribeSubnets", 0, 1)]),
    (2, [("monitoring:GetMetricData", 1, 4), ("monitoring:DescribeAlarms", 0, 2)]),
    (2, ["sts:GetCallerIdentity"]),
    (1, [("rds:DescribeDBInstances", 1, 2), "rds:DescribeDBSnapshots"]),
    (1, ["logs:StartQuery", ("logs:DescribeLogGroups", 0, 1)]),
    (1, ["ssm:GetParameter"]),
    (1, ["secretsmanager:DescribeSecret"]),
    (1, ["iam:GetRole", "iam:ListAttachedRolePolicies"]),
]
OPS_TASKS = [
    (5, [("ec2:DescribeInstances", 1, 4), ("ec2:DescribeInstanceStatus", 0, 2),
         ("ec2:DescribeVolumes", 0, 2)]),
    (3, [("ec2:DescribeSecurityGroups", 1, 3), "ec2:DescribeVpcs", "ec2:DescribeSubnets"]),
    (3, ["ssm:DescribeInstanceInformation", "ssm:StartSession", "ssm:TerminateSession"]),
    (3, [("iam:ListUsers", 1, 1), ("iam:ListRoles", 0, 1), ("iam:GetRole", 0, 3),
         ("iam:ListAttachedRolePolicies", 0, 2), ("iam:ListAccessKeys", 0, 1)]),
    (3, [("monitoring:DescribeAlarms", 1, 3), ("monitoring:GetMetricData", 1, 5)]),
    (1, ["monitoring:PutMetricAlarm"]),
    (3, [("logs:DescribeLogGroups", 1, 2), ("logs:FilterLogEvents", 1, 4)]),
    (2, [("rds:DescribeDBInstances", 1, 3), ("rds:DescribeDBSnapshots", 0, 2),
         "rds:DescribeDBClusters"]),
    (1, ["rds:DescribeDBInstances", "rds:CreateDBSnapshot"]),
    (1, ["ec2:DescribeInstances", "ec2:StopInstances"]),
    (1, ["ec2:DescribeInstances", "ec2:StartInstances"]),
    (1, ["ec2:CreateTags"]),
    (2, ["s3:ListBuckets", "s3:GetBucketLocation", "s3:GetBucketPolicy"]),
    (1, ["secretsmanager:ListSecrets", "secretsmanager:DescribeSecret"]),
    (1, ["sts:GetCallerIdentity", "iam:GetAccountSummary"]),
    (1, ["ec2:DescribeImages", "ec2:DescribeRegions"]),
]
FINANCE_TASKS = [
    (6, [("ce:GetCostAndUsage", 1, 6), ("ce:GetCostForecast", 0, 2)]),
    (3, ["budgets:DescribeBudgets"]),
    (3, ["s3:ListBuckets", ("s3:ListObjects", 1, 2), ("s3:GetObject", 1, 3)]),
]
DATA_TASKS = [
    (5, [("s3:ListObjects", 1, 3), ("s3:GetObject", 1, 8)]),
    (2, [("s3:PutObject", 1, 3)]),
    (2, [("rds:DescribeDBInstances", 1, 1), ("monitoring:GetMetricData", 0, 2)]),
    (2, [("logs:StartQuery", 1, 2), ("logs:GetLogEvents", 0, 2)]),
    (1, ["lambda:GetFunction20150331v2", "lambda:GetFunctionConfiguration20150331v2"]),
    (1, ["sts:GetCallerIdentity"]),
]
TASKS = {"dev": DEV_TASKS, "ops": OPS_TASKS, "finance": FINANCE_TASKS, "data": DATA_TASKS}


# --- the cast --------------------------------------------------------------------------------

@dataclass
class Person:
    name: str
    job: str  # dev, ops, finance, data
    offset: int  # hours from UTC of their office
    ips: list[str]
    ip_weights: list[float]
    tools: list[str]  # console, cli, boto3, terraform
    tool_weights: list[float]
    sessions: float  # mean sessions per working day
    region: str
    joins_day: int = 0
    ua: dict[str, str] = field(default_factory=dict)
    key_id: str = ""
    principal_id: str = ""

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{ACCOUNT}:user/{self.name}"

    def identity(self, tool: str | None = None) -> dict[str, Any]:
        """The ``userIdentity`` of this user's calls (console calls use a session key)."""
        ident: dict[str, Any] = {"type": "IAMUser", "principalId": self.principal_id,
                                 "arn": self.arn, "accountId": ACCOUNT,
                                 "accessKeyId": self.key_id, "userName": self.name}
        if tool == "console":
            ident["accessKeyId"] = "ASIA" + self.key_id[4:]
            ident["sessionContext"] = {"sessionIssuer": {}, "webIdFederationData": {},
                                       "attributes": {"creationDate": "", "mfaAuthenticated":
                                                      "true"}}
        return ident


BERLIN_OFFICE = "85.214.37.10"
NEW_YORK_OFFICE = "64.72.210.6"
VPN = ("52.29.77.14", "3.124.16.201")


def _id(rng: random.Random, prefix: str, n: int = 16) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    return prefix + "".join(alphabet[rng.randrange(32)] for _ in range(n))


def people(seed: int = 0) -> list[Person]:
    """The account's IAM users, the same for a seed."""
    rng = random.Random(f"people-{seed}")
    cast = [("alice", "dev", 1), ("bruno", "dev", 1), ("chen", "dev", 1), ("dana", "dev", 1),
            ("emil", "dev", 1), ("farah", "dev", 1), ("grace", "dev", -5), ("hiro", "dev", -5),
            ("isabel", "dev", -5), ("jamal", "dev", -5), ("kofi", "ops", 1), ("lena", "ops", 1),
            ("marco", "ops", -5), ("nadia", "ops", -5), ("olga", "finance", 1),
            ("pete", "finance", -5), ("quinn", "finance", -5), ("rosa", "data", 1),
            ("sam", "data", -5), ("tomas", "dev", 1)]
    out = []
    for name, job, offset in cast:
        office = BERLIN_OFFICE if offset == 1 else NEW_YORK_OFFICE
        home = (f"91.{rng.randrange(32, 64)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
                if offset == 1 else
                f"73.{rng.randrange(64, 192)}.{rng.randrange(256)}.{rng.randrange(1, 255)}")
        n_ips = rng.choice((1, 2, 2, 3, 3))
        ips = [office, home, VPN[0] if offset == 1 else VPN[1]][:n_ips]
        ip_weights = [0.7, 0.2, 0.1][:n_ips]
        if job == "finance":
            tools, weights = ["console"], [1.0]
        elif job == "data":
            tools, weights = ["boto3", "console"], [0.7, 0.3]
        elif job == "ops":
            tools = ["cli", "console"] + (["terraform"] if rng.random() < 0.6 else [])
            weights = [0.6, 0.25, 0.15][:len(tools)]
        else:
            tools = rng.choice((["cli", "console"], ["cli", "boto3"], ["cli", "terraform"],
                                ["console", "cli", "boto3"]))
            weights = [0.6, 0.3, 0.1][:len(tools)]
        p = Person(name, job, offset, ips, ip_weights, tools, weights,
                   sessions={"dev": 2.5, "ops": 3.0, "finance": 1.2, "data": 2.0}[job],
                   region=HOME_REGION if offset == 1 or rng.random() < 0.5 else US_REGION,
                   joins_day=14 if name == "tomas" else 0)
        p.ua = {"console": _pick(rng, CONSOLE_UA), "cli": _pick(rng, CLI_UA),
                "boto3": BOTO_UA, "terraform": TERRAFORM_UA.format(
                    os="macos" if rng.random() < 0.5 else "linux",
                    goos="darwin" if rng.random() < 0.5 else "linux", api="{api}")}
        p.key_id = _id(rng, "AKIA")
        p.principal_id = _id(rng, "AIDA", 17)
        out.append(p)
    return out


def developer_identities(seed: int = 0) -> list[dict[str, Any]]:
    """``userIdentity`` of each developer present from day one (for insider scenarios)."""
    return [p.identity() for p in people(seed) if p.job == "dev" and not p.joins_day]


# --- the records -----------------------------------------------------------------------------

class _Writer:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.records: list[dict[str, Any]] = []

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def add(self, when: datetime, identity: dict[str, Any], api: str, ip: str, agent: str,
            region: str, *, params: Any = ..., response: Any = ..., error: tuple | None = None,
            resources: list | None = None, read_only: bool | None = None,
            event_type: str = "AwsApiCall", extra: dict | None = None) -> dict[str, Any]:
        service, name = api.split(":")
        ro, make_params, make_response = API.get(api, (False, None, None))
        if params is ...:
            params = make_params(self.rng) if make_params else None
        if response is ...:
            response = make_response(self.rng) if make_response else None
        record: dict[str, Any] = {
            "eventVersion": "1.09" if event_type == "AwsApiCall" else "1.08",
            "userIdentity": identity,
            "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventSource": f"{service}.amazonaws.com",
            "eventName": name,
            "awsRegion": US_REGION if service in GLOBAL else region,
            "sourceIPAddress": ip,
            "userAgent": agent,
        }
        if error:
            record["errorCode"], record["errorMessage"] = error
        record["requestParameters"] = params
        record["responseElements"] = None if error else response
        if extra:
            record.update(extra)
        record["requestID"] = self.uuid()
        record["eventID"] = self.uuid()
        record["readOnly"] = ro if read_only is None else read_only
        if resources:
            record["resources"] = resources
        record["eventType"] = event_type
        record["managementEvent"] = not resources
        record["recipientAccountId"] = ACCOUNT
        record["eventCategory"] = "Data" if resources else "Management"
        if event_type == "AwsApiCall":
            record["tlsDetails"] = {"tlsVersion": "TLSv1.3",
                                    "cipherSuite": "TLS_AES_128_GCM_SHA256",
                                    "clientProvidedHostHeader": f"{service}.{record['awsRegion']}"
                                                                ".amazonaws.com"}
        self.records.append(record)
        return record


def _denied(identity: dict[str, Any], api: str) -> tuple[str, str]:
    service, name = api.split(":")
    action = f"{service if service != 'monitoring' else 'cloudwatch'}:{name}"
    for suffix in ("20150331v2", "20150331"):
        action = action.removesuffix(suffix)
    message = (f"User: {identity['arn']} is not authorized to perform: {action} because no "
               "identity-based policy allows the action")
    if service == "ec2":
        return "Client.UnauthorizedOperation", "You are not authorized to perform this operation."
    return "AccessDenied", message


def _s3_object(w: _Writer, when, identity, api, ip, agent, region, bucket=None, error=None):
    rng = w.rng
    bucket = bucket or _pick(rng, BUCKETS)
    key = rng.choice(("reports/2025/01/summary.csv", "builds/web-{}.zip", "images/{}.jpg",
                      "exports/orders-{}.parquet", "raw/events/{}.json.gz")).format(
        rng.randrange(100000))
    params = {"bucketName": bucket, "Host": f"{bucket}.s3.{region}.amazonaws.com", "key": key}
    resources = [{"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"},
                 {"accountId": ACCOUNT, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"}]
    extra = {"additionalEventData": {"SignatureVersion": "SigV4", "bytesTransferredIn":
                                     rng.randrange(0, 5_000_000) if api == "s3:PutObject" else 0,
                                     "x-amz-id-2": w.uuid()}}
    w.add(when, identity, api, ip, agent, region, params=params, resources=resources,
          error=error, extra=extra)


def _person_session(w: _Writer, p: Person, start: datetime) -> None:
    rng = w.rng
    tool = rng.choices(p.tools, p.tool_weights)[0]
    ip = rng.choices(p.ips, p.ip_weights)[0]
    identity = p.identity(tool)
    region = p.region if rng.random() < 0.85 else (US_REGION if p.region == HOME_REGION
                                                   else HOME_REGION)
    t = start
    if tool == "console":
        w.add(t, {"type": "IAMUser", "principalId": p.principal_id, "arn": p.arn,
                  "accountId": ACCOUNT, "userName": p.name}, "signin:ConsoleLogin", ip,
              p.ua["console"], US_REGION, params=None,
              response={"ConsoleLogin": "Success"}, read_only=False,
              event_type="AwsConsoleSignIn",
              extra={"additionalEventData": {
                  "LoginTo": "https://console.aws.amazon.com/console/home",
                  "MobileVersion": "No", "MFAIdentifier": MFA_SERIAL + p.name,
                  "MFAUsed": "Yes"}})
        t += timedelta(seconds=rng.randrange(5, 40))
    for _ in range(max(1, int(rng.expovariate(1 / 3.0)) + 1)):
        weight, steps = zip(*TASKS[p.job], strict=True)
        for step in rng.choices(steps, weight)[0]:
            api, lo, hi = (step, 1, 1) if isinstance(step, str) else step
            for _ in range(rng.randint(lo, hi)):
                service, name = api.split(":")
                agent = p.ua[tool]
                if tool == "cli":
                    agent = agent.format(cmd=f"{service}.{name[:1].lower()}{name[1:]}")
                elif tool == "terraform":
                    agent = agent.replace("{api}", f"{service}#1.0")
                failure = None
                write = not API.get(api, (True,))[0]
                if rng.random() < (0.04 if write else 0.008):
                    failure = _denied(identity, api)
                elif rng.random() < 0.004:
                    failure = ("ResourceNotFoundException", "The requested resource was not "
                               "found") if service != "iam" else (
                        "NoSuchEntityException", "The role with name deploy-old cannot be found.")
                if api in ("s3:GetObject", "s3:PutObject"):
                    bucket = ("acme-finance-reports" if p.job == "finance" else
                              "acme-data-lake" if p.job == "data" else None)
                    _s3_object(w, t, identity, api, ip, agent, region, bucket, failure)
                else:
                    w.add(t, identity, api, ip, agent, region, error=failure)
                t += timedelta(seconds=rng.randrange(2, 25) if tool != "console"
                               else rng.randrange(4, 90))
        t += timedelta(seconds=rng.randrange(60, 900))


def _onboard(w: _Writer, admin: Person, newcomer: Person, when: datetime) -> None:
    ip, agent = admin.ips[0], admin.ua["console"]
    identity = admin.identity("console")
    for api, params, response in (
            ("iam:CreateUser", {"userName": newcomer.name},
             {"user": {"userName": newcomer.name, "userId": newcomer.principal_id,
                       "arn": newcomer.arn, "path": "/"}}),
            ("iam:CreateLoginProfile", {"userName": newcomer.name,
                                        "passwordResetRequired": True}, None),
            ("iam:AddUserToGroup", {"groupName": "developers", "userName": newcomer.name}, None),
            ("iam:CreateAccessKey", {"userName": newcomer.name},
             {"accessKey": {"userName": newcomer.name, "accessKeyId": newcomer.key_id,
                            "status": "Active"}})):
        w.add(when, identity, api, ip, agent, US_REGION, params=params, response=response,
              read_only=False)
        when += timedelta(seconds=w.rng.randrange(20, 120))


def _role_identity(role: str, session: str, key: str) -> dict[str, Any]:
    return {"type": "AssumedRole", "principalId": f"AROA{key[4:]}:{session}",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}",
            "accountId": ACCOUNT, "accessKeyId": "ASIA" + key[4:],
            "sessionContext": {"sessionIssuer": {
                "type": "Role", "principalId": f"AROA{key[4:]}",
                "arn": f"arn:aws:iam::{ACCOUNT}:role/{role}", "accountId": ACCOUNT,
                "userName": role}, "webIdFederationData": {},
                "attributes": {"creationDate": "", "mfaAuthenticated": "false"}}}


def _deploy(w: _Writer, when: datetime, key: str) -> None:
    rng = w.rng
    ip = f"{rng.choice((20, 40, 52, 172))}.{rng.randrange(256)}.{rng.randrange(256)}." \
         f"{rng.randrange(1, 255)}"  # a GitHub-hosted runner
    repo = rng.choice(("acme/web", "acme/orders-api", "acme/infra"))
    role_arn = f"arn:aws:iam::{ACCOUNT}:role/ci-deploy"
    w.add(when, {"type": "WebIdentityUser", "principalId":
                 f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com:"
                 f"sts.amazonaws.com:repo:{repo}:ref:refs/heads/main",
                 "userName": f"repo:{repo}:ref:refs/heads/main",
                 "identityProvider": f"arn:aws:iam::{ACCOUNT}:oidc-provider/"
                                     "token.actions.githubusercontent.com"},
          "sts:AssumeRoleWithWebIdentity", ip, "aws-sdk-nodejs/2.1554.0 linux/v20.11.0 "
          "configure-aws-credentials-for-github-actions", HOME_REGION,
          params={"roleArn": role_arn, "roleSessionName": "GitHubActions",
                  "durationSeconds": 3600},
          response={"assumedRoleUser": {"assumedRoleId": f"AROA{key[4:]}:GitHubActions",
                                        "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/"
                                               "ci-deploy/GitHubActions"}},
          read_only=True)
    identity = _role_identity("ci-deploy", "GitHubActions", key)
    t = when + timedelta(seconds=rng.randrange(3, 10))
    if repo == "acme/infra":
        steps = ["sts:GetCallerIdentity", "s3:GetObject", "iam:GetRole",
                 "iam:ListAttachedRolePolicies", "ec2:DescribeSecurityGroups",
                 "ec2:DescribeVpcs", "ec2:DescribeSubnets", "lambda:GetFunction20150331v2",
                 "logs:DescribeLogGroups", "rds:DescribeDBInstances", "s3:PutObject"]
        agent = TERRAFORM_UA.format(os="linux", goos="linux", api="{api}")
    else:
        fn = "orders-api" if repo == "acme/orders-api" else "thumbnailer"
        steps = ["sts:GetCallerIdentity", "s3:PutObject", f"lambda:UpdateFunctionCode:{fn}",
                 f"lambda:GetFunctionConfiguration:{fn}", f"lambda:PublishVersion:{fn}",
                 "logs:CreateLogStream"]
        agent = CI_UA
    for step in steps:
        parts = step.split(":")
        api = ":".join(parts[:2])
        params = ...
        if len(parts) == 3:
            api = {"lambda:UpdateFunctionCode": "lambda:UpdateFunctionCode20150331v2",
                   "lambda:GetFunctionConfiguration":
                       "lambda:GetFunctionConfiguration20150331v2",
                   "lambda:PublishVersion": "lambda:PublishVersion20150331"}[api]
            params = {"functionName": parts[2]}
        service, name = api.split(":")
        ua = (agent.replace("{api}", f"{service}#1.0") if "{api}" in agent
              else agent.format(cmd=f"{service}.{name[:1].lower()}{name[1:]}"))
        error = _denied(identity, api) if rng.random() < 0.01 else None
        if api in ("s3:GetObject", "s3:PutObject"):
            _s3_object(w, t, identity, api, ip, ua, HOME_REGION,
                       "acme-tfstate" if repo == "acme/infra" else "acme-build-artifacts")
        else:
            w.add(t, identity, api, ip, ua, HOME_REGION, params=params, error=error)
        t += timedelta(seconds=rng.randrange(1, 20))


def _monitoring(w: _Writer, start: datetime, days: int, key: str) -> None:
    rng = w.rng
    identity = _role_identity("monitoring-readonly", "monitoring-integration", key)
    ips = ("3.121.64.17", "3.121.64.18", "18.196.5.230")
    polls = [("monitoring:GetMetricData", 1), ("ec2:DescribeInstances", 1),
             ("rds:DescribeDBInstances", 2), ("lambda:ListFunctions20150331", 3),
             ("monitoring:DescribeAlarms", 3), ("s3:ListBuckets", 12),
             ("ec2:DescribeVolumes", 12), ("logs:DescribeLogGroups", 12),
             ("iam:GetAccountSummary", 72), ("ec2:DescribeSecurityGroups", 12)]
    for tick in range(days * 288):
        t = start + timedelta(minutes=5 * tick, seconds=rng.randrange(0, 20))
        ip = ips[(tick // 288) % 3] if rng.random() < 0.9 else _pick(rng, ips)
        for api, every in polls:
            if tick % every == 0:
                region = US_REGION if api == "rds:DescribeDBInstances" and tick % 4 else \
                    HOME_REGION
                w.add(t, identity, api, ip, MONITOR_UA, region)
                t += timedelta(milliseconds=rng.randrange(150, 2500))


def _lambdas(w: _Writer, start: datetime, days: int) -> None:
    rng = w.rng
    for fn, role, rate in (("orders-api", "orders-api-role", 2.0),
                           ("thumbnailer", "thumbnailer-role", 1.0)):
        key = _id(rng, "AKIA")
        identity = _role_identity(role, fn, key)
        hours = days * 24
        for hour in range(hours):
            when = start + timedelta(hours=hour)
            local = (when.hour + 1) % 24
            busy = 1.0 if 7 <= local <= 22 else 0.3
            ip = f"3.{rng.randrange(64, 80)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
            for _ in range(_poisson(rng, rate * busy)):  # cold starts
                t = when + timedelta(seconds=rng.randrange(3600))
                w.add(t, identity, "logs:CreateLogStream", ip, "lambda.amazonaws.com",
                      HOME_REGION, params={"logGroupName": f"/aws/lambda/{fn}",
                                           "logStreamName": f"{t:%Y/%m/%d}/[$LATEST]"
                                                            f"{rng.getrandbits(64):016x}"})
                t += timedelta(milliseconds=rng.randrange(100, 900))
                if fn == "orders-api":
                    w.add(t, identity, "secretsmanager:GetSecretValue", ip, LAMBDA_UA,
                          HOME_REGION, params={"secretId": "prod/orders/db"})
                w.add(t, identity, "kms:Decrypt", ip, "lambda.amazonaws.com", HOME_REGION,
                      params={"encryptionAlgorithm": "SYMMETRIC_DEFAULT"},
                      resources=None, extra={"additionalEventData": {"keyArn": KMS_KEY}})
            for _ in range(_poisson(rng, 3 * rate * busy)):
                t = when + timedelta(seconds=rng.randrange(3600))
                api = "s3:PutObject" if fn == "thumbnailer" or rng.random() < 0.3 \
                    else "s3:GetObject"
                _s3_object(w, t, identity, api, ip, LAMBDA_UA, HOME_REGION, "acme-prod-assets")


def _poisson(rng: random.Random, lam: float) -> int:
    n, t = 0, rng.expovariate(1.0) if lam > 0 else float("inf")
    while t < lam:
        n += 1
        t += rng.expovariate(1.0)
    return n


def _work_starts(rng: random.Random, p: Person, day: datetime, index: int) -> list[datetime]:
    """Session start times (UTC) of a person on a day: business hours in their own zone,
    fewer at lunch, few on weekends (operations on call more)."""
    weekend = day.weekday() >= 5
    mean = p.sessions * (0.25 if weekend and p.job == "ops" else 0.06 if weekend else 1.0)
    if not weekend and rng.random() < 0.06:  # a day off
        mean = 0.0
    starts = []
    for _ in range(_poisson(rng, mean)):
        if weekend:
            local = rng.uniform(9, 22)
        else:
            local = rng.choices((rng.uniform(8, 12), rng.uniform(12, 13.5),
                                 rng.uniform(13.5, 18.5), rng.uniform(18.5, 23)),
                                (0.42, 0.05, 0.45, 0.08))[0]
        starts.append(day + timedelta(hours=local - p.offset))
    return sorted(starts)


def generate(days: int = 28, seed: int = 0, start: datetime = START) -> list[dict[str, Any]]:
    """Benign CloudTrail records of ``days`` days from ``start`` (UTC), ordered by
    ``eventTime``; the same records for the same arguments."""
    rng = random.Random(f"background-{seed}")
    w = _Writer(rng)
    cast = people(seed)
    _monitoring(w, start, days, _id(rng, "AKIA"))
    _lambdas(w, start, days)
    ci_key = _id(rng, "AKIA")
    by_name = {p.name: p for p in cast}
    for d in range(days):
        day = start + timedelta(days=d)
        if day.weekday() < 5:
            for _ in range(rng.randint(2, 8)):
                office = rng.choice((1, -5))
                hour = rng.uniform(9, 18.5) - office
                _deploy(w, day + timedelta(hours=hour), ci_key)
        for i, p in enumerate(cast):
            if d < p.joins_day:
                continue
            for t in _work_starts(rng, p, day, i):
                _person_session(w, p, t)
        newcomer = next((p for p in cast if p.joins_day and p.joins_day == d + 1), None)
        if newcomer:
            _onboard(w, by_name["kofi"], newcomer, day + timedelta(hours=15 - 1, minutes=12))
    end = start + timedelta(days=days)
    stamp = end.strftime("%Y-%m-%dT%H:%M:%SZ")
    records = [r for r in w.records if r["eventTime"] < stamp]
    records.sort(key=lambda r: r["eventTime"])  # stable: same-second calls keep their order
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write {\"Records\": [...]} to this file")
    args = parser.parse_args(argv)
    records = generate(args.days, args.seed)
    if args.out:
        import orjson
        with open(args.out, "wb") as f:
            f.write(orjson.dumps({"Records": records}))
    per_day = Counter(r["eventTime"][:10] for r in records)
    actors = Counter(r["userIdentity"].get("arn") or r["userIdentity"].get("userName")
                     for r in records)
    print(f"{len(records)} records, {len(actors)} principals, "
          f"{min(per_day.values())}–{max(per_day.values())} per day")
    for name, n in Counter(f"{r['eventSource'].split('.')[0]}.{r['eventName']}"
                           for r in records).most_common(15):
        print(f"  {n:6d}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
