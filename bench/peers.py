#!/usr/bin/env python3
"""The peers of visopt_bench, timed under the same protocol (bench/README.md): weights resident,
seeded random input of the given shape, warm-up, >= 30 timed runs; median/p95/p99 latency, throughput,
GFLOP/s and peak memory, appended as JSON lines in visopt_bench's row schema (tool "pytorch", level = the
mode's name). On the CPU also ONNX Runtime (mode ort_fp32, tool "onnxruntime"): the same seeded model
exported to ONNX and run by bench/ort_peer.js under Node (npm onnxruntime-node).

    peers.py --device cpu  --models resnet50,vit_b_16 --batches 1,8 --json results.jsonl
    peers.py --device cuda --models resnet50 --batches 1,64 [--modes ...,compile_max_autotune_fp16]

Runs under torch 1.13 (Debian's /usr/bin/python3, CPU) and torch 2.x (the GPU machine's python3).
"""

import argparse
import copy
import datetime
import gc
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

import numpy
import torch
import torchvision
from torchvision.models.vision_transformer import EncoderBlock, VisionTransformer

MODELS = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "vit_ti_16", "vit_s_16", "vit_s_32",
          "vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32"]

# hidden, layers, heads, mlp: the ViT sizes visopt's models/vit.hpp builds.
VIT_SIZES = {"ti": (192, 12, 3, 768), "s": (384, 12, 6, 1536), "b": (768, 12, 12, 3072), "l": (1024, 24, 16, 4096)}

ORT_MODE = "ort_fp32"  # ONNX Runtime through Node, not a torch callable: measure_ort() times it
CPU_MODES = ["eager_fp32", "channels_last_fp32", "jit_freeze_fp32", "autocast_bf16", "bf16_weights", ORT_MODE]
GPU_MODES = ["eager_fp32", "eager_tf32", "channels_last_fp16", "channels_last_bf16", "cuda_graph_fp16",
             "compile_max_autotune_fp16"]
GPU_DEFAULT_MODES = GPU_MODES[:-1]  # torch.compile's max-autotune takes minutes per shape: only when named


# ---------------------------------------------------------------------------------------------
# The machine and the run
# ---------------------------------------------------------------------------------------------

def cpu_count():
    return len(os.sched_getaffinity(0))


def cpu_machine_name():
    """'AMD EPYC, 2 CPUs': the name visopt_bench gives the same CPU, so rows of one machine group together."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {cpu_count()} CPUs"


def visopt_commit():
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "git_commit.sh")
    try:
        return subprocess.run(["sh", script], capture_output=True, text=True, check=True).stdout.strip() or "unknown"
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def reset_peak_rss():
    """Linux resets the high-water mark that ru_maxrss reports when '5' is written to /proc/self/clear_refs."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGESIZE")


def peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def percentile(sorted_samples, q):
    """Linear interpolation between the closest ranks (numpy's default; visopt_bench does the same)."""
    position = q * (len(sorted_samples) - 1)
    below = math.floor(position)
    above = min(below + 1, len(sorted_samples) - 1)
    return sorted_samples[below] + (sorted_samples[above] - sorted_samples[below]) * (position - below)


def latency_fields(samples_ms, batch, flops):
    """A row's statistics from its timed runs: median/p95/p99, throughput = batch / median, GFLOP/s."""
    samples = sorted(samples_ms)
    median = percentile(samples, 0.5)
    return dict(median_ms=median, p95_ms=percentile(samples, 0.95), p99_ms=percentile(samples, 0.99),
                throughput=batch / (median / 1e3), gflops=flops * batch / (median / 1e3) / 1e9, compile_ms=None,
                date=utc_now())


def input_images(args, batch):
    """The seeded N(0, 1) NCHW input every mode of a batch size gets."""
    generator = torch.Generator().manual_seed(args.seed + 1)
    return torch.randn(batch, 3, args.image_size, args.image_size, generator=generator)


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------

