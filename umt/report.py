"""The report of `umt evaluate`: REPORT/report.md with its tables, the heatmaps and spectrogram\ntriptychs, and the off-diagonal means the command prints."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from umt.audio import write_audio
from umt.fileio import atomic_path
from umt.judge import TRUSTED_JUDGE

# measure -> (title, higher is better, needs a paired corpus)
METRICS: dict[str, tuple[str, bool, bool]] = {
    "target_accuracy": ("Target accuracy (share of translations the judge assigns to the target)", True, False),
    "chroma_similarity": ("Chroma similarity", True, False),
    "pitch_class_agreement": ("Pitch-class agreement (pyin, frames voiced in both)", True, False),
    "onset_f1": ("Note onset F1 (basic-pitch notes, onsets within 50 ms, offsets ignored)", True, False),
    "envelope_correlation": (
        "Loudness-envelope correlation with the ground truth (strikes, decays, held notes; 1 = the same dynamics)",
        True,
        True,
    ),
    "noise_floor_db": (
        "Noise floor (dB below each frame's strongest bin; real audio of the target in the last row)",
        False,
        False,
    ),
    "noise_floor_excess_db": ("Noise floor above the target domain's real test audio (dB; 0 = as clean)", False, False),
    "lsd": ("Log-spectral distance to the ground truth (dB, ss-vq-vae's definition)", False, True),
    "mr_stft": ("Multi-resolution STFT distance to the ground truth", False, True),
    "logmel_l1": ("Log-mel L1 distance to the ground truth", False, True),
}


SPECTRUM_L1 = (
    "Semitone-spectrum L1 of the frame network's prediction to the ground truth (no renderer; lower is closer)"
)


def summary(results: dict, domains: list[str]) -> dict:
    """Per measure: the mean off the diagonal and the mean of each target column off the diagonal."""
    summary = {}
    for key, matrix in results.items():
        columns = {t: mean_of(matrix[s][t] for s in domains if s != t) for t in domains}
        summary[key] = {"off_diagonal": mean_of(columns.values()), "columns": columns}
    return summary


def mean_of(values) -> float | None:
    """The mean of the values that are not None, or None (null in metrics.json) when there is none."""
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


HEATMAPS = ("target_accuracy", "chroma_similarity", "onset_f1", "noise_floor_excess_db")


def draw_figures(metrics: dict, examples: list, out: Path, rate: int) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    domains = metrics["domains"]
    for renderer, results in metrics["results"].items():
        for key in HEATMAPS:
            if results[key] is None:
                continue
            matrix = np.array([[_number(results[key][s][t]) for t in domains] for s in domains])
            bounded = METRICS[key][1]  # scores in [0, 1]; the floor's excess in dB
            fig, ax = plt.subplots(figsize=(1.2 * len(domains) + 2, 1.0 * len(domains) + 1.5))
            image = ax.imshow(
                matrix,
                vmin=0 if bounded else None,
                vmax=1 if bounded else None,
                cmap="viridis" if bounded else "magma_r",
            )
            ax.set_xticks(range(len(domains)), domains, rotation=30)
            ax.set_yticks(range(len(domains)), domains)
            ax.set_xlabel("target")
            ax.set_ylabel("source")
            ax.set_title(f"{key.replace('_', ' ')} ({renderer})")
            for i in range(len(domains)):
                for j in range(len(domains)):
                    ax.text(
                        j,
                        i,
                        f"{matrix[i, j]:.2f}" if bounded else f"{matrix[i, j]:.0f}",
                        ha="center",
                        va="center",
                        color="grey",
                    )
            fig.colorbar(image)
            fig.tight_layout()
            name = f"{key}_{renderer}.png"
            _save_figure(fig, out / name)
            plt.close(fig)
            written.append(name)
    clip_dir = out / "clips"
    for n, (clip, target, rendered, truth) in enumerate(examples):
        panels = [("input: " + clip.source, clip.audio), ("translation: " + target, rendered)]
        if truth is not None:
            panels.append(("ground truth: " + target, truth.audio))
        fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3), sharey=True)
        for ax, (title, audio) in zip(np.atleast_1d(axes), panels):
            ax.specgram(audio + 1e-7, NFFT=1024, Fs=rate, noverlap=768, cmap="magma")
            ax.set_title(title)
            ax.set_xlabel("s")
        np.atleast_1d(axes)[0].set_ylabel("Hz")
        fig.tight_layout()
        name = f"example{n}_{clip.source}_to_{target}"
        _save_figure(fig, out / f"{name}.png")
        plt.close(fig)
        written.append(f"{name}.png")
        for label, (_, audio) in zip(("input", "translation", "truth"), panels):
            write_audio(clip_dir / f"{name}_{label}.wav", audio, rate)
    return written


def _save_figure(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def _number(value: float | None) -> float:
    return np.nan if value is None else value


def _cell(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _table(domains: list[str], matrices: list[dict], digits: int = 2) -> list[str]:
    """source x target; each cell the matrices' values joined by ' / '."""
    rows = ["| source \\ target | " + " | ".join(domains) + " |", "| --- " * (len(domains) + 1) + "|"]
    for s in domains:
        cells = (" / ".join(_cell(m[s][t], digits) for m in matrices) for t in domains)
        rows.append(f"| {s} | " + " | ".join(cells) + " |")
    return rows


RECONSTRUCTION_COLUMNS = {
    "nats": "nats/sample", "bits": "bits/sample", "gain_nats": "conditioning gain (nats)",
    "spectrum_l1": "spectrum L1", "gain_spectrum_l1": "conditioning gain (spectrum L1)",
}  # fmt: skip


