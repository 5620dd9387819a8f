"""The one module that talks to AWS through boto3: clients, and small, general S3 calls.

Every AWS failure becomes an :class:`~hpctool.errors.AwsError` that names the bucket or key and
says what to check.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ParamValidationError

from hpctool.errors import AwsError

_CREDENTIALS_HINT = "configure AWS credentials (aws configure, AWS_PROFILE or an instance role)"


def _error_code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def _wrap(exc: Exception, what: str, hint: str) -> AwsError:
    if isinstance(exc, ParamValidationError):  # refused by botocore before any request: a value of ours
        return AwsError(f"{what}: {exc}", "check the bucket, prefix, region or id given")
    if isinstance(exc, NoCredentialsError):
        return AwsError(f"{what}: no AWS credentials", _CREDENTIALS_HINT)
    code = _error_code(exc)
    if code in {"AccessDenied", "AccessDeniedException", "403"}:
        return AwsError(f"{what}: access denied", hint)
    detail = f"{code}: {exc}" if code else str(exc)
    return AwsError(f"{what}: {detail}", hint)


def client(service: str, region: str | None = None) -> Any:
    """A boto3 client (moto's mock applies, as for any boto3 client)."""
    try:
        return boto3.session.Session(region_name=region).client(service)
    except BotoCoreError as exc:  # a broken ~/.aws/config, an unknown region name
        raise _wrap(exc, f"cannot make an AWS {service} client", "check your AWS configuration and --region") from exc


def sha256_base64(data: bytes) -> str:
    """The SHA-256 of ``data`` in the base64 form S3's ChecksumSHA256 takes."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


class S3:
    """A few S3 calls on one client."""

    def __init__(self, region: str | None = None, s3_client: Any = None) -> None:
        self.client = s3_client if s3_client is not None else client("s3", region)

    def etags(self, bucket: str, prefix: str) -> dict[str, str]:
        """Key -> ETag (without quotes) of every object under ``prefix``."""
        found: dict[str, str] = {}
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    found[item["Key"]] = item["ETag"].strip('"')
        except (ClientError, BotoCoreError) as exc:
            raise _wrap(exc, f"s3://{bucket}/{prefix}: cannot list",
                        f"check that bucket {bucket} exists and that you may s3:ListBucket on it") from exc
        return found

    def get(self, bucket: str, key: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""
        try:
            return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if _error_code(exc) in {"NoSuchKey", "404"}:
                return None
            raise _wrap(exc, f"s3://{bucket}/{key}: cannot read", f"check s3:GetObject on bucket {bucket}") from exc
        except BotoCoreError as exc:
            raise _wrap(exc, f"s3://{bucket}/{key}: cannot read", f"check s3:GetObject on bucket {bucket}") from exc

    def put(self, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Upload ``data``; S3 checks it against its SHA-256 and refuses a corrupted upload."""
        try:
            self.client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type,
                                   ChecksumSHA256=sha256_base64(data))
        except (ClientError, BotoCoreError) as exc:
            raise _wrap(exc, f"s3://{bucket}/{key}: cannot upload", f"check s3:PutObject on bucket {bucket}") from exc


# -- prices (hpctool.cost) ---------------------------------------------------------------------
def price_list_products(service_code: str, filters: list[dict[str, str]],
                        pricing_client: Any = None) -> list[dict[str, Any]]:
    """Products of the Price List API matching ``filters``, each PriceList entry parsed from JSON.
    The API answers in us-east-1 (and two other regions), whatever region the prices are for."""
    pricing = pricing_client if pricing_client is not None else client("pricing", "us-east-1")
    found: list[dict[str, Any]] = []
    try:
        for page in pricing.get_paginator("get_products").paginate(
                ServiceCode=service_code, Filters=filters, FormatVersion="aws_v1"):
            found += [json.loads(item) if isinstance(item, str) else item for item in page.get("PriceList", [])]
    except (ClientError, BotoCoreError) as exc:
        raise _wrap(exc, f"Price List {service_code}: cannot read prices",
                    "you need pricing:GetProducts (no other permission); the API is in us-east-1") from exc
    return found


def spot_price_history(region: str, instance_types: list[str], start_time: Any,
                       product: str = "Linux/UNIX", ec2_client: Any = None) -> list[dict[str, Any]]:
    """EC2's spot price history since ``start_time``: ``{az, instance_type, price, timestamp}`` records."""
    ec2 = ec2_client if ec2_client is not None else client("ec2", region)
    records: list[dict[str, Any]] = []
    try:
        for page in ec2.get_paginator("describe_spot_price_history").paginate(
                InstanceTypes=instance_types, ProductDescriptions=[product], StartTime=start_time):
            records += [{"az": item["AvailabilityZone"], "instance_type": item["InstanceType"],
                         "price": float(item["SpotPrice"]), "timestamp": item["Timestamp"]}
                        for item in page.get("SpotPriceHistory", [])]
    except (ClientError, BotoCoreError) as exc:
        raise _wrap(exc, f"EC2 spot price history in {region}: cannot read",
                    "you need ec2:DescribeSpotPriceHistory in that region") from exc
    return records