def build_model(name, image_size, seed):
    """The torchvision model with seeded random weights (no download); ViT-Ti/S through VisionTransformer."""
    torch.manual_seed(seed)
    if name.startswith("resnet"):
        model = getattr(torchvision.models, name)()
    else:
        _, size, patch = name.split("_")
        if hasattr(torchvision.models, name):
            model = getattr(torchvision.models, name)(image_size=image_size)
        else:
            hidden, layers, heads, mlp = VIT_SIZES[size]
            model = VisionTransformer(image_size=image_size, patch_size=int(patch), num_layers=layers,
                                      num_heads=heads, hidden_dim=hidden, mlp_dim=mlp)
    # torchvision zero-initialises some matrices (the ViT head): give every weight matrix values, since
    # zeros can run faster than real weights do.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2 and not p.any():
                torch.nn.init.normal_(p, std=0.02)
    return model.eval()


def multiply_adds(model, image_size):
    """Multiply-adds of one image, counted from the modules a forward pass runs: every Conv2d and Linear,
    and for each ViT encoder block its attention's input and output projections and two T×T×D products."""
    total = [0]

    def conv(m, inputs, out):
        total[0] += out[0].numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear(m, inputs, out):
        total[0] += out[0].numel() * m.in_features

    def attention(m, inputs, out):  # on the encoder block: torchvision calls its attention with keywords only
        _, t, d = inputs[0].shape  # [B, T, D]
        total[0] += 4 * t * d * d + 2 * t * t * d

    hooks = []
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            hooks.append(m.register_forward_hook(conv))
        elif isinstance(m, EncoderBlock):
            hooks.append(m.register_forward_hook(attention))
        elif isinstance(m, torch.nn.Linear) and not isinstance(m, torch.nn.modules.linear.NonDynamicallyQuantizableLinear):
            hooks.append(m.register_forward_hook(linear))  # MultiheadAttention's out_proj is counted with the block
    with torch.no_grad():
        model(torch.randn(1, 3, image_size, image_size))
    for h in hooks:
        h.remove()
    return total[0]


# ---------------------------------------------------------------------------------------------
# Modes: each returns (fn, precision, memory_format, notes); fn() runs one batch
# ---------------------------------------------------------------------------------------------

def set_tf32(enabled):
    """TF32 in cuBLAS and cuDNN on or off: torch >= 2.9's fp32_precision settings where they exist (the
    allow_tf32 flags are deprecated there), else the allow_tf32 flags."""
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        precision = "tf32" if enabled else "ieee"
        torch.backends.cuda.matmul.fp32_precision = precision
        torch.backends.cudnn.conv.fp32_precision = precision
    else:
        torch.backends.cuda.matmul.allow_tf32 = enabled
        torch.backends.cudnn.allow_tf32 = enabled


