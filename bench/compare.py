#!/usr/bin/env python3
"""Compares visopt with its peers (PyTorch modes, ONNX Runtime) from the JSON lines visopt_bench and peers.py append.

Rows are only ever compared within one group: the same machine and the same run tag (tools/bench.sh
gives each run its own; rows without a tag group by UTC day), so no figure is set against one taken on
another machine or in another run. For each model, image size and batch it prints every visopt level's
and every peer mode's throughput, the ratio to the best peer, and GFLOP/s against the run's matmul
ceiling.

    compare.py bench/results/*.jsonl                 # the text table, every group
    compare.py FILE --tag RUN --markdown             # a README-ready table of ratios to the best peer
    compare.py FILE --plot throughput.png            # throughput bars per mode (needs matplotlib)
"""

import argparse
import collections
import json
import re
import sys

PEERS = ("pytorch", "onnxruntime")  # the tools peers.py's rows name


def load(paths):
    rows = []
    for path in paths:
        with open(path) as f:
            for number, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    sys.exit(f"compare.py: {path}:{number} is not JSON ({e})")
    return rows


def group_key(row):
    """(machine, tag): a run that crosses midnight UTC stays one group; untagged rows group by day."""
    return (row.get("machine") or row.get("device") or "?", row.get("tag") or (row.get("date") or "?")[:10])


def latest(rows):
    """The last row of each (tool, model, image size, batch, level, backend): a repeated run replaces an earlier one."""
    keep = collections.OrderedDict()
    for r in rows:
        ceiling_precision = r.get("precision") if r.get("tool") == "ceiling" else None
        keep[(r.get("tool"), r.get("model"), r.get("image_size"), r.get("batch"), r.get("level"), r.get("backend"),
              ceiling_precision)] = r
    return list(keep.values())


def ok(row):
    return not row.get("error") and row.get("throughput")


def precision_word(precision):
    return (precision or "").split(" ")[0]


EIGHT_BIT = ("fp8", "int8")


def ceiling_for(row, ceilings):
    """The ceiling of the row's own precision, else the fastest one (its precision is then printed); a
    floating-point row (fp32, TF32) falls back to the fastest floating-point ceiling, never an 8-bit one."""
    usable = [c for c in ceilings if ok(c) and c.get("gflops")]
    same = [c for c in usable if precision_word(c.get("precision")) == precision_word(row.get("precision"))]
    if same:
        return same[-1]
    if precision_word(row.get("precision")) not in EIGHT_BIT:
        usable = [c for c in usable if precision_word(c.get("precision")) not in EIGHT_BIT] or usable
    return max(usable, key=lambda c: c["gflops"]) if usable else None


def rate(images_per_second):
    """Three significant figures at most, without an exponent: 12345, 188, 47.8, 3.61."""
    digits = 0 if images_per_second >= 100 else 1 if images_per_second >= 10 else 2
    return f"{images_per_second:.{digits}f}"


def run_name(row):
    if row["tool"] == "visopt":
        return f"visopt {row['level']} {row['backend']}"
    return f"{row['tool']} {row['level']}"


class Group:
    def __init__(self, key, rows):
        self.machine = key[0]
        self.tag = rows[0].get("tag") or ""
        self.day = min((r.get("date") or "?")[:10] for r in rows)  # the day the run started
        rows = latest(rows)
        self.ceilings = [r for r in rows if r.get("tool") == "ceiling"]
        self.cases = collections.OrderedDict()  # (model, image size, batch) -> rows
        for r in rows:
            if r.get("tool") == "visopt" or r.get("tool") in PEERS:
                self.cases.setdefault((r["model"], r.get("image_size"), r["batch"]), []).append(r)
        self.commits = sorted({r.get("commit", "unknown") for r in rows})
        self.quick = any(r.get("quick") for r in rows)
        self.torch = sorted({r["torch_version"] for r in rows if r.get("torch_version")})
        self.ort = sorted({r["onnxruntime_version"] for r in rows if r.get("onnxruntime_version")})

    def title(self):
        t = f"{self.machine} · {self.day}"
        if self.tag:
            t += f" · run {self.tag}"
        t += f" · visopt {', '.join(self.commits)}"
        if self.torch:
            t += f" · torch {', '.join(self.torch)}"
        if self.ort:
            t += f" · onnxruntime {', '.join(self.ort)}"
        if self.quick:
            t += " · QUICK (smoke test, not a measurement)"
        return t

    @staticmethod
    def best_peer(rows):
        peers = [r for r in rows if r["tool"] in PEERS and ok(r)]
        return max(peers, key=lambda r: r["throughput"]) if peers else None

    @staticmethod
    def ordered(rows):
        """visopt by backend and level, then the peers in the order they ran."""
        return sorted(rows, key=lambda r: (0, r.get("backend") or "", r.get("level") or "") if r["tool"] == "visopt" else (1,))


