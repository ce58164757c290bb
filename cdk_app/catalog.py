"""Direct queries (docs/design.md#catalog): the Glue Data Catalog over the processed
bucket, the Athena views under the warehouse's names, a workgroup and the analysts'
policy.

- A Glue database, and for each output table a Glue table `{table}_packets`
  (`EXTERNAL_TABLE`, Parquet, no partitions) over `s3://<processed>/{table}/`: every row
  of every packet, `*_time` as bigint microseconds since midnight.
- For each output table a view named as in the warehouse, stored as Athena stores one
  (a `VIRTUAL_VIEW` table holding `/* Presto View: <base64> */`), whose SQL presents the
  table as the loaded warehouse holds it (cdk_app/athena_views.py).
- An Athena workgroup (engine version 3, which reads the views' Trino SQL) whose results
  go to a bucket of their own, encrypted, expired after a while; the workgroup's
  settings override a client's.
- A managed policy analysts attach: read the database, its tables and views, the
  tables' prefixes in the processed bucket (never `_state/`, `_pending/`, `_commits/`,
  `_quarantine/` or any other `_` prefix), run queries in the workgroup and keep their
  results in its bucket.

All of it is generated from the table declaration; nothing is written per table.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Aws, Duration, Stack, Validations
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from cdk_app.athena_views import LakeTable, lake_tables, presto_view_text

_PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
_PARQUET_INPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
_PARQUET_OUTPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
ENGINE_VERSION = "Athena engine version 3"
RESULTS_KEPT_DAYS = 30

_QUERY_ACTIONS = [
    "athena:StartQueryExecution", "athena:StopQueryExecution", "athena:GetQueryExecution",
    "athena:BatchGetQueryExecution", "athena:ListQueryExecutions", "athena:GetQueryResults",
    "athena:GetQueryRuntimeStatistics", "athena:GetWorkGroup",
]  # fmt: skip
_METADATA_ACTIONS = [
    "athena:GetDataCatalog", "athena:ListDatabases", "athena:GetDatabase",
    "athena:ListTableMetadata", "athena:GetTableMetadata",
]  # fmt: skip
# GetPartition(s): Athena may look a table's partitions up; these tables have none to read.
_GLUE_ACTIONS = [
    "glue:GetDatabase", "glue:GetDatabases", "glue:GetTable", "glue:GetTables", "glue:GetPartition",
    "glue:GetPartitions",
]  # fmt: skip


def database_name(stage: str) -> str:
    """Glue database names are lower case; Athena's SQL wants no '-' in them."""
    return f"totesys_{stage}".replace("-", "_")


def workgroup_name(stage: str) -> str:
    return f"totesys-{stage}"


