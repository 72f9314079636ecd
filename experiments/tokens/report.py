"""docs/tokens.md, the independence loss's table: one row per arm of experiments/tokens/mmd.sh
(a tokenizer run folder runs/tokmmd-ARM beside its reports), from what the arm wrote: mutual
information between codebooks on the test split within a frame and at the parallel LM's
delays, over their floors (`umt tokenizer measure`); codebook perplexities; the loss as measured
on its macro-batches in training (mean of the first 3 terms and of the last 8, from the run's
tensorboard log); the frame networks' val spectrum L1 through the tokens at the run's last step;
translation through its tokens (`umt evaluate --tokens`, sines: judge, chroma, onset F1). All of
the arm's last checkpoint, where mmd.sh measures it.

    python experiments/tokens/report.py ARM [ARM ...]      (e.g. 0 1000000 0-l2 1000-l2)
Env: UMT_WORK (~/umt-work).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

WORK = Path(os.environ.get("UMT_WORK", Path.home() / "umt-work"))


def scalars(run: Path, *tags: str) -> list[dict[int, float]]:
    """Each tag's values by step in the run's tensorboard log ({} for a tag it lacks)."""
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    logged = events.Tags()["scalars"]
    return [{e.step: e.value for e in events.Scalars(tag)} if tag in logged else {} for tag in tags]


def row(arm: str) -> str:
    run, reports = WORK / "runs" / f"tokmmd-{arm}", WORK / "reports"
    state = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    weight, layers = state["train"]["loss_weights"]["mmd"], state["config"]["tokenizer"].get("layers", 0)
    mi = json.loads((reports / f"tokmmd-{arm}-mi.json").read_text())
    late = mi.get("delayed")
    losses, spectra = scalars(run, "train/mmd", "val/spectrum")
    terms = list(losses.values())
    spectrum = spectra.get(state["step"], float("nan"))
    tokens = json.loads((reports / f"tokmmd-{arm}-tokens" / "metrics.json").read_text())["summary"]["sines"]
    heard = [tokens[k]["off_diagonal"] for k in ("target_accuracy", "chroma_similarity", "onset_f1")]
    cells = [
        arm,
        f"{weight:g}",
        str(layers),
        f"{mi['mean_mi']:.3f} ({mi['mean_floor']:.3f})",
        f"{late['mean_mi']:.3f} ({late['mean_floor']:.3f})" if late else "-",
        ", ".join(f"{p:.0f}" for p in mi["perplexity"]),
        f"{sum(terms[:3]) / 3:.5f} / {sum(terms[-8:]) / 8:.5f}",
        f"{spectrum:.4f}",
        " / ".join(f"{v:.3f}" for v in heard),
    ]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    print(
        "| arm | weight | blocks | MI within a frame (floor) | MI at the delays (floor) | perplexities | "
        "loss on macro-batches, first 3 / last 8 | val spectrum L1 | through the tokens: judge / chroma / onset F1 |"
    )
    print("|" + " --- |" * 9)
    for arm in sys.argv[1:]:
        print(row(arm))


if __name__ == "__main__":
    main()
