"""`make deploy-local`: the deploy rehearsed against moto's server, then the deployed code run.

1. moto's server on this machine, named `localhost` (with 127.0.0.1 moto reads the
   template URL's host as a bucket name, and `cdk deploy` fails);
2. `cdk bootstrap`, then `cdk deploy` of this app with its real context keys (the
   bundled asset, bytecode included; `architecture` is this machine's CPU, so that the
   deployed code can run here);
3. the deployed function's configuration and code fetched back (`get_function`: its
   environment, and `Code.Location`; moto's Location is not served, so the zip is read
   from the asset bucket the deployed template names, and checked against the
   function's `CodeSha256`);
4. the fixture packets (tests/data/totesys/) uploaded to the deployed ingestion bucket,
   and the fetched handler run on them by Python 3.12 with the fetched environment,
   against the deployed buckets and packet-id parameters;
5. what was written, printed: objects per output table, packet ids, the summary.

Resources moto does not create (alarms, the dashboard, EventInvokeConfig, bucket, topic
and queue policies) are checked by the template tests in tests/infra/ instead.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

# Under an end-of-life Node.js, jsii prints a banner each time it starts.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")

ROOT = Path(__file__).resolve().parent.parent
CDK = ROOT / "node_modules" / ".bin" / "cdk"
ACCOUNT = "123456789012"  # moto's account
REGION = "eu-west-2"
STAGE = "rehearsal"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
}


def say(message: str) -> None:
    print(message, flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# moto 5.2's CloudFormation passes a KMS key's tags as CloudFormation writes them
# ({"Key", "Value"}) to a tagger that expects {"TagKey", "TagValue"}: the key's creation
# raises, and every resource after it in the stack is silently left out. The server runs
# with that one translation, so the stack deployed is the real one, tags included.
MOTO_SERVER = """
import sys
import moto.kms.models as kms
_create = kms.Key.create_from_cloudformation_json.__func__
def create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    properties = cloudformation_json.get("Properties", {})
    properties["Tags"] = [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in properties.get("Tags", [])]
    return _create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
kms.Key.create_from_cloudformation_json = classmethod(create)
from moto.server import main
main(["-H", "127.0.0.1", "-p", sys.argv[1]])
"""
# Resource types in the template that moto's CloudFormation skips (with a warning): the
# template tests in tests/infra/ assert them instead.
NOT_CREATED_BY_MOTO = (
    "AWS::CloudWatch::Alarm", "AWS::Lambda::EventInvokeConfig",
    "AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy", "AWS::SNS::Subscription",
)  # fmt: skip


def start_moto() -> tuple[subprocess.Popen, str]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", MOTO_SERVER, str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **CREDENTIALS},
    )  # fmt: skip
    endpoint = f"http://localhost:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1).close()  # nosec B310 (own URL)
            return process, endpoint
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise SystemExit(f"moto's server did not start on port {port}")
            time.sleep(0.2)


def context_args() -> list[str]:
    """The real context keys of a deployment, for a stage of its own."""
    architecture = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}[os.uname().machine]
    context = {
        "stage": STAGE,
        "architecture": architecture,
        "alarm_emails": "data-oncall@example.com",
        "ingestion_role_arn": f"arn:aws:iam::{ACCOUNT}:role/totesys-ingestion",
        "log_level": "INFO",
    }
    return [arg for key, value in context.items() for arg in ("-c", f"{key}={value}")]


def cdk(args: list[str], env: dict[str, str], outdir: Path | None, cwd: Path = ROOT) -> None:
    """The pinned CDK CLI; with `outdir`, on this app (without, no app: nothing to synthesize)."""
    command = [str(CDK), *args, "--no-notices", "--ci"]
    if outdir is not None:
        command += ["--app", f"{sys.executable} app.py", "--output", str(outdir)]
    say("$ cdk " + " ".join(args))
    started = time.monotonic()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"cdk {args[0]} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    for line in (result.stderr + result.stdout).splitlines():
        if any(marker in line for marker in ("bundle ", "compiled ", "✅", "Outputs:", "Environment aws://")):
            say("  " + line.strip())
    say(f"  ({time.monotonic() - started:.0f} s)")


def processing_function(template: dict) -> tuple[str, dict]:
    """The processing function's logical id and resource: the stack has two functions
    (the rebuild workflow runs the same code), told apart by their construct's id."""
    (found,) = [(k, r) for k, r in template["Resources"].items()
                if r["Type"] == "AWS::Lambda::Function" and k.startswith("ProcessingFunction")]  # fmt: skip
    return found


