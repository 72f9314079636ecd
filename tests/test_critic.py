"""The realism critics and the frame-network fine-tuning they drive (umt.modules.critic)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from umt import losses
from umt.checkpoint import load_checkpoint
from umt.modules.critic import FEATURES, FrameCritic
from umt.training.loop import train


def envelopes(decaying: bool, batch: int = 8, frames: int = 60, bins: int = 24) -> torch.Tensor:
    """Levels [B, F, bins] of one note a crop, struck every 20 frames: dying away like a piano
    (decaying) or held like an organ."""
    g = torch.Generator().manual_seed(int(decaying))
    levels = torch.zeros(batch, frames, bins)
    for b in range(batch):
        note = int(torch.randint(0, bins, (), generator=g))
        age = torch.arange(frames) % 20
        levels[b, :, note] = 0.8 - 0.03 * age if decaying else torch.full((frames,), 0.6)
    return levels


@pytest.mark.parametrize("features", FEATURES)
def test_a_critic_learns_to_tell_decaying_notes_from_held_ones(features: str):
    torch.manual_seed(0)
    critic = FrameCritic(24, features)
    optimizer = torch.optim.Adam(critic.parameters(), lr=3e-3)
    real, held = envelopes(True), envelopes(False)
    for _ in range(60):
        optimizer.zero_grad()
        losses.critic(critic(real), critic(held)).backward()
        optimizer.step()
    with torch.no_grad():
        assert critic(real).mean() > 0.8 and critic(held).mean() < 0.2
        assert losses.realism(critic(real)) < 0.1 and losses.realism(critic(held)) > 0.5


def test_realism_fine_tuning_trains_the_frame_networks_alone_and_resumes(
    two_domains: Path, tiny_spectral_checkpoint: Path, tmp_path: Path
):
    out = tmp_path / "realism"
    options = dict(steps=2, val_every=2, val_items=2, render_batch_size=0, crop=1600, frames_only=True,
                   loss_weights={"realism": 1.0}, critic="envelope")  # fmt: skip
    train(two_domains, out, options, "cpu", base=tiny_spectral_checkpoint)
    before, after = load_checkpoint(tiny_spectral_checkpoint)["model"], load_checkpoint(out / "last.pt")
    changed = {k for k in before if not torch.equal(before[k], after["model"][k])}
    assert changed and all(k.startswith("decoders.") and ".renderer." not in k for k in changed)
    assert {k.split(".")[0] for k in after["critics"]} == {"low", "high"} and after["classifier"] is None

    train(two_domains, out, {"steps": 3}, "cpu", resume=True)  # the critics and their optimiser come back
    resumed = load_checkpoint(out / "last.pt")
    assert resumed["step"] == 3 and any(not torch.equal(after["critics"][k], v) for k, v in resumed["critics"].items())

    only = tmp_path / "only"  # a critic for one domain: translations into the other get no realism term
    train(two_domains, only, dict(options, critic_domains=["high"]), "cpu", base=tiny_spectral_checkpoint)
    assert {k.split(".")[0] for k in load_checkpoint(only / "last.pt")["critics"]} == {"high"}


def test_realism_needs_the_translation_path(two_domains: Path, tmp_path: Path):
    with pytest.raises(Exception, match="realism"):
        train(two_domains, tmp_path / "r", dict(preset="tiny", steps=1, loss_weights={"realism": 1.0}), "cpu")
    with pytest.raises(Exception, match="--frames-only"):
        train(two_domains, tmp_path / "f", dict(preset="tiny-spectral", steps=1, frames_only=True), "cpu")
    with pytest.raises(Exception, match="--critic-domains"):
        train(two_domains, tmp_path / "d", dict(preset="tiny-spectral", steps=1, critic_domains=["mid"]), "cpu")
    with pytest.raises(Exception, match="--critic"):
        train(two_domains, tmp_path / "c", dict(preset="tiny-spectral", steps=1, critic="pitch"), "cpu")
