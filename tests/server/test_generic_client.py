"""A client built only from the .proto files, a generic protobuf runtime and the `websockets`
library (no code of ours) calls Ping and Echo: the wire is what Go Rony clients speak.

The .proto files are laid out as in Go Rony (``import "options.proto"``), compiled with
grpc_tools.protoc into a temp folder, and used from a separate process that never imports
``rony`` (checked), with constructor ids copied from Go Rony's generated code.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
import textwrap
from pathlib import Path

import grpc_tools
import pytest
from grpc_tools import protoc

from examples.echo.app import app as echo_app
from rony.server.testing import serve

from .conftest import ROOT

CLIENT = textwrap.dedent(
    """
    import asyncio, sys
    sys.path.insert(0, sys.argv[1])
    import msg_pb2, sample_pb2
    from websockets.asyncio.client import connect

    # Constants from Go Rony's msg.rony.go and example/echo/rpc/sample.rony.go.
    C_Ping, C_Pong = 3584172304239689728, 3584174915579805696
    C_SampleEcho, C_EchoResponse = 5610266072904040111, 10208763112635265787
    C_MessageContainer, C_Error = 8705479839606992738, 3300063058275074048

    def env(constructor, msg, rid):
        return msg_pb2.MessageEnvelope(
            Constructor=constructor, RequestID=rid, Message=msg.SerializeToString()
        ).SerializeToString()

    async def main(url):
        async with connect(url) as ws:
            await ws.send(env(C_Ping, msg_pb2.Ping(ID=42), 1))
            r = msg_pb2.MessageEnvelope.FromString(await ws.recv())
            assert (r.Constructor, r.RequestID) == (C_Pong, 1), r
            assert msg_pb2.Pong.FromString(r.Message).ID == 42

            await ws.send(env(C_SampleEcho, sample_pb2.EchoRequest(ID=7, RandomText="go"), 2))
            r = msg_pb2.MessageEnvelope.FromString(await ws.recv())
            assert (r.Constructor, r.RequestID) == (C_EchoResponse, 2), r
            res = sample_pb2.EchoResponse.FromString(r.Message)
            assert (res.ReqID, res.RandomText) == (7, "go"), res

            # A batch the way Go Rony's client sends one.
            c = msg_pb2.MessageContainer(Length=2, Envelopes=[
                msg_pb2.MessageEnvelope.FromString(env(C_Ping, msg_pb2.Ping(ID=i), 10 + i))
                for i in range(2)
            ])
            await ws.send(msg_pb2.MessageEnvelope(
                Constructor=C_MessageContainer, Message=c.SerializeToString()
            ).SerializeToString())
            got = sorted([msg_pb2.MessageEnvelope.FromString(await ws.recv()).RequestID
                          for _ in range(2)])
            assert got == [10, 11], got

            await ws.send(env(12345, msg_pb2.Ping(), 3))
            r = msg_pb2.MessageEnvelope.FromString(await ws.recv())
            assert r.Constructor == C_Error and msg_pb2.Error.FromString(r.Message).Code == "E01"
        assert not [m for m in sys.modules if m == "rony" or m.startswith("rony.")]
        print("GENERIC CLIENT OK")

    asyncio.run(main(sys.argv[2]))
    """
)


def _compile(tmp: Path) -> Path:
    src, gen = tmp / "src", tmp / "gen"
    src.mkdir()
    gen.mkdir()
    for p in (
        ROOT / "proto/rony/core/pb/msg.proto",
        ROOT / "proto/rony/core/pb/options.proto",
        ROOT / "examples/echo/sample.proto",
    ):
        text = p.read_text()
        # Go Rony's layout: options.proto sits beside the other files.
        text = re.sub(r'import "rony/core/pb/options.proto";', 'import "options.proto";', text)
        (src / p.name).write_text(text)
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = ["protoc", f"-I{src}", f"-I{well_known}", f"--python_out={gen}"]
    assert protoc.main([*args, "options.proto", "msg.proto", "sample.proto"]) == 0
    return gen


@pytest.mark.slow
async def test_generic_protobuf_websocket_client(tmp_path: Path) -> None:
    gen = _compile(tmp_path)
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    async with serve(echo_app) as edge:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",  # isolated: no cwd, no PYTHONPATH; only site-packages and gen/
            str(script),
            str(gen),
            edge.url.replace("http://", "ws://"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert b"GENERIC CLIENT OK" in out
    shutil.rmtree(gen)
