#!/usr/bin/env python3
"""Make the PyTorch oracle fixtures that visopt's C++ tests compare against.

For each fixture NAME this writes, into --out:
  NAME.weights.safetensors  the model's state_dict in float32 under torchvision names
                            (without num_batches_tracked)
  NAME.io.safetensors       "input"  float32 [B, 3, H, W], a seeded N(0, 1) batch
                            "logits" float32 [B, num_classes], the model's output computed in float64
and for vit_ti16_64 also NAME.timm.safetensors, the same weights under timm names. The DeiT fixture
(a distilled DeiT: distillation token, two heads averaged) has its weights under timm's names only, as
timm publishes DeiT.

The weights are random but realistic (CONVENTIONS.md, "The oracle and its fixtures"): ResNet
BatchNorms get non-trivial affine parameters (small gains at the end of residual branches, as in
trained ResNets) and running statistics calibrated on random images; ViT LayerNorms get
non-trivial affine parameters; the classifier is calibrated so that logits spread over a few
units and depend on the image, so that top-1 agreement with the oracle means something.

A fixture whose files all exist with matching metadata is skipped, so re-running is cheap; every
file is written atomically. Runs under torch 1.13 / torchvision 0.14 (Debian) and torch 2.x.
"""

import argparse
import copy
import dataclasses
import os
import sys
import time

import torch
import torchvision
from torchvision.models.vision_transformer import VisionTransformer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import read_metadata, write_safetensors  # noqa: E402
from weight_names import rename_vit_state_dict  # noqa: E402

# Bump when the recipe changes (initialisation, calibration, input), so that old fixtures are remade.
RECIPE_VERSION = "10"
BATCH = 32

# A trained classifier's logits spread over a few units and depend on the image; random weights
# give neither, so the head is calibrated (calibrate_classifier) to logits of this standard
# deviation on random images, centred so that the image, not a shared offset, decides the top-1.
LOGIT_STD = 2.0
HEAD_BIAS_STD = 0.01


@dataclasses.dataclass(frozen=True)
class Fixture:
    name: str
    model: str            # what the metadata calls the architecture
    family: str           # "resnet", "vit" or "deit" (a distilled DeiT, weights under timm's names)
    image_size: int
    seed: int
    build: object         # () -> torch.nn.Module, called right after torch.manual_seed(seed)
    calibration_passes: int = 4
    timm_copy: bool = False


def _vit(image_size, patch_size, num_layers, num_heads, hidden_dim, mlp_dim):
    return lambda: VisionTransformer(image_size=image_size, patch_size=patch_size, num_layers=num_layers,
                                     num_heads=num_heads, hidden_dim=hidden_dim, mlp_dim=mlp_dim)


