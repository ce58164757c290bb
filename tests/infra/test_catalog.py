"""The Glue Data Catalog the stack declares for direct queries (docs/design.md#catalog):
a database, a Parquet table `{table}_packets` per output table over its prefix, a view
per output table under the warehouse's name, an Athena workgroup and the analysts'
policy.

moto's CloudFormation skips `AWS::Glue::*`, so the template's database and tables are
created through moto's Glue API as CloudFormation would pass them, read back, and every
declared column is checked against the Parquet the pipeline writes (the real handler
over moto): name, order, and the type Athena (Trino) reads the Parquet column as. That
the views' SQL gives the warehouse's answers is tests/warehouse/test_views.py.
"""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest

from cdk_app.athena_views import ATHENA_CATALOG, decode_presto_view, lake_tables
from cdk_app.catalog import ENGINE_VERSION, database_name, workgroup_name
from runtime import handler
from runtime.tables import OUTPUT_TABLES, SOURCE_TABLES
from sandbox.seed import LocalStack, create_resources, fixture_lines, upload_packet
from tests.conftest import Aws
from tests.infra.conftest import actions_of, resources_of

TABLES = {t.name: t for t in lake_tables()}
DATABASE = database_name("dev")  # cdk.json's stage
ACCOUNT = "123456789012"  # moto's
FACT_ROWS = 300  # of each fact source: enough for every column, quick to process


def _glue_tables(template_json: dict, table_type: str) -> dict[str, dict]:
    return {
        r["Properties"]["TableInput"]["Name"]: r["Properties"]
        for r in resources_of(template_json, "AWS::Glue::Table").values()
        if r["Properties"]["TableInput"]["TableType"] == table_type
    }


def test_one_database_with_a_packets_table_and_a_view_per_output_table(template_json):
    (database,) = resources_of(template_json, "AWS::Glue::Database").values()
    assert database["Properties"]["DatabaseInput"]["Name"] == DATABASE
    assert sorted(_glue_tables(template_json, "EXTERNAL_TABLE")) == sorted(f"{t}_packets" for t in OUTPUT_TABLES)
    assert sorted(_glue_tables(template_json, "VIRTUAL_VIEW")) == sorted(OUTPUT_TABLES)
    assert len(resources_of(template_json, "AWS::Glue::Table")) == 2 * len(OUTPUT_TABLES) == 22


# -- through moto's Glue API ------------------------------------------------------------


