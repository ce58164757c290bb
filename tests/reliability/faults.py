"""Faults at the AWS boundary, injected through botocore's event system.

The injector registers on the `meta.events` of the very clients the handler uses:

- `before-parameter-build.{s3,ssm}` fires once per API call, with its parameters
  (before the SDK's retry loop): it numbers the call and names it (service,
  operation, role of the key or parameter);
- `before-send.{s3,ssm}` fires once per HTTP attempt: there a planned fault answers
  instead of moto (an `AWSResponse` with an AWS error body), raises what urllib3 would
  have raised (`ConnectionClosedError`, `ReadTimeoutError`), or lets moto act first and
  then loses or spoils the response;
- `after-call.{s3,ssm}` records the final HTTP status of each call.

Kinds (what AWS would do, and what the SDK's standard retry mode makes of it):

  throttle      S3 503 SlowDown / SSM 400 ThrottlingException      retried by the SDK
  server_error  S3 500 InternalError / SSM 500 InternalServerError retried by the SDK
  reset         the connection drops before the request arrives   retried by the SDK
  timeout       moto acts, then the response is lost (read timeout) retried by the SDK
  slow          the response arrives 0.15 s late (read timeout 60 s) nothing to retry
  refused       S3 403 AccessDenied / SSM 400 AccessDeniedException not retryable
  body_reset    GetObject: the connection drops mid-body           not retried (body)
  body_corrupt  GetObject: a byte flips in transit (CRC32 mismatch) not retried (body)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectionClosedError, ReadTimeoutError
from botocore.httpsession import URLLib3Session
from urllib3.exceptions import ProtocolError

from tests.reliability.workload import NAMES

ALWAYS = 1_000  # more attempts than any retry policy makes: a persistent fault
SLOW_SECONDS = 0.15

SDK_RETRIED = ("throttle", "server_error", "reset", "timeout")
BODY_KINDS = ("body_reset", "body_corrupt")
WRITES = frozenset({"s3.PutObject", "s3.DeleteObject", "ssm.PutParameter"})

_HTTP_ERRORS = {
    # kind: {service: (status, code, message)}
    "throttle": {"s3": (503, "SlowDown", "Please reduce your request rate."),
                 "ssm": (400, "ThrottlingException", "Rate exceeded")},
    "server_error": {"s3": (500, "InternalError", "We encountered an internal error. Please try again."),
                     "ssm": (500, "InternalServerError", "An error occurred on the server side.")},
    "refused": {"s3": (403, "AccessDenied", "Access Denied"),
                "ssm": (400, "AccessDeniedException", "not authorized to perform this action")},
}


@dataclass(frozen=True)
class Fault:
    kind: str
    attempts: int = 1  # how many consecutive attempts of the call it spoils


@dataclass
class Call:
    index: int  # 0-based, in the order the calls were made
    service: str  # s3 | ssm
    operation: str
    target: str  # bucket/key, bucket/prefix or parameter name
    role: str  # what the call is for, from its key or parameter
    attempts: int = 0
    faults: int = 0
    status: int | None = None
    fault: Fault | None = None

    @property
    def op(self) -> str:
        return f"{self.service}.{self.operation}"

    @property
    def site(self) -> str:
        """The call site: the same for every call that does the same job (a GetObject
        that finds nothing is a probe, not a read)."""
        probe = " 404" if self.status == 404 else ""
        return f"{self.op} {self.role}{probe}"


def role(service: str, params: dict) -> str:
    if service == "ssm":
        name = params.get("Name", params.get("Path", ""))
        parts = name.rsplit("/", 2)
        return parts[-2] if len(parts) == 3 else name
    if params.get("Bucket") == NAMES.ingestion_bucket:
        return "ingestion"
    path = params.get("Key", params.get("Prefix", ""))
    top = path.split("/", 1)[0]
    return top if top.startswith("_") else "output"


class Injector:
    """Numbers the calls of the clients it is attached to and spoils the planned ones.

    `plan(call)` returns the Fault for a call, or None; it sees each call once, when it
    is made, so it can plan by index, by site, or for every call.
    """

    def __init__(self, plan: Callable[[Call], Fault | None] | None = None) -> None:
        self.plan = plan
        self.calls: list[Call] = []
        self._current: Call | None = None
        self._session = URLLib3Session(timeout=60)

    def attach(self, *clients) -> Injector:
        for client in clients:
            service = client.meta.service_model.service_id.hyphenize()
            events = client.meta.events
            events.register(f"before-parameter-build.{service}", self._before_call)
            events.register(f"before-send.{service}", self._before_send)
            events.register(f"after-call.{service}", self._after_call)
        return self

    def faulted(self) -> list[Call]:
        return [c for c in self.calls if c.faults]

    # -- the hooks -----------------------------------------------------------------

    def _before_call(self, model, params, event_name, **kwargs):
        service = event_name.split(".")[1]
        call = Call(len(self.calls), service, model.name, _target(params), role(service, params))
        call.fault = self.plan(call) if self.plan else None
        self.calls.append(call)
        self._current = call

    def _after_call(self, http_response, **kwargs):
        if self._current is not None:
            self._current.status = http_response.status_code

    def _before_send(self, request, event_name, **kwargs):
        call = self._current
        call.attempts += 1
        fault = call.fault
        if fault is None or call.faults >= fault.attempts:
            return None
        call.faults += 1
        kind = fault.kind
        if kind in _HTTP_ERRORS:
            status, code, message = _HTTP_ERRORS[kind][call.service]
            return _error_response(request, call.service, status, code, message)
        if kind == "reset":
            raise ConnectionClosedError(endpoint_url=request.url)
        if kind == "timeout":
            self._session.send(request).content  # moto acts; the answer never arrives
            raise ReadTimeoutError(endpoint_url=request.url)
        if kind == "slow":
            time.sleep(SLOW_SECONDS)
            return None
        if kind in BODY_KINDS:
            response = self._session.send(request)
            if response.status_code == 200:
                response.raw = _SpoiledBody(response.raw, kind)
            return response
        raise ValueError(f"unknown fault kind {kind!r}")


def _target(params: dict) -> str:
    if "Name" in params:
        return params["Name"]
    return f"{params.get('Bucket', '')}/{params.get('Key', params.get('Prefix', ''))}"


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **kwargs):
        if self._body:
            yield self._body

    def read(self, *args, **kwargs) -> bytes:
        body, self._body = self._body, b""
        return body

    def close(self) -> None:
        pass


def _error_response(request, service: str, status: int, code: str, message: str) -> AWSResponse:
    if service == "ssm":
        headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": "fault"}
        body = json.dumps({"__type": code, "message": message}).encode()
    else:
        headers = {"Content-Type": "application/xml", "x-amz-request-id": "fault"}
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message><RequestId>fault</RequestId></Error>"
        ).encode()
        if request.method == "HEAD":
            body = b""
    return AWSResponse(request.url, status, headers, _Raw(body))


class _SpoiledBody:
    """The real response body, broken in transit: the connection resets while it is
    read, or one byte flips (the CRC32 header moto sent no longer matches)."""

    def __init__(self, raw, kind: str) -> None:
        self._raw, self._kind, self._reads = raw, kind, 0

    def read(self, amt=None, **kwargs):
        if self._kind == "body_reset":
            # What urllib3 raises when the peer resets the connection mid-body.
            raise ProtocolError("Connection broken: ConnectionResetError(104, 'Connection reset by peer')")
        data = self._raw.read(amt, **kwargs)
        self._reads += 1
        if self._kind == "body_corrupt" and data and self._reads == 1:
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]
        return data

    def stream(self, amt=2**16, **kwargs):
        while True:
            data = self.read(amt)
            if not data:
                return
            yield data

    def __getattr__(self, name):
        return getattr(self._raw, name)
