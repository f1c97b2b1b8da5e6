#!/usr/bin/env python3
"""One INT8 sparse linear layer in DeepSparse 1.8, on seeded weights that spruce_layer reads too.

For each case (pattern x shape x m) this script
  1. generates seeded s8 weights W[n][k] pruned to the pattern at exactly 90% zeros (whole RxC
     blocks kept or zeroed: 1x4 = 1 output channel x 4 consecutive input channels, 1x1 =
     unstructured, 4x1 = 4 output channels x 1 input channel), per-output-channel weight scales,
     u8 activations with a per-tensor scale and zero point, and an int32 bias;
  2. builds the ONNX graph of SparseML's QAT export of a Linear layer:
        X f32 [m,k] -> QuantizeLinear(x_scale, x_zp) -> MatMulInteger(Xq, W^T [k,n] s8, x_zp, 0)
          -> Add(bias_q int32 [n]) -> Cast(float) -> Mul(out_scale f32 [n]) -> Y f32 [m,n]
     with out_scale[n] = float32(x_scale * w_scale[n]), so Y = (acc + bias_q) * out_scale;
  3. compiles it with deepsparse.Engine(num_cores=1, batch_size=m), checks its output against
     the exact result of the graph, times engine.run (warm-up, then the median of per-call times),
     and runs DeepSparse's own per-layer analysis (DebugAnalysisEngine) to record which kernel
     type ran and the weight sparsity it saw;
  4. writes <out>/<case>.safetensors (inputs, weights, DeepSparse's output; the timing and the
     analysis in __metadata__) and <out>/<case>.onnx.

Run it from the venv that setup.sh makes (run.sh does). NM_DISABLE_ANALYTICS=1 is set here.
"""
import os

os.environ.setdefault("NM_DISABLE_ANALYTICS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import zlib  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402

PATTERNS = {"1x4": (1, 4), "1x1": (1, 1), "4x1": (4, 1)}  # (output channels, input channels)
SHAPES = ["768x768", "768x3072", "3072x768"]  # in_features x out_features (k x n)
MS = [1, 16, 128, 384]
SPARSITY = 0.9


def case_name(pattern, k, n, m):
    return f"{pattern}_{k}-{n}_m{m}"


def seed_for(base, text):
    return (base * 1_000_003 + zlib.crc32(text.encode())) % (2**32)


def make_weights(pattern, k, n, seed):
    """s8 W[n][k] with exactly round(blocks * 0.1) whole blocks kept, every kept weight nonzero."""
    r, c = PATTERNS[pattern]
    assert n % r == 0 and k % c == 0
    rng = np.random.default_rng(seed_for(seed, f"w/{pattern}/{k}x{n}"))
    gr, gc = n // r, k // c
    blocks = gr * gc
    keep = int(round(blocks * (1.0 - SPARSITY)))
    kept = np.zeros(blocks, dtype=bool)
    kept[rng.choice(blocks, size=keep, replace=False)] = True
    mask = np.repeat(np.repeat(kept.reshape(gr, gc), r, axis=0), c, axis=1)
    mag = rng.integers(1, 128, size=(n, k), dtype=np.int16)
    sign = rng.choice(np.array([-1, 1], dtype=np.int16), size=(n, k))
    w = np.where(mask, mag * sign, 0).astype(np.int8)
    w_scales = rng.uniform(0.002, 0.02, size=n).astype(np.float32)
    bias = rng.normal(0.0, 0.5, size=n)  # real bias, quantized below with the graph's scale
    return w, w_scales, bias


def make_inputs(pattern, k, n, m, seed):
    rng = np.random.default_rng(seed_for(seed, f"x/{pattern}/{k}x{n}/{m}"))
    x_scale = np.float32(rng.uniform(0.01, 0.05))
    x_zp = int(rng.integers(96, 160))
    x_q = rng.integers(0, 256, size=(m, k), dtype=np.uint8)
    # The f32 input DeepSparse gets: exactly representable dequantized values, so that its
    # QuantizeLinear gives back x_q (checked below, with division and with the reciprocal).
    x_f = (x_scale * (x_q.astype(np.float32) - np.float32(x_zp))).astype(np.float32)
    for q in (np.rint(x_f / x_scale), np.rint(x_f * (np.float32(1) / x_scale))):
        assert np.array_equal(np.clip(q + x_zp, 0, 255).astype(np.uint8), x_q)
    return x_scale, x_zp, x_q, x_f


def build_graph(m, k, n, w, x_scale, x_zp, bias_q, out_scale):
    inits = [
        numpy_helper.from_array(np.array(x_scale, dtype=np.float32), "x_scale"),
        numpy_helper.from_array(np.array(x_zp, dtype=np.uint8), "x_zero_point"),
        numpy_helper.from_array(np.ascontiguousarray(w.T), "weight_quant"),  # [k][n]: X @ W^T
        numpy_helper.from_array(np.array(0, dtype=np.int8), "weight_zero_point"),
        numpy_helper.from_array(bias_q, "bias_quant"),
        numpy_helper.from_array(out_scale, "output_scale"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["input", "x_scale", "x_zero_point"], ["input_quant"], name="quant"),
        helper.make_node(
            "MatMulInteger",
            ["input_quant", "weight_quant", "x_zero_point", "weight_zero_point"],
            ["matmul_int"],
            name="fc_matmul_integer",
        ),
        helper.make_node("Add", ["matmul_int", "bias_quant"], ["matmul_bias"], name="fc_bias_add"),
        helper.make_node("Cast", ["matmul_bias"], ["matmul_float"], to=TensorProto.FLOAT, name="fc_cast"),
        helper.make_node("Mul", ["matmul_float", "output_scale"], ["output"], name="fc_rescale"),
    ]
    graph = helper.make_graph(
        nodes,
        "spruce_int8_linear",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [m, n])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="spruce-bench")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def time_calls(fn, min_time, min_reps, warmup_time):
    """Warm-up for warmup_time (at least 10 calls), then per-call times until both min_reps calls
    and min_time seconds have passed; returns (median in us, number of timed calls)."""
    t_end = time.perf_counter() + warmup_time
    i = 0
    while i < 10 or time.perf_counter() < t_end:
        fn()
        i += 1
    samples = []
    t_end = time.perf_counter() + min_time
    while len(samples) < min_reps or time.perf_counter() < t_end:
        t0 = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - t0)
    return statistics.median(samples) / 1e3, len(samples)