class DistilledViT(VisionTransformer):
    """DeiT's distilled transformer built from torchvision's modules, as timm's VisionTransformerDistilled
    computes in eval mode: a distillation token after the class token (the position embedding covers
    both), a second head on it, and the average of the two heads' logits."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dist_token = torch.nn.Parameter(torch.zeros(1, 1, self.hidden_dim))
        tokens = self.encoder.pos_embedding.shape[1] + 1
        self.encoder.pos_embedding = torch.nn.Parameter(torch.empty(1, tokens, self.hidden_dim).normal_(std=0.02))
        self.head_dist = torch.nn.Linear(self.hidden_dim, self.num_classes)

    def forward(self, x):
        x = self._process_input(x)
        n = x.shape[0]
        x = torch.cat([self.class_token.expand(n, -1, -1), self.dist_token.expand(n, -1, -1), x], dim=1)
        x = self.encoder(x)  # adds the position embedding, runs the blocks, applies the final LayerNorm
        return (self.heads.head(x[:, 0]) + self.head_dist(x[:, 1])) / 2


def _deit(image_size, patch_size, num_layers, num_heads, hidden_dim, mlp_dim):
    return lambda: DistilledViT(image_size=image_size, patch_size=patch_size, num_layers=num_layers,
                                num_heads=num_heads, hidden_dim=hidden_dim, mlp_dim=mlp_dim)


FIXTURES = {fixture.name: fixture for fixture in [
    Fixture("resnet18_64", "resnet18", "resnet", 64, 1801, torchvision.models.resnet18),
    Fixture("resnet34_64", "resnet34", "resnet", 64, 3401, torchvision.models.resnet34),
    Fixture("resnet50_64", "resnet50", "resnet", 64, 5001, torchvision.models.resnet50),
    Fixture("resnet101_64", "resnet101", "resnet", 64, 10101, torchvision.models.resnet101),
    Fixture("resnet152_64", "resnet152", "resnet", 64, 15201, torchvision.models.resnet152),
    Fixture("resnet50_224", "resnet50", "resnet", 224, 5002, torchvision.models.resnet50, calibration_passes=2),
    Fixture("vit_ti16_64", "vit_ti_16", "vit", 64, 1601, _vit(64, 16, 12, 3, 192, 768), timm_copy=True),
    Fixture("vit_b16_64", "vit_b_16", "vit", 64, 1602, _vit(64, 16, 12, 12, 768, 3072)),
    Fixture("vit_b16_224", "vit_b_16", "vit", 224, 1603, torchvision.models.vit_b_16),
    Fixture("vit_s32_64", "vit_s_32", "vit", 64, 3201, _vit(64, 32, 12, 6, 384, 1536)),
    Fixture("vit_l16_64", "vit_l_16", "vit", 64, 1604, _vit(64, 16, 24, 16, 1024, 4096)),
    Fixture("deit_ti16_64", "deit_ti_16_distilled", "deit", 64, 1606, _deit(64, 16, 12, 3, 192, 768)),
]}


def fixture_paths(out_dir, fixture):
    """{role: path} of every file the fixture consists of."""
    paths = {
        "weights": os.path.join(out_dir, f"{fixture.name}.weights.safetensors"),
        "io": os.path.join(out_dir, f"{fixture.name}.io.safetensors"),
    }
    if fixture.timm_copy:
        paths["timm"] = os.path.join(out_dir, f"{fixture.name}.timm.safetensors")
    return paths


def fixture_identity(fixture, device):
    """The metadata that decides whether existing files are this fixture (all values strings)."""
    return {
        "fixture": fixture.name,
        "model": fixture.model,
        "image_size": str(fixture.image_size),
        "batch": str(BATCH),
        "seed": str(fixture.seed),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "recipe": RECIPE_VERSION,
        "device": device,
    }


def is_up_to_date(paths, identity):
    """True when every file exists and carries the identity in its metadata."""
    for path in paths.values():
        if not os.path.exists(path):
            return False
        try:
            metadata = read_metadata(path)
        except (OSError, ValueError):
            return False
        if any(metadata.get(key) != value for key, value in identity.items()):
            return False
    return True


def random_images(seed, image_size, batch=BATCH):
    """A seeded N(0, 1) batch [batch, 3, H, W] in float32 on the CPU (the same on every device)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, image_size, image_size, generator=generator)


def randomize_batch_norms(model):
    """Give every BatchNorm non-trivial affine parameters: weight U(0.5, 1.5), bias N(0, 0.2); except
    the last BatchNorm of each residual branch (bn2 of a BasicBlock, bn3 of a Bottleneck), whose
    weight is U(0.05, 0.3).

    Trained ResNets have such small gains at the end of their residual branches (torchvision's
    zero_init_residual starts them at 0). With gains near 1 instead, 50 random layers amplify
    rounding so much that torch's own float32 result is 7e-5 (relative to max|logit|) away from
    float64 on resnet50_64, at the fp32 tolerance itself, and fp16 rounding of the weights alone
    moves the logits by 1e-1; with these gains, 3e-6 and 4e-3.
    """
    residual_branch_ends = set()
    for module in model.modules():
        if isinstance(module, (torchvision.models.resnet.BasicBlock, torchvision.models.resnet.Bottleneck)):
            residual_branch_ends.add(module.bn3 if hasattr(module, "bn3") else module.bn2)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                if module in residual_branch_ends:
                    module.weight.uniform_(0.05, 0.3)
                else:
                    module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.2)


