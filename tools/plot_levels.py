#!/usr/bin/env python3
"""Draws the chart of examples/levels: throughput per level, one group of bars per backend, each bar
labelled with its speed-up over that backend's O0 and its top-1 agreement with the reference O0.

    python3 tools/plot_levels.py levels.json levels.png
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402


def main(json_path: str, png_path: str) -> None:
    with open(json_path) as f:
        result = json.load(f)
    rows = [r for r in result["rows"] if "error" not in r]
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    levels = ["O0", "O1", "O2", "O3"]
    colours = {"O0": "#9e9e9e", "O1": "#64b5f6", "O2": "#1e88e5", "O3": "#0d47a1"}
    width = 0.8 / len(levels)
    fig, ax = plt.subplots(figsize=(2.6 * len(backends) + 3, 4.5))
    for i, level in enumerate(levels):
        for b, backend in enumerate(backends):
            match = [r for r in rows if r["backend"] == backend and r["level"] == level]
            if not match:
                continue
            r = match[0]
            x = b + (i - (len(levels) - 1) / 2) * width
            ax.bar(x, r["throughput"], width, color=colours[level], label=level)
            ax.annotate(f"{r['speedup']:.2f}x\n{100 * r['top1']:.0f}%", (x, r["throughput"]), ha="center", va="bottom",
                        fontsize=7, xytext=(0, 2), textcoords="offset points")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), title="level", loc="upper left")
    ax.set_xticks(range(len(backends)), backends)
    ax.set_ylabel("images / second (p50)")
    ax.set_title(f"{result['model']}, batch {result['batch']} at {result['image_size']}x{result['image_size']}: "
                 "speed-up over O0 and top-1 agreement with the reference O0")
    ax.title.set_fontsize(9)
    ax.margins(y=0.2)
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