class Catalog(Construct):
    """The Glue database, tables and views over `processed`, and the way analysts query it."""

    def __init__(self, scope: Construct, construct_id: str, *, stage: str, processed: s3.IBucket) -> None:
        super().__init__(scope, construct_id)
        self.database_name = database_name(stage)
        self.tables = lake_tables()

        self.database = glue.CfnDatabase(
            self, "Database",
            catalog_id=Aws.ACCOUNT_ID,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=self.database_name,
                description="Totesys warehouse tables as Parquet packets ({table}_packets) and, under the "
                "warehouse's own names, views giving the loaded warehouse's answers (docs/warehouse.md)",
            ),
        )  # fmt: skip
        for table in self.tables:
            _packets_table(self, table, database=self.database, processed=processed)
            _view(self, table, database=self.database, name=self.database_name)

        self.results = _results_bucket(self)
        self.workgroup = athena.CfnWorkGroup(
            self, "WorkGroup",
            name=workgroup_name(stage),
            description="Analysts' queries of the totesys warehouse views",
            state="ENABLED",
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                engine_version=athena.CfnWorkGroup.EngineVersionProperty(selected_engine_version=ENGINE_VERSION),
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=f"s3://{self.results.bucket_name}/",
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_S3"
                    ),
                ),
            ),
        )  # fmt: skip
        self.analyst_policy = self._analyst_policy(processed)

    def _analyst_policy(self, processed: s3.IBucket) -> iam.ManagedPolicy:
        """Written out: `Bucket.grant_read` would add object versions and every table's
        `_` prefixes, and Glue and Athena L1 constructs have no grants."""
        stack = Stack.of(self)
        workgroup = stack.format_arn(service="athena", resource="workgroup", resource_name=self.workgroup.name)
        data_catalog = stack.format_arn(service="athena", resource="datacatalog", resource_name="AwsDataCatalog")
        glue_arn = lambda resource: stack.format_arn(service="glue", resource=resource)  # noqa: E731
        names = [t.packets_table for t in self.tables] + [t.name for t in self.tables]
        prefixes = [f"{t.name}/" for t in self.tables]
        policy = iam.ManagedPolicy(
            self, "AnalystPolicy",
            description=f"Query the {self.database_name} views and tables with Athena "
            f"(workgroup {self.workgroup.name}); attach to analysts' roles or groups",
            statements=[
                iam.PolicyStatement(sid="RunQueries", actions=_QUERY_ACTIONS, resources=[workgroup]),
                iam.PolicyStatement(sid="ReadAthenaMetadata", actions=_METADATA_ACTIONS, resources=[data_catalog]),
                iam.PolicyStatement(
                    sid="ReadCatalog",
                    actions=_GLUE_ACTIONS,
                    resources=[
                        glue_arn("catalog"),
                        glue_arn(f"database/{self.database_name}"),
                        *(glue_arn(f"table/{self.database_name}/{name}") for name in names),
                    ],
                ),
                iam.PolicyStatement(
                    sid="ListTablePrefixes",
                    actions=["s3:ListBucket"],
                    resources=[processed.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": [p + suffix for p in prefixes for suffix in ("", "*")]}},
                ),
                iam.PolicyStatement(sid="LocateBuckets", actions=["s3:GetBucketLocation"],
                                    resources=[processed.bucket_arn, self.results.bucket_arn]),
                iam.PolicyStatement(
                    sid="ReadTablePackets",
                    actions=["s3:GetObject"],
                    resources=[processed.arn_for_objects(p + "*") for p in prefixes],
                ),
                iam.PolicyStatement(sid="ListResults", actions=["s3:ListBucket", "s3:ListBucketMultipartUploads"],
                                    resources=[self.results.bucket_arn]),
                iam.PolicyStatement(
                    sid="KeepResults",
                    actions=["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
                    resources=[self.results.arn_for_objects("*")],
                ),
            ],
        )  # fmt: skip
        for prefix in prefixes:
            _acknowledge(policy, _objects_finding(processed, prefix + "*"),
                         f"Packet keys under {prefix} are {prefix}<table>_packet_<n>_processed_<timestamp>"
                         ".parquet, made at run time (docs/design.md#keys); only the table's own prefix, "
                         "never a '_' one.")  # fmt: skip
        _acknowledge(policy, _objects_finding(self.results, "*"),
                     "Athena names each result object after its query id, at run time; the bucket holds nothing "
                     "but the workgroup's query results.")  # fmt: skip
        return policy


def _packets_table(scope: Construct, table: LakeTable, *, database: glue.CfnDatabase, processed: s3.IBucket) -> None:
    glue.CfnTable(
        scope, f"{_pascal(table.name)}Packets",
        catalog_id=Aws.ACCOUNT_ID,
        database_name=database.ref,
        table_input=glue.CfnTable.TableInputProperty(
            name=table.packets_table,
            description=f"Every row of every {table.name} packet, as written: not the warehouse's "
            f"{table.name} (query the view {table.name} for that)",
            table_type="EXTERNAL_TABLE",
            parameters={"classification": "parquet", "EXTERNAL": "TRUE"},
            partition_keys=[],
            storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                location=f"s3://{processed.bucket_name}/{table.name}/",
                input_format=_PARQUET_INPUT,
                output_format=_PARQUET_OUTPUT,
                serde_info=glue.CfnTable.SerdeInfoProperty(
                    serialization_library=_PARQUET_SERDE, parameters={"serialization.format": "1"}
                ),
                columns=[
                    glue.CfnTable.ColumnProperty(name=c.name, type=c.glue_type, comment=table.column_comment(c))
                    for c in table.columns
                ],
            ),
        ),
    )  # fmt: skip


def _view(scope: Construct, table: LakeTable, *, database: glue.CfnDatabase, name: str) -> None:
    glue.CfnTable(
        scope, f"{_pascal(table.name)}View",
        catalog_id=Aws.ACCOUNT_ID,
        database_name=database.ref,
        table_input=glue.CfnTable.TableInputProperty(
            name=table.name,
            description=f"The warehouse's {table.name}: "
            + ("every version of every row" if table.key is None else f"the latest row per {table.key}"),
            table_type="VIRTUAL_VIEW",
            parameters={"presto_view": "true", "comment": "Presto View"},
            view_original_text=presto_view_text(table.view_sql(), database=name, columns=table.columns),
            view_expanded_text="/* Presto View */",
            partition_keys=[],
            storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                columns=[glue.CfnTable.ColumnProperty(name=c.name, type=c.trino_type) for c in table.columns],
                serde_info=glue.CfnTable.SerdeInfoProperty(),
            ),
        ),
    )  # fmt: skip


def _results_bucket(scope: Construct) -> s3.Bucket:
    bucket = s3.Bucket(
        scope, "QueryResults",
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        lifecycle_rules=[
            s3.LifecycleRule(
                id="ExpireQueryResults",
                expiration=Duration.days(RESULTS_KEPT_DAYS),
                abort_incomplete_multipart_upload_after=Duration.days(1),
            )
        ],
    )  # fmt: skip
    _acknowledge(bucket, "AwsSolutions-S1",
                 "Query results only, expired after a month: who ran which query is in Athena's query "
                 "history and CloudTrail, not in server access logs.")  # fmt: skip
    return bucket


def _acknowledge(construct: Construct, finding: str, reason: str) -> None:
    rule = finding if finding.startswith("AwsSolutions-") else f"AwsSolutions-IAM5[{finding}]"
    Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=reason))


def _objects_finding(bucket: s3.IBucket, pattern: str) -> str:
    """How cdk-nag names the resource `<bucket ARN>/<pattern>` in a finding."""
    cfn_bucket = bucket.node.default_child
    if isinstance(cfn_bucket, s3.CfnBucket):
        return f"Resource::<{Stack.of(bucket).resolve(cfn_bucket.logical_id)}.Arn>/{pattern}"
    return f"Resource::arn:<AWS::Partition>:s3:::{bucket.bucket_name}/{pattern}"


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))
