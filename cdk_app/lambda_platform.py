"""The platform a Lambda asset is built for: CPython version and CPU, as pip names them."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from aws_cdk import aws_lambda as lambda_

# Lambda's Python runtimes on Amazon Linux 2023 ship glibc 2.34: every manylinux tag up
# to it is loadable there. pip does not expand a manylinux_2_x tag to older ones, so
# each is named (manylinux2014 = manylinux_2_17, the oldest current wheels use).
_GLIBC_MINORS = range(17, 35)


@dataclass(frozen=True)
class Target:
    """The platform the bundle is built for: CPython version and CPU."""

    python_version: str  # "3.12"
    machine: str  # "aarch64" or "x86_64", as in manylinux platform tags

    @classmethod
    def for_lambda(cls, runtime: lambda_.Runtime, architecture: lambda_.Architecture) -> Target:
        """The platform of a Lambda function with this runtime and architecture."""
        if not runtime.name.startswith("python3."):
            raise ValueError(f"not a Python runtime: {runtime.name}")
        machine = {"arm64": "aarch64", "x86_64": "x86_64"}[architecture.name]
        return cls(python_version=runtime.name.removeprefix("python"), machine=machine)

    @classmethod
    def this_machine(cls) -> Target:
        """The interpreter running this code, e.g. to run a bundle locally."""
        return cls(python_version=f"{sys.version_info[0]}.{sys.version_info[1]}",
                   machine=os.uname().machine)  # fmt: skip

    @property
    def abi(self) -> str:
        return "cp" + self.python_version.replace(".", "")

    def pip_platform_args(self) -> list[str]:
        platforms = [f"manylinux2014_{self.machine}"] + [
            f"manylinux_2_{minor}_{self.machine}" for minor in _GLIBC_MINORS
        ]
        args: list[str] = []
        for platform in platforms:
            args += ["--platform", platform]
        return args + [
            "--implementation", "cp",
            "--python-version", self.python_version,
            "--abi", self.abi,
            "--only-binary=:all:",
        ]  # fmt: skip

    def __str__(self) -> str:
        return f"{self.abi}-{self.machine}"
