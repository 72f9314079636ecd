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
3. Self-monitoring. The first steered site of each network call reads its probe at every
   time step before any nudge, averaged over the trailing window the probe was trained on
   (what the music up to that step makes of the trait); where the trait has been read for
   `patience` steps running the nudge pauses, so a trait that is there is not pushed further
   at the cost of the music, and it resumes if the trait fades.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from umt.errors import UserError


@dataclass
class Site:
    name: str
    module: nn.Module
    head: int | None = None  # which head of an attention's [B, T, heads, head_dim] output
    chain: nn.Module | None = None  # the network one call of which runs this site (None: the module itself)

    def select(self, output: torch.Tensor) -> torch.Tensor:
        """The site's activations [B, T, D] in its module's output."""
        return output[..., self.head, :] if self.head is not None else output


def lm_sites(lm: nn.Module) -> list[Site]:
    """Every attention head of a token LM (umt.lm.TokenLM)."""
    return [
        Site(f"lm.{i}.{h}", block.attention.heads, h, lm)
        for i, block in enumerate(lm.blocks)
        for h in range(block.attention.n_heads)
    ]


def frame_sites(model: nn.Module, domain: str) -> list[Site]:
    """Every layer of one domain's frame network, of a spectral UMT model: what translation steers.

    Not the latent: it is shared by every target domain, and a nudge there would reach the
    frame network's monitor (its first steered layer), which must read only the source."""
    decoder = model.decoders[domain]
    if not hasattr(decoder, "frames"):
        raise UserError("steering the decoders needs a spectral model (frame networks)")
    return [Site(f"frames.{domain}.{i}", layer, chain=decoder.frames) for i, layer in enumerate(decoder.frames.layers)]


def model_sites(model: nn.Module, domain: str) -> list[Site]:
    """The latent and every layer of one domain's frame network: where probes read a model."""
    return [Site("latent", model.encoder)] + frame_sites(model, domain)


@torch.no_grad()
def collect(
    sites: list[Site], run: Callable[[], object], steps: dict[str, int] | None = None
) -> dict[str, torch.Tensor]:
    """Each site's activations averaged over time, [examples, D], over everything run() computes;
    `steps`, if given, gets the fewest time steps a site's averages were taken over."""
    seen: dict[str, list[torch.Tensor]] = {site.name: [] for site in sites}

    def hook(site: Site):
        def record(module, args, output):
            activations = site.select(output)
            seen[site.name].append(activations.float().mean(dim=1).cpu())
            if steps is not None:
                steps[site.name] = min(steps.get(site.name, activations.shape[1]), activations.shape[1])

        return record

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
    window: int = 0  # time steps its examples were averaged over (0: unknown, read on everything so far)

    @property
    def direction(self) -> torch.Tensor:
        """theta: the unit vector towards the trait."""
        return self.weight / self.weight.norm().clamp_min(1e-12)

    def read(self, activations: torch.Tensor) -> torch.Tensor:
        """P(trait) of activations [..., D]."""
        return torch.sigmoid(activations.float() @ self.weight.to(activations.device) + self.bias)

    def read_running(self, activations: torch.Tensor) -> torch.Tensor:
        """P(trait) [B, T] at each time step of activations [B, T, D], read on their mean over the
        trailing `window` steps (all steps so far while fewer), as the probe's examples were."""
        projected = F.pad((activations.float() @ self.weight.to(activations.device)).cumsum(dim=1), (1, 0))
        t = activations.shape[1]
        window = self.window or t
        ends = torch.arange(1, t + 1, device=activations.device)
        starts = (ends - window).clamp_min(0)
        return torch.sigmoid((projected[:, ends] - projected[:, starts]) / (ends - starts) + self.bias)

    def to_dict(self) -> dict:
        return {"site": self.site, "weight": self.weight, "bias": self.bias, "spread": self.spread, "accuracy": self.accuracy,
                "window": self.window}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict) -> Probe:
        return cls(data["site"], data["weight"], float(data["bias"]), float(data["spread"]), float(data["accuracy"]),
                   int(data.get("window", 0)))  # fmt: skip


