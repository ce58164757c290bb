"""Buckets: imported by name, or created private, encrypted, TLS-only, versioned, retained."""

from __future__ import annotations

import re

from aws_cdk.assertions import Match


def test_created_buckets_are_private_encrypted_versioned_and_retained(template):
    buckets = template.find_resources(
        "AWS::S3::Bucket",
        {
            "Properties": {
                "BucketEncryption": {
                    "ServerSideEncryptionConfiguration": [
                        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                    ]
                },
                "PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": True,
                    "BlockPublicPolicy": True,
                    "IgnorePublicAcls": True,
                    "RestrictPublicBuckets": True,
                },
                "VersioningConfiguration": {"Status": "Enabled"},
                "LifecycleConfiguration": {
                    "Rules": [Match.object_like({"NoncurrentVersionExpiration": {"NoncurrentDays": 30}})]
                },
            },
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
        },
    )
    # Logical ids are the construct path plus a hash, which is not pinned here.
    assert sorted(re.sub(r"[0-9A-F]{8}$", "", logical_id) for logical_id in buckets) == [
        "IngestionBucket",
        "ProcessedBucket",
    ]


def test_created_buckets_refuse_plain_http(template):
    policies = template.find_resources(
        "AWS::S3::BucketPolicy",
        {
            "Properties": {
                "PolicyDocument": {
                    "Statement": Match.array_with(
                        [
                            Match.object_like(
                                {
                                    "Effect": "Deny",
                                    "Action": "s3:*",
                                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                                }
                            )
                        ]
                    )
                }
            }
        },
    )
    # The ingestion and processed buckets, and the Athena query results' (cdk_app/catalog.py).
    assert len(policies) == 3


def test_named_buckets_are_imported_not_created(synth):
    template = synth(ingestion_bucket="totes-ingestion", processed_bucket="totes-processed")
    # Only the Athena query results' bucket is the stack's own (cdk_app/catalog.py).
    (bucket,) = template.find_resources("AWS::S3::Bucket")
    assert bucket.startswith("CatalogQueryResults")
    template.resource_count_is("AWS::S3::BucketPolicy", 1)


def test_the_ingestion_role_may_put_packets_into_a_created_ingestion_bucket_only(template_json, synth):
    from tests.infra.conftest import FULL_CONTEXT, resources_of

    role = FULL_CONTEXT["ingestion_role_arn"]
    statements = [s for policy in resources_of(template_json, "AWS::S3::BucketPolicy").values()
                  for s in policy["Properties"]["PolicyDocument"]["Statement"] if s.get("Sid") == "IngestionWritesPackets"]
    (grant,) = statements
    assert grant["Principal"] == {"AWS": role} and grant["Action"] == "s3:PutObject"
    assert grant["Resource"]["Fn::Join"][1][0]["Fn::GetAtt"][0].startswith("IngestionBucket")
    imported = synth(ingestion_bucket="their-ingestion-bucket").to_json()
    assert "IngestionWritesPackets" not in str(imported)


def test_an_imported_buckets_kms_key_is_granted_to_the_function_role(synth):
    from tests.infra.conftest import policy_statements

    key = "arn:aws:kms:eu-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    template = synth(ingestion_bucket="their-ingestion-bucket", ingestion_bucket_kms_key_arn=key).to_json()
    assert {"Action": "kms:Decrypt", "Effect": "Allow", "Resource": key} in policy_statements(template)
