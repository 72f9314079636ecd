"""SMITIN steering (Koo et al., 2024): probes on activations, inference-time intervention, and
self-monitoring.

A *site* is a place in a network whose activations can be read and nudged: one attention head
of the token LM (`lm.<layer>.<head>`, its output before the heads are mixed), the encoder's
latent (`latent`), or one layer of a domain's frame network (`frames.<domain>.<layer>`).

1. Probes. For each site, a logistic regression (scikit-learn) learns to tell examples with a
   trait from examples without it, from the site's activations averaged over time (one vector
   per example); its accuracy on held-out examples says how much of the trait the site carries.
   A frame network's probe reads its site's activations averaged over the example; an LM
   head's reads the example's last step (its attention has seen the rest), as in the paper.
2. Intervention. At inference, a forward hook adds alpha * gain * weight * sigma * theta to every
   site of the trait's network: theta the probe's unit direction (towards the trait), sigma the
   spread of the training activations along it (alpha is in standard deviations), the weight
   the probe's normalised accuracy cubed (site_weights: SMITIN's soft weighting of heads).
3. Self-monitoring. The gain is 1 - C, C the median reading of the best 16 probes, and 0 once C
   reaches a threshold set from the probes (their median accuracy less one standard deviation):
   a trait that is there is not pushed further at the cost of the music (Steering).
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
    causal: bool = False  # a step sees only the steps before it (the token LM): read and nudged at the newest

    def select(self, output: torch.Tensor) -> torch.Tensor:
        """The site's activations [B, T, D] in its module's output."""
        return output[..., self.head, :] if self.head is not None else output


def lm_sites(lm: nn.Module) -> list[Site]:
    """Every attention head of a token LM (umt.lm.TokenLM)."""
    return [
        Site(f"lm.{i}.{h}", block.attention.heads, h, lm, causal=True)
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
    """Each site's activations, [examples, D], over everything run() computes: averaged over
    time, or a causal site's at the last step; `steps`, if given, gets the fewest time steps a
    site's examples were taken over (1 for a causal site)."""
    seen: dict[str, list[torch.Tensor]] = {site.name: [] for site in sites}

    def hook(site: Site):
        def record(module, args, output):
            activations = site.select(output)
            taken = activations[:, -1:] if site.causal else activations
            seen[site.name].append(taken.float().mean(dim=1).cpu())
            if steps is not None:
                steps[site.name] = min(steps.get(site.name, taken.shape[1]), taken.shape[1])

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


MONITORS = 16  # the best probes whose median reading is the monitor's C (SMITIN: the best 16 heads)


def site_weights(probes: list[Probe]) -> list[float]:
    """SMITIN's soft weighting of the sites it steers: each probe's accuracy normalised (above
    chance, relative to the best probe's) and cubed, so the nudge goes mostly where the trait
    is read best and not at all where a probe reads chance."""
    best = max(p.accuracy for p in probes)
    return [(max(0.0, p.accuracy - 0.5) / max(best - 0.5, 1e-6)) ** 3 for p in probes]


def stop_threshold(probes: list[Probe]) -> float:
    """SMITIN's threshold for the monitor, set from the probes themselves: their median held-out
    accuracy less one standard deviation."""
    accuracies = np.array([p.accuracy for p in probes])
    return float(np.median(accuracies) - accuracies.std())