# -- storage tiering (hpctool.cost.tiering) ------------------------------------------------------
def s3_objects(bucket: str, prefix: str = "", s3_client: Any = None) -> list[dict[str, Any]]:
    """Every object under ``prefix``: ``{key, size, last_modified, storage_class}``."""
    s3 = s3_client if s3_client is not None else client("s3")
    found: list[dict[str, Any]] = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            found += [{"key": item["Key"], "size": int(item["Size"]), "last_modified": item["LastModified"],
                       "storage_class": item.get("StorageClass", "STANDARD")} for item in page.get("Contents", [])]
    except (ClientError, BotoCoreError) as exc:
        raise _wrap(exc, f"s3://{bucket}/{prefix}: cannot list",
                    f"check that bucket {bucket} exists and that you may s3:ListBucket on it") from exc
    return found


def put_s3_lifecycle(bucket: str, rules: list[dict[str, Any]],
                     intelligent_tiering: dict[str, Any] | None = None, s3_client: Any = None) -> None:
    """Replace the bucket's lifecycle rules; set its Intelligent-Tiering archive configuration too."""
    s3 = s3_client if s3_client is not None else client("s3")
    try:
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
        if intelligent_tiering is not None:
            s3.put_bucket_intelligent_tiering_configuration(
                Bucket=bucket, Id=intelligent_tiering["Id"], IntelligentTieringConfiguration=intelligent_tiering)
    except (ClientError, BotoCoreError) as exc:
        raise _wrap(exc, f"s3://{bucket}: cannot set the lifecycle",
                    "you need s3:PutLifecycleConfiguration and s3:PutIntelligentTieringConfiguration") from exc


def s3_lifecycle_rules(bucket: str, s3_client: Any = None) -> list[dict[str, Any]]:
    """The bucket's lifecycle rules (empty when it has none)."""
    s3 = s3_client if s3_client is not None else client("s3")
    try:
        return s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    except ClientError as exc:
        if _error_code(exc) == "NoSuchLifecycleConfiguration":
            return []
        raise _wrap(exc, f"s3://{bucket}: cannot read the lifecycle", "you need s3:GetLifecycleConfiguration") from exc
    except BotoCoreError as exc:
        raise _wrap(exc, f"s3://{bucket}: cannot read the lifecycle", "check the network and the region") from exc


def put_efs_lifecycle(file_system_id: str, policies: list[dict[str, str]], region: str | None = None,
                      efs_client: Any = None) -> list[dict[str, str]]:
    """Set an EFS file system's lifecycle policies; return what EFS now holds."""
    efs = efs_client if efs_client is not None else client("efs", region)
    try:
        return efs.put_lifecycle_configuration(FileSystemId=file_system_id,
                                               LifecyclePolicies=policies)["LifecyclePolicies"]
    except (ClientError, BotoCoreError) as exc:
        raise _wrap(exc, f"EFS {file_system_id}: cannot set the lifecycle",
                    "check the file system id and elasticfilesystem:PutLifecycleConfiguration") from exc


# -- a local stand-in for AWS: the twin's moto server (hpctool.twin.ec2) --------------------------
# Fixed dummy credentials (moto accepts any; not a secret): a local endpoint must never be sent
# the user's real ones.
_LOCAL_CREDENTIALS = {"aws_access_key_id": "hpctool-twin", "aws_secret_access_key": "hpctool-twin"}  # nosec B105


