"""The `tinybert` group: --help, --version, --backend, and the gradcheck audit command."""
from __future__ import annotations

import json

from click.testing import CliRunner

import backends
from cli.main import tinybert


def test_help_and_version():
    runner = CliRunner()
    result = runner.invoke(tinybert, ["--help"])
    assert result.exit_code == 0 and "gradcheck" in result.output
    result = runner.invoke(tinybert, ["--version"])
    assert result.exit_code == 0 and "tinybert, version" in result.output


def test_gradcheck_audits_every_op_as_json():
    result = CliRunner().invoke(tinybert, ["--backend", "numpy", "gradcheck", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{"):])
    assert report["failed"] == 0 and report["passed"] >= 45
    ops = {r["op"] for r in report["results"]}
    assert {"softmax_masked", "cross_entropy", "no_norm", "layer_norm", "embedding"} <= ops


def test_gradcheck_only_filter_and_unknown_filter():
    runner = CliRunner()
    result = runner.invoke(tinybert, ["gradcheck", "--only", "softmax"])
    assert result.exit_code == 0 and "3 passed, 0 failed" in result.output
    result = runner.invoke(tinybert, ["gradcheck", "--only", "nonexistent"])
    assert result.exit_code != 0 and "no op name contains 'nonexistent'" in result.output


def test_unknown_backend_is_rejected_by_click():
    result = CliRunner().invoke(tinybert, ["--backend", "tpu", "gradcheck"])
    assert result.exit_code == 2 and "tpu" in result.output


_ORIGINAL_DEFAULT = backends.default_backend_name()


def teardown_module(module):
    # --backend sets the process default; give later tests the default they started with.
    backends.set_default_backend(_ORIGINAL_DEFAULT)