ANALYSIS_KEYS = ("name", "canonical_name", "kernel_sparsity", "kernel_bits_per_ele", "average_run_time_in_ms")


def analysis_layers(info):
    """DeepSparse's per-layer analysis, reduced to what says which kernel ran."""
    return [{key: layer.get(key) for key in ANALYSIS_KEYS} for layer in info.get("layer_info", [])]


def gemm_layer(layers):
    """The analysis layer of the MatMulInteger ("matmul_int"), or None."""
    found = [layer for layer in layers if layer["canonical_name"] == "matmul_int"]
    return found[0] if len(found) == 1 else None


def run_case(args, pattern, k, n, m, deepsparse):
    name = case_name(pattern, k, n, m)
    w, w_scales, bias = make_weights(pattern, k, n, args.seed)
    x_scale, x_zp, x_q, x_f = make_inputs(pattern, k, n, m, args.seed)
    out_scale = (x_scale * w_scales).astype(np.float32)  # one f32 multiply, as spruce's epilogue
    bias_q = np.rint(bias / out_scale.astype(np.float64)).astype(np.int32)

    # The graph's exact result: int32 accumulate, Cast (one rounding), Mul (one rounding).
    acc = (x_q.astype(np.int64) - x_zp) @ w.T.astype(np.int64) + bias_q.astype(np.int64)
    assert np.abs(acc).max() < 2**31
    y_exact = acc.astype(np.int32).astype(np.float32) * out_scale

    out_dir = pathlib.Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / f"{name}.onnx"
    onnx.save(build_graph(m, k, n, w, x_scale, x_zp, bias_q, out_scale), str(onnx_path))

    engine = deepsparse.Engine(model=str(onnx_path), batch_size=m, num_cores=1)
    supported = engine.fraction_of_supported_ops  # 1.0: no node left to ONNX Runtime
    y_ds = engine.run([x_f])[0]
    assert y_ds.shape == (m, n) and y_ds.dtype == np.float32, (y_ds.shape, y_ds.dtype)
    ds_vs_exact = float(np.abs(y_ds - y_exact).max())
    ds_us, reps = time_calls(lambda: engine.run([x_f], val_inp=False), args.min_time, args.min_reps, args.warmup_time)
    del engine

    layers, ds_kernel = [], "(not analysed)"
    if not args.no_analysis:
        dbg = deepsparse.engine.DebugAnalysisEngine(
            model=str(onnx_path), batch_size=m, num_cores=1, num_iterations=20, num_warmup_iterations=5
        )
        layers = analysis_layers(dbg.analyze([x_f]))
        del dbg
        gemm = gemm_layer(layers)
        ds_kernel = "(no matmul_int layer)" if gemm is None else gemm["name"]
        if gemm is None or gemm["kernel_sparsity"] < SPARSITY - 0.01:
            print(f"WARNING: {name}: DeepSparse's analysis shows no sparse GEMM layer: {layers}", file=sys.stderr)
    if supported != 1.0:
        print(f"WARNING: {name}: DeepSparse runs only {supported:.2%} of the graph itself", file=sys.stderr)

    ort_vs_exact = None
    if args.check_ort:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        ort_vs_exact = float(np.abs(sess.run(None, {"input": x_f})[0] - y_exact).max())

    meta = {
        "case": name,
        "pattern": pattern,
        "sparsity": str(SPARSITY),
        "in_features": str(k),
        "out_features": str(n),
        "m": str(m),
        "seed": str(args.seed),
        "deepsparse_version": deepsparse.__version__,
        "deepsparse_us": f"{ds_us:.3f}",
        "deepsparse_timed_calls": str(reps),
        "deepsparse_vs_exact_max_abs": repr(ds_vs_exact),
        "deepsparse_fraction_of_supported_ops": repr(supported),
        "deepsparse_kernel": ds_kernel,
        "deepsparse_analysis": json.dumps(layers),
    }
    if ort_vs_exact is not None:
        meta["onnxruntime_vs_exact_max_abs"] = repr(ort_vs_exact)
    tensors = {
        "w": w,  # s8 [n][k], spruce's orientation (the ONNX initializer is its transpose)
        "w_scales": w_scales,  # f32 [n]
        "x_q": x_q,  # u8 [m][k]
        "x_f32": x_f,  # f32 [m][k], DeepSparse's input
        "x_scale": np.array([x_scale], dtype=np.float32),
        "x_zero_point": np.array([x_zp], dtype=np.int32),
        "bias_q": bias_q,  # s32 [n], the graph's Add
        "out_scale": out_scale,  # f32 [n], the graph's Mul
        "y_deepsparse": y_ds,  # f32 [m][n]
    }
    save_file(tensors, str(out_dir / f"{name}.safetensors"), metadata=meta)
    return name, ds_us, reps, ds_vs_exact, ort_vs_exact, supported, ds_kernel, layers