def _sampling_text(sampling: dict[str, dict]) -> str:
    """'temperature 0, flutter 1', or per domain where the domains differ."""
    parts = []
    for key in ("temperature", "flutter"):
        values = {d: s[key] for d, s in sampling.items()}
        same = len(set(values.values())) == 1
        parts.append(
            f"{key} {next(iter(values.values())):g}"
            if same
            else f"{key} " + ", ".join(f"{d} {v:g}" for d, v in values.items())
        )
    return ", ".join(parts)


def write_report(metrics: dict, figures: list[str], out: Path) -> None:
    domains, renderers = metrics["domains"], metrics["renderers"]
    both = " / ".join(renderers)
    lines = ["# Translation report", ""]
    lines.append(
        f"{sum(metrics['clips_per_domain'].values())} {metrics['split']} clips of {metrics['seconds']:g} s "
        f"({', '.join(f'{d}: {n}' for d, n in metrics['clips_per_domain'].items())}), {_sampling_text(metrics['sampling'])}, "
        f"renderers {both} (each cell: {both}), {metrics['latent']} latent; "
        + (
            "paired corpus: compared with the ground-truth rendering in the target domain."
            if metrics["paired"]
            else "unpaired data: compared with the input."
        )
    )
    lines += ["", "## Summary (off the diagonal; the weakest target column in brackets)", "",
              "| measure | " + " | ".join(renderers) + " | untouched input |", "| --- " * (len(renderers) + 2) + "|"]  # fmt: skip
    identity_summary = summary(
        {k: v for k, v in metrics["identity"].items() if v is not None and k in METRICS}, domains
    )
    for key, (_, higher, _) in METRICS.items():
        if metrics["results"][renderers[0]][key] is None:
            continue
        cells = []
        for r in renderers:
            s = metrics["summary"][r][key]
            columns = [v for v in s["columns"].values() if v is not None]
            worst = (min if higher else max)(columns) if columns else None
            cells.append(f"{_cell(s['off_diagonal'])} ({_cell(worst)})")
        lines.append(
            f"| {key} | " + " | ".join(cells) + f" | {_cell(identity_summary.get(key, {}).get('off_diagonal'))} |"
        )
    for key, (title, _, _) in METRICS.items():
        matrices = [metrics["results"][r][key] for r in renderers]
        if matrices[0] is None:
            continue
        lines += ["", f"## {title}", "", *_table(domains, matrices)]
        if metrics["identity"][key] is not None:
            lines += ["", "Identity baseline (the untouched input):", "", *_table(domains, [metrics["identity"][key]])]
        if key == "noise_floor_db":
            lines += [
                "",
                "Real test audio of each domain: "
                + ", ".join(f"{d} {_cell(v, 1)} dB" for d, v in metrics["real"]["noise_floor_db"].items()),
            ]
    if metrics["spectrum_l1"] is not None:
        lines += ["", f"## {SPECTRUM_L1}", "", *_table(domains, [metrics["spectrum_l1"]])]
        lines += [
            "",
            "Identity baseline (the untouched input):",
            "",
            *_table(domains, [metrics["identity"]["spectrum_l1"]]),
        ]
    accuracy = metrics["judge_test_accuracy"]
    if accuracy is not None and accuracy < TRUSTED_JUDGE:
        lines += [
            "",
            (
                f"**Warning:** the judge is right on only {accuracy:.0%} of real test audio "
                f"(below {TRUSTED_JUDGE:.0%}); its target accuracies say little."
            ),
        ]
    if metrics["real"]["target_accuracy"] is not None:
        lines += ["", "Judge accuracy on the real test audio of each domain: "
                  + ", ".join(f"{d} {v:.2f}" for d, v in metrics["real"]["target_accuracy"].items())]  # fmt: skip
    keys = [k for k in METRICS if any(row[k] is not None for row in metrics["can_fail"].values())]
    lines += ["", "## Can each measure fail? The real test audio against itself, and worse audio against it", "",
              "| audio | " + " | ".join(keys) + " |", "| --- " * (len(keys) + 1) + "|"]  # fmt: skip
    lines += [
        f"| {name} | " + " | ".join(_cell(row[k]) for k in keys) + " |" for name, row in metrics["can_fail"].items()
    ]
    if metrics.get("reconstruction"):
        columns = [c for c in RECONSTRUCTION_COLUMNS if c in next(iter(metrics["reconstruction"].values()))]
        lines += [
            "",
            "## Reconstruction (teacher-forced, val split)",
            "",
            "| domain | " + " | ".join(RECONSTRUCTION_COLUMNS[c] for c in columns) + " |",
            "| --- " * (len(columns) + 1) + "|",
        ]
        lines += [
            f"| {d} | " + " | ".join(f"{v[c]:.3f}" for c in columns) + " |"
            for d, v in metrics["reconstruction"].items()
        ]
        lines += [
            "",
            (
                "Conditioning gain: the loss with another clip's conditioning minus with the clip's own "
                "(near 0: the decoder ignores what it is given)."
            ),
        ]
    if figures:
        lines += ["", "## Figures", ""] + [f"![{f}]({f})" for f in figures]
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def off_diagonal_means(metrics: dict) -> dict[str, dict[str, float | None]]:
    """renderer -> measure -> its mean off the diagonal (what the command line prints)."""
    return {r: {k: v["off_diagonal"] for k, v in s.items()} for r, s in metrics["summary"].items()}
