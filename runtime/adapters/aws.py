"""What the S3 and SSM adapters share: client settings and the translation of SDK
errors into the processor's typed errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError as BotoConnectionError,
    FlexibleChecksumError,
    HTTPClientError,
    IncompleteReadError,
)

from runtime.errors import StorageError, StorageUnavailableError

# The SDK retries throttling, 5xx and connection errors itself (standard mode, with
# backoff); what still fails after that is raised and Lambda's async retry takes over.
# max_attempts counts the retries after the first call: 6 attempts in all. A read
# timeout applies to each socket read, not a whole transfer; 20 s x 6 attempts stays
# well inside the function's timeout, so a hung endpoint ends as a typed error.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=5,
    read_timeout=20,
)

_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeout",
        "ThrottlingException",
        "Throttling",
        "TooManyUpdates",
        "ConditionalRequestConflict",
        "InternalServerError",
    }
)


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_transient(exc: ClientError) -> bool:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    return error_code(exc) in _TRANSIENT_CODES or status >= 500


@contextmanager
def translated(service: str, action: str) -> Iterator[None]:
    """Raise SDK failures as StorageUnavailableError (ConnectionError) when the
    service could not be reached or kept failing, StorageError otherwise."""
    try:
        yield
    except (BotoConnectionError, HTTPClientError) as exc:
        raise StorageUnavailableError(f"{service} unreachable during {action}: {exc}") from exc
    except (FlexibleChecksumError, IncompleteReadError) as exc:
        # A body that arrived damaged or short: the next attempt may well be whole.
        raise StorageUnavailableError(f"{service} sent a damaged response during {action}: {exc}") from exc
    except ClientError as exc:
        if is_transient(exc):
            raise StorageUnavailableError(
                f"{service} kept failing during {action} after the SDK's retries: {exc}"
            ) from exc
        raise StorageError(f"{service} refused {action}: {exc}") from exc
    except BotoCoreError as exc:
        raise StorageError(f"{service} call failed during {action}: {exc}") from exc
