"""When int8 layers run the int8 GEMM and when they fall back to float32
(tinybert_core/quantization/dispatch.py): the rule, the switch, the fallback's arithmetic, and
the CPU without a fast int8 kernel. The suite runs under "always" (tests/conftest.py); these
tests ask for "auto" or "never" themselves."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import backends
from autograd import Tensor, nn, no_grad
from backends import numba_int8
from int8_models import batches, make_model
from paths import ROOT
from tinybert_core.quantization import (
    InputQuantizer,
    QuantizedLinear,
    get_int8_dispatch,
    int8_dispatch,
    int8_pays,
    model_nbytes,
    move,
    quantize_model,
    quantize_weight,
    set_int8_dispatch,
)
from tinybert_core.quantization.dispatch import RULES
from tinybert_core.quantization.report import dispatch_plan, dispatch_summary

FAST = numba_int8.fast_path()          # None on a CPU (or NUMBA_DISABLE_JIT) without one
needs_fast_path = pytest.mark.skipif(FAST is None, reason="no fast int8 path on this CPU")


class _Path:
    """A stand-in backend that only answers the rule's two questions."""

    def __init__(self, path, threads=1):
        self.path, self.threads = path, threads

    def int8_gemm_path(self):
        return self.path

    def gemm_threads(self):
        return self.threads


def layer(n: int, k: int, seed: int = 0, bias: bool = True, input_range=None):
    rng = np.random.default_rng(seed)
    q, s = quantize_weight(rng.standard_normal((n, k)).astype(np.float32))
    b = rng.standard_normal(n).astype(np.float32) if bias else None
    return QuantizedLinear(q, s.reshape(-1), b, InputQuantizer(per_row=True), input_range)


def counting(monkeypatch, be, name: str) -> list:
    calls: list = []
    real = be.kernel(name)
    monkeypatch.setitem(be._table, name, lambda *a, **kw: calls.append(1) or real(*a, **kw))
    return calls


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("path", sorted(RULES))
def test_rule_is_float_for_tiny_gemms_and_int8_for_big_ones(path, threads):
    be = _Path(path, threads)
    assert not int8_pays(be, 16, 32, 128)               # the quickstart student's layers
    assert not int8_pays(be, 1, 512, 512)               # one row: the fixed cost dominates
    assert not int8_pays(be, 1 << 20, 32, 512)          # N = 32: float won at every M
    big = [int8_pays(be, 1024, 512, 128),              # MobileBERT's FFN at batch 8 x 128
           int8_pays(be, 4096, 128, 128)]
    # AVX2 on two threads lost to OpenBLAS's float32 at every size measured: never int8 there
    assert big == ([False, False] if (path, threads) == ("avx2", 2) else [True, True])
    assert not int8_pays(_Path(None, threads), 1 << 16, 3072, 768)   # no fast path: never


@pytest.mark.parametrize("path", sorted(RULES))
@given(m=st.integers(1, 4096), n=st.integers(1, 4096), k=st.integers(1, 4096),
       more=st.integers(1, 64), threads=st.sampled_from([1, 2, 16]))
@settings(max_examples=50, deadline=None)
def test_rule_never_goes_back_to_float_for_more_rows(path, m, n, k, more, threads):
    be = _Path(path, threads)
    if int8_pays(be, m, n, k):
        assert int8_pays(be, m + more, n, k)


@pytest.mark.parametrize("path", sorted(RULES))
@given(m=st.integers(1, 4096), n=st.integers(1, 4096), k=st.integers(1, 4096))
@settings(max_examples=50, deadline=None)
def test_threads_only_ever_send_more_layers_to_float(path, m, n, k):
    """Below 2^24 multiply-adds the int8 kernel stays on one thread while float32 BLAS uses
    them all, so a multi-threaded backend needs int8 to win by more."""
    if int8_pays(_Path(path, 2), m, n, k):
        assert int8_pays(_Path(path, 1), m, n, k)
    if m * n * k >= 1 << 24 and n >= 64:
        # both parallel: VNNI keeps its 1-thread lead; AVX2's 7-bit kernel lost to two-thread
        # float32 BLAS at every size in the idle 2-thread grid (docs/int8.md), so never there
        assert int8_pays(_Path(path, 2), m, n, k) == (path != "avx2")


