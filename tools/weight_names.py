"""The one mapping between torchvision and timm names of a Vision Transformer's weights.

visopt reads either naming (docs/); make_fixtures.py writes the ViT-Ti fixture under both so the
C++ loaders are tested on identical numbers, and export_weights.py can rename a checkpoint. The
tensors themselves are identical: timm's fused attn.qkv is torchvision's in_proj ([3D, D] rows in
q, k, v order), and both use a [1, 1, D] class token and a [1, 1 + N, D] position embedding.
"""

import functools
import re

# (torchvision pattern, timm pattern); "{i}" stands for the encoder block index.
VIT_NAME_PAIRS = [
    ("conv_proj.weight", "patch_embed.proj.weight"),
    ("conv_proj.bias", "patch_embed.proj.bias"),
    ("class_token", "cls_token"),
    ("encoder.pos_embedding", "pos_embed"),
    ("encoder.layers.encoder_layer_{i}.ln_1.weight", "blocks.{i}.norm1.weight"),
    ("encoder.layers.encoder_layer_{i}.ln_1.bias", "blocks.{i}.norm1.bias"),
    ("encoder.layers.encoder_layer_{i}.self_attention.in_proj_weight", "blocks.{i}.attn.qkv.weight"),
    ("encoder.layers.encoder_layer_{i}.self_attention.in_proj_bias", "blocks.{i}.attn.qkv.bias"),
    ("encoder.layers.encoder_layer_{i}.self_attention.out_proj.weight", "blocks.{i}.attn.proj.weight"),
    ("encoder.layers.encoder_layer_{i}.self_attention.out_proj.bias", "blocks.{i}.attn.proj.bias"),
    ("encoder.layers.encoder_layer_{i}.ln_2.weight", "blocks.{i}.norm2.weight"),
    ("encoder.layers.encoder_layer_{i}.ln_2.bias", "blocks.{i}.norm2.bias"),
    ("encoder.layers.encoder_layer_{i}.mlp.0.weight", "blocks.{i}.mlp.fc1.weight"),
    ("encoder.layers.encoder_layer_{i}.mlp.0.bias", "blocks.{i}.mlp.fc1.bias"),
    ("encoder.layers.encoder_layer_{i}.mlp.3.weight", "blocks.{i}.mlp.fc2.weight"),
    ("encoder.layers.encoder_layer_{i}.mlp.3.bias", "blocks.{i}.mlp.fc2.bias"),
    ("encoder.ln.weight", "norm.weight"),
    ("encoder.ln.bias", "norm.bias"),
    ("heads.head.weight", "head.weight"),
    ("heads.head.bias", "head.bias"),
]

NAMINGS = ("torchvision", "timm")


@functools.lru_cache(maxsize=None)
def _compile_rules(source, target):
    """[(regex matching a `source` name, format string of the `target` name)]."""
    column = {name: index for index, name in enumerate(NAMINGS)}
    rules = []
    for pair in VIT_NAME_PAIRS:
        pattern = "^" + re.escape(pair[column[source]]).replace(re.escape("{i}"), r"(?P<i>\d+)") + "$"
        rules.append((re.compile(pattern), pair[column[target]]))
    return rules


def rename_vit_key(name, source, target):
    """`name` in the `target` naming; raises KeyError for a name the mapping does not know."""
    if source == target:
        return name
    for pattern, replacement in _compile_rules(source, target):
        match = pattern.match(name)
        if match:
            return replacement.replace("{i}", match.group("i")) if "i" in pattern.groupindex else replacement
    raise KeyError(f"weight_names: '{name}' is not a {source} ViT weight name that maps to {target}")


def rename_vit_state_dict(state_dict, source, target):
    """A new {name: tensor} with every ViT key renamed from `source` to `target` naming, same order."""
    if source not in NAMINGS or target not in NAMINGS:
        raise ValueError(f"weight_names: namings are {NAMINGS}, got '{source}' -> '{target}'")
    return {rename_vit_key(name, source, target): tensor for name, tensor in state_dict.items()}


def vit_naming_of(state_dict):
    """'torchvision' or 'timm', judged by the class token's name; None when neither is there."""
    if "class_token" in state_dict:
        return "torchvision"
    if "cls_token" in state_dict:
        return "timm"
    return None
