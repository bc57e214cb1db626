"""The Numba int8 GEMM: `int8_matmul` on packed weights, one code path per x86 instruction set.

What it computes is defined in `backends/int8.py` and, readably, by `backends.reference.
int8_matmul`; every path here gives the same int32 (and float32) bits. LLVM never turns a plain
loop into the u8 x s8 dot-product instructions (llvm/llvm-project#97720), so the fast paths
write them out as LLVM IR through `numba.extending.intrinsic`:

- "avx512_vnni": `vpdpbusd` on zmm registers. One instruction adds, in each of 16 int32 lanes,
  the dot product of 4 activation bytes (broadcast to every lane) with 4 weight bytes of that
  lane's output channel: exactly one 64-byte row of the packed layout. A register tile is
  6 rows x 4 panels (64 channels) = 24 accumulators; per step of 4 k it loads 4 weight vectors
  and 6 broadcasts and issues 24 `vpdpbusd`.
- "avx_vnni": the same instruction on 256-bit ymm registers (AVX-VNNI, or AVX-512 VNNI with
  AVX512VL); a tile is 6 rows x 1 panel = 12 accumulators, which fits the 16 ymm registers of
  an AVX-VNNI CPU without AVX-512.
- "avx2": `vpmaddubsw` (u8 x s8 products, adjacent pairs added into int16) then `vpmaddwd`
  against ones (pairs of int16 into int32). The int16 sum saturates for 8-bit activations
  (255 * 127 * 2 > 32767), so this path takes only activations in [0, 127] (7 bits, PyTorch's
  `reduce_range`): then every pair sum fits (127 * 128 * 2 = 32512) and the result is exact.
  Auto dispatch sends larger activations to "portable". Tile: 4 rows x 1 panel.
- "portable": plain Numba loops with int32 accumulators, for any CPU; LLVM vectorises them with
  whatever the target has (`vpmaddwd` on int16 on x86, which cannot saturate).

Each path is its own `@njit(parallel=True, cache=True)` driver, and the IR of an intrinsic is
emitted only when the driver that calls it is first compiled, i.e. first called. `int8_matmul`
calls only drivers whose instructions Numba's target has, so a machine without AVX-512 never
compiles (and LLVM never fails to select) a `vpdpbusd` zmm. Numba's cache index is keyed by the
target CPU name and feature string, so code cached on a Zen 4 is not loaded on a Zen 3: it is
compiled again there. The target's features are what Numba compiles for: NUMBA_CPU_FEATURES
when set, else the host's as LLVM sees them (which include the OS's support for the registers).

Work division: the drivers `prange` over tasks of (one tile of 64 (VNNI) or 16 output channels)
x (a chunk of rows); each task keeps its weight panels in L1/L2 while it walks its rows, and
writes only its own block of the output. Products smaller than _PARALLEL_MIN multiply-adds run
on the calling thread (as in numba_backend's `_run`): waking the other thread costs more.

`path=` forces one path (tests, benchmarks); asking for one the CPU lacks is a ValueError.
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import numba
import numpy as np
from llvmlite import binding as llvm_binding
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from backends.int8 import KGROUP, PANEL, PackedInt8Weights, check_matmul_args

PATHS = ("avx512_vnni", "avx_vnni", "avx2", "portable")   # in order of preference
_PARALLEL_MIN = 1 << 24        # multiply-adds below which one thread is faster
_ROW_CHUNK = 96                # rows per task: a multiple of every tile height below
_I8, _I16, _I32 = ir.IntType(8), ir.IntType(16), ir.IntType(32)


# --- what the CPU (Numba's target) can run ------------------------------------------------------

@functools.cache
def target_features() -> frozenset[str]:
    """The CPU features Numba compiles for (NUMBA_CPU_FEATURES, else the host's); asked once,
    because LLVM's host query costs ~0.2 ms."""
    spec = numba.config.CPU_FEATURES
    if spec is None:
        spec = llvm_binding.get_host_cpu_features().flatten()
    return frozenset(f[1:] for f in spec.split(",") if f.startswith("+"))


def _path_runs(path: str, features: frozenset[str]) -> bool:
    if path == "avx512_vnni":
        return {"avx512f", "avx512bw", "avx512vnni"} <= features
    if path == "avx_vnni":
        return "avxvnni" in features or {"avx512vnni", "avx512vl"} <= features
    if path == "avx2":
        return "avx2" in features
    return path == "portable"


@functools.cache
def available_paths() -> tuple[str, ...]:
    """The paths this CPU can run, fastest first; "portable" is always last (and alone under
    NUMBA_DISABLE_JIT=1, because the intrinsics exist only in compiled code)."""
    if numba.config.DISABLE_JIT:
        return ("portable",)
    features = target_features()
    return tuple(p for p in PATHS if _path_runs(p, features))


def fast_path() -> str | None:
    """The path `int8_matmul` takes here if it beats float32 BLAS on large GEMMs, else None:
    "portable" does not (0.55-0.75x of float32 OpenBLAS), so a CPU with nothing better
    should run its int8 layers in float32 (`NumbaBackend.int8_gemm_path`)."""
    best = available_paths()[0]
    return None if best == "portable" else best


def activation_max() -> int:
    """The largest activation code the fastest path here takes: 255 with VNNI, 127 (7-bit
    activations, `reduce_range`) when the best path is "avx2". Quantizers should use it."""
    return 127 if available_paths()[0] == "avx2" else 255


# --- the micro-kernels as LLVM IR ----------------------------------------------------------------

class _Isa:
    """One instruction set's register tile: `rows` x `panels` panels of 16 channels, with
    `lanes` int32 lanes per vector (so 16 // lanes vectors per panel and row)."""

    def __init__(self, name: str, lanes: int, rows: int, panels: int) -> None:
        self.name, self.lanes, self.rows, self.panels = name, lanes, rows, panels
        self.vec = ir.VectorType(_I32, lanes)

    def dot(self, builder: ir.IRBuilder, acc, a4, w4):
        """acc + per-lane dot products of 4 u8 (a4) with 4 s8 (w4), as int32 lanes."""
        module = builder.module
        if self.name == "avx2":
            bytes_ = ir.VectorType(_I8, 4 * self.lanes)
            words = ir.VectorType(_I16, 2 * self.lanes)
            maddubs = cgutils.get_or_insert_function(
                module, ir.FunctionType(words, [bytes_, bytes_]), "llvm.x86.avx2.pmadd.ub.sw")
            maddwd = cgutils.get_or_insert_function(
                module, ir.FunctionType(self.vec, [words, words]), "llvm.x86.avx2.pmadd.wd")
            pairs = builder.call(maddubs, [builder.bitcast(a4, bytes_),
                                           builder.bitcast(w4, bytes_)])
            ones = ir.Constant(words, [1] * (2 * self.lanes))
            return builder.add(acc, builder.call(maddwd, [pairs, ones]))
        bits = 32 * self.lanes
        vpdpbusd = cgutils.get_or_insert_function(
            module, ir.FunctionType(self.vec, [self.vec] * 3), f"llvm.x86.avx512.vpdpbusd.{bits}")
        return builder.call(vpdpbusd, [acc, a4, w4])


_AVX512_VNNI = _Isa("avx512_vnni", 16, 6, 4)
_AVX_VNNI = _Isa("avx_vnni", 8, 6, 1)
_AVX2 = _Isa("avx2", 8, 4, 1)


def _splat(builder: ir.IRBuilder, value, vec: ir.VectorType):
    """`value` in every lane of `vec`."""
    one = builder.insert_element(ir.Constant(vec, ir.Undefined), value, ir.Constant(_I32, 0))
    return builder.shuffle_vector(one, ir.Constant(vec, ir.Undefined),
                                  ir.Constant(ir.VectorType(_I32, vec.count), [0] * vec.count))


def _k_loop(builder: ir.IRBuilder, isa: _Isa, a_rows: list, w_panels: list, groups) -> list:
    """The K loop of a len(a_rows) x isa.panels tile. Returns the accumulators, [row][panel]
    [part], which live in registers (phi nodes): per step of 4 k, one weight load per vector,
    one 4-byte broadcast per row, and rows * panels * parts dot-product instructions."""
    parts = PANEL // isa.lanes
    fn, pre = builder.function, builder.block
    head = fn.append_basic_block("int8.k.head")
    body = fn.append_basic_block("int8.k.body")
    done = fn.append_basic_block("int8.k.done")
    builder.branch(head)

    builder.position_at_end(head)
    g = builder.phi(groups.type, "g")
    g.add_incoming(ir.Constant(groups.type, 0), pre)
    accs = [[[builder.phi(isa.vec) for _ in range(parts)] for _ in range(isa.panels)]
            for _ in a_rows]
    for phi in _flat(accs):
        phi.add_incoming(ir.Constant(isa.vec, None), pre)
    builder.cbranch(builder.icmp_signed("<", g, groups), body, done)

    builder.position_at_end(body)
    step = builder.mul(g, ir.Constant(g.type, PANEL * KGROUP))       # bytes per packed row
    w_vecs = []
    for panel in w_panels:
        row = builder.bitcast(builder.gep(panel, [step]), isa.vec.as_pointer())
        w_vecs.append([builder.load(builder.gep(row, [ir.Constant(_I32, h)]), align=1)
                       for h in range(parts)])
    a_step = builder.mul(g, ir.Constant(g.type, KGROUP))
    new = []
    for a_row, acc_row in zip(a_rows, accs):
        word = builder.load(builder.bitcast(builder.gep(a_row, [a_step]), _I32.as_pointer()),
                            align=1)
        a4 = _splat(builder, word, isa.vec)                            # 4 bytes in every lane
        new.append([[isa.dot(builder, acc, a4, wv) for acc, wv in zip(acc_p, w_p)]
                    for acc_p, w_p in zip(acc_row, w_vecs)])
    for phi, value in zip(_flat(accs), _flat(new)):
        phi.add_incoming(value, builder.block)
    g.add_incoming(builder.add(g, ir.Constant(g.type, 1)), builder.block)
    builder.branch(head)
    builder.position_at_end(done)
    return accs


def _flat(nested: list) -> list:
    return [x for row in nested for panel in row for x in panel]


class _Arr:
    """An array argument of an intrinsic: its data pointer (cast to `elem`*) and its shape and
    strides as i64 values."""

    def __init__(self, context, builder, ty, value, elem) -> None:
        arr = context.make_array(ty)(context, builder, value)
        self.data = builder.bitcast(arr.data, elem.as_pointer())
        self.shape = cgutils.unpack_tuple(builder, arr.shape)
        self.strides = cgutils.unpack_tuple(builder, arr.strides)


def _epilogue(builder: ir.IRBuilder, isa: _Isa, accs: list, rows, cols, arrays, masked: bool,
              dequant: bool, has_bias) -> None:
    """Store a finished tile: acc - zp[row] * col_sums[col] (int32), or its dequantization
    float32(.) * (a_scale[row] * w_scale[col]) + bias[col], in the reference's operation order.

    `rows[r]` are row indices and `cols[p][h]` = (first output column of the vector, first
    column to read col_sums/w_scale/bias from: the same, but inside the padded panels). With
    `masked`, lanes at columns >= N are not written (llvm.masked.store)."""
    zp, col_sums, a_scale, w_scale, bias, out = arrays
    i64 = rows[0].type
    n_cols = out.shape[1]
    ldo = builder.sdiv(out.strides[0], ir.Constant(i64, 4))
    out_vec = ir.VectorType(ir.FloatType() if dequant else _I32, isa.lanes)
    iota = ir.Constant(ir.VectorType(i64, isa.lanes), list(range(isa.lanes)))
    masked_store = cgutils.get_or_insert_function(
        builder.module,
        ir.FunctionType(ir.VoidType(), [out_vec, out_vec.as_pointer(), _I32,
                                        ir.VectorType(ir.IntType(1), isa.lanes)]),
        f"llvm.masked.store.v{isa.lanes}{'f32' if dequant else 'i32'}.p0")

    def vec_at(arr, col):
        ptr = builder.bitcast(builder.gep(arr.data, [col]), isa.vec.as_pointer())
        v = builder.load(ptr, align=4)
        return builder.bitcast(v, out_vec) if dequant and arr is not col_sums else v

    for row, acc_row in zip(rows, accs):
        z = _splat(builder, builder.load(builder.gep(zp.data, [row])), isa.vec)
        if dequant:
            s = _splat(builder, builder.load(builder.gep(a_scale.data, [row])), out_vec)
        for acc_p, cols_p in zip(acc_row, cols):
            for acc, (col, src) in zip(acc_p, cols_p):
                value = builder.sub(acc, builder.mul(z, vec_at(col_sums, src)))
                if dequant:
                    value = builder.fmul(builder.sitofp(value, out_vec),
                                         builder.fmul(s, vec_at(w_scale, src)))
                    value = builder.select(has_bias, builder.fadd(value, vec_at(bias, src)),
                                           value)
                offset = builder.add(builder.mul(row, ldo), col)
                ptr = builder.bitcast(builder.gep(out.data, [offset]), out_vec.as_pointer())
                if not masked:
                    builder.store(value, ptr, align=4)
                    continue
                lanes = builder.add(_splat(builder, col, ir.VectorType(i64, isa.lanes)), iota)
                mask = builder.icmp_signed("<", lanes,
                                           _splat(builder, n_cols, ir.VectorType(i64, isa.lanes)))
                builder.call(masked_store, [value, ptr, ir.Constant(_I32, 4), mask])


def _make_tile(isa: _Isa):
    """An intrinsic that computes and stores one register tile of the output:

        tile(a, row0, rows, w, panel0, panels, zp, col_sums, a_scale, w_scale, bias, has_bias,
             out)

    for output rows row0 .. row0 + rows (rows <= isa.rows) and the isa.panels panels from
    panel0, of which `panels` exist (the missing ones repeat the last and are never stored).
    `out` is int32 (the exact product) or float32 (dequantized); col_sums, w_scale and bias are
    padded to whole panels, a_scale is empty for int32."""

    @intrinsic
    def tile(typingctx, a, row0, rows, w, panel0, panels, zp, col_sums, a_scale, w_scale, bias,
             has_bias, out):
        sig = types.void(a, row0, rows, w, panel0, panels, zp, col_sums, a_scale, w_scale, bias,
                         has_bias, out)
        dequant = isinstance(out.dtype, types.Float)

        def codegen(context, builder, sig, args):
            ty = sig.args
            f32 = ir.FloatType()
            a_arr = _Arr(context, builder, ty[0], args[0], _I8)
            w_arr = _Arr(context, builder, ty[3], args[3], _I8)
            arrays = (_Arr(context, builder, ty[6], args[6], _I32),
                      _Arr(context, builder, ty[7], args[7], _I32),
                      _Arr(context, builder, ty[8], args[8], f32),
                      _Arr(context, builder, ty[9], args[9], f32),
                      _Arr(context, builder, ty[10], args[10], f32),
                      _Arr(context, builder, ty[12], args[12], f32 if dequant else _I32))
            row0_v, rows_v, panel0_v, panels_v, has_bias_v = (args[1], args[2], args[4],
                                                             args[5], args[11])
            has_bias_v = builder.icmp_unsigned("!=", has_bias_v,
                                               ir.Constant(has_bias_v.type, 0))
            i64 = row0_v.type
            c = lambda v: ir.Constant(i64, v)                      # noqa: E731
            lda, panel_bytes = a_arr.strides[0], w_arr.strides[0]
            groups = w_arr.shape[1]
            last = builder.sub(panels_v, c(1))
            w_panels, cols = [], []
            for p in range(isa.panels):
                idx = builder.add(panel0_v, builder.select(
                    builder.icmp_signed("<", c(p), panels_v), c(p), last))
                w_panels.append(builder.gep(w_arr.data, [builder.mul(idx, panel_bytes)]))
                col0 = builder.mul(builder.add(panel0_v, c(p)), c(PANEL))
                src0 = builder.mul(idx, c(PANEL))
                cols.append([(builder.add(col0, c(h * isa.lanes)),
                              builder.add(src0, c(h * isa.lanes)))
                             for h in range(PANEL // isa.lanes)])
            full = builder.icmp_signed(
                "<=", builder.mul(builder.add(panel0_v, c(isa.panels)), c(PANEL)),
                arrays[-1].shape[1])
            fn = builder.function
            end = fn.append_basic_block("int8.tile.end")
            switch = builder.switch(rows_v, end)
            for n_rows in range(1, isa.rows + 1):
                block = fn.append_basic_block(f"int8.tile.rows{n_rows}")
                switch.add_case(ir.Constant(rows_v.type, n_rows), block)
                builder.position_at_end(block)
                rows_i = [builder.add(row0_v, c(r)) for r in range(n_rows)]
                a_rows = [builder.gep(a_arr.data, [builder.mul(r, lda)]) for r in rows_i]
                accs = _k_loop(builder, isa, a_rows, w_panels, groups)
                with builder.if_else(full) as (plain, edge):
                    with plain:
                        _epilogue(builder, isa, accs, rows_i, cols, arrays, False, dequant,
                                  has_bias_v)
                    with edge:
                        _epilogue(builder, isa, accs, rows_i, cols, arrays, True, dequant,
                                  has_bias_v)
                builder.branch(end)
            builder.position_at_end(end)
            return context.get_dummy_value()

        return sig, codegen

    return tile


_tile_avx512_vnni = _make_tile(_AVX512_VNNI)
_tile_avx_vnni = _make_tile(_AVX_VNNI)
_tile_avx2 = _make_tile(_AVX2)


# --- drivers: one per path, so that only the host's instructions are ever compiled --------------
# Each prange task is (a tile of output columns) x (a chunk of _ROW_CHUNK rows): the task keeps
# its weight panels in cache while it walks its rows, and writes only its own output block.

@njit(parallel=True, cache=True, error_model="numpy")
def _gemm_avx512_vnni(a, w, zp, col_sums, a_scale, w_scale, bias, has_bias, out):
    m, nb = a.shape[0], w.shape[0]
    tile_rows, tile_panels = 6, 4                       # _AVX512_VNNI
    chunks = (m + _ROW_CHUNK - 1) // _ROW_CHUNK
    for task in prange(((nb + tile_panels - 1) // tile_panels) * chunks):
        p0 = (task // chunks) * tile_panels
        first = (task % chunks) * _ROW_CHUNK
        for i0 in range(first, min(m, first + _ROW_CHUNK), tile_rows):
            _tile_avx512_vnni(a, i0, min(tile_rows, m - i0), w, p0, min(tile_panels, nb - p0),
                              zp, col_sums, a_scale, w_scale, bias, has_bias, out)


@njit(parallel=True, cache=True, error_model="numpy")
def _gemm_avx_vnni(a, w, zp, col_sums, a_scale, w_scale, bias, has_bias, out):
    m, nb = a.shape[0], w.shape[0]
    tile_rows = 6                                       # _AVX_VNNI: one panel per tile
    chunks = (m + _ROW_CHUNK - 1) // _ROW_CHUNK
    for task in prange(nb * chunks):
        p0 = task // chunks
        first = (task % chunks) * _ROW_CHUNK
        for i0 in range(first, min(m, first + _ROW_CHUNK), tile_rows):
            _tile_avx_vnni(a, i0, min(tile_rows, m - i0), w, p0, 1, zp, col_sums, a_scale,
                           w_scale, bias, has_bias, out)


@njit(parallel=True, cache=True, error_model="numpy")
def _gemm_avx2(a, w, zp, col_sums, a_scale, w_scale, bias, has_bias, out):
    m, nb = a.shape[0], w.shape[0]
    tile_rows = 4                                       # _AVX2: one panel per tile
    chunks = (m + _ROW_CHUNK - 1) // _ROW_CHUNK
    for task in prange(nb * chunks):
        p0 = task // chunks
        first = (task % chunks) * _ROW_CHUNK
        for i0 in range(first, min(m, first + _ROW_CHUNK), tile_rows):
            _tile_avx2(a, i0, min(tile_rows, m - i0), w, p0, 1, zp, col_sums, a_scale, w_scale,
                       bias, has_bias, out)


@njit(parallel=True, cache=True, error_model="numpy")
def _gemm_portable(a, w, zp, col_sums, a_scale, w_scale, bias, has_bias, out):
    """Plain loops. The packed panel is first copied to (16, K) rows, so that each output is a
    contiguous int8 dot product, the form LLVM vectorises (sign-extend to int16, pmaddwd)."""
    m, nb, groups = a.shape[0], w.shape[0], w.shape[1]
    n, k4 = out.shape[1], groups * KGROUP
    dequant = a_scale.shape[0] > 0             # the wrapper passes no a_scale for int32
    chunks = (m + _ROW_CHUNK - 1) // _ROW_CHUNK
    for task in prange(nb * chunks):
        p = task // chunks
        first = (task % chunks) * _ROW_CHUNK
        panel = np.empty((PANEL, k4), np.int8)
        for g in range(groups):
            for c in range(PANEL):
                for t in range(KGROUP):
                    panel[c, KGROUP * g + t] = w[p, g, c, t]
        for i in range(first, min(m, first + _ROW_CHUNK)):
            for c in range(min(PANEL, n - p * PANEL)):
                acc = np.int32(0)
                for k in range(k4):
                    acc += np.int32(a[i, k]) * np.int32(panel[c, k])
                j = p * PANEL + c
                v = acc - zp[i] * col_sums[j]
                if dequant:
                    y = np.float32(v) * (a_scale[i] * w_scale[j])
                    out[i, j] = y + bias[j] if has_bias else y
                else:
                    out[i, j] = v


_DRIVERS = {"avx512_vnni": _gemm_avx512_vnni, "avx_vnni": _gemm_avx_vnni, "avx2": _gemm_avx2,
            "portable": _gemm_portable}


# --- the registered wrapper ----------------------------------------------------------------------

def choose_path(a: np.ndarray, path: str | None = None) -> str:
    """The path `int8_matmul` takes for activations `a` (checks a forced `path`)."""
    paths = available_paths()
    if path is None:
        best = paths[0]
        if best == "avx2" and a.size and int(a.max()) > 127:
            return "portable"                   # vpmaddubsw would saturate: see the docstring
        return best
    if path not in PATHS:
        raise ValueError(f"int8_matmul: unknown path {path!r}; known: {', '.join(PATHS)}")
    if path not in paths:
        raise ValueError(f"int8_matmul: path {path!r} needs CPU features this machine lacks "
                         f"(Numba target {llvm_binding.get_host_cpu_name()}); available here: "
                         f"{', '.join(paths)}")
    if path == "avx2" and a.size and int(a.max()) > 127:
        raise ValueError(f"int8_matmul: the avx2 path takes activations in [0, 127] (vpmaddubsw "
                         f"saturates int16 pair sums above that), got a maximum of {int(a.max())}")
    return path


_NONE = np.zeros(0, np.float32)    # stands for an argument the int32 result does not read


def _padded(values: np.ndarray | None, length: int) -> np.ndarray:
    """A per-channel vector zero-padded to whole panels (the kernels load whole vectors)."""
    if values is None or values.shape[0] == length:
        return _NONE if values is None else values
    out = np.zeros(length, np.float32)
    out[:values.shape[0]] = values
    return out


def int8_matmul(a, w, a_zero_point=0, a_scale=None, w_scale=None, bias=None, *,
                path: str | None = None):
    """Numba override of `int8_matmul` (same contract as the reference); `path` forces one of
    PATHS instead of the fastest this CPU runs."""
    args = check_matmul_args(a, w, a_zero_point, a_scale, w_scale, bias)
    chosen = choose_path(args.a, path)
    a2, packed = args.a, args.w
    m, k = a2.shape
    data = np.ascontiguousarray(packed.data)
    nb, groups = data.shape[:2]
    if k != groups * KGROUP:                    # the kernels read 4 k at a time: pad with zeros
        a_pad = np.zeros((m, groups * KGROUP), np.uint8)
        a_pad[:, :k] = a2
        a2 = a_pad
    n = packed.out_features
    dequant = args.a_scale is not None
    out = np.empty((m, n), np.float32 if dequant else np.int32)
    if m and n:
        with threads_for(m * n * k):
            _DRIVERS[chosen](a2, data, args.zero_point, packed.col_sums,
                             args.a_scale if dequant else _NONE, _padded(args.w_scale, nb * PANEL),
                             _padded(args.bias, nb * PANEL), args.bias is not None, out)
    return out.reshape(args.out_shape)


@contextlib.contextmanager
def threads_for(work: int) -> Iterator[None]:
    """Numba's threads for the calls inside, or only the calling thread for less than
    _PARALLEL_MIN of work (multiply-adds, or elements x 16 for the quantization passes)."""
    if work >= _PARALLEL_MIN:
        yield
        return
    threads = numba.get_num_threads()
    numba.set_num_threads(1)              # thread-local, and restored below
    try:
        yield
    finally:
        numba.set_num_threads(threads)


__all__ = ["PATHS", "available_paths", "fast_path", "activation_max", "target_features",
           "choose_path", "int8_matmul", "threads_for", "PackedInt8Weights"]
