"""The tracing settings: defaults, TOML / environment / CLI, bad values refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from rony.server import load_settings
from rony.server.cli import build_parser


def test_defaults_env_and_toml(tmp_path: Path) -> None:
    s = load_settings(environ={})
    assert (s.tracing, s.trace_sampler, s.trace_ratio) == (True, "parentbased_traceidratio", 1.0)
    s = load_settings(environ={"RONY_TRACING": "off", "RONY_TRACE_RATIO": "0.25"})
    assert (s.tracing, s.trace_ratio) == (False, 0.25)
    toml = tmp_path / "rony.toml"
    toml.write_text('[rony]\ntrace_sampler = "traceidratio"\ntrace_ratio = 0.5\n')
    s = load_settings(config_file=toml, environ={})
    assert (s.trace_sampler, s.trace_ratio) == ("traceidratio", 0.5)
    with pytest.raises(ValueError, match="trace_ratio"):
        load_settings(environ={"RONY_TRACE_RATIO": "2"})
    with pytest.raises(ValueError, match="trace_sampler"):
        load_settings(environ={"RONY_TRACE_SAMPLER": "often"})


def test_cli_flags(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["serve", "m:app", "--no-tracing", "--trace-sampler", "always_on", "--trace-ratio", "0.1"]
    )
    assert (args.tracing, args.trace_sampler, args.trace_ratio) == (False, "always_on", 0.1)
    args = parser.parse_args(["serve", "m:app"])
    assert (args.tracing, args.trace_sampler, args.trace_ratio) == (None, None, None)
    for bad in (["--trace-ratio", "1.5"], ["--trace-ratio", "nan"], ["--trace-sampler", "x"]):
        with pytest.raises(SystemExit) as exc:
            parser.parse_args(["serve", "m:app", *bad])
        assert exc.value.code == 2
    assert "trace" in capsys.readouterr().err