def _resolver(template_json: dict, processed_bucket: str):
    refs: dict[str, str] = {"AWS::AccountId": ACCOUNT, "AWS::Partition": "aws", "AWS::Region": "eu-west-2"}
    for logical_id, resource in template_json["Resources"].items():
        if resource["Type"] == "AWS::Glue::Database":
            refs[logical_id] = resource["Properties"]["DatabaseInput"]["Name"]
        elif resource["Type"] == "AWS::S3::Bucket" and logical_id.startswith("ProcessedBucket"):
            refs[logical_id] = processed_bucket

    def resolve(value: Any) -> Any:
        if isinstance(value, list):
            return [resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Ref"}:
            return refs[value["Ref"]]
        if set(value) == {"Fn::Join"}:
            separator, parts = value["Fn::Join"]
            return separator.join(resolve(p) for p in parts)
        assert not any(k.startswith("Fn::") for k in value), f"unexpected intrinsic in {value}"
        return {k: resolve(v) for k, v in value.items()}

    return resolve


@pytest.fixture(scope="module")
def catalog_and_packets(moto, template_json):
    """The template's Glue resources created in moto, as CloudFormation would, and the
    pipeline's Parquet for every output table (one packet of each source table)."""
    with pytest.MonkeyPatch.context() as env:
        moto.reset()
        names = LocalStack()
        for key, value in {**moto.env(), **names.env(), "LOG_LEVEL": "WARNING"}.items():
            env.setenv(key, value)
        handler.reset()
        aws = Aws(boto3.client("s3"), boto3.client("ssm"), names)
        create_resources(aws.s3, aws.ssm, names)
        yield _catalog_and_packets(aws, template_json)
        handler.reset()


def _catalog_and_packets(aws: Aws, template_json: dict):
    glue = boto3.client("glue")
    resolve = _resolver(template_json, aws.names.processed_bucket)
    for resource in resources_of(template_json, "AWS::Glue::Database").values():
        props = resolve(resource["Properties"])
        glue.create_database(CatalogId=props["CatalogId"], DatabaseInput=props["DatabaseInput"])
    for resource in resources_of(template_json, "AWS::Glue::Table").values():
        props = resolve(resource["Properties"])
        glue.create_table(
            CatalogId=props["CatalogId"], DatabaseName=props["DatabaseName"], TableInput=props["TableInput"]
        )

    facts = {"sales_order", "purchase_order", "payment"}
    for source in SOURCE_TABLES:
        lines = fixture_lines(source.name)
        lines = lines[:FACT_ROWS] if source.name in facts else lines
        upload_packet(aws.s3, aws.names.ingestion_bucket, source.name, 1, lines)
    result = handler.lambda_handler({"packets": [{"table": s.name, "id": 1} for s in SOURCE_TABLES]}, None)
    assert result["status"] == "succeeded", result
    return glue, aws


def _trino_reads_as(column: pq.ColumnSchema) -> str:
    """The Hive/Glue type under which Trino's Parquet reader accepts a column as written
    (Trino reads TIME(MICROS) as its int64 value: bigint; trinodb/trino#16362)."""
    logical = json.loads(column.logical_type.to_json())
    kind = logical["Type"]
    if kind == "Decimal" and column.physical_type in ("INT32", "INT64", "FIXED_LEN_BYTE_ARRAY"):
        return f"decimal({logical['precision']},{logical['scale']})"
    readable = {
        ("BOOLEAN", "None"): "boolean",
        ("INT32", "None"): "int",
        ("INT32", "Date"): "date",
        ("BYTE_ARRAY", "String"): "string",
    }
    if (column.physical_type, kind) == ("INT64", "Time") and logical["timeUnit"] == "microseconds":
        return "bigint"
    return readable[(column.physical_type, kind)]


def test_every_declared_column_is_the_parquet_the_pipeline_writes(catalog_and_packets):
    glue, aws = catalog_and_packets
    checked = 0
    for name in OUTPUT_TABLES:
        table = glue.get_table(DatabaseName=DATABASE, Name=f"{name}_packets")["Table"]
        descriptor = table["StorageDescriptor"]
        assert table["TableType"] == "EXTERNAL_TABLE" and table["PartitionKeys"] == []
        assert descriptor["Location"] == f"s3://{aws.names.processed_bucket}/{name}/"
        assert descriptor["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
        assert descriptor["InputFormat"].endswith("MapredParquetInputFormat")
        assert descriptor["OutputFormat"].endswith("MapredParquetOutputFormat")
        declared = [(c["Name"], c["Type"]) for c in descriptor["Columns"]]
        keys = aws.keys(f"{name}/")
        assert keys, f"the pipeline wrote no {name} packet"
        for key in keys:  # nothing else lives under the prefix
            assert key.startswith(f"{name}/{name}_packet_") and key.endswith(".parquet"), key
            schema = pq.ParquetFile(io.BytesIO(aws.read(key))).schema
            written = [(schema.column(i).name, _trino_reads_as(schema.column(i))) for i in range(len(schema))]
            assert declared == written, key
            checked += 1
        times = [c for c in descriptor["Columns"] if c["Name"].endswith("_time")]
        assert all(c["Type"] == "bigint" and "microseconds since midnight" in c["Comment"] for c in times)
    assert checked >= len(OUTPUT_TABLES)


def test_every_view_is_stored_as_athena_stores_one(catalog_and_packets):
    glue, _ = catalog_and_packets
    for name, table in TABLES.items():
        view = glue.get_table(DatabaseName=DATABASE, Name=name)["Table"]
        assert view["TableType"] == "VIRTUAL_VIEW"
        assert view["Parameters"] == {"presto_view": "true", "comment": "Presto View"}
        assert view["ViewExpandedText"] == "/* Presto View */"
        definition = decode_presto_view(view["ViewOriginalText"])
        # The SQL tests/warehouse/test_views.py runs, from the same declaration.
        assert definition["originalSql"] == table.view_sql()
        assert (definition["catalog"], definition["schema"]) == (ATHENA_CATALOG, DATABASE)
        packets = glue.get_table(DatabaseName=DATABASE, Name=f"{name}_packets")["Table"]
        raw = [(c["Name"], c["Type"]) for c in packets["StorageDescriptor"]["Columns"]]
        expected = [(n, "time(6)" if t == "bigint" and n.endswith("_time") else _trino(t)) for n, t in raw]
        assert [(c["name"], c["type"]) for c in definition["columns"]] == expected
        assert [(c["Name"], c["Type"]) for c in view["StorageDescriptor"]["Columns"]] == expected
        assert f"FROM {name}_packets" in definition["originalSql"]


def _trino(glue_type: str) -> str:
    return {"int": "integer", "string": "varchar"}.get(glue_type, glue_type)


def test_dimension_views_pick_the_newest_packet_by_number_and_facts_keep_every_row():
    for table in TABLES.values():
        sql = table.view_sql()
        if table.key is None:
            assert "row_number" not in sql and "WHERE" not in sql, table.name
        else:
            assert f"PARTITION BY {table.key}" in sql
            assert "CAST(regexp_extract(\"$path\", '_packet_([0-9]+)_processed_[^/]*$', 1) AS bigint) DESC" in sql
        for column in table.columns:
            if column.is_time:
                assert f"AS time(6)) AS {column.name}" in sql


# -- the workgroup and the analysts' policy -----------------------------------------------


def test_the_workgroup_enforces_its_encrypted_results_location_and_engine_3(template_json):
    (workgroup,) = resources_of(template_json, "AWS::Athena::WorkGroup").values()
    props = workgroup["Properties"]
    assert props["Name"] == workgroup_name("dev")
    config = props["WorkGroupConfiguration"]
    assert config["EnforceWorkGroupConfiguration"] is True
    assert config["EngineVersion"] == {"SelectedEngineVersion": ENGINE_VERSION}
    results = config["ResultConfiguration"]
    assert results["EncryptionConfiguration"] == {"EncryptionOption": "SSE_S3"}
    (bucket,) = [k for k in resources_of(template_json, "AWS::S3::Bucket") if k.startswith("CatalogQueryResults")]
    assert results["OutputLocation"] == {"Fn::Join": ["", ["s3://", {"Ref": bucket}, "/"]]}
    rules = template_json["Resources"][bucket]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert any(r.get("ExpirationInDays") == 30 for r in rules)


def _policy(template_json) -> list[dict]:
    (policy,) = resources_of(template_json, "AWS::IAM::ManagedPolicy").values()
    return policy["Properties"]["PolicyDocument"]["Statement"]


def test_analysts_read_only_the_tables_prefixes_and_write_only_query_results(template_json):
    statements = _policy(template_json)
    text = json.dumps(statements)
    for prefix in ("_state/", "_pending/", "_commits/", "_quarantine/", "_history/"):
        assert prefix not in text
    processed = next(k for k in resources_of(template_json, "AWS::S3::Bucket") if k.startswith("ProcessedBucket"))
    results = next(k for k in resources_of(template_json, "AWS::S3::Bucket") if k.startswith("CatalogQueryResults"))
    on_processed = [s for s in statements if processed in json.dumps(s["Resource"])]
    actions = {a for s in on_processed for a in actions_of(s)}
    assert actions == {"s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation"}
    (read,) = [s for s in on_processed if "s3:GetObject" in actions_of(s)]
    assert sorted(r["Fn::Join"][1][-1] for r in read["Resource"]) == sorted(f"/{t}/*" for t in OUTPUT_TABLES)
    (listing,) = [s for s in on_processed if actions_of(s) == ["s3:ListBucket"]]
    assert sorted(listing["Condition"]["StringLike"]["s3:prefix"]) == sorted(
        [f"{t}/" for t in OUTPUT_TABLES] + [f"{t}/*" for t in OUTPUT_TABLES]
    )
    writes = {a for s in statements for a in actions_of(s) if a.startswith("s3:Put")}
    assert writes == {"s3:PutObject"}
    (put,) = [s for s in statements if "s3:PutObject" in actions_of(s)]
    assert put["Resource"] == {"Fn::Join": ["", [{"Fn::GetAtt": [results, "Arn"]}, "/*"]]}


def test_analysts_may_read_the_catalog_and_run_queries_and_nothing_more(template_json):
    statements = _policy(template_json)
    actions = {a for s in statements for a in actions_of(s)}
    assert {a for a in actions if a.startswith("glue:")} == {
        "glue:GetDatabase", "glue:GetDatabases", "glue:GetTable", "glue:GetTables", "glue:GetPartition",
        "glue:GetPartitions",
    }  # fmt: skip
    assert "athena:StartQueryExecution" in actions and "athena:GetQueryResults" in actions
    assert not any("*" in a for a in actions)
    assert all(s["Resource"] != "*" for s in statements)
    (catalog,) = [s for s in statements if "glue:GetTable" in actions_of(s)]
    named = {json.dumps(r).rsplit("/", 1)[-1].rstrip('"]}') for r in catalog["Resource"] if "table/" in json.dumps(r)}
    assert named == set(OUTPUT_TABLES) | {f"{t}_packets" for t in OUTPUT_TABLES}


def test_the_stack_outputs_what_analysts_need(template_json):
    outputs = template_json["Outputs"]
    assert outputs["GlueDatabaseName"]["Value"] == DATABASE
    assert outputs["AthenaWorkGroupName"]["Value"] == workgroup_name("dev")
    assert {"AnalystPolicyArn", "QueryResultsBucketName"} <= set(outputs)