def _function_of(session, stack_name: str, outdir: Path) -> str:
    """The function the stack created, when the stack reports no outputs.

    moto's CloudFormation fills in outputs on CreateStack but not when a change set
    creates the stack (as `cdk deploy` does), and its resource listing fails on the
    resource types it skipped; so the function is found by its physical name,
    `<stack>-<logical id>-<suffix>`, with the logical id from the deployed template.
    """
    template = json.loads((outdir / f"{stack_name}.template.json").read_text())
    logical_id, _ = processing_function(template)
    names = [f["FunctionName"] for page in session.client("lambda").get_paginator("list_functions").paginate()
             for f in page["Functions"] if f["FunctionName"].startswith(f"{stack_name}-{logical_id}")]  # fmt: skip
    if len(names) != 1:
        raise SystemExit(f"expected one function {stack_name}-{logical_id}-…, found {names}")
    return names[0]


def fetch_code(session, function_name: str, stack_name: str, into: Path) -> tuple[dict, Path]:
    """The deployed function's configuration, and its code unzipped into `into`."""
    lambda_client = session.client("lambda")
    function = lambda_client.get_function(FunctionName=function_name)
    configuration, location = function["Configuration"], function["Code"]["Location"]
    try:
        # On AWS, Location is a presigned URL of the code.
        archive = urllib.request.urlopen(location, timeout=30).read()  # nosec B310 (the API's own URL)
        source = location
    except OSError:
        # moto's Location names the key but is not served: read the key from the asset
        # bucket that the deployed template names for this function.
        template = session.client("cloudformation").get_template(StackName=stack_name)["TemplateBody"]
        template = template if isinstance(template, dict) else json.loads(template)
        code = processing_function(template)[1]["Properties"]["Code"]
        bucket = code["S3Bucket"]
        if isinstance(bucket, dict):  # Fn::Sub of the bootstrap bucket name
            bucket = bucket["Fn::Sub"].replace("${AWS::AccountId}", ACCOUNT).replace("${AWS::Region}", REGION)
        key = location.rsplit("/", 1)[-1]
        archive = session.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        source = f"s3://{bucket}/{key} (Location {location})"
    digest = base64.b64encode(hashlib.sha256(archive).digest()).decode()
    if digest != configuration["CodeSha256"]:
        raise SystemExit(f"the fetched code's sha256 {digest} is not the function's CodeSha256 {configuration['CodeSha256']}")
    say(f"  code: {len(archive):,} bytes from {source}, sha256 matches CodeSha256")
    archive_path = into / "code.zip"
    archive_path.write_bytes(archive)
    with zipfile.ZipFile(archive_path) as zipped:
        zipped.extractall(into / "task")
    return configuration, into / "task"