def fit_probes(
    with_trait: dict[str, torch.Tensor], without: dict[str, torch.Tensor], held_out: float = 0.3, seed: int = 0,
    windows: dict[str, int] | None = None,
) -> list[Probe]:  # fmt: skip
    """One probe per site, from activations [examples, D] of examples with and without the
    trait (averaged over `windows[site]` time steps); sorted by held-out accuracy, best first."""
    from sklearn.linear_model import LogisticRegression

    probes = []
    rng = np.random.default_rng(seed)
    for site, positive in with_trait.items():
        x = torch.cat([positive, without[site]]).numpy()
        y = np.r_[np.ones(len(positive)), np.zeros(len(without[site]))]
        order = rng.permutation(len(y))
        test = order[: max(2, round(held_out * len(y)))]
        train = order[len(test) :]
        if len(set(y[train])) < 2 or len(set(y[test])) < 2:
            raise UserError(
                f"too few examples to train and test a probe: {len(positive)} with, {len(without[site])} without"
            )
        regression = LogisticRegression(max_iter=2000).fit(x[train], y[train])
        accuracy = float(regression.score(x[test], y[test]))
        probe = Probe(site, torch.from_numpy(regression.coef_[0]).float(), float(regression.intercept_[0]), 0.0, accuracy,
                      (windows or {}).get(site, 0))  # fmt: skip
        probe.spread = float((torch.from_numpy(x[train]).float() @ probe.direction).std())
        probes.append(probe)
    return sorted(probes, key=lambda p: -p.accuracy)


MONITOR_PATIENCE = (
    25  # consecutive time steps (a quarter second at 100 frames/s) read as the trait that pause the nudge
)


class Steering:
    """Forward hooks that nudge the chosen sites along their probes' directions (alpha sigma
    theta) and, with a threshold, monitor themselves.

    The monitor of one call of a network (a frame network over a recording, the token LM over
    its context) is the first steered site that call runs, read before any nudge: its
    activations then hold only what the network was given, the source (translation) or the
    music generated so far (generation), where a site after a nudged one would read the nudge
    itself. At every time step its probe is read on those activations averaged over the
    trailing `window` steps the probe was trained on; the nudge is off at a step (at every
    site of the call) when the `patience` readings before it were all at or above the
    threshold, and on again once a reading falls below it. The rule looks only backwards in
    time, so it is the same whether a call holds a whole recording or a generation's context
    up to its newest step.

    log: per hook call, (site, readings [T], nudged [T]), each the mean over the batch (the
    readings of each site, the nudge of its call's monitor)."""

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
        self.log: list[tuple[str, torch.Tensor, torch.Tensor]] = []
        self._gates: dict[int, torch.Tensor | None] = {}  # per chain: the current call's gate, once its monitor ran

    def gate(self, readings: torch.Tensor) -> torch.Tensor:
        """Readings [B, T] -> 1.0 where the nudge applies, 0.0 where the `patience` readings
        before the step were all at or above the threshold."""
        if self.threshold is None:
            return torch.ones_like(readings)
        above = F.pad((readings >= self.threshold).float().cumsum(dim=1), (1, 0))  # [B, T + 1]: readings above before t
        run = above[:, :-1] - F.pad(above, (self.patience, 0))[:, : readings.shape[1]]  # of the `patience` before t
        return (run < self.patience).float()

    def _chain(self, site: Site) -> nn.Module:
        return site.chain if site.chain is not None else site.module

    def _start_call(self, chain: nn.Module):
        def hook(module, args):
            self._gates[id(chain)] = None

        return hook

    def _hook(self, site: Site, probe: Probe, alpha: float):
        chain = id(self._chain(site))
        nudge = alpha * probe.spread * probe.direction

        def hook(module, args, output):
            activations = site.select(output)
            readings = probe.read_running(activations)  # before this site's nudge
            if self._gates.get(chain) is None:  # the call's first steered site: its monitor
                self._gates[chain] = self.gate(readings)
            nudged = self._gates[chain]
            self.log.append((site.name, readings.mean(dim=0).cpu(), nudged.mean(dim=0).cpu()))
            steered = output.clone()
            site.select(steered).add_((nudged[..., None] * nudge.to(output.device)).to(output.dtype))
            return steered

        return hook

    def newest_nudged(self) -> float:
        """Generation: the share of steps whose newest time step was nudged (over sites)."""
        return float(np.mean([float(nudged[-1]) for _, _, nudged in self.log])) if self.log else 0.0

    def nudged_share(self) -> float:
        """Translation: the share of all time steps nudged (over sites and calls)."""
        return float(torch.cat([nudged for _, _, nudged in self.log]).mean()) if self.log else 0.0

    @contextmanager
    def applied(self) -> Iterator[Steering]:
        chains = list({id(self._chain(site)): self._chain(site) for site, _ in self.pairs}.values())
        handles = [chain.register_forward_pre_hook(self._start_call(chain)) for chain in chains]
        handles += [
            site.module.register_forward_hook(self._hook(site, probe, a))
            for (site, probe), a in zip(self.pairs, self.alphas)
        ]
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()


