"""10,000 random and mutated WebSocket frames and HTTP bodies at the gateway (fixed seed), while a
well-formed client keeps getting correct answers; the server stays up and logs no internal error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random

import aiohttp
import pytest

from examples.echo.app import app as echo_app
from examples.echo.sample_pb2 import EchoRequest, EchoResponse
from examples.echo.sample_rony import C_EchoResponse, C_SampleEcho
from rony.core import (
    C_Error,
    C_GetNodes,
    C_Pong,
    GetNodes,
    Ping,
    Pong,
    container_envelope,
    decode_envelope,
    envelope,
    unwrap,
)
from rony.server.testing import serve

WS_FRAMES = 8_000
HTTP_BODIES = 2_000


def _seeds() -> list[bytes]:
    e1 = envelope(Ping(ID=1), 1)
    e2 = envelope(EchoRequest(ID=2, RandomText="seed"), 2, constructor=C_SampleEcho)
    e3 = envelope(GetNodes(ReplicaSet=[1, 2]), 3, constructor=C_GetNodes, header={"k": "v"})
    return [
        e1.SerializeToString(),
        e2.SerializeToString(),
        e3.SerializeToString(),
        container_envelope([e1, e2, e3], sync_run=True).SerializeToString(),
        container_envelope([e1, e2], sync_run=False).SerializeToString(),
    ]


def _mutate(rng: random.Random, seeds: list[bytes]) -> bytes:
    choice = rng.random()
    if choice < 0.2:
        return rng.randbytes(rng.randint(0, 64))
    data = bytearray(rng.choice(seeds))
    for _ in range(rng.randint(1, 4)):
        op = rng.randint(0, 4)
        if op == 0 and data:  # flip a bit
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        elif op == 1 and data:  # truncate
            del data[rng.randrange(len(data)) :]
        elif op == 2:  # insert random bytes
            i = rng.randint(0, len(data))
            data[i:i] = rng.randbytes(rng.randint(1, 8))
        elif op == 3 and data:  # overwrite a byte with an extreme value
            data[rng.randrange(len(data))] = rng.choice((0x00, 0x7F, 0x80, 0xFF))
        else:  # duplicate a slice
            if data:
                i = rng.randrange(len(data))
                data += data[i : i + rng.randint(1, 16)]
    return bytes(data)


def _mutate_json(rng: random.Random) -> str:
    base = json.dumps({"requestId": 9, "cmd": "SampleEcho", "message": {"ID": "1"}})
    chars = list(base)
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(chars))
        chars[i] = rng.choice('{}[]":,0123456789abcxyz\\ \x00é')
    return "".join(chars)


async def _good_client(url: str, http: aiohttp.ClientSession, stop: asyncio.Event) -> int:
    """Correct requests over WS and HTTP, checked, until told to stop."""
    n = 0
    async with http.ws_connect(url) as ws:
        while not stop.is_set():
            n += 1
            req = envelope(EchoRequest(ID=n, RandomText=f"t{n}"), n, constructor=C_SampleEcho)
            await ws.send_bytes(req.SerializeToString())
            env = decode_envelope((await ws.receive(timeout=10)).data)
            assert (env.RequestID, env.Constructor) == (n, C_EchoResponse)
            assert unwrap(env, EchoResponse) == EchoResponse(ReqID=n, RandomText=f"t{n}")
            async with http.post(url, data=envelope(Ping(ID=n), n).SerializeToString()) as r:
                env = decode_envelope(await r.read())
            assert (r.status, env.Constructor, unwrap(env, Pong).ID) == (200, C_Pong, n)
    return n


async def _fuzz_ws(url: str, http: aiohttp.ClientSession, rng: random.Random, n: int) -> int:
    seeds = _seeds()
    replies = 0
    ws = await http.ws_connect(url)

    async def drain() -> None:
        # Count replies until the marker Ping sent last comes back (frames are read in order).
        nonlocal replies
        async for msg in ws:
            replies += 1
            if msg.type is aiohttp.WSMsgType.BINARY:
                env = decode_envelope(msg.data)
                if env.Constructor == C_Pong and env.RequestID == 424242:
                    return

    reader = asyncio.create_task(drain())
    try:
        for i in range(n):
            if rng.random() < 0.1:
                await ws.send_str(_mutate_json(rng))
            else:
                await ws.send_bytes(_mutate(rng, seeds))
            if i % 200 == 0:
                await asyncio.sleep(0)  # let the reader and the good client run
        await ws.send_bytes(envelope(Ping(ID=424242), 424242).SerializeToString())
        await asyncio.wait_for(reader, 30)
        assert not ws.closed, ws.close_code
    finally:
        reader.cancel()
        await ws.close()
    return replies


async def _fuzz_http(url: str, http: aiohttp.ClientSession, rng: random.Random, n: int) -> None:
    seeds = _seeds()
    await asyncio.gather(*(_http_worker(url, http, rng, seeds, n // 4) for _ in range(4)))


async def _http_worker(
    url: str, http: aiohttp.ClientSession, rng: random.Random, seeds: list[bytes], n: int
) -> None:
    for _ in range(n):
        body = _mutate(rng, seeds)
        path = rng.choice(["/", "/echo/1/x", "/echo/%ZZ/%00", "/x/y/z", "/healthz"])
        method = rng.choice(["POST", "POST", "PUT", "GET"])
        async with http.request(method, url + path, data=body) as r:
            await r.read()
            assert r.status < 500, (r.status, body)
            if r.status != 204 and r.content_type == "application/x-protobuf":
                env = decode_envelope(await r.read())  # always one well-formed envelope
                if r.status >= 400:
                    assert env.Constructor == C_Error


@pytest.mark.slow
async def test_gateway_survives_random_and_mutated_input(
    http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    rng = random.Random(20240607)
    loop = asyncio.get_running_loop()
    # asyncio debug mode (on for the suite) triples the cost of 10,000 round trips; this test is
    # about the server's input handling, so it runs at normal speed.
    loop.set_debug(False)
    stop = asyncio.Event()
    with caplog.at_level(logging.WARNING, logger="rony.server"):
        async with serve(echo_app, max_message_size=64 * 1024) as edge:
            good = asyncio.create_task(_good_client(edge.url, http, stop))
            t0 = loop.time()
            replies, _ = await asyncio.gather(
                _fuzz_ws(edge.url, http, rng, WS_FRAMES),
                _fuzz_http(edge.url, http, rng, HTTP_BODIES),
            )
            print(f"fuzz took {loop.time() - t0:.2f}s")
            stop.set()
            good_calls = await good
            # Still serving: a fresh client gets a correct answer.
            async with http.post(edge.url, data=envelope(Ping(ID=5), 5).SerializeToString()) as r:
                assert unwrap(decode_envelope(await r.read()), Pong).ID == 5
    assert good_calls > 10
    assert replies > WS_FRAMES // 2  # bad frames got replies, not silence
    internal = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not internal, [r.getMessage() for r in internal[:3]]
