"""Packet ids in SSM Parameter Store (String parameters), read without a cache."""

from __future__ import annotations

from botocore.exceptions import ClientError

from runtime.adapters.aws import error_code, translated
from runtime.errors import CorruptRecordError, PacketIdNotFoundError
from runtime.packet_ids import check_next


class SsmPacketIds:
    def __init__(self, client) -> None:
        self._ssm = client

    def read_packet_id(self, name: str) -> int:
        with translated("SSM", f"get {name}"):
            try:
                value = self._ssm.get_parameter(Name=name)["Parameter"]["Value"]
            except ClientError as exc:
                if error_code(exc) == "ParameterNotFound":
                    raise PacketIdNotFoundError(
                        f"SSM parameter {name} does not exist (is the stack deployed with "
                        "this SSM_PREFIX?)"
                    ) from exc
                raise
        try:
            packet_id = int(value)
        except ValueError:
            raise CorruptRecordError(f"SSM parameter {name} holds {value!r}, not a packet id") from None
        if packet_id < 0:
            raise CorruptRecordError(f"SSM parameter {name} holds {value!r}, not a packet id")
        return packet_id

    def write_packet_id(self, name: str, packet_id: int) -> None:
        if check_next(name, self.read_packet_id(name), packet_id):
            with translated("SSM", f"put {name}"):
                self._ssm.put_parameter(Name=name, Value=str(packet_id), Type="String", Overwrite=True)