def calibrate_batch_norms(model, fixture, device):
    """Set running statistics to the cumulative average over train-mode passes on random images."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None
            module.reset_running_stats()
    model.train()
    with torch.no_grad():
        for index in range(fixture.calibration_passes):
            images = random_images(fixture.seed + 1000 + index, fixture.image_size).to(device)
            model(images)
    model.eval()


def classifiers_of(model):
    """The final Linear layers: ResNet's fc, ViT's heads.head, and a distilled DeiT's head_dist too."""
    if hasattr(model, "fc"):
        return [model.fc]
    return [model.heads.head] + ([model.head_dist] if hasattr(model, "head_dist") else [])


def calibrate_classifier(model, fixture, device):
    for head in classifiers_of(model):
        calibrate_head(model, head, fixture, device)


def calibrate_head(model, head, fixture, device):
    """Random head weights scaled so that logits of random images have standard deviation
    LOGIT_STD, and a bias that centres them (plus a little noise).

    The features that reach the head share a large mean across images (average-pooled post-ReLU
    maps, a ViT's class token after many random blocks); with an uncentred head that mean decides
    the top-1 for most images whatever the input, and the top-1 check would test nothing.
    """
    features = []
    hook = head.register_forward_hook(lambda module, inputs, output: features.append(inputs[0].detach()))
    with torch.no_grad():
        model.eval()(random_images(fixture.seed + 1000, fixture.image_size).to(device))
    hook.remove()
    features = features[0].to(torch.float64)
    mean = features.mean(dim=0)
    with torch.no_grad():
        weight = torch.randn(head.weight.shape, dtype=torch.float64).to(device)
        weight *= LOGIT_STD / (features - mean).matmul(weight.t()).std()
        noise = HEAD_BIAS_STD * torch.randn(head.bias.shape, dtype=torch.float64).to(device)
        head.weight.copy_(weight)
        head.bias.copy_(noise - weight.matmul(mean))


def randomize_vit(model):
    """Non-trivial LayerNorm affines: weight U(0.5, 1.5), bias N(0, 0.1); class token and position
    embedding N(0, 0.02) (torchvision zero-initialises the class token)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.1)
        model.class_token.normal_(0.0, 0.02)
        model.encoder.pos_embedding.normal_(0.0, 0.02)
        if hasattr(model, "dist_token"):
            model.dist_token.normal_(0.0, 0.02)


def build_model(fixture, device):
    """The fixture's model with realistic random weights, in eval mode, float32, on `device`."""
    torch.manual_seed(fixture.seed)
    model = fixture.build()
    if fixture.family == "resnet":
        randomize_batch_norms(model)
        model.to(device)
        calibrate_batch_norms(model, fixture, device)
    else:
        randomize_vit(model)
        model.to(device)
    calibrate_classifier(model, fixture, device)
    return model.eval()


def float32_state_dict(model):
    """The state_dict as CPU float32 copies, without BatchNorm's num_batches_tracked."""
    return {name: tensor.detach().to("cpu", torch.float32).clone()
            for name, tensor in model.state_dict().items() if not name.endswith("num_batches_tracked")}


def oracle_logits(model, images, device):
    """The model's logits computed in float64 (the model is converted in place), returned as float32."""
    model.double()
    with torch.no_grad():
        logits = model(images.to(device, torch.float64))
    return logits.to("cpu", torch.float32)