def local_credentials_env() -> dict[str, str]:
    """The same dummy credentials as environment variables, for another process (ParallelCluster's
    daemons) that talks to the local stand-in."""
    return {"AWS_ACCESS_KEY_ID": _LOCAL_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": _LOCAL_CREDENTIALS["aws_secret_access_key"]}


def local_client(service: str, endpoint_url: str, region: str) -> Any:
    """A client of a local AWS stand-in at ``endpoint_url`` (moto in server mode)."""
    try:
        return boto3.session.Session(region_name=region, **_LOCAL_CREDENTIALS).client(
            service, endpoint_url=endpoint_url)
    except BotoCoreError as exc:
        raise _wrap(exc, f"cannot make a {service} client for {endpoint_url}", "check the endpoint's address") from exc


def _local_hint(ec2: Any) -> str:
    return f"is the twin's EC2 endpoint ({ec2.meta.endpoint_url}) running? see its log (hpctool.twin.ec2)"


def ensure_vpc_subnet(ec2: Any, vpc_cidr: str, subnet_cidr: str, tags: dict[str, str]) -> tuple[str, str]:
    """The VPC with ``vpc_cidr`` and its subnet ``subnet_cidr`` (made when missing): their ids."""
    def tagged(kind: str) -> dict[str, Any]:  # EC2 refuses an empty tag specification
        return {"TagSpecifications": [{"ResourceType": kind, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]
                } if tags else {}

    try:
        vpcs = ec2.describe_vpcs(Filters=[{"Name": "cidr", "Values": [vpc_cidr]}])["Vpcs"]
        vpc_id = vpcs[0]["VpcId"] if vpcs else ec2.create_vpc(CidrBlock=vpc_cidr, **tagged("vpc"))["Vpc"]["VpcId"]
        subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                                                {"Name": "cidr-block", "Values": [subnet_cidr]}])["Subnets"]
        subnet_id = subnets[0]["SubnetId"] if subnets else ec2.create_subnet(
            VpcId=vpc_id, CidrBlock=subnet_cidr, **tagged("subnet"))["Subnet"]["SubnetId"]
    except (ClientError, BotoCoreError) as exc:
        raise _wrap(exc, f"cannot make the VPC {vpc_cidr} and subnet {subnet_cidr}", _local_hint(ec2)) from exc
    return vpc_id, subnet_id


def first_image_id(ec2: Any) -> str:
    """An AMI the endpoint knows (moto ships Amazon's): launch templates need one."""
    try:
        images = ec2.describe_images(Owners=["amazon"])["Images"]
    except (ClientError, BotoCoreError) as exc:
        raise _wrap(exc, "cannot list AMIs", _local_hint(ec2)) from exc
    if not images:
        raise AwsError(f"{ec2.meta.endpoint_url} knows no Amazon AMI", "use moto, which ships Amazon's AMIs")
    return min(image["ImageId"] for image in images)


def ensure_launch_template(ec2: Any, name: str, data: dict[str, Any]) -> str:
    """The launch template ``name`` (created with ``data`` when missing): its id."""
    try:
        found = ec2.describe_launch_templates(Filters=[{"Name": "launch-template-name", "Values": [name]}])
        if found["LaunchTemplates"]:
            return found["LaunchTemplates"][0]["LaunchTemplateId"]
        return ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData=data)[
            "LaunchTemplate"]["LaunchTemplateId"]
    except (ClientError, BotoCoreError) as exc:
        raise _wrap(exc, f"cannot make the launch template {name}", _local_hint(ec2)) from exc


def ensure_instance(ec2: Any, *, image_id: str, instance_type: str, subnet_id: str, address: str,
                    tags: dict[str, str]) -> str:
    """A running instance at ``address`` with ``tags`` (launched when none has them): its id."""
    filters = [{"Name": f"tag:{k}", "Values": [v]} for k, v in tags.items()] + [
        {"Name": "private-ip-address", "Values": [address]},
        {"Name": "instance-state-name", "Values": ["pending", "running"]}]
    try:
        for reservation in ec2.describe_instances(Filters=filters)["Reservations"]:
            for instance in reservation["Instances"]:
                return str(instance["InstanceId"])
        launched = ec2.run_instances(
            ImageId=image_id, InstanceType=instance_type, MinCount=1, MaxCount=1, SubnetId=subnet_id,
            PrivateIpAddress=address,
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}])
    except (ClientError, BotoCoreError) as exc:
        raise _wrap(exc, f"cannot launch the instance at {address}", _local_hint(ec2)) from exc
    return str(launched["Instances"][0]["InstanceId"])


