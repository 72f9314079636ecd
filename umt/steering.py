"""SMITIN steering (Koo et al., 2024): probes on activations, inference-time intervention, and
self-monitoring.

A *site* is a place in a network whose activations can be read and nudged: one attention head
of the token LM (`lm.<layer>.<head>`, its output before the heads are mixed), the encoder's
latent (`latent`), or one layer of a domain's frame network (`frames.<domain>.<layer>`).

1. Probes. For each site, a logistic regression (scikit-learn) learns to tell examples with a
   trait from examples without it, from the site's activations averaged over time (one vector
   per example); its accuracy on held-out examples says how much of the trait the site carries.
2. Intervention. At inference, a forward hook adds alpha * sigma * theta to the chosen sites'
   activations at every time step: theta the probe's unit direction (towards the trait), sigma
   the spread of the training activations along it, so alpha is in standard deviations.
3. Self-monitoring. The same hook reads its probe on the site's own activations (before the
   nudge: what the music so far makes of it); once P(trait), averaged over the monitored
   sites, has stayed above a threshold for `patience` consecutive calls, the intervention
   stops, so a trait that is there is not pushed further at the cost of the music.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from umt.errors import UserError


@dataclass
class Site:
    name: str
    module: nn.Module
    head: int | None = None  # which head of an attention's [B, T, heads, head_dim] output

    def select(self, output: torch.Tensor) -> torch.Tensor:
        """The site's activations [B, T, D] in its module's output."""
        return output[..., self.head, :] if self.head is not None else output


def lm_sites(lm: nn.Module) -> list[Site]:
    """Every attention head of a token LM (umt.lm.TokenLM)."""
    return [
        Site(f"lm.{i}.{h}", block.attention.heads, h) for i, block in enumerate(lm.blocks) for h in range(block.attention.n_heads)
    ]


def model_sites(model: nn.Module, domain: str) -> list[Site]:
    """The latent and every layer of one domain's frame network, of a spectral UMT model."""
    decoder = model.decoders[domain]
    if not hasattr(decoder, "frames"):
        raise UserError("steering the decoders needs a spectral model (frame networks)")
    return [Site("latent", model.encoder)] + [Site(f"frames.{domain}.{i}", layer) for i, layer in enumerate(decoder.frames.layers)]


@torch.no_grad()
def collect(sites: list[Site], run: Callable[[], object]) -> dict[str, torch.Tensor]:
    """Each site's activations averaged over time, [examples, D], over everything run() computes."""
    seen: dict[str, list[torch.Tensor]] = {site.name: [] for site in sites}

    def hook(site: Site):
        return lambda module, args, output: seen[site.name].append(site.select(output).float().mean(dim=1).cpu())

    handles = [site.module.register_forward_hook(hook(site)) for site in sites]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    return {name: torch.cat(parts) for name, parts in seen.items() if parts}


@dataclass
class Probe:
    """A logistic regression at one site: P(trait | x) = sigmoid(weight . x + bias)."""

    site: str
    weight: torch.Tensor  # [D]
    bias: float
    spread: float  # sigma: standard deviation of the training activations along the direction
    accuracy: float  # on held-out examples

    @property
    def direction(self) -> torch.Tensor:
        """theta: the unit vector towards the trait."""
        return self.weight / self.weight.norm().clamp_min(1e-12)

    def read(self, activations: torch.Tensor) -> torch.Tensor:
        """P(trait) of activations [..., D]."""
        return torch.sigmoid(activations.float() @ self.weight.to(activations.device) + self.bias)

    def to_dict(self) -> dict:
        return {"site": self.site, "weight": self.weight, "bias": self.bias, "spread": self.spread, "accuracy": self.accuracy}

    @classmethod
    def from_dict(cls, data: dict) -> Probe:
        return cls(data["site"], data["weight"], float(data["bias"]), float(data["spread"]), float(data["accuracy"]))


