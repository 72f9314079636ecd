"""docs/steering.md's tables and figure from the sweeps' results (sweep.py).

    python experiments/steering/report.py SWEEPS OUT      (SWEEPS/<trait>-<task>/results.json)

Prints one markdown table per trait, task and source side; writes OUT/alpha.png: success,
chroma to the unsteered output and LM NLL against alpha, per trait (blue: translation of
sources without the trait, orange: with it, green: generation; solid: not monitored, dashed:
monitored).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

COLUMNS = ("measure", "success", "chroma_to_unsteered", "lm_nll_bits", "nudged")
PANELS = (("success", "success"), ("chroma_to_unsteered", "chroma to unsteered"), ("lm_nll_bits", "LM NLL (bits)"))
COLOURS = {
    ("translate", "without"): "tab:blue",
    ("translate", "with"): "tab:orange",
    ("generate", "without"): "tab:green",
}


def cell(value) -> str:
    return "-" if value is None else f"{value:.3g}"


def tables(results: list[dict]) -> str:
    lines = []
    for r in results:
        for side, block in r["sides"].items():
            real = block["real"]
            title = (f"*{r['trait']}*, {r['task']} into {r['to']}, sources {side} the trait (real {r['to']}: "
                     f"{real['without']:.3g} without, {real['with']:.3g} with):")  # fmt: skip
            lines += ["", title, "", "| alpha | " + " | ".join(COLUMNS) + " |", "| --- " * (len(COLUMNS) + 1) + "|"]
            for name, row in block["rows"].items():
                lines.append(f"| {name} | " + " | ".join(cell(row[c]) for c in COLUMNS) + " |")
    return "\n".join(lines)


def figure(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    traits = sorted({r["trait"] for r in results})
    fig, axes = plt.subplots(len(PANELS), len(traits), figsize=(4 * len(traits), 8), squeeze=False)
    for column, trait in enumerate(traits):
        axes[0, column].set_title(trait)
        for r in (r for r in results if r["trait"] == trait):
            for side, block in r["sides"].items():
                for monitored, style in ((False, "-"), (True, "--")):
                    points = [(0.0, block["rows"]["0"])] + [
                        (float(name.split(",")[0]), row) for name, row in block["rows"].items()
                        if name != "0" and name.endswith("not monitored") != monitored
                    ]  # fmt: skip
                    for panel, (key, label) in enumerate(PANELS):
                        xs = [x for x, row in points if row[key] is not None]
                        ys = [row[key] for _, row in points if row[key] is not None]
                        axes[panel, column].plot(xs, ys, style, color=COLOURS[(r["task"], side)], marker="o")
                        axes[panel, column].set_ylabel(label)
        axes[-1, column].set_xlabel("alpha")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def main(sweeps: Path, out: Path) -> None:
    results = [json.loads(p.read_text()) for p in sorted(sweeps.glob("*/results.json"))]
    print(tables(results))
    figure(results, out / "alpha.png")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