def table(cells, left=1):
    widths = [max(len(row[i]) for row in cells if i < len(row)) for i in range(len(cells[0]))]
    lines = []
    for n, row in enumerate(cells):
        line = "  ".join(c.ljust(widths[i]) if i < left else c.rjust(widths[i]) for i, c in enumerate(row))
        lines.append(line.rstrip())
        if n == 0:
            lines.append("-" * len(line))
    return "\n".join(lines)


def print_text(group):
    print(f"\n== {group.title()} ==")
    if group.ceilings:
        print("matmul ceilings: " + " · ".join(
            f"{c['backend']} {precision_word(c['precision'])} {c['gflops']:.0f} GFLOP/s" if ok(c) else
            f"{c['backend']} error" for c in group.ceilings))
    for (model, size, batch), rows in group.cases.items():
        best = group.best_peer(rows)
        print(f"\n{model} @{size}, batch {batch}" + (f"  (best peer: {run_name(best)}, {best['throughput']:.1f} img/s)"
                                                    if best else "  (no peer result)"))
        cells = [["run", "precision", "img/s", "median ms", "p95 ms", "GFLOP/s", "% ceiling", "peak MiB", "added MiB",
                  "vs best peer"]]
        for r in group.ordered(rows):
            if not ok(r):
                cells.append([run_name(r), "error: " + (r.get("error") or "no result")[:70]])
                continue
            ceiling = ceiling_for(r, group.ceilings)
            percent = (f"{100 * r['gflops'] / ceiling['gflops']:.1f}% {precision_word(ceiling['precision'])}"
                       if ceiling and r.get("gflops") else "-")
            ratio = f"{r['throughput'] / best['throughput']:.2f}x" if best else "-"
            memory = r.get("peak_memory_bytes")
            added = max(memory - (r.get("baseline_memory_bytes") or 0), 0) if memory else None
            cells.append([run_name(r) + (" *" if r is best else ""), precision_word(r.get("precision")),
                          f"{r['throughput']:.1f}", f"{r['median_ms']:.3f}", f"{r['p95_ms']:.3f}",
                          f"{r['gflops']:.1f}" if r.get("gflops") is not None else "-", percent,
                          f"{memory / 2**20:.0f}" if memory else "-", f"{added / 2**20:.0f}" if added is not None else "-", ratio])
        print(table(cells, left=2))
    print("\n* the best peer; ratios are throughput / the best peer's throughput, in this run on this machine.\n"
          "peak MiB: process peak RSS on the CPU (program, libraries and weights included), device memory used on the\n"
          "GPU; added MiB: the peak less what the process held when the configuration started.")