def logit_statistics(logits):
    """Numbers that say whether the top-1 class is a meaningful check on this batch."""
    top2 = logits.topk(2, dim=1).values
    margins = top2[:, 0] - top2[:, 1]
    # How much the logits move between images, against their overall spread: near 0 means every
    # image gets almost the same output, and the top-1 check would test nothing input-dependent.
    across_images = logits.std(dim=0).mean() / logits.std()
    return {
        "logits_std": f"{logits.std().item():.4g}",
        "margin_gt_0.1": f"{(margins > 0.1).double().mean().item():.4g}",
        "median_margin": f"{margins.median().item():.4g}",
        "min_margin": f"{margins.min().item():.4g}",
        "distinct_top1": str(logits.argmax(dim=1).unique().numel()),
        "input_dependence": f"{across_images.item():.4g}",
    }


def torch_reduced_agreement(model, fixture, images, logits, device, precision):
    """How far PyTorch's own `precision` on `device` lands from the oracle on these images, as
    compare_logits (tests/oracle.hpp) measures it: bf16 (weights and activations, channels_last for
    CNNs) or tf32 (float32 NCHW with TF32 convolutions and matrix products, PyTorch's eager_tf32). The
    tests hold an engine in that precision to the CONVENTIONS.md bound, or to this where PyTorch itself
    cannot meet it (deep random ResNets: on resnet152_64 torch's bf16 lands at r = 0.14-0.16)."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    reduced = copy.deepcopy(model).to(device, dtype)
    inputs = images.to(device, dtype)
    if fixture.family == "resnet" and precision == "bf16":
        reduced = reduced.to(memory_format=torch.channels_last)
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    tf32_flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"
    try:
        with torch.no_grad():
            y = torch.cat([reduced(chunk).float().cpu() for chunk in inputs.split(8)]).double()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32_flags
    ref = logits.double()
    r = (y - ref).abs().max() / ref.abs().max()
    cosine = (y * ref).sum() / (y.norm() * ref.norm())
    return {f"torch_{precision}_relative_error": f"{r.item():.6g}", f"torch_{precision}_cosine": f"{cosine.item():.8g}"}


def torch_int8_agreement(model, fixture, images, logits):
    """How far PyTorch's own int8 lands from the oracle on these images: FX graph-mode post-training
    quantization with the default configuration of torch's x86 engine (x86, fbgemm or onednn: s8 weights
    per output channel, u8 activations per tensor from histogram observers), calibrated on BATCH seeded images distinct from the test images,
    run on the CPU. Where it cannot meet CONVENTIONS.md's int8 bound (random deep ResNets amplify
    rounding: torch's own bf16 misses the bf16 bound there too), the int8 tests widen to it, as for
    bf16. ResNets only: a ViT's int8 engine meets the bound itself. Nothing without an x86 engine."""
    try:
        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
        engines = [e for e in ("x86", "fbgemm", "onednn") if e in torch.backends.quantized.supported_engines]
        if not engines:
            print(f"make_fixtures: no torch int8 agreement for {fixture.name}: no x86 quantized engine", file=sys.stderr)
            return {}
        engine = torch.backends.quantized.engine = engines[0]
        calibration = random_images(fixture.seed + 3000, fixture.image_size)
        float_model = copy.deepcopy(model).cpu().float().eval()
        prepared = prepare_fx(float_model, get_default_qconfig_mapping(engine), example_inputs=(calibration[:1],))
        with torch.no_grad():
            for chunk in calibration.split(8):
                prepared(chunk)
            quantized = convert_fx(prepared)
            y = torch.cat([quantized(chunk) for chunk in images.cpu().float().split(8)]).double()
    except Exception as error:  # noqa: BLE001 -- no x86 engine, or an FX quantization this torch lacks or refuses
        print(f"make_fixtures: no torch int8 agreement for {fixture.name}: {error}", file=sys.stderr)
        return {}
    ref = logits.double()
    r = (y - ref).abs().max() / ref.abs().max()
    cosine = (y * ref).sum() / (y.norm() * ref.norm())
    top1 = (y.argmax(dim=1) == ref.argmax(dim=1)).double().mean()
    return {"torch_int8_relative_error": f"{r.item():.6g}", "torch_int8_cosine": f"{cosine.item():.8g}",
            "torch_int8_top1": f"{top1.item():.6g}", "torch_int8_engine": engine}


