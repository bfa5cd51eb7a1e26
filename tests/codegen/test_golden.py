"""Golden tests: the generated ``_rony.py`` of every fixture proto equals the committed file.

Regenerate the goldens after an intended change with
``RONY_UPDATE_GOLDEN=1 hatch test -p tests/codegen/test_golden.py`` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rony.server.codegen.plugin import generate
from tests.codegen._util import FIXTURES, GOLDEN, fixture_protos, request_for, ruff

UPDATE = os.environ.get("RONY_UPDATE_GOLDEN") == "1"


@pytest.mark.parametrize("proto", fixture_protos())
def test_generated_code_matches_golden(proto: str, tmp_path: Path) -> None:
    response = generate(request_for([proto], tmp_path))
    assert not response.error
    # <proto>_rony.py, then <proto>_repo.py when the file has rony_model messages, then
    # <proto>_cli.py when it has rony_cli services.
    assert response.file[0].name == proto.removesuffix(".proto") + "_rony.py"
    for out in response.file:
        golden = GOLDEN / out.name
        if UPDATE:
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(out.content)
        assert golden.exists(), f"no golden {out.name}; run with RONY_UPDATE_GOLDEN=1"
        assert out.content == golden.read_text(), (
            f"{proto}: generated code differs from {golden.relative_to(GOLDEN.parent)}; if "
            "intended, regenerate with RONY_UPDATE_GOLDEN=1 and review the diff"
        )


def test_every_golden_has_a_fixture() -> None:
    expected = {p.removesuffix(".proto") + "_rony.py" for p in fixture_protos()}
    present = {p.relative_to(GOLDEN).as_posix() for p in GOLDEN.rglob("*_rony.py")}
    assert present == expected
    repos = {p.relative_to(GOLDEN).as_posix() for p in GOLDEN.rglob("*_repo.py")}
    assert {r.removesuffix("_repo.py") + "_rony.py" for r in repos} <= expected
    clis = {p.relative_to(GOLDEN).as_posix() for p in GOLDEN.rglob("*_cli.py")}
    assert {c.removesuffix("_cli.py") + "_rony.py" for c in clis} <= expected
    assert {"sample_cli.py", "kitchen/sink_cli.py", "cgapi/api_cli.py"} <= clis


def test_generation_is_deterministic(tmp_path: Path) -> None:
    protos = fixture_protos()
    first = generate(request_for(protos, tmp_path))
    second = generate(request_for(list(reversed(protos)), tmp_path))
    assert {f.name: f.content for f in first.file} == {f.name: f.content for f in second.file}


@pytest.mark.parametrize("line_length", [88, 100])
def test_golden_files_are_ruff_formatted(line_length: int) -> None:
    # Stable under ruff's default width and this repository's: generated code never needs a
    # reformat whatever the project's setting.
    res = ruff("format", "--isolated", "--check", "--diff", f"--line-length={line_length}", GOLDEN)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize(
    "isort",
    [
        'lint.isort.known-first-party=["rony"]',
        'lint.isort.known-third-party=["rony"]',
        'lint.isort.known-first-party=["kitchen", "cgcalc"]',
    ],
)
def test_golden_files_pass_ruff_lint(isort: str) -> None:
    # This repository's rule set, with rony classified either way: `# isort: split` keeps the
    # import order valid for any classification.
    res = ruff(
        "check",
        "--isolated",
        "--select=E,F,W,I,B,UP,ASYNC,RUF,SIM,PT",
        "--target-version=py311",
        "--line-length=88",
        "--config",
        isort,
        GOLDEN,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_fixture_folder_has_the_go_sample() -> None:
    assert (FIXTURES / "sample.proto").is_file()