def fit_probes(with_trait: dict[str, torch.Tensor], without: dict[str, torch.Tensor], held_out: float = 0.3, seed: int = 0) -> list[Probe]:
    """One probe per site, from activations [examples, D] of examples with and without the
    trait; sorted by held-out accuracy, best first."""
    from sklearn.linear_model import LogisticRegression

    probes = []
    rng = np.random.default_rng(seed)
    for site in with_trait:
        x = torch.cat([with_trait[site], without[site]]).numpy()
        y = np.r_[np.ones(len(with_trait[site])), np.zeros(len(without[site]))]
        order = rng.permutation(len(y))
        test = order[: max(2, int(round(held_out * len(y))))]
        train = order[len(test) :]
        if len(set(y[train])) < 2 or len(set(y[test])) < 2:
            raise UserError(f"too few examples to train and test a probe: {len(with_trait[site])} with, {len(without[site])} without")
        regression = LogisticRegression(max_iter=2000).fit(x[train], y[train])
        weight = torch.from_numpy(regression.coef_[0]).float()
        spread = float(torch.from_numpy(x[train]).float().matmul(weight / weight.norm().clamp_min(1e-12)).std())
        probes.append(Probe(site, weight, float(regression.intercept_[0]), spread, float(regression.score(x[test], y[test]))))
    return sorted(probes, key=lambda p: -p.accuracy)


MONITOR_PATIENCE = 5  # consecutive readings above the threshold that stop the nudge


class Steering:
    """Forward hooks that nudge the chosen sites along their probes' directions (alpha sigma
    theta) and, with a threshold, stop once the probes read the trait (self-monitoring).

    readings: P(trait) per forward pass (mean over sites and batch), each probe read on the
    running mean of its site's newest-step activations before the nudge (probes are trained on
    activations averaged over time); active: whether the nudge is still applied; stopped_at:
    the reading after which monitoring stopped it (None while it runs)."""

    def __init__(
        self, sites: list[Site], probes: list[Probe], alpha: float | list[float], threshold: float | None = None,
        patience: int = MONITOR_PATIENCE,
    ):  # fmt: skip
        by_name = {site.name: site for site in sites}
        missing = [p.site for p in probes if p.site not in by_name]
        if missing:
            raise UserError(f"the probes' sites {', '.join(missing)} are not in this model")
        self.pairs = [(by_name[p.site], p) for p in probes]
        self.alphas = alpha if isinstance(alpha, list) else [alpha] * len(probes)  # one per probe
        self.threshold, self.patience = threshold, patience
        self.readings: list[float] = []
        self.active = True
        self.stopped_at: int | None = None
        self._pending: list[float] = []
        self._sums: dict[int, torch.Tensor] = {}  # per pair: the sum of its newest-step activations so far
        self._steps: dict[int, int] = {}

    def _hook(self, index: int, site: Site, probe: Probe, alpha: float):
        def hook(module, args, output):
            newest = site.select(output)[:, -1].float()  # before the nudge
            self._sums[index] = self._sums.get(index, 0) + newest
            self._steps[index] = self._steps.get(index, 0) + 1
            self._pending.append(float(probe.read(self._sums[index] / self._steps[index]).mean()))
            if len(self._pending) == len(self.pairs):
                self._monitor()
            if not self.active:
                return output
            nudge = (alpha * probe.spread * probe.direction).to(output.dtype).to(output.device)
            steered = output.clone()
            site.select(steered).add_(nudge)
            return steered

        return hook

    def _monitor(self) -> None:
        self.readings.append(sum(self._pending) / len(self._pending))
        self._pending = []
        recent = self.readings[-self.patience :]
        if self.active and self.threshold is not None and len(recent) == self.patience and min(recent) >= self.threshold:
            self.active = False
            self.stopped_at = len(self.readings)

    @contextmanager
    def applied(self) -> Iterator[Steering]:
        handles = [
            site.module.register_forward_hook(self._hook(i, site, probe, a)) for i, ((site, probe), a) in enumerate(zip(self.pairs, self.alphas))
        ]
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()


# ---------------------------------------------------------------- probes of a model, from folders of audio

PROBE_KIND = "umt-probe"


