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
