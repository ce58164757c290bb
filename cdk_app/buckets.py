"""The ingestion and processed buckets: imported by name, or created when not given."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct


def data_bucket(scope: Construct, construct_id: str, *, bucket_name: str | None) -> s3.IBucket:
    """An existing bucket by name, or a new one that is private, encrypted and kept.

    A created bucket is versioned: the processed bucket's objects are immutable by
    design, so a version only appears when something else overwrites or deletes one,
    and then it is the way back. The processor's own deletions (its `_pending/` marks)
    leave noncurrent versions and delete markers, which a lifecycle rule expires.
    """
    if bucket_name is not None:
        return s3.Bucket.from_bucket_name(scope, construct_id, bucket_name)
    bucket = s3.Bucket(
        scope,
        construct_id,
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        versioned=True,
        lifecycle_rules=[
            s3.LifecycleRule(
                id="ExpireOldVersions",
                noncurrent_version_expiration=Duration.days(30),
                expired_object_delete_marker=True,
                abort_incomplete_multipart_upload_after=Duration.days(7),
            )
        ],
        # The data outlives the stack: deleting the stack must not delete the warehouse's input.
        removal_policy=RemovalPolicy.RETAIN,
    )
    Validations.of(bucket).acknowledge(
        Acknowledgment(
            id="AwsSolutions-S1",
            reason="Server access logs are not kept: the only writer is the processing "
            "function, which logs every object it writes and records each packet in a commit "
            "record; account-wide CloudTrail data events are the audit trail for other access.",
        )
    )
    return bucket


def grant_ingestion_writes(bucket: s3.IBucket, role_arn: str) -> None:
    """Let the ingestion role write packets into a bucket this stack created
    (docs/ingestion.md): `s3:PutObject` on its objects, by the bucket's policy.

    An imported bucket's policy is its owner's: this adds nothing there, and
    docs/ingestion.md says what that owner must grant.
    """
    bucket.add_to_resource_policy(
        iam.PolicyStatement(
            sid="IngestionWritesPackets",
            principals=[iam.ArnPrincipal(role_arn)],
            actions=["s3:PutObject"],
            resources=[bucket.arn_for_objects("*")],
        )
    )


def grant_key_use(function, key_arn: str, *, write: bool) -> None:
    """Let the function use an imported bucket's SSE-KMS key: Decrypt to read, and
    GenerateDataKey to write (docs/ingestion.md)."""
    actions = ["kms:Decrypt", "kms:GenerateDataKey"] if write else ["kms:Decrypt"]
    function.add_to_role_policy(iam.PolicyStatement(actions=actions, resources=[key_arn]))