@dataclass
class Group:
    """One trait steered in one network (one chain: the token LM, or a domain's frame network):
    its sites and probes, alpha, each site's weight, the monitor's probes and threshold."""

    pairs: list[tuple[Site, Probe]]
    alpha: float
    weights: list[float]
    monitors: list[Probe]
    threshold: float

    @classmethod
    def of(cls, pairs: list[tuple[Site, Probe]], alpha: float) -> Group:
        probes = [probe for _, probe in pairs]
        for site, probe in pairs:
            if site.causal and probe.window != 1:
                raise UserError(
                    f"the probe of {site.name} was trained on activations averaged over time; SMITIN reads the newest "
                    "step: train the probes again (umt probe train)"
                )
        best = sorted(probes, key=lambda p: -p.accuracy)[:MONITORS]
        return cls(pairs, alpha, site_weights(probes), best, stop_threshold(probes))

    @property
    def chain(self) -> nn.Module:
        site = self.pairs[0][0]
        return site.chain if site.chain is not None else site.module

    def gain(self, confidence: torch.Tensor, monitored: bool) -> torch.Tensor:
        """The nudge's strength, a factor of alpha, where the monitor reads `confidence` (C):
        1 - C below the threshold and 0 from it on (SMITIN); 1 everywhere unmonitored (ITI)."""
        if not monitored:
            return torch.ones_like(confidence)
        return torch.where(confidence >= self.threshold, torch.zeros_like(confidence), 1 - confidence)