def csv(text):
    return [t for t in text.split(",") if t]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="out/deepsparse", help="folder for the .safetensors and .onnx files")
    ap.add_argument("--patterns", type=csv, default=list(PATTERNS), help="comma list of 1x4,1x1,4x1")
    ap.add_argument("--shapes", type=csv, default=SHAPES, help="comma list of KxN (in x out)")
    ap.add_argument("--ms", type=lambda s: [int(v) for v in csv(s)], default=MS, help="comma list of batch rows")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-time", type=float, default=1.0, help="seconds of timed calls, at least")
    ap.add_argument("--min-reps", type=int, default=101, help="timed calls, at least")
    ap.add_argument("--warmup-time", type=float, default=0.2, help="seconds of warm-up calls (at least 10 calls)")
    ap.add_argument("--no-analysis", action="store_true", help="skip DeepSparse's per-layer analysis")
    ap.add_argument("--check-ort", action="store_true", help="also run the graph in onnxruntime")
    ap.add_argument("--print-analysis", action="store_true", help="print DeepSparse's analysis per case")
    ap.add_argument(
        "--diagnose",
        action="store_true",
        help="DeepSparse's own log at level diagnose (NM_LOGGING_LEVEL): which nodes it takes, how it compiles them",
    )
    args = ap.parse_args()

    for p in args.patterns:
        if p not in PATTERNS:
            ap.error(f"--patterns: unknown pattern {p!r}; valid: {', '.join(PATTERNS)}")
    shapes = []
    for s in args.shapes:
        try:
            k, n = (int(v) for v in s.split("x"))
        except ValueError:
            ap.error(f"--shapes: {s!r} is not KxN")
        shapes.append((k, n))

    if args.diagnose:
        os.environ["NM_LOGGING_LEVEL"] = "diagnose"
    import deepsparse  # after NM_DISABLE_ANALYTICS (and NM_LOGGING_LEVEL) are set
    import deepsparse.engine  # noqa: F401

    for pattern in args.patterns:
        for k, n in shapes:
            for m in args.ms:
                name, ds_us, reps, d_exact, d_ort, supported, ds_kernel, layers = run_case(
                    args, pattern, k, n, m, deepsparse
                )
                line = (
                    f"{name}: deepsparse {ds_us:.1f} us (median of {reps}), kernel {ds_kernel}, "
                    f"supported ops {supported:.0%}, max |y - exact| {d_exact:.3g}"
                )
                if d_ort is not None:
                    line += f", onnxruntime max |y - exact| {d_ort:.3g}"
                print(line, flush=True)
                if args.print_analysis:
                    print(json.dumps(layers, indent=1), flush=True)


if __name__ == "__main__":
    sys.exit(main())