def test_the_numba_backend_reports_its_thread_pool():
    import numba
    assert backends.get_backend("numba").gemm_threads() == numba.config.NUMBA_NUM_THREADS
    assert backends.get_backend("numpy").gemm_threads() == 1


def test_the_switch_is_a_context_manager_and_checks_its_mode():
    assert get_int8_dispatch() == "always"              # tests/conftest.py
    with int8_dispatch("never"):
        assert get_int8_dispatch() == "never"
        with int8_dispatch("auto"):
            assert get_int8_dispatch() == "auto"
        assert get_int8_dispatch() == "never"
    assert get_int8_dispatch() == "always"
    assert set_int8_dispatch("auto") == "always"
    assert set_int8_dispatch("always") == "auto"
    with pytest.raises(ValueError, match="auto, always, never"):
        int8_dispatch("sometimes")


def test_cli_option_sets_the_mode_for_one_command_and_refuses_others():
    from cli.main import tinybert
    result = CliRunner().invoke(tinybert, ["--int8-dispatch", "never", "backends"])
    assert result.exit_code == 0, result.output
    assert get_int8_dispatch() == "always"              # restored when the command ended
    result = CliRunner().invoke(tinybert, ["--int8-dispatch", "sometimes", "backends"])
    assert result.exit_code != 0 and "sometimes" in result.output


@pytest.mark.parametrize("device", ["numpy", "numba"])
@pytest.mark.parametrize("static", [False, True])
@given(m=st.integers(1, 9), k=st.integers(1, 70), n=st.integers(1, 40), bias=st.booleans(),
       seed=st.integers(0, 2**31))