def main() -> int:
    import boto3

    from cdk_app.bundling import resolve_bytecode
    from cdk_app.lambda_platform import Target
    from runtime.tables import OUTPUT_TABLES, SOURCE_TABLES, packet_id_parameters
    from sandbox.cold_start import run_cold
    from sandbox.seed import fixture_lines, upload_packet

    if not CDK.exists():
        raise SystemExit("the CDK CLI is not installed: run `npm ci` (make deploy-local does)")
    # Resolved once (a pyenv shim to the interpreter it runs) and used everywhere: by the
    # bundler inside `cdk deploy` (LAMBDA_PYTHON) and for the cold run, whose stripped
    # environment a shim would not survive.
    python = resolve_bytecode(Target("3.12", os.uname().machine), required=True).interpreter
    assert python is not None
    say(f"the runtime's Python: {python}")
    started = time.monotonic()
    process, endpoint = start_moto()
    say(f"moto's server: {endpoint}")
    try:
        env = {
            **os.environ, **CREDENTIALS,
            "AWS_ENDPOINT_URL": endpoint,
            "CDK_DISABLE_CLI_TELEMETRY": "true",
            "AWS_EC2_METADATA_DISABLED": "true",
            # localhost is 127.0.0.1 here, where moto listens; never ::1 first.
            "NODE_OPTIONS": "--dns-result-order=ipv4first",
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "18,20",
            "LAMBDA_PYTHON": python.path,
        }  # fmt: skip
        for unset in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
            env.pop(unset, None)
        with tempfile.TemporaryDirectory(prefix="deploy-local-") as scratch:
            work = Path(scratch)
            # Kept between runs: an unchanged app reuses its staged asset, as `make synth` does.
            outdir = ROOT / ".cache" / "deploy-local" / "cdk.out"
            # Bootstrapping names its environment, so it runs outside the project: given the
            # app, the CLI would synthesize (and bundle) it first for nothing.
            cdk(["bootstrap", f"aws://{ACCOUNT}/{REGION}"], env, None, cwd=work)
            stack_name = f"TotesysProcessing-{STAGE}"
            cdk(["deploy", stack_name, "--require-approval", "never", *context_args()], env, outdir)

            session = boto3.session.Session(region_name=REGION, aws_access_key_id="testing",
                                            aws_secret_access_key="testing", aws_session_token="testing")  # fmt: skip
            os.environ["AWS_ENDPOINT_URL"] = endpoint  # this process's clients: the emulator
            stack = session.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]
            outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
            say(f"stack {stack_name}: {stack['StackStatus']}; outputs {sorted(outputs)}")
            say(f"  not created by moto (asserted by tests/infra instead): {', '.join(NOT_CREATED_BY_MOTO)}")
            function_name = outputs.get("FunctionName") or _function_of(session, stack_name, outdir)

            configuration, task = fetch_code(session, function_name, stack_name, work)
            variables = configuration["Environment"]["Variables"]
            say(f"  configuration: {configuration['Runtime']} {configuration['Handler']} "
                f"{configuration.get('Architectures')} {configuration['MemorySize']} MB; environment {variables}")  # fmt: skip
            assert configuration["Handler"] == "runtime.handler.lambda_handler"

            s3 = session.client("s3")
            ssm = session.client("ssm")
            prefix = variables["SSM_PREFIX"]
            names = packet_id_parameters(prefix)
            present = [n for n in names if ssm.get_parameter(Name=n)["Parameter"]["Value"] == "0"]
            say(f"  packet-id parameters under {prefix}: {len(present)} of {len(names)} at 0")
            ingestion = variables["INGESTION_BUCKET"]
            for source in SOURCE_TABLES:
                upload_packet(s3, ingestion, source.name, 1, fixture_lines(source.name))
            event = {"packets": [{"table": source.name, "id": 1} for source in SOURCE_TABLES]}
            say(f"uploaded packet 1 of {len(SOURCE_TABLES)} tables to {ingestion}; running the fetched handler "
                f"with {python}")  # fmt: skip
            run_env = {"PATH": os.environ.get("PATH", ""), **CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, **variables}
            run = run_cold(python.path, task, run_env, event)
            say(f"  {run.status} in {run.total_s:.2f} s (import {run.import_s:.2f} s), "
                f"{len(run.compiled_from_source)} modules compiled from source, "
                f"{len(run.outside)} modules from outside the code")  # fmt: skip

            processed = variables["PROCESSED_BUCKET"]
            say(f"written to {processed}:")
            total = 0
            for table in OUTPUT_TABLES:
                objects = s3.list_objects_v2(Bucket=processed, Prefix=f"{table}/").get("Contents", [])
                total += len(objects)
                # The run reports rows per table, not per object: said once, for the table.
                say(f"  {table}: {run.rows_written.get(table, 0):,} rows in {len(objects)} objects")
                for obj in objects:
                    say(f"    {obj['Key']}  {obj['Size']:,} bytes")
            consumed = {s.name: ssm.get_parameter(Name=f"{prefix}/consumed/{s.name}")["Parameter"]["Value"]
                        for s in SOURCE_TABLES}  # fmt: skip
            say(f"  consumed packet ids: {consumed}")
            if run.status != "succeeded" or total < len(OUTPUT_TABLES) or run.compiled_from_source or run.outside:
                raise SystemExit("the deployed code did not process the fixtures cleanly")
            shutil.rmtree(task, ignore_errors=True)
        say(f"deploy rehearsed in {time.monotonic() - started:.0f} s")
        return 0
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


if __name__ == "__main__":
    sys.exit(main())