def torch_fp8_agreement(model, fixture, images, logits, device):
    """How far the FP8 recipe of visopt's GPU level O4 lands from the oracle when PyTorch computes it in
    fp32: every convolution but the first (ResNet) or every encoder block's qkv, output projection and MLP
    linears (ViT, DeiT) take e4m3 inputs (one step per tensor: its largest value over BATCH seeded
    calibration images, distinct from the test images, maps to 448) and e4m3 weights (one step per
    output channel for convolutions, per tensor for linears), rounded to nearest even and saturated by
    torch's float8_e4m3fn. e4m3 keeps 3 mantissa bits, so on deep random models this recipe itself
    misses CONVENTIONS.md's quantized bound; the FP8 tests widen to it as the int8 ones do. Nothing on
    a torch without float8 (torch 1.13: CPU-only machines do not run the GPU tests)."""
    if not hasattr(torch, "float8_e4m3fn"):
        print(f"make_fixtures: no torch fp8 agreement for {fixture.name}: this torch has no float8_e4m3fn", file=sys.stderr)
        return {}

    def e4m3(t):
        return t.clamp(-448.0, 448.0).to(torch.float8_e4m3fn).to(t.dtype)

    quantized = copy.deepcopy(model).to(device).float().eval()
    calibration = random_images(fixture.seed + 4000, fixture.image_size)
    largest = {}
    phase = ["observe"]

    def step_of(key, x):
        if phase[0] == "observe":
            largest[key] = max(largest.get(key, 0.0), x.detach().abs().max().item())
            return None
        return max(largest[key], 1e-30) / 448.0

    hooks = []
    original_linear = torch.nn.functional.linear
    mha = getattr(torch.backends, "mha", None)
    fastpath = mha.get_fastpath_enabled() if mha and hasattr(mha, "get_fastpath_enabled") else None
    try:
        if fixture.family == "resnet":
            convolutions = [m for m in quantized.modules() if isinstance(m, torch.nn.Conv2d)][1:]

            def quantize_input(module, args):
                step = step_of(id(module), args[0])
                return None if step is None else (e4m3(args[0] / step) * step,) + tuple(args[1:])
            hooks = [c.register_forward_pre_hook(quantize_input) for c in convolutions]
            run = lambda batch: quantized(batch)  # noqa: E731
            with torch.no_grad():
                for chunk in calibration.to(device).split(8):
                    run(chunk)
                for c in convolutions:
                    step = c.weight.abs().amax(dim=(1, 2, 3), keepdim=True).clamp(min=1e-30) / 448.0
                    c.weight.copy_(e4m3(c.weight / step) * step)
        else:
            # Every F.linear call of an encoder block (nn.MultiheadAttention's packed qkv and projection
            # included), through the slow attention path: grad enabled on parameters that require it.
            names = {id(p): n for n, p in quantized.named_parameters()
                     if n.startswith("encoder.layers.") and (n.endswith("in_proj_weight") or n.endswith("out_proj.weight")
                                                             or (".mlp." in n and n.endswith("weight")))}
            rounded = {}

            def linear(x, weight, bias=None):
                if id(weight) in names:
                    step = step_of(id(weight), x)
                    if step is not None:
                        if id(weight) not in rounded:
                            w_step = weight.detach().abs().max().clamp(min=1e-30) / 448.0
                            rounded[id(weight)] = e4m3(weight.detach() / w_step) * w_step
                        x, weight = e4m3(x / step) * step, rounded[id(weight)]
                return original_linear(x, weight, bias)
            torch.nn.functional.linear = linear
            if fastpath is not None:
                mha.set_fastpath_enabled(False)
            for p in quantized.parameters():
                p.requires_grad_(True)
            run = lambda batch: quantized(batch).detach()  # noqa: E731
            with torch.enable_grad():
                for chunk in calibration.to(device).split(8):
                    run(chunk)
        phase[0] = "quantize"
        tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        try:
            with torch.enable_grad() if fixture.family != "resnet" else torch.no_grad():
                y = torch.cat([run(chunk).float().cpu() for chunk in images.to(device).split(8)]).double()
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    except Exception as error:  # noqa: BLE001 -- a float8 cast or attention path this torch lacks
        print(f"make_fixtures: no torch fp8 agreement for {fixture.name}: {error}", file=sys.stderr)
        return {}
    finally:
        torch.nn.functional.linear = original_linear
        if fastpath is not None:
            mha.set_fastpath_enabled(fastpath)
        for h in hooks:
            h.remove()
    ref = logits.double()
    r = (y - ref).abs().max() / ref.abs().max()
    cosine = (y * ref).sum() / (y.norm() * ref.norm())
    top1 = (y.argmax(dim=1) == ref.argmax(dim=1)).double().mean()
    return {"torch_fp8_relative_error": f"{r.item():.6g}", "torch_fp8_cosine": f"{cosine.item():.8g}",
            "torch_fp8_top1": f"{top1.item():.6g}"}