def describe_instances(ec2: Any, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every instance matching ``filters`` (DescribeInstances, all pages)."""
    try:
        return [instance for page in ec2.get_paginator("describe_instances").paginate(Filters=filters)
                for reservation in page["Reservations"] for instance in reservation["Instances"]]
    except (ClientError, BotoCoreError) as exc:
        raise _wrap(exc, "cannot describe instances", "check the EC2 endpoint and ec2:DescribeInstances") from exc


def ensure_dynamodb_table(dynamodb: Any, name: str, hash_key: str, indexes: tuple[str, ...] = ()) -> None:
    """A pay-per-request table keyed on the string ``hash_key``, with a global secondary index
    (projecting everything) per name in ``indexes``, keyed on the attribute of that name."""
    definitions = [{"AttributeName": key, "AttributeType": "S"} for key in (hash_key, *indexes)]
    options: dict[str, Any] = {}
    if indexes:
        options["GlobalSecondaryIndexes"] = [
            {"IndexName": index, "KeySchema": [{"AttributeName": index, "KeyType": "HASH"}],
             "Projection": {"ProjectionType": "ALL"}} for index in indexes]
    try:
        dynamodb.create_table(TableName=name, AttributeDefinitions=definitions,
                              KeySchema=[{"AttributeName": hash_key, "KeyType": "HASH"}],
                              BillingMode="PAY_PER_REQUEST", **options)
    except ClientError as exc:
        if _error_code(exc) != "ResourceInUseException":  # there already: what we wanted
            raise _wrap(exc, f"cannot make the DynamoDB table {name}", "check the DynamoDB endpoint") from exc
    except BotoCoreError as exc:
        raise _wrap(exc, f"cannot make the DynamoDB table {name}", "check the DynamoDB endpoint") from exc


def put_dynamodb_item(dynamodb: Any, table: str, item: dict[str, Any], condition: dict[str, Any] | None = None) -> None:
    """PutItem of ``item`` in DynamoDB's typed form (``{"Id": {"S": "..."}}``); ``condition``:
    PutItem's ConditionExpression and its names and values (refused: an AwsError naming
    ConditionalCheckFailedException)."""
    try:
        dynamodb.put_item(TableName=table, Item=item, **(condition or {}))
    except (ClientError, BotoCoreError) as exc:
        raise _wrap(exc, f"cannot write an item to the DynamoDB table {table}", "check the DynamoDB endpoint") from exc


def get_dynamodb_item(dynamodb: Any, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
    """The item with ``key`` (typed form) read consistently, or None."""
    try:
        return dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
    except (ClientError, BotoCoreError) as exc:
        raise _wrap(exc, f"cannot read the DynamoDB table {table}", "check the DynamoDB endpoint") from exc


def update_dynamodb_item(dynamodb: Any, table: str, key: dict[str, Any], update: dict[str, Any]) -> dict[str, Any] | None:
    """UpdateItem of the item with ``key`` (typed form); ``update``: UpdateExpression, its names and
    values and an optional ConditionExpression. The item as it now is (typed form), or None when the
    condition failed: another writer changed the item first, which the caller decides about."""
    try:
        return dynamodb.update_item(TableName=table, Key=key, ReturnValues="ALL_NEW", **update).get("Attributes", {})
    except ClientError as exc:
        if _error_code(exc) == "ConditionalCheckFailedException":
            return None
        raise _wrap(exc, f"cannot update an item of the DynamoDB table {table}", "check the DynamoDB endpoint") from exc
    except BotoCoreError as exc:
        raise _wrap(exc, f"cannot update an item of the DynamoDB table {table}", "check the DynamoDB endpoint") from exc


def plain_dynamodb_value(typed: dict[str, Any]) -> Any:
    """A value in DynamoDB's typed form (``{"M": {"status": {"S": "RUNNING"}}}``) as plain Python
    (numbers become Decimal, as boto3's resource API gives them)."""
    from boto3.dynamodb.types import TypeDeserializer

    return TypeDeserializer().deserialize(typed)


def scan_dynamodb_items(dynamodb: Any, table: str, attributes: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Every item of ``table`` (typed form; only ``attributes`` when given), all pages. A full scan:
    for the twin's small tables, not for a cluster's."""
    options: dict[str, Any] = {}
    if attributes:
        options["ProjectionExpression"] = ", ".join(f"#a{i}" for i in range(len(attributes)))
        options["ExpressionAttributeNames"] = {f"#a{i}": name for i, name in enumerate(attributes)}
    try:
        return [item for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True, **options)
                for item in page.get("Items", [])]
    except (ClientError, BotoCoreError) as exc:
        raise _wrap(exc, f"cannot read the DynamoDB table {table}", "check the DynamoDB endpoint") from exc


# ParallelCluster's own filters for its compute instances (InstanceManager.get_cluster_instances in
# aws-parallelcluster-node): the cluster's name tag and the Compute node type.
def cluster_compute_instances(ec2: Any, cluster: str, states: tuple[str, ...]) -> list[dict[str, Any]]:
    """The compute instances of ParallelCluster cluster ``cluster`` in ``states`` (DescribeInstances'
    instance dicts)."""
    return describe_instances(ec2, [{"Name": "tag:parallelcluster:cluster-name", "Values": [cluster]},
                                    {"Name": "tag:parallelcluster:node-type", "Values": ["Compute"]},
                                    {"Name": "instance-state-name", "Values": list(states)}])
