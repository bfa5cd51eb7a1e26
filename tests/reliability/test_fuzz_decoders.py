"""Hostile input at every decoder (``_decoders.TARGETS``), a fixed hypothesis budget each:
random bytes and mutations of well-formed inputs must raise nothing but the decoder's own
errors. (The gateway-level fuzz is tests/server/test_fuzz.py, the SWIM state machine's on
well-formed packets tests/cluster/test_swim_fuzz.py; the coverage-guided runs, atheris, are in
benchmarks/soak.)"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reliability._decoders import SEEDS, TARGETS

BUDGET = 400  # examples per decoder and strategy


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.integers(0, 3))
        i = draw(st.integers(0, len(data)))
        if op == 0 and data:
            data[min(i, len(data) - 1)] ^= 1 << draw(st.integers(0, 7))
        elif op == 1:
            del data[i:]
        elif op == 2:
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif data:
            data[min(i, len(data) - 1)] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF]))
    return bytes(data)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_random_bytes(name: str) -> None:
    target = TARGETS[name]

    @settings(max_examples=BUDGET, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.binary(max_size=512))
    def run(data: bytes) -> None:
        target(data)

    run()


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_mutated_seeds(name: str) -> None:
    target, seeds = TARGETS[name], SEEDS[name]
    for seed in seeds:
        target(seed)  # the seeds themselves decode

    @settings(max_examples=BUDGET, deadline=None, suppress_health_check=list(HealthCheck))
    @given(mutated(seeds))
    def run(data: bytes) -> None:
        target(data)

    run()