@settings(max_examples=10, deadline=None)
def test_fallback_is_x_times_the_dequantized_weight(device, static, m, k, n, bias, seed):
    """Float32 math on q s, without quantizing x (so a static range clips nothing)."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((2, m, k)) * 3).astype(np.float32)
    lin = layer(n, k, seed, bias, (-0.5, 0.5) if static else None)
    with no_grad(), int8_dispatch("never"):
        got = lin(Tensor(x, device=device))
    w = lin.int8_weight().astype(np.float64) * lin.weight_scale[:, None].astype(np.float64)
    want = x.astype(np.float64) @ w.T + (0 if lin.bias is None else lin.bias)
    assert got.shape == (2, m, n) and got.dtype == np.float32 and got.device == device
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-5 * (np.abs(want).max() + 1))
    float_layer = nn.Linear(k, n, bias=bias).to(device)     # a float Linear holding q s
    float_layer.weight.data[...] = lin.dequantized_weight()
    if bias:
        float_layer.bias.data[...] = lin.bias
    with no_grad():
        np.testing.assert_array_equal(got.numpy(), float_layer(Tensor(x, device=device)).numpy())


def test_a_wrong_input_width_is_an_error_in_both_paths():
    lin = layer(4, 6)
    for mode in ("never", "always"):
        with no_grad(), int8_dispatch(mode), pytest.raises(ValueError, match="6 input features"):
            lin(Tensor(np.ones((3, 4), np.float32)))      # 12 values: would reshape to (2, 6)


@pytest.mark.parametrize("device", ["numpy", "numba"])
def test_always_is_the_int8_kernel_bit_for_bit(device):
    """What every QuantizedLinear call computed before the fallback existed: quantize_u8, then
    int8_matmul with the fused rescale and bias."""
    be = backends.get_backend(device)
    lin = layer(24, 40, seed=3)
    x = np.random.default_rng(4).standard_normal((3, 5, 40)).astype(np.float32)
    codes, scale, zp = be.kernel("quantize_u8")(x, None, True)
    want = be.kernel("int8_matmul")(codes, lin.weight, zp.reshape(-1), scale.reshape(-1),
                                    lin.weight_scale, lin.bias)
    with no_grad(), int8_dispatch("always"):
        got = lin(Tensor(x, device=device)).numpy()
    np.testing.assert_array_equal(got, want)
    assert lin._float is None                              # no float32 copy was made


@needs_fast_path
def test_auto_runs_int8_for_a_big_gemm_and_float_for_a_tiny_one(monkeypatch):
    be = backends.get_backend("numba")
    gemms, quantized = counting(monkeypatch, be, "int8_matmul"), \
        counting(monkeypatch, be, "quantize_u8")
    big, tiny = layer(512, 512), layer(32, 32)
    rng = np.random.default_rng(5)
    x_big = Tensor(rng.standard_normal((256, 512)).astype(np.float32), device="numba")
    x_tiny = Tensor(rng.standard_normal((4, 32)).astype(np.float32), device="numba")
    with no_grad(), int8_dispatch("auto"):
        y_tiny = tiny(x_tiny)
        assert not gemms and not quantized                 # the fallback quantizes nothing
        assert tiny._float is not None
        y_big = big(x_big)
        assert len(gemms) == 1 and len(quantized) == 1 and big._float is None
    with no_grad(), int8_dispatch("always"):
        np.testing.assert_array_equal(y_big.numpy(), big(x_big).numpy())
    with no_grad(), int8_dispatch("never"):
        np.testing.assert_array_equal(y_tiny.numpy(), tiny(x_tiny).numpy())


def test_a_cpu_with_only_the_portable_kernel_falls_back(monkeypatch):
    """Simulated as the AVX2 subprocess test does for its target, but in process: Numba's
    paths cut down to "portable", whose int8 loop is slower than float32 BLAS at every size."""
    monkeypatch.setattr(numba_int8, "available_paths", lambda: ("portable",))
    be = backends.get_backend("numba")
    assert be.int8_gemm_path() is None
    gemms = counting(monkeypatch, be, "int8_matmul")
    big = layer(512, 512)
    x = Tensor(np.random.default_rng(6).standard_normal((1024, 512)).astype(np.float32),
               device="numba")
    with no_grad(), int8_dispatch("auto"):
        big(x)
    assert not gemms and big._float is not None
    assert backends.get_backend("numpy").int8_gemm_path() is None   # the int64-exact reference


def test_the_float_copy_is_made_once_per_backend_and_counted():
    lin = layer(16, 8)
    before = model_nbytes(lin)
    x = np.ones((2, 8), np.float32)
    with no_grad(), int8_dispatch("never"):
        lin(Tensor(x))
        first = lin._float[1]
        lin(Tensor(x))
        assert lin._float[1] is first                      # kept, not remade per call
        assert model_nbytes(lin) == before + 16 * 8 * 4    # the copy's bytes (bias shared)
        lin(Tensor(x, device="numba"))
        assert lin._float[0].name == "numba"


@pytest.mark.parametrize("device", ["numpy", "numba"])
def test_a_model_under_auto_is_its_float_math_where_it_falls_back(device):
    """The tiny test models' layers all fall back (too small for any rule), so "auto" equals
    "never" exactly, the MLM head included, and stays close to the float model."""
    float_model = make_model("mobilebert")
    q = move(quantize_model(float_model), device)
    data = batches()[0]
    with no_grad():
        with int8_dispatch("auto"):
            auto = q(**data).prediction_logits.numpy()
        with int8_dispatch("never"):
            never = q(**data).prediction_logits.numpy()
        with int8_dispatch("always"):
            always = q(**data).prediction_logits.numpy()
        want = float_model(**data).prediction_logits.numpy()
    np.testing.assert_array_equal(auto, never)
    scale = np.abs(want).max()
    assert np.abs(auto - want).max() < 0.05 * scale and np.abs(always - want).max() < 0.05 * scale
    assert not np.array_equal(auto, always)                # int8 arithmetic differs in bits


def test_dispatch_plan_names_every_layer_call_and_leaves_no_float_copies():
    q = quantize_model(make_model("mobilebert"))
    plan = dispatch_plan(q, {"input_ids": np.ones((2, 8), np.int64)})
    names = {row["name"] for row in plan}
    assert "mobilebert.encoder.layer.0.attention.self.query" in names
    assert "cls.predictions" in names                      # the head: one decision, both GEMMs
    rows = {row["name"]: row["rows"] for row in plan}
    assert rows["cls.predictions"] == 16 and rows["mobilebert.pooler.dense"] == 2
    assert all(row["runs"] == "float32" for row in plan)   # width 32: nothing pays
    assert all(m._float is None for m in q.modules() if isinstance(m, QuantizedLinear))
    summary = dispatch_summary(q, seq_len=8, sizes=(1,))
    assert summary["batches"][0]["int8"] == 0
    assert summary["batches"][0]["float32"] == len(plan)


@needs_fast_path
def test_dispatch_plan_follows_the_rule_per_layer():
    q = quantize_model(make_model("mobilebert"))
    plan = dispatch_plan(q, {"input_ids": np.ones((2, 8), np.int64)})
    be = backends.get_backend("numba")
    for row in plan:
        assert row["runs"] == ("int8" if int8_pays(be, row["rows"], row["out_features"],
                                                   row["in_features"]) else "float32")


# --- other CPUs, as Numba targets in a child process (as tests/backends/test_int8_matmul.py) ------

_CHILD = textwrap.dedent("""
    import json
    import numpy as np
    import backends
    from autograd import Tensor, no_grad
    from backends import numba_int8
    from tinybert_core.quantization import (InputQuantizer, QuantizedLinear, int8_dispatch,
                                            quantize_weight)
    be = backends.get_backend("numba")
    rng = np.random.default_rng(0)
    q, s = quantize_weight(rng.standard_normal((512, 512)).astype(np.float32))
    layer = QuantizedLinear(q, s.reshape(-1), None, InputQuantizer())
    x = rng.standard_normal((1024, 512)).astype(np.float32)
    with no_grad(), int8_dispatch("auto"):
        y = layer(Tensor(x, device="numba")).numpy()
    want = x.astype(np.float64) @ layer.dequantized_weight().T.astype(np.float64)
    print(json.dumps({"paths": list(numba_int8.available_paths()),
                      "int8_gemm_path": be.int8_gemm_path(),
                      "fell_back": layer._float is not None,
                      "float_error": float(np.abs(y - want).max() / np.abs(want).max())}))