def prepare(mode, model, x, device):
    """Turns a fresh fp32 copy of the model and the fp32 NCHW input into the mode's callable."""
    channels_last = torch.channels_last
    if device == "cpu":
        if mode == "eager_fp32":
            return (lambda: model(x)), "fp32", "contiguous"
        if mode == "channels_last_fp32":
            model = model.to(memory_format=channels_last)
            xc = x.contiguous(memory_format=channels_last)
            return (lambda: model(xc)), "fp32", "channels_last"
        if mode == "jit_freeze_fp32":
            traced = torch.jit.trace(model, x)
            optimized = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
            return (lambda: optimized(x)), "fp32", "contiguous"
        if mode == "autocast_bf16":
            model = model.to(memory_format=channels_last)
            xc = x.contiguous(memory_format=channels_last)

            def run():
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return model(xc)
            run()  # fails here, not in the timing loop, where autocast cannot run the model (ViT on torch 1.13)
            return run, "bf16", "channels_last"
        if mode == "bf16_weights":
            if not isinstance(model, VisionTransformer):
                raise ValueError("bf16_weights is the ViT mode; ResNets use autocast_bf16")
            model = model.to(torch.bfloat16)
            xb = x.to(torch.bfloat16)
            return (lambda: model(xb)), "bf16", "contiguous"
        raise ValueError(f"mode '{mode}' is not a CPU mode: {', '.join(CPU_MODES)}")

    torch.backends.cudnn.benchmark = True  # every GPU mode picks its convolution algorithms by timing them
    set_tf32(mode == "eager_tf32")
    model = model.cuda()
    x = x.cuda()
    if mode == "eager_fp32":
        return (lambda: model(x)), "fp32", "contiguous"
    if mode == "eager_tf32":
        return (lambda: model(x)), "tf32", "contiguous"
    dtype = torch.bfloat16 if mode == "channels_last_bf16" else torch.float16
    precision = "bf16" if dtype == torch.bfloat16 else "fp16"
    model = model.to(dtype).to(memory_format=channels_last)
    xh = x.to(dtype).contiguous(memory_format=channels_last)
    if mode in ("channels_last_fp16", "channels_last_bf16"):
        return (lambda: model(xh)), precision, "channels_last"
    if mode == "cuda_graph_fp16":
        static_input = xh.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):  # warm up on a side stream before capture, as torch.cuda.graphs asks
                model(static_input)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            model(static_input)

        def replay():  # like visopt's O3: copy the caller's images into the captured buffer, replay
            static_input.copy_(xh)
            graph.replay()
        return replay, precision, "channels_last"
    if mode == "compile_max_autotune_fp16":
        torch._dynamo.reset()
        compiled = torch.compile(model, mode="max-autotune", dynamic=False)
        return (lambda: compiled(xh)), precision, "channels_last"
    raise ValueError(f"mode '{mode}' is not a GPU mode: {', '.join(GPU_MODES)}")


# ---------------------------------------------------------------------------------------------
# One measurement
# ---------------------------------------------------------------------------------------------

class Progress:
    def __init__(self):
        self.terminal = sys.stderr.isatty()

    def stage(self, line):
        sys.stderr.write(f"\r\033[K{line}" if self.terminal else f"{line}\n")
        sys.stderr.flush()

    def step(self, line):
        if self.terminal:
            sys.stderr.write(f"\r\033[K{line}")
            sys.stderr.flush()

    def clear(self):
        if self.terminal:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def time_mode(fn, device, warmup, iterations, label, progress):
    """Milliseconds per run: CUDA events around fn() with a synchronise after each run on the GPU (as
    visopt's run() synchronises), time.perf_counter on the CPU."""
    for i in range(warmup):
        progress.step(f"{label}: warm-up {i + 1}/{warmup}")
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    samples = []
    for i in range(iterations):
        progress.step(f"{label}: timing {i + 1}/{iterations}")
        if device == "cuda":
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            samples.append(start.elapsed_time(stop))
        else:
            begin = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - begin) * 1e3)
    return samples


def measure(args, name, base, flops, mode, batch, common, progress):
    label = f"{name} {mode} torch-{args.device} batch {batch}"
    progress.stage(f"preparing {label}…")
    row = dict(common, model=name, level=mode, batch=batch, flops_per_image=float(flops))
    gc.collect()
    if args.device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.synchronize()
        free_before = torch.cuda.mem_get_info()[0]
        torch.cuda.reset_peak_memory_stats()
        row["memory_method"] = "cudaMemGetInfo used delta from before the model is on the GPU to after the timed runs"
        row["timer"] = "cuda_events"
        row["baseline_memory_bytes"] = 0
    else:
        reset = reset_peak_rss()
        row["memory_method"] = "peak RSS of the process (getrusage; high-water mark reset per configuration)" + (
            "" if reset else " (could not reset: peak since the program started)")
        row["timer"] = "perf_counter"
        row["baseline_memory_bytes"] = rss_bytes()  # the interpreter, torch and the fp32 model before this mode
    x = input_images(args, batch)
    with torch.no_grad():
        fn, precision, memory_format = prepare(mode, copy.deepcopy(base), x, args.device)
        row.update(precision=precision, memory_format=memory_format)
        samples = time_mode(fn, args.device, args.warmup, args.iterations, label, progress)
    if args.device == "cuda":
        row["peak_memory_bytes"] = max(free_before - torch.cuda.mem_get_info()[0], 0)
        row["allocator_peak_bytes"] = torch.cuda.max_memory_allocated()
        row["cudnn_benchmark"] = True
    else:
        row["peak_memory_bytes"] = peak_rss_bytes()
    row.update(latency_fields(samples, batch, flops))
    return row