def print_markdown(group):
    """Rows: model × batch. Columns: each visopt level (ratio to the best peer), then the best peer."""
    columns = []
    for rows in group.cases.values():
        for r in group.ordered(rows):
            if r["tool"] == "visopt" and (r["level"], r["backend"]) not in columns:
                columns.append((r["level"], r["backend"]))
    backends = {b for _, b in columns}
    label = lambda c: c[0] if len(backends) == 1 else f"{c[0]} {c[1]}"
    print(f"\n**{group.title()}** — visopt throughput as a multiple of the best peer "
          f"(higher is better; img/s in brackets)\n")
    print("| model | batch | " + " | ".join(label(c) for c in columns) + " | best peer |")
    print("|---|---:|" + "---:|" * len(columns) + "---|")
    for (model, size, batch), rows in group.cases.items():
        best = group.best_peer(rows)
        cells = []
        for level, backend in columns:
            r = next((r for r in rows if r["tool"] == "visopt" and r["level"] == level and r["backend"] == backend), None)
            if r is None:
                cells.append("")
            elif not ok(r):
                cells.append("error")
            elif best:
                cells.append(f"{r['throughput'] / best['throughput']:.2f}× ({rate(r['throughput'])})")
            else:
                cells.append(f"({rate(r['throughput'])})")
        peer = f"{run_name(best)} ({rate(best['throughput'])} img/s)" if best else "no result"
        name = model if size == 224 else f"{model} @{size}"
        print(f"| {name} | {batch} | " + " | ".join(cells) + f" | {peer} |")


def plot(groups, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("compare.py: --plot needs matplotlib (Debian: python3-matplotlib); no plot drawn", file=sys.stderr)
        return False
    for n, group in enumerate(groups):
        cases = list(group.cases.items())
        if not cases:
            continue
        columns = min(3, len(cases))
        rows = (len(cases) + columns - 1) // columns
        figure, axes = plt.subplots(rows, columns, figsize=(6 * columns, 0.5 + 3.2 * rows), squeeze=False)
        for ax in axes.flat[len(cases):]:
            ax.set_visible(False)
        for ax, ((model, size, batch), case_rows) in zip(axes.flat, cases):
            done = [r for r in group.ordered(case_rows) if ok(r)]
            best = group.best_peer(case_rows)
            names = [run_name(r) for r in done]
            colours = ["tab:blue" if r["tool"] == "visopt" else ("tab:red" if r is best else "tab:gray") for r in done]
            ax.barh(range(len(done)), [r["throughput"] for r in done], color=colours)
            ax.set_yticks(range(len(done)))
            ax.set_yticklabels(names, fontsize=8)
            ax.invert_yaxis()
            ax.set_xlabel("images / s")
            ax.set_title(f"{model} @{size}, batch {batch}", fontsize=10)
            if best:
                ax.axvline(best["throughput"], color="tab:red", linewidth=0.8, linestyle="--")
        figure.suptitle(group.title() + "\nblue: visopt · red: the best peer · grey: the other peers",
                        fontsize=9)
        figure.tight_layout()
        target = path if len(groups) == 1 else re.sub(r"(\.\w+)?$", lambda m: f"-{n + 1}{m.group(0)}", path, count=1)
        figure.savefig(target, dpi=120)
        plt.close(figure)
        print(f"compare.py: wrote {target}", file=sys.stderr)
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", help="JSON-lines files from visopt_bench --json and peers.py --json")
    parser.add_argument("--tag", help="only the rows of this run")
    parser.add_argument("--machine", help="only the rows of this machine")
    parser.add_argument("--markdown", action="store_true", help="print a README-ready table of ratios to the best peer")
    parser.add_argument("--plot", metavar="FILE.png", help="draw throughput bars per mode (needs matplotlib)")
    parser.add_argument("--no-quick", action="store_true", help="leave out rows from --quick smoke tests")
    args = parser.parse_args()

    rows = load(args.files)
    rows = [r for r in rows if (args.tag is None or r.get("tag") == args.tag) and
            (args.machine is None or r.get("machine") == args.machine) and not (args.no_quick and r.get("quick"))]
    grouped = collections.OrderedDict()
    for r in rows:
        grouped.setdefault(group_key(r), []).append(r)
    groups = [Group(key, group_rows) for key, group_rows in grouped.items()]
    if not groups:
        sys.exit("compare.py: no rows to compare")
    for group in groups:
        print_markdown(group) if args.markdown else print_text(group)
    if args.plot and not plot(groups, args.plot):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