def images_with_clear_winners(model, fixture, device, pool=4):
    """The BATCH images, of pool·BATCH random candidates, whose top-1 logit leads the runner-up by
    the widest margin (screened in float32). Top-1 agreement is the one check that a near-tie makes
    meaningless: on the unselected images torch's own bf16 already disagrees with float64 on 1 in 32."""
    candidates = random_images(fixture.seed + 2000, fixture.image_size, batch=pool * BATCH)
    with torch.no_grad():
        logits = torch.cat([model(chunk.to(device)).float().cpu() for chunk in candidates.split(BATCH)])
    top2 = logits.topk(2, dim=1).values
    margins = (top2[:, 0] - top2[:, 1]) / logits.abs().max()
    keep = margins.argsort(descending=True)[:BATCH].sort().values
    return candidates[keep].contiguous()


def make_fixture(fixture, out_dir, device, force=False):
    """Write the fixture's files unless they are up to date; returns (made, statistics)."""
    paths = fixture_paths(out_dir, fixture)
    identity = fixture_identity(fixture, device)
    if not force and is_up_to_date(paths, identity):
        return False, {key: value for key, value in read_metadata(paths["io"]).items() if key not in identity}

    model = build_model(fixture, device)
    weights = float32_state_dict(model)
    images = images_with_clear_winners(model, fixture, device)
    logits = oracle_logits(model, images, device)
    statistics = logit_statistics(logits)
    # bf16 engines run on the GPU and, where the CPU has bf16, on oneDNN: measure torch's bf16 where the
    # engines will run (on a GPU machine its GPU; here this machine's CPU). TF32 engines run on GPUs only.
    on_gpu = torch.cuda.is_available()
    statistics.update(torch_reduced_agreement(model, fixture, images, logits, "cuda" if on_gpu else "cpu", "bf16"))
    if on_gpu:
        statistics.update(torch_reduced_agreement(model, fixture, images, logits, "cuda", "tf32"))
    if fixture.family == "resnet":
        statistics.update(torch_int8_agreement(model, fixture, images, logits))
    statistics.update(torch_fp8_agreement(model, fixture, images, logits, device))

    metadata = dict(identity, num_classes=str(logits.shape[1]))
    if fixture.family == "deit":
        timm_weights = deit_timm_state_dict(weights)
        statistics.update(check_against_timm(fixture, timm_weights, images, logits))
        write_safetensors(paths["weights"], timm_weights, dict(metadata, names="timm"))
    else:
        write_safetensors(paths["weights"], weights, dict(metadata, names="torchvision"))
    if fixture.timm_copy:
        write_safetensors(paths["timm"], rename_vit_state_dict(weights, "torchvision", "timm"),
                          dict(metadata, names="timm"))
    # The io file last: its presence with matching metadata marks the whole fixture as done.
    write_safetensors(paths["io"], {"input": images, "logits": logits}, dict(metadata, **statistics))
    return True, statistics