""")


def _child(env: dict) -> dict:
    done = subprocess.run([sys.executable, "-c", _CHILD], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _features_without(prefixes: tuple[str, ...]) -> str:
    import llvmlite.binding as ll
    features = ll.get_host_cpu_features()
    for name in list(features):
        if name.startswith(prefixes):
            features[name] = False
    return features.flatten()


def test_a_cpu_without_avx2_falls_back_even_for_a_big_gemm(tmp_path):
    """Numba targeting an x86-64 without AVX2 (nor AVX-512, VNNI): only the portable loop is
    left, so "auto" runs MobileBERT-sized GEMMs in float32 too (and compiles no int8 kernel)."""
    got = _child({"NUMBA_CACHE_DIR": str(tmp_path), "NUMBA_CPU_NAME": "x86-64",
                  "NUMBA_CPU_FEATURES": _features_without(("avx2", "avx512", "avxvnni",
                                                           "amx", "avx10"))})
    assert got["paths"] == ["portable"] and got["int8_gemm_path"] is None
    assert got["fell_back"] and got["float_error"] < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("threads", ["1", "2"])
def test_an_avx2_only_cpu_runs_a_big_gemm_int8_on_one_thread_only(tmp_path, threads):
    """On one thread the AVX2 kernel beats float32 from 2^24 multiply-adds; on two it lost to
    OpenBLAS at every size measured, so "auto" falls back there (docs/int8.md)."""
    if "avx2" not in numba_int8.available_paths():
        pytest.skip("this CPU has no AVX2 to emulate an AVX2-only machine with")
    got = _child({"NUMBA_CACHE_DIR": str(tmp_path), "NUMBA_CPU_NAME": "znver3",
                  "NUMBA_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads,
                  "NUMBA_CPU_FEATURES": _features_without(("avx512", "avxvnni", "amx",
                                                           "avx10"))})
    assert got["paths"] == ["avx2", "portable"] and got["int8_gemm_path"] == "avx2"
    if threads == "1":
        assert not got["fell_back"] and 1e-5 < got["float_error"] < 0.05    # int8 arithmetic
    else:
        assert got["fell_back"] and got["float_error"] < 1e-5