# ---------------------------------------------------------------------------------------------
# ONNX Runtime (CPU): the same model exported to ONNX, timed by bench/ort_peer.js under Node
# ---------------------------------------------------------------------------------------------

ORT_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ort_peer.js")
ORT_OPSET = 14
ORT_TOLERANCE = 1e-3  # max|ORT - torch| / max|torch| of the logits; fp32 reorderings alone give ~1e-6


def ort_runtime():
    """(node, its environment, versions) when Node finds onnxruntime-node under $VISOPT_ORT_PREFIX (default
    build/ort, where tools/bench.sh installs it), else None, after one line saying how to install it."""
    prefix = os.environ.get("VISOPT_ORT_PREFIX") or os.path.join(os.path.dirname(ORT_SCRIPT), "..", "build", "ort")
    prefix = os.path.abspath(prefix)
    node_path = filter(None, [os.path.join(prefix, "node_modules"), os.environ.get("NODE_PATH")])
    env = dict(os.environ, NODE_PATH=os.pathsep.join(node_path))
    node = shutil.which("node")
    if node:
        probe = subprocess.run([node, ORT_SCRIPT, "--version"], env=env, capture_output=True, text=True)
        if probe.returncode == 0:
            return node, env, json.loads(probe.stdout)
    print(f"peers.py: skipping {ORT_MODE}: {'onnxruntime-node is not in ' + prefix if node else 'no node'}; "
          f"install Node and npm (Debian: apt-get install nodejs npm), then "
          f"ONNXRUNTIME_NODE_INSTALL=skip npm install --prefix {prefix} onnxruntime-node (tools/bench.sh does this)",
          file=sys.stderr)
    return None


def onnx_file(model, name, x, seed):
    """The model exported at x's static shape, cached under $XDG_CACHE_HOME/visopt/onnx and exported again
    when missing; the name carries everything that decides the weights and the graph."""
    batch, _, size, _ = x.shape
    folder = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "visopt", "onnx")
    path = os.path.join(folder, f"{name}-{size}px-batch{batch}-seed{seed}-torch{torch.__version__}-"
                                f"torchvision{torchvision.__version__}-opset{ORT_OPSET}.onnx")
    if not os.path.exists(path):
        os.makedirs(folder, exist_ok=True)
        partial = f"{path}.{os.getpid()}.partial"  # a killed export never leaves a truncated file behind
        # Grad on: under no_grad torch 1.13 runs ViT's attention through aten::_native_multi_head_attention,
        # which has no ONNX export.
        with torch.enable_grad():
            torch.onnx.export(model, x, partial, opset_version=ORT_OPSET, input_names=["images"],
                              output_names=["logits"])
        os.replace(partial, path)
    return path