def check_against_timm(fixture, timm_weights, images, logits):
    """Where timm is installed, the DeiT recipe is checked against timm's own VisionTransformerDistilled:
    the same timm-named weights must give the oracle's logits (float64). Returns a statistic for the
    metadata, or "timm not installed"."""
    try:
        import timm
    except ImportError:
        return {"timm_check": "timm not installed"}
    sizes = {192: "tiny", 384: "small", 768: "base"}
    width = timm_weights["cls_token"].shape[-1]
    name = f"deit_{sizes[width]}_distilled_patch16_224"
    model = timm.create_model(name, pretrained=False, img_size=fixture.image_size, num_classes=logits.shape[1])
    model.load_state_dict(timm_weights)
    model.eval().double()
    with torch.no_grad():
        theirs = model(images.double()).float()
    r = ((theirs - logits).abs().max() / logits.abs().max()).item()
    if r > 1e-5:
        raise SystemExit(f"make_fixtures: {fixture.name}: timm's {name} gives other logits than the recipe (r = {r:.3g})")
    return {"timm_check": f"{name} (timm {timm.__version__}) r={r:.3g}"}


def deit_timm_state_dict(weights):
    """A DistilledViT's state_dict under timm's names: the ViT part renamed, dist_token and head_dist
    (which only timm names) kept."""
    own = {name: tensor for name, tensor in weights.items() if name == "dist_token" or name.startswith("head_dist.")}
    vit = {name: tensor for name, tensor in weights.items() if name not in own}
    return dict(rename_vit_state_dict(vit, "torchvision", "timm"), **own)


def warn_if_reference_blas():
    """Debian's torch links libblas.so.3, which may be the unoptimised reference BLAS (when installed
    without recommends); float64 matmuls and convolutions are then about 10x slower."""
    try:
        with open("/proc/self/maps") as maps:
            libraries = {line.split()[-1] for line in maps if "libblas.so" in line}
    except OSError:
        return
    for library in sorted(libraries):
        if "/blas/libblas.so" in library:
            print(f"make_fixtures: warning: torch uses the reference BLAS ({library}); the float64 oracle "
                  "is about 10x slower than with an optimised one (Debian: apt-get install libopenblas0-pthread)",
                  file=sys.stderr, flush=True)


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Fixtures: " + ", ".join(FIXTURES))
    parser.add_argument("--out", required=True, help="folder to write the fixtures into (created if missing)")
    parser.add_argument("--only", nargs="+", choices=list(FIXTURES), metavar="NAME",
                        help="make only these fixtures (default: all)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="where torch calibrates and computes the oracle (default: cpu)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    parser.add_argument("--force", action="store_true", help="remake fixtures even when they are up to date")
    return parser.parse_args(argv)


def main(argv=None):
    arguments = parse_arguments(argv)
    if arguments.device == "cuda":
        if not torch.cuda.is_available():
            sys.exit("make_fixtures: --device cuda asked, but torch sees no CUDA device")
        # The oracle is float64 anyway; keep the float32 calibration passes free of TF32 as well.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    torch.set_num_threads(arguments.threads)

    names = arguments.only or list(FIXTURES)
    if arguments.force or not all(is_up_to_date(fixture_paths(arguments.out, FIXTURES[name]),
                                                 fixture_identity(FIXTURES[name], arguments.device)) for name in names):
        warn_if_reference_blas()
    started = time.perf_counter()
    for name in names:
        fixture_started = time.perf_counter()
        made, statistics = make_fixture(FIXTURES[name], arguments.out, arguments.device, arguments.force)
        seconds = time.perf_counter() - fixture_started
        summary = " ".join(f"{key}={value}" for key, value in statistics.items())
        print(f"{name}: {'made' if made else 'up to date'} in {seconds:.1f} s  {summary}", flush=True)
    print(f"make_fixtures: {len(names)} fixture(s) in {time.perf_counter() - started:.1f} s "
          f"(torch {torch.__version__}, {arguments.device}) -> {arguments.out}", flush=True)


if __name__ == "__main__":
    main()