def example_activations(translator, lm: nn.Module | None, audio_files: list, clip_seconds: float) -> dict[str, torch.Tensor]:
    """Activations [clips, D] at every site of a model (latent, each domain's frame network;
    with a token LM, its heads) over clips of `clip_seconds` cut from each file (one example
    a clip). translator: a umt.translator.Translator (with tokens when lm is given)."""
    from umt.audio import load_audio

    model = translator.model
    rate = model.cfg.sample_rate
    sites = list({s.name: s for d in model.cfg.domains for s in model_sites(model, d)}.values())  # one latent site
    if lm is not None:
        sites += lm_sites(lm)
    samples = int(clip_seconds * rate)
    parts: dict[str, list[torch.Tensor]] = {}
    for path in audio_files:
        audio = load_audio(path, rate)
        for start in range(0, max(1, audio.size - samples + 1), samples):
            clip = audio[start : start + samples]

            def run() -> None:
                latent = translator.continuous(clip)
                for domain in model.cfg.domains:
                    model.decoders[domain].spectrum(latent[None])
                if lm is not None:
                    codes = model.tokenizer(latent[None]).codes[:, -lm.cfg.context - lm.margin() :]
                    if codes.shape[1] > lm.margin():
                        lm.loss(codes)

            for name, value in collect(sites, run).items():
                parts.setdefault(name, []).append(value.mean(dim=0, keepdim=True))
    return {name: torch.cat(values) for name, values in parts.items()}


def save_probes(path, trait: str, probes: list[Probe], model_path: str) -> None:
    from umt.checkpoint import save_checkpoint

    save_checkpoint(path, {"kind": PROBE_KIND, "config": {"trait": trait, "model": model_path},
                           "model": {p.site: p.to_dict() for p in probes}})  # fmt: skip


def load_probes(path) -> tuple[str, list[Probe]]:
    """(trait, probes best first) of a probe file written by `umt probe train`."""
    from umt.checkpoint import load_checkpoint

    state = load_checkpoint(path)
    if state.get("kind") != PROBE_KIND:
        raise UserError(f"{path}: not a probe file (train one with `umt probe train`)")
    return state["config"]["trait"], sorted((Probe.from_dict(p) for p in state["model"].values()), key=lambda p: -p.accuracy)


def parse_steer(text: str) -> tuple[str, float]:
    """'PROBE[:ALPHA]' -> (path, alpha); alpha 2 standard deviations unless given."""
    path, sep, alpha = text.rpartition(":")
    if not sep or not path:
        return text, DEFAULT_ALPHA
    try:
        return path, float(alpha)
    except ValueError:
        return text, DEFAULT_ALPHA  # a colon in the path


DEFAULT_ALPHA = 2.0


def write_probe_report(path, trait: str, probes: list[Probe]) -> list:
    """Beside a probe file: PROBE.md, every site's held-out accuracy; with LM sites, PROBE.png,
    a heatmap of the heads (layers x heads). Returns the paths written."""
    from pathlib import Path

    from umt.fileio import atomic_path

    path = Path(path)
    written = [path.with_suffix(".md")]
    lines = [f"# Probes for {trait!r}", "", "| site | held-out accuracy | sigma |", "| --- | --- | --- |"]
    lines += [f"| {p.site} | {p.accuracy:.3f} | {p.spread:.3g} |" for p in probes]
    with atomic_path(written[0]) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    heads = {tuple(int(x) for x in p.site.split(".")[1:]): p.accuracy for p in probes if p.site.startswith("lm.")}
    if heads:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        grid = np.full((max(l for l, _ in heads) + 1, max(h for _, h in heads) + 1), np.nan)
        for (layer, head), accuracy in heads.items():
            grid[layer, head] = accuracy
        fig, ax = plt.subplots(figsize=(1 + grid.shape[1], 1 + 0.6 * grid.shape[0]))
        image = ax.imshow(grid, vmin=0.5, vmax=1.0, cmap="viridis")
        ax.set_xticks(range(grid.shape[1]))
        ax.set_yticks(range(grid.shape[0]))
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        ax.set_title(f"probe accuracy: {trait}")
        fig.colorbar(image, ax=ax)
        written.append(path.with_suffix(".png"))
        with atomic_path(written[1]) as tmp:
            fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
        plt.close(fig)
    return written
