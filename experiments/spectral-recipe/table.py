"""The rows of docs/spectral-recipe.md's tables from the reports of frames.sh runs: target
accuracy (the judge), chroma similarity, pitch-class agreement and spectrum L1 off the
diagonal, and the frame networks' teacher-forced spectrum L1 on the split (reconstruction).

    python experiments/spectral-recipe/table.py REPORTS ROW [ROW ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

COLUMNS = ("target accuracy", "chroma", "pitch-class", "spectrum L1", "reconstruction spectrum L1")


def row(metrics: dict) -> list[str]:
    summary = metrics["summary"]["wavenet"]
    off = [summary[k]["off_diagonal"] for k in ("target_accuracy", "chroma_similarity", "pitch_class_agreement")]
    l1 = metrics["spectrum_l1"]
    l1_off = [v for source, row in l1.items() for target, v in row.items() if source != target]
    reconstruction = [d["spectrum_l1"] for d in metrics["reconstruction"].values() if "spectrum_l1" in d]
    cells = [*off, sum(l1_off) / len(l1_off), sum(reconstruction) / len(reconstruction)]
    return [f"{value:.3f}" for value in cells]


def main(reports: Path, rows: list[str]) -> None:
    print("| frames run | " + " | ".join(COLUMNS) + " |")
    print("| --- " * (len(COLUMNS) + 1) + "|")
    for name in rows:
        path = reports / f"recipe-{name}" / "metrics.json"
        cells = row(json.loads(path.read_text())) if path.exists() else ["(not run)"] * len(COLUMNS)
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