# ---------------------------------------------------------------- probes of a model, from folders of audio

PROBE_KIND = "umt-probe"


def example_activations(
    translator, lm: nn.Module | None, audio_files: list, clip_seconds: float, steps: dict[str, int] | None = None
) -> dict[str, torch.Tensor]:
    """Activations [clips, D] at every site of a model (latent, each domain's frame network;
    with a token LM, its heads) over clips of `clip_seconds` cut from each file (one example
    a clip). translator: a umt.translator.Translator (with tokens when lm is given); `steps`
    gets each site's time steps a clip (see collect)."""
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

            def run(clip: np.ndarray = clip) -> None:
                latent = translator.continuous(clip)
                for domain in model.cfg.domains:
                    model.decoders[domain].spectrum(latent[None])
                if lm is not None:
                    codes = model.tokenizer(latent[None]).codes[:, -lm.cfg.context - lm.margin() :]
                    if codes.shape[1] > lm.margin():
                        lm.loss(codes)

            for name, value in collect(sites, run, steps).items():
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
    return state["config"]["trait"], sorted(
        (Probe.from_dict(p) for p in state["model"].values()), key=lambda p: -p.accuracy
    )


def choose(steer: list[str], groups: list[list[Site]], best: int, threshold: float) -> Steering | None:
    """The Steering of every --steer PROBE[:ALPHA] in `steer`, or None when there is none: in
    each group of sites (the sites one output runs through: one target domain's frame network,
    or the LM's heads), the probe's `best` sites (--steer-sites), monitored at `threshold`
    (--steer-threshold; 1: never paused)."""
    if not steer:
        return None
    if best < 1:
        raise UserError("--steer-sites must be positive")
    if not 0 < threshold <= 1:
        raise UserError(f"--steer-threshold {threshold:g}: choose a probability in (0, 1]")
    sites = list({site.name: site for group in groups for site in group}.values())
    chosen, alphas = [], []
    for text in steer:
        path, alpha = parse_steer(text)
        trait, probes = load_probes(Path(path))
        in_groups = [[p for p in probes if p.site in {site.name for site in group}][:best] for group in groups]
        usable = list({p.site: p for group in in_groups for p in group}.values())
        if not usable:
            raise UserError(f"--steer {text}: none of its probes' sites is in this model")
        chosen += usable
        alphas += [alpha] * len(usable)
        print(
            f"steering towards {trait!r} at alpha {alpha:g}: {', '.join(f'{p.site} ({p.accuracy:.2f})' for p in usable)}"
        )
    return Steering(sites, chosen, alphas, threshold if threshold < 1 else None)


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
    """Beside a probe file: PROBE.md, every site's held-out accuracy, and PROBE.png, heatmaps of
    the accuracies: the LM's heads (layers x heads) and the frame networks (domains x layers),
    the latent's in the title. Returns the paths written."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from umt.fileio import atomic_path

    path = Path(path)
    written = [path.with_suffix(".md"), path.with_suffix(".png")]
    lines = [f"# Probes for {trait!r}", "", "| site | held-out accuracy | sigma |", "| --- | --- | --- |"]
    lines += [f"| {p.site} | {p.accuracy:.3f} | {p.spread:.3g} |" for p in probes]
    with atomic_path(written[0]) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    heads = {tuple(p.site.split(".")[1:]): p.accuracy for p in probes if p.site.startswith("lm.")}
    frames = {tuple(p.site.split(".")[1:]): p.accuracy for p in probes if p.site.startswith("frames.")}
    panels = [
        (name, cells, x, y)
        for name, cells, x, y in (("token LM", heads, "head", "layer"), ("frame networks", frames, "layer", "domain"))
        if cells
    ]
    if not panels:
        return written[:1]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 + 5 * len(panels), 3.5), squeeze=False)
    for ax, (name, cells, x, y) in zip(axes[0], panels):
        rows = sorted({r for r, _ in cells}, key=lambda r: (len(r), r))
        columns = sorted({int(c) for _, c in cells})
        grid = np.full((len(rows), len(columns)), np.nan)
        for (r, c), accuracy in cells.items():
            grid[rows.index(r), columns.index(int(c))] = accuracy
        image = ax.imshow(grid, vmin=0.5, vmax=1.0, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(columns)), [str(c) for c in columns])
        ax.set_yticks(range(len(rows)), rows)
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.set_title(name)
        fig.colorbar(image, ax=ax)
    latent = next((f", latent {p.accuracy:.2f}" for p in probes if p.site == "latent"), "")
    fig.suptitle(f"held-out probe accuracy: {trait}{latent}")
    with atomic_path(written[1]) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return written
