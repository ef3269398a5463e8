"""Build hook: compile the Controller gRPC API (.proto) into Python stubs with grpcio-tools.

The stubs are generated, never committed: ``pip install`` (regular or editable) runs this.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).parent
PROTOS = ["anabranch/protocol/controller.proto"]


def compile_protos() -> None:
    from grpc_tools import protoc

    src = ROOT / "src"
    for proto in PROTOS:
        if not (src / proto).exists():
            continue
        args = ["protoc", f"-I{src}", f"--python_out={src}", f"--pyi_out={src}", f"--grpc_python_out={src}", proto]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed for {proto}")


class BuildPyWithProtos(build_py):
    def run(self) -> None:
        compile_protos()
        super().run()


setup(cmdclass={"build_py": BuildPyWithProtos})
