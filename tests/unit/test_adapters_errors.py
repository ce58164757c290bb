"""SDK failures come out of the adapters as the processor's typed errors."""

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    FlexibleChecksumError,
    ParamValidationError,
    ReadTimeoutError,
)

from runtime.adapters.aws import translated
from runtime.errors import StorageError, StorageUnavailableError


def client_error(code, status):
    return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")


@pytest.mark.parametrize(
    "raised, typed",
    [
        (EndpointConnectionError(endpoint_url="http://x"), StorageUnavailableError),
        (ReadTimeoutError(endpoint_url="http://x"), StorageUnavailableError),
        (FlexibleChecksumError(error_msg="crc32 mismatch"), StorageUnavailableError),
        (client_error("SlowDown", 503), StorageUnavailableError),
        (client_error("ThrottlingException", 400), StorageUnavailableError),
        (client_error("AccessDenied", 403), StorageError),
        (ParamValidationError(report="bad"), StorageError),
    ],
)
def test_sdk_failures_become_typed_errors(raised, typed):
    with pytest.raises(typed) as error:
        with translated("S3", "get s3://b/k"):
            raise raised
    assert "get s3://b/k" in str(error.value)
    assert issubclass(StorageUnavailableError, ConnectionError)