def measure_ort(args, name, base, flops, batch, common, runtime, progress):
    """Times ONNX Runtime in a Node process, then checks its logits against torch's for the same input."""
    node, env, _ = runtime
    label = f"{name} {ORT_MODE} batch {batch}"
    progress.stage(f"preparing {label} (its ONNX file)…")
    x = input_images(args, batch)
    model_path = onnx_file(base, name, x, args.seed)
    progress.stage(f"timing {label} in Node…")
    with tempfile.TemporaryDirectory(prefix="visopt-ort-") as folder:
        images, logits = os.path.join(folder, "images.f32"), os.path.join(folder, "logits.f32")
        x.numpy().astype("<f4").tofile(images)
        done = subprocess.run([node, ORT_SCRIPT, "--model", model_path, "--input", images, "--output", logits,
                               "--shape", ",".join(map(str, x.shape)), "--warmup", str(args.warmup),
                               "--iterations", str(args.iterations), "--threads", str(common["threads"])],
                              env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError((done.stderr.strip().splitlines() or [f"node exited with {done.returncode}"])[-1])
        result = json.loads(done.stdout.strip().splitlines()[-1])
        ort_logits = torch.from_numpy(numpy.fromfile(logits, dtype="<f4"))
    with torch.no_grad():
        reference = base(x).flatten()
    difference = ((ort_logits - reference).abs().max() / reference.abs().max()).item()
    progress.clear()
    print(f"peers.py: {label}: logits vs torch's, max|diff|/max|ref| = {difference:.1e}", file=sys.stderr)
    if difference > ORT_TOLERANCE:
        raise RuntimeError(f"ONNX Runtime's logits are not torch's: max|diff|/max|ref| = {difference:.1e} > "
                           f"{ORT_TOLERANCE:g} (delete {model_path} to export it again)")
    row = dict(common, model=name, level=ORT_MODE, batch=batch, flops_per_image=float(flops), precision="fp32",
               memory_format="contiguous", timer="process.hrtime.bigint", onnx_file=model_path, opset=ORT_OPSET,
               logits_max_rel_diff_vs_torch=difference, baseline_memory_bytes=result["baseline_rss_bytes"],
               peak_memory_bytes=result["peak_rss_bytes"],
               memory_method="peak RSS of the node process (VmHWM, model loading included); "
                             "baseline: its RSS once the session was created")
    row.update(latency_fields(result["samples_ms"], batch, flops))
    return row


def main():
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # tracing ViT's shape asserts: expected
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", required=True, help="comma-separated: " + ",".join(MODELS))
    parser.add_argument("--batches", default="1,8", help="comma-separated batch sizes (default 1,8)")
    parser.add_argument("--modes", default="default",
                        help="comma-separated; 'default' is every mode of the device but compile_max_autotune_fp16 "
                             "(e.g. --modes default,compile_max_autotune_fp16). CPU: " + ",".join(CPU_MODES) +
                             "; GPU: " + ",".join(GPU_MODES))
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--iterations", type=int, default=30, help="timed runs (>= 30 unless --quick)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: every CPU of this process)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="append one JSON line per result to this file")
    parser.add_argument("--tag", default="", help="free text carried in every row (tools/bench.sh: the run's id)")
    parser.add_argument("--commit", help="the visopt commit rows carry (default: bench/git_commit.sh)")
    parser.add_argument("--quick", action="store_true", help="allow fewer than 30 timed runs (a smoke test)")
    args = parser.parse_args()

    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; expected some of {', '.join(MODELS)}")
    batches = [int(b) for b in args.batches.split(",") if b]
    known = CPU_MODES if args.device == "cpu" else GPU_MODES
    defaults = CPU_MODES if args.device == "cpu" else GPU_DEFAULT_MODES
    modes = []
    for m in args.modes.split(","):
        for name in (defaults if m == "default" else [m] if m else []):
            if name not in modes:
                modes.append(name)
    if [m for m in modes if m not in known]:
        parser.error(f"--modes {args.modes}: the {args.device} modes are {', '.join(known)}")
    if args.iterations < 30 and not args.quick:
        parser.error(f"--iterations {args.iterations} is below the protocol's 30 timed runs; add --quick for a smoke test")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but torch sees no GPU")
    ort = ort_runtime() if ORT_MODE in modes else None
    if ORT_MODE in modes and not ort:
        modes.remove(ORT_MODE)

    threads = args.threads or cpu_count()
    if args.device == "cpu":
        torch.set_num_threads(threads)
        machine = cpu_machine_name()
        device_name = f"cpu: {machine.rsplit(',', 1)[0]} ({threads} threads)"
        backend = "torch-cpu"
    else:
        machine = torch.cuda.get_device_name(0)
        device_name = machine
        backend = "torch-cuda"
    common = dict(tool="pytorch", backend=backend, image_size=args.image_size, device=device_name, machine=machine,
                  commit=args.commit or visopt_commit(), iterations=args.iterations, warmup=args.warmup,
                  tag=args.tag, quick=args.quick, torch_version=torch.__version__,
                  torchvision_version=torchvision.__version__, threads=torch.get_num_threads())
    # ONNX Runtime's rows: torch_version and torchvision_version are then the exporter's.
    ort_common = ort and dict(common, tool="onnxruntime", backend="cpu", onnxruntime_version=ort[2]["onnxruntime"],
                              node_version=ort[2]["node"])

    out = open(args.json, "a") if args.json else None
    progress = Progress()
    rows, failures = [], 0
    for name in models:
        progress.stage(f"building {name} with random weights…")
        try:
            base = build_model(name, args.image_size, args.seed)
            flops = 2 * multiply_adds(base, args.image_size)
        except Exception as e:  # a model that cannot be built at this size fails its rows, the others still run
            base, flops, build_error = None, 0, e
        for mode in modes:
            if mode == "bf16_weights" and not name.startswith("vit"):
                continue  # the ViT-only mode (ResNets' bf16 is autocast_bf16)
            mode_common = ort_common if mode == ORT_MODE else common
            for batch in batches:
                try:
                    if base is None:
                        raise build_error
                    if mode == ORT_MODE:
                        row = measure_ort(args, name, base, flops, batch, mode_common, ort, progress)
                    else:
                        row = measure(args, name, base, flops, mode, batch, mode_common, progress)
                except Exception as e:  # an error row, and on to the next mode (bf16 autocast of ViT on torch 1.13)
                    progress.clear()
                    message = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
                    print(f"peers.py: {name} {mode} batch {batch} failed: {message}", file=sys.stderr)
                    row = dict(mode_common, model=name, level=mode, batch=batch, flops_per_image=float(flops),
                               precision=None, median_ms=None, p95_ms=None, p99_ms=None, throughput=None,
                               gflops=None, peak_memory_bytes=None, compile_ms=None, date=utc_now(), error=message)
                    failures += 1
                    if args.device == "cuda":
                        torch.cuda.empty_cache()
                rows.append(row)
                if out:
                    out.write(json.dumps(row, sort_keys=True) + "\n")
                    out.flush()
    progress.clear()

    header = ["model", "mode", "precision", "batch", "median", "p95", "p99", "img/s", "GFLOP/s", "peak MiB"]
    table = [header]
    for r in rows:
        if r.get("error"):
            table.append([r["model"], r["level"], "error: " + r["error"][:60], str(r["batch"])])
            continue
        table.append([r["model"], r["level"], r["precision"], str(r["batch"]), f"{r['median_ms']:.3f}",
                      f"{r['p95_ms']:.3f}", f"{r['p99_ms']:.3f}", f"{r['throughput']:.1f}", f"{r['gflops']:.1f}",
                      f"{r['peak_memory_bytes'] / 2**20:.1f}"])
    widths = [max(len(row[i]) for row in table if i < len(row)) for i in range(len(header))]
    runtimes = f"PyTorch {torch.__version__}" + (f", ONNX Runtime {ort[2]['onnxruntime']}" if ort else "")
    print(f"\n{runtimes} on {device_name} (latency in ms):")
    for n, row in enumerate(table):
        cells = [c.ljust(widths[i]) if i < 3 else c.rjust(widths[i]) for i, c in enumerate(row)]
        print("  ".join(cells))
        if n == 0:
            print("-" * len("  ".join(cells)))
    if out:
        out.close()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
