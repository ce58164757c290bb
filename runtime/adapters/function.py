"""Invoking this same function again, asynchronously (docs/design.md#backlog)."""

from __future__ import annotations

import json

from runtime.adapters.aws import translated


class FunctionInvoker:
    """One Lambda function, invoked with InvocationType=Event (queued, not awaited)."""

    def __init__(self, client, function_arn: str) -> None:
        self._lambda = client
        self.function_arn = function_arn

    def invoke_async(self, event: dict) -> None:
        with translated("Lambda", f"invoke {self.function_arn}"):
            self._lambda.invoke(
                FunctionName=self.function_arn, InvocationType="Event", Payload=json.dumps(event).encode()
            )
