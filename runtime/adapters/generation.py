"""A new generation's packet-id parameters, created at 0 (the rebuild's target)."""

from __future__ import annotations

from botocore.exceptions import ClientError

from runtime.adapters.aws import error_code, translated


def create_packet_ids(client, names: tuple[str, ...]) -> int:
    """Create each String parameter at "0" unless it exists; returns how many were new.
    Never overwrites: an existing id belongs to a rebuild under way."""
    created = 0
    for name in names:
        with translated("SSM", f"create {name}"):
            try:
                client.put_parameter(Name=name, Value="0", Type="String", Overwrite=False)
                created += 1
            except ClientError as exc:
                if error_code(exc) != "ParameterAlreadyExists":
                    raise
    return created


def set_packet_ids(client, values: dict[str, int]) -> None:
    """Write each parameter's value as given, overwriting (the switch-over's copy of a
    generation's ids; runtime.rebuild.switch)."""
    for name, value in sorted(values.items()):
        with translated("SSM", f"put {name}"):
            client.put_parameter(Name=name, Value=str(value), Type="String", Overwrite=True)
