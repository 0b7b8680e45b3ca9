#!/usr/bin/env python3
"""Export a torchvision or timm checkpoint to the safetensors file that visopt loads.

Run it on a machine that can download weights (or has a .pth file); visopt itself never downloads:

  export_weights.py --model resnet50 --out resnet50.safetensors --weights IMAGENET1K_V2
  export_weights.py --model vit_b_16 --out vit_b_16.safetensors                      # DEFAULT weights
  export_weights.py --source timm --model vit_small_patch16_224 --out vit_s16.safetensors
  export_weights.py --model resnet18 --weights my_finetune.pth --num-classes 10 --out r18.safetensors

The file holds the model's state_dict (without BatchNorm's num_batches_tracked) in float32, or
f16/bf16 with --dtype, under the source's own names: torchvision names for ResNet, torchvision or
timm names for ViT (visopt reads both; --names renames a ViT), and metadata
{"format": "visopt", "source", "model", "weights", "dtype", "names"}.
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import DTYPE_NAMES, read_header, write_safetensors  # noqa: E402
from weight_names import rename_vit_state_dict, vit_naming_of  # noqa: E402

SUPPORTED_MODELS = {
    "torchvision": ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
                    "vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32"],
    "timm": ["vit_tiny_patch16_224", "vit_small_patch16_224", "vit_base_patch16_224",
             "vit_base_patch32_224", "vit_large_patch16_224",
             "deit_tiny_patch16_224", "deit_small_patch16_224", "deit_base_patch16_224",
             "deit_tiny_distilled_patch16_224", "deit_small_distilled_patch16_224", "deit_base_distilled_patch16_224"],
}

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def is_checkpoint_path(weights):
    return weights is not None and (weights.endswith((".pth", ".pt", ".bin")) or os.path.sep in weights)


def load_checkpoint_state_dict(path):
    """The state_dict in a .pth file: a bare state_dict, or one under "state_dict"/"model"/"model_state_dict"."""
    if not os.path.isfile(path):
        sys.exit(f"export_weights: checkpoint '{path}' does not exist")
    checkpoint = torch.load(path, map_location="cpu")
    if isinstance(checkpoint, torch.nn.Module):
        checkpoint = checkpoint.state_dict()
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    if not isinstance(checkpoint, dict) or not all(isinstance(value, torch.Tensor) for value in checkpoint.values()):
        sys.exit(f"export_weights: '{path}' holds no state_dict (a dict of name -> tensor)")
    # Checkpoints saved from DataParallel / DistributedDataParallel prefix every name with "module.".
    if checkpoint and all(name.startswith("module.") for name in checkpoint):
        checkpoint = {name[len("module."):]: tensor for name, tensor in checkpoint.items()}
    return checkpoint


def build_torchvision_model(name, weights, num_classes):
    """torchvision model `name` with `weights` (an enum name such as DEFAULT, or None for random)."""
    import torchvision

    keyword_arguments = {"weights": weights}
    if num_classes is not None:
        keyword_arguments["num_classes"] = num_classes
    if hasattr(torchvision.models, "get_model"):
        return torchvision.models.get_model(name, **keyword_arguments)
    if not hasattr(torchvision.models, name):
        sys.exit(f"export_weights: torchvision {torchvision.__version__} has no model '{name}'")
    return getattr(torchvision.models, name)(**keyword_arguments)


def build_timm_model(name, pretrained, num_classes):
    try:
        import timm
    except ImportError:
        sys.exit("export_weights: --source timm needs the 'timm' package, which is not installed "
                 "(pip install timm), or export the torchvision model of the same size instead")
    keyword_arguments = {"pretrained": pretrained}
    if num_classes is not None:
        keyword_arguments["num_classes"] = num_classes
    return timm.create_model(name, **keyword_arguments)


def build_model(source, name, weights, num_classes):
    """The model in eval mode with the asked weights; a checkpoint path is loaded strictly."""
    checkpoint = is_checkpoint_path(weights)
    if source == "torchvision":
        model = build_torchvision_model(name, None if checkpoint or weights is None else weights, num_classes)
    else:
        model = build_timm_model(name, weights is not None and not checkpoint, num_classes)
    if checkpoint:
        # Through the model, so that a wrong checkpoint fails here and torchvision's own hooks
        # upgrade old names (e.g. ViT's mlp.linear_1 -> mlp.0).
        try:
            model.load_state_dict(load_checkpoint_state_dict(weights), strict=True)
        except RuntimeError as error:
            sys.exit(f"export_weights: '{weights}' does not fit {source} '{name}' "
                     f"(a classifier of other than 1000 classes needs --num-classes):\n{error}")
    return model.eval()


def exportable_state_dict(model, dtype):
    """The state_dict without num_batches_tracked, floating tensors converted to `dtype`, on the CPU."""
    state = {}
    for name, tensor in model.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        tensor = tensor.detach().to("cpu")
        if tensor.is_floating_point():
            tensor = tensor.to(dtype)
        state[name] = tensor.contiguous()
    return state


def check_written_header(path, state):
    """Read the header back: names, dtypes, shapes and the data size must be those of `state`."""
    header, data_start = read_header(path)
    header.pop("__metadata__", None)
    expected = {name: {"dtype": DTYPE_NAMES[tensor.dtype], "shape": list(tensor.shape)} for name, tensor in state.items()}
    problems = [name for name, entry in expected.items()
                if name not in header or {key: header[name][key] for key in entry} != entry]
    data_size = sum(tensor.numel() * tensor.element_size() for tensor in state.values())
    if problems or len(header) != len(state) or os.path.getsize(path) != data_start + data_size:
        sys.exit(f"export_weights: '{path}' does not read back as written (first differing names: {problems[:3]})")


def print_supported_models():
    for source, names in SUPPORTED_MODELS.items():
        print(f"{source}:")
        for name in names:
            print(f"  {name}")


def check_supported(source, name):
    """timm names may carry a pretrained tag (vit_base_patch16_224.augreg_in21k_ft_in1k)."""
    base = name.split(".")[0] if source == "timm" else name
    if base not in SUPPORTED_MODELS[source]:
        sys.exit(f"export_weights: visopt does not support {source} model '{name}'; "
                 f"supported: {', '.join(SUPPORTED_MODELS[source])} (see --list)")


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("--list", action="store_true", help="print the supported model names and exit")
    parser.add_argument("--model", help="model name, e.g. resnet50, vit_b_16, vit_small_patch16_224")
    parser.add_argument("--out", help="safetensors file to write")
    parser.add_argument("--source", choices=list(SUPPORTED_MODELS), default=None,
                        help="where the model comes from (default: timm for timm names, else torchvision)")
    parser.add_argument("--weights", default="DEFAULT",
                        help="torchvision weights enum name (DEFAULT, IMAGENET1K_V1, IMAGENET1K_V2, ...), "
                             "'none' for random initialisation, or a .pth state_dict file (default: DEFAULT; "
                             "for timm anything but none/path means pretrained=True)")
    parser.add_argument("--dtype", choices=list(DTYPES), default="f32", help="floating-point type to store (default: f32)")
    parser.add_argument("--num-classes", type=int, default=None,
                        help="classifier size, for a checkpoint fine-tuned on other than 1000 classes")
    parser.add_argument("--names", choices=["keep", "torchvision", "timm"], default="keep",
                        help="ViT only: rename weights to this naming (default: keep the source's)")
    arguments = parser.parse_args(argv)
    if not arguments.list and (arguments.model is None or arguments.out is None):
        parser.error("--model and --out are required (or --list)")
    return arguments


def main(argv=None):
    arguments = parse_arguments(argv)
    if arguments.list:
        print_supported_models()
        return
    source = arguments.source or ("timm" if arguments.model.split(".")[0] in SUPPORTED_MODELS["timm"] else "torchvision")
    check_supported(source, arguments.model)
    weights = None if arguments.weights.lower() == "none" else arguments.weights

    try:
        model = build_model(source, arguments.model, weights, arguments.num_classes)
    except OSError as error:  # a failed download is a URLError, an OSError
        sys.exit(f"export_weights: could not get the weights of {source} '{arguments.model}' ({error}); "
                 "run this where the weights can be downloaded, or pass a .pth file with --weights")
    state = exportable_state_dict(model, DTYPES[arguments.dtype])
    naming = vit_naming_of(state) or "torchvision"
    if arguments.names != "keep" and arguments.names != naming:
        if vit_naming_of(state) is None:
            sys.exit("export_weights: --names renames ViT weights only; this model keeps its torchvision names")
        state = rename_vit_state_dict(state, naming, arguments.names)
        naming = arguments.names

    metadata = {
        "format": "visopt",
        "source": source,
        "model": arguments.model,
        "weights": "none" if weights is None else (os.path.basename(weights) if is_checkpoint_path(weights) else weights),
        "dtype": arguments.dtype,
        "names": naming,
        "torch": torch.__version__,
    }
    write_safetensors(arguments.out, state, metadata)

    check_written_header(arguments.out, state)

    parameters = sum(tensor.numel() for tensor in state.values())
    size = os.path.getsize(arguments.out)
    print(f"export_weights: {source} {arguments.model} ({metadata['weights']}) -> {arguments.out}: "
          f"{len(state)} tensors, {parameters / 1e6:.2f} M values, {size / 2**20:.1f} MiB {arguments.dtype}, {naming} names")


if __name__ == "__main__":
    main()