class Steering:
    """SMITIN (Koo et al., 2024): forward hooks that nudge every site of a trait's group along its
    probe's direction, by alpha * gain * weight * sigma * theta, and, monitored, set the gain from
    the probes' own reading of the trait.

    The monitor's reading C is the median probability that the group's best MONITORS probes read
    (each on the activations it was trained on: a frame network's averaged over its trailing
    window, an LM head's at one step). The gain is 1 - C, and 0 once C reaches the group's
    threshold (stop_threshold): the more of the trait is there, the less it is pushed, and not
    at all once the probes are as sure as they are accurate. Unmonitored, the gain is 1 (plain
    inference-time intervention, ITI).
      - Token LM (causal sites, generation with the key-value cache): each call adds the newest
        step; its sites are nudged there with the gain the previous call's readings set, and
        read there for the next (the prompt's call is read, not nudged).
      - Frame networks (translation, one call over a whole recording): a first pass without
        nudges reads C at every time step (what the source makes of the trait in this target),
        then the call runs nudged, each step with its own gain.

    log: per call of a group, (the group's first site, the gain at each step [T], C [T]), means over the batch."""

    def __init__(self, groups: list[Group], monitored: bool = True):
        self.groups, self.monitored = groups, monitored
        self.log: list[tuple[str, torch.Tensor, torch.Tensor]] = []
        self._readings: dict[tuple[int, str], torch.Tensor] = {}  # (group, site) -> its latest readings [B, T]
        self._gains: dict[int, tuple[torch.Tensor, torch.Tensor] | None] = {}  # group -> (gain, C) of this call
        self._reading_only = False  # a monitor's pass without nudges is under way

    @classmethod
    def towards(cls, sites: list[Site], probes: list[Probe], alpha: float, monitored: bool = True) -> Steering:
        """One trait's probes at their sites, all in one network."""
        by_name = {site.name: site for site in sites}
        missing = [p.site for p in probes if p.site not in by_name]
        if missing:
            raise UserError(f"the probes' sites {', '.join(missing)} are not in this model")
        return cls([Group.of([(by_name[p.site], p) for p in probes], alpha)], monitored)

    # ------------------------------------------------------------ the monitor

    def _confidence(self, g: int) -> torch.Tensor | None:
        """C [B, T]: the median of the group's monitor probes' latest readings (None before any)."""
        readings = [self._readings.get((g, p.site)) for p in self.groups[g].monitors]
        return None if any(r is None for r in readings) else torch.stack(readings).median(dim=0).values

    def _start_call(self, chain: nn.Module):
        mine = [g for g, group in enumerate(self.groups) if group.chain is chain]
        causal = self.groups[mine[0]].pairs[0][0].causal

        def hook(module, args, kwargs):
            if self._reading_only:
                return
            if not causal and self.monitored:  # a first pass reads every site, nudges none
                self._reading_only = True
                try:
                    with torch.no_grad():
                        module(*args, **kwargs)
                finally:
                    self._reading_only = False
            for g in mine:
                # generation: C of the previous step's readings, at its newest step; translation:
                # of the pass just run; unmonitored translation reads nothing first (gain 1)
                confidence = self._confidence(g) if causal or self.monitored else None
                if causal and confidence is not None:
                    confidence = confidence[:, -1:]
                if confidence is None:  # the prompt's call (read, not nudged), or unmonitored frames
                    self._gains[g] = None
                else:
                    self._gains[g] = (self.groups[g].gain(confidence, self.monitored), confidence)

        return hook

    # ------------------------------------------------------------ the sites

    def _hook(self, g: int, site: Site, probe: Probe, weight: float):
        group = self.groups[g]
        nudge = group.alpha * weight * probe.spread * probe.direction
        logs = probe is group.pairs[0][1]  # one log entry a call of the group

        def hook(module, args, output):
            activations = site.select(output)
            reading = probe.read(activations[:, -1:]) if site.causal else probe.read_running(activations)
            self._readings[g, probe.site] = reading
            if self._reading_only:
                return None
            if self._gains.get(g) is not None:
                gain, confidence = self._gains[g]
            elif site.causal or self.monitored:
                return None  # the prompt's call: read, not nudged
            else:  # unmonitored, over a recording: full strength at every step
                gain = torch.ones(activations.shape[:2], device=activations.device)
                confidence = torch.full_like(gain, float("nan"))
            if logs:
                self.log.append((site.name, gain.float().mean(dim=0).cpu(), confidence.float().mean(dim=0).cpu()))
            steered = output.clone()
            at = site.select(steered)[:, -1:] if site.causal else site.select(steered)
            at.add_((gain[..., None].to(at.device) * nudge.to(at.device)).to(at.dtype))
            return steered

        return hook

    # ------------------------------------------------------------ what it did

    def nudged_share(self) -> float:
        """The share of steered steps (time steps of a recording, or generated steps) nudged at all."""
        gains = [gain for _, gain, _ in self.log]
        return float((torch.cat(gains) > 0).float().mean()) if gains else 0.0

    def mean_gain(self) -> float:
        """The nudge's mean strength over the steered steps, a factor of alpha."""
        gains = [gain for _, gain, _ in self.log]
        return float(torch.cat(gains).mean()) if gains else 0.0

    @contextmanager
    def applied(self) -> Iterator[Steering]:
        self._readings.clear()
        self._gains.clear()
        chains = list({id(group.chain): group.chain for group in self.groups}.values())
        handles = [chain.register_forward_pre_hook(self._start_call(chain), with_kwargs=True) for chain in chains]
        handles += [
            site.module.register_forward_hook(self._hook(g, site, probe, weight))
            for g, group in enumerate(self.groups)
            for (site, probe), weight in zip(group.pairs, group.weights)
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


def choose(steer: list[str], groups: list[list[Site]], monitored: bool = True) -> Steering | None:
    """The Steering of every --steer PROBE[:ALPHA] in `steer`, or None when there is none: in
    each group of sites (the sites one output runs through: one target domain's frame network,
    or the LM's heads), every site the probe file has a probe for, weighted and monitored as
    SMITIN does (Steering; monitored=False: plain ITI, --no-steer-monitor)."""
    if not steer:
        return None
    chosen = []
    for text in steer:
        path, alpha = parse_steer(text)
        trait, probes = load_probes(Path(path))
        by_site = {p.site: p for p in probes}
        found = [Group.of([(site, by_site[site.name]) for site in group if site.name in by_site], alpha)
                 for group in groups if any(site.name in by_site for site in group)]  # fmt: skip
        if not found:
            raise UserError(f"--steer {text}: none of its probes' sites is in this model")
        chosen += found
        for group in found:
            best = group.monitors[0]
            print(f"steering towards {trait!r} at alpha {alpha:g}: {len(group.pairs)} sites from "
                  f"{group.pairs[0][0].name} (best {best.site}, {best.accuracy:.2f}); "
                  + (f"monitored, stops at C >= {group.threshold:.2f}" if monitored else "not monitored"))  # fmt: skip
    return Steering(chosen, monitored)


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
