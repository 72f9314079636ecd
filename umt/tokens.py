"""Working with tokens: tokenize a prepared dataset (and keep its tokens in a file, `umt tokenizer
tokens`), measure the codebooks' dependence, train the token language model, and continue a
prompt (`umt generate`).

The LM trains on the tokens of the training split of every domain (the latent is meant to
be domain-free), on random windows of `context` frames; its validation score is the mean
negative log-likelihood per frame (bits, all K codebooks) over consecutive windows of the
val split, and the test split's is stored with the run when it ends.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from umt.checkpoint import load_checkpoint, load_lm_state, load_model_state, read_torch_file, save_checkpoint
from umt.config import ModelConfig
from umt.data.manifest import Manifest
from umt.errors import UserError
from umt.lm import LM_KIND, LMConfig, TokenLM
from umt.progress import Progress
from umt.quantization.dependence import aligned, codebook_dependence
from umt.runtime import CPU
from umt.training.solver import Solver
from umt.translator import Translator

# what `umt tokenizer train` changes of the base's training
TOKENIZER_RUN = {"steps": 1500, "lr": 5e-4, "loss_weights": {"mmd": 0.0}}


def tokenizer_run(codebooks: int, codebook_size: int, layers: int, tune_decoders: bool, given: dict) -> dict:
    """The training options of a new tokenizer run (umt.training.loop.train --from the trained model):
    a residual VQ of `codebooks` x `codebook_size` (and `layers` blocks each side) added, frames only (no renderer crops), the
    decoders frozen unless tune_decoders, TOKENIZER_RUN over the base's training and the
    options `given` over that."""
    model = {"tokenizer.codebooks": codebooks, "tokenizer.codebook_size": codebook_size, "tokenizer.layers": layers}
    return {
        **TOKENIZER_RUN,
        "render_batch_size": 0,
        "model_overrides": model,
        "freeze_decoders": not tune_decoders,
        **given,
        "loss_weights": {**TOKENIZER_RUN["loss_weights"], **given.get("loss_weights", {})},
    }


def split_tokens(translator: Translator, manifest: Manifest, split: str) -> list[torch.Tensor]:
    """The tokens [F, K] of every file of a split (all domains), on the CPU."""
    entries = manifest.entries(split=split)
    if not entries:
        raise UserError(f"{manifest.root}: no {split} files")
    tokens = []
    with Progress(len(entries), f"tokenizing the {split} split", "file") as progress:
        for entry in entries:
            tokens.append(translator.tokenize(manifest.excerpt(entry, 0, entry.samples)).cpu())
            progress.update()
    return tokens


TOKENS_KIND = "umt-tokens"  # a file of a dataset's tokens (Tokens.save)


@dataclass
class Tokens:
    """The tokens [F, K] of every file of each split of a dataset, and the tokenizer's shape:
    what an LM trains on. `source` names where they came from (the model and the dataset)."""

    codebooks: int
    codebook_size: int
    splits: dict[str, list[torch.Tensor]]
    source: str

    @classmethod
    def of(cls, translator: Translator, manifest: Manifest, model: Path) -> Tokens:
        """Tokenize every split of the dataset (`translator` holds `model`, which has a
        tokenizer); refused, before any tokenizing, without the train and val splits an LM needs."""
        missing = [split for split in ("train", "val") if not manifest.entries(split=split)]
        if missing:
            raise UserError(
                f"{manifest.root}: no {' or '.join(missing)} files (an LM trains on train, validates on val)"
            )
        tokenizer = translator.model.cfg.tokenizer
        splits = {
            s: split_tokens(translator, manifest, s) for s in ("train", "val", "test") if manifest.entries(split=s)
        }
        return cls(tokenizer.codebooks, tokenizer.codebook_size, splits, f"{model} on {manifest.root}")

    def save(self, path: Path) -> None:
        """Atomically, in the smallest integer type that holds the codes (a byte each for 256)."""
        dtype = (
            torch.uint8 if self.codebook_size <= 256 else torch.int16 if self.codebook_size <= 2**15 else torch.int32
        )
        splits = {name: [codes.to(dtype) for codes in files] for name, files in self.splits.items()}
        save_checkpoint(path, {"kind": TOKENS_KIND, "codebooks": self.codebooks, "codebook_size": self.codebook_size,
                               "source": self.source, "splits": splits})  # fmt: skip

    @classmethod
    def load(cls, path: Path) -> Tokens:
        if not path.exists():
            raise UserError(f"{path}: no such tokens file")
        state = read_torch_file(path, "tokens file")
        if not isinstance(state, dict) or state.get("kind") != TOKENS_KIND:
            raise UserError(f"{path}: not a tokens file (`umt tokenizer tokens` writes one)")
        splits = {name: [codes.long() for codes in files] for name, files in state["splits"].items()}
        return cls(state["codebooks"], state["codebook_size"], splits, f"{path} (tokens of {state['source']})")


def measure(translator: Translator, manifest: Manifest, split: str = "test") -> dict:
    """Pairwise mutual information and perplexity of the codebooks on a split's tokens, within a
    frame and, under "delayed", at the parallel LM's delays (codebook k of frame t - k beside
    codebook 0 of frame t: the tokens one step of that LM predicts at once)."""
    size = translator.model.cfg.tokenizer.codebook_size
    files = split_tokens(translator, manifest, split)
    figures = codebook_dependence(torch.cat(files), size)
    figures["delayed"] = codebook_dependence(torch.cat([delayed(codes) for codes in files]), size)
    return figures


def delayed(codes: torch.Tensor) -> torch.Tensor:
    """Tokens [T, K] -> [T - K + 1, K] whose row t holds codebook k of frame t + K - 1 - k."""
    return aligned(codes.T[:, None], list(range(codes.shape[1])))[:, 0].T


# ---------------------------------------------------------------- the LM's data and score


def _windows(files: list[torch.Tensor], length: int) -> list[tuple[int, int]]:
    """(file, first frame) of consecutive windows of `length` frames covering each file."""
    return [(i, start) for i, codes in enumerate(files) for start in range(0, codes.shape[0] - length + 1, length)]


def _random_batch(files: list[torch.Tensor], length: int, batch: int, generator: torch.Generator) -> torch.Tensor:
    """[batch, length, K] windows drawn with probability proportional to each file's length."""
    usable = [f for f in files if f.shape[0] >= length]
    weights = torch.tensor([f.shape[0] - length + 1 for f in usable], dtype=torch.float)
    picks = torch.multinomial(weights, batch, replacement=True, generator=generator)
    rows = []
    for i in picks.tolist():
        start = int(torch.randint(0, usable[i].shape[0] - length + 1, (), generator=generator))
        rows.append(usable[i][start : start + length])
    return torch.stack(rows)


@torch.no_grad()
def nll_bits(lm: TokenLM, files: list[torch.Tensor], batch: int = 16, device: torch.device = CPU) -> float:
    """Mean negative log-likelihood per frame (bits, all codebooks) over consecutive windows."""
    length = lm.cfg.context + lm.margin()
    windows = _windows(files, length)
    if not windows:
        raise UserError(f"no file holds a window of {length} frames")
    lm.eval()
    total = 0.0
    for first in range(0, len(windows), batch):
        chunk = windows[first : first + batch]
        codes = torch.stack([files[i][s : s + length] for i, s in chunk]).to(device)
        total += lm.loss(codes).item() * len(chunk)
    lm.train()
    return total / len(windows) / math.log(2)


# ---------------------------------------------------------------- training

ARCHITECTURE = ("layers", "heads", "dim", "context")  # what an LM's weights are shaped by


def starting_lm(
    codebooks: int, codebook_size: int, mode: str, sizes: dict, base: Path | None = None
) -> tuple[LMConfig, dict | None]:
    """The config of a new LM run over codes of `codebooks` x `codebook_size` and, with `base`, the LM it starts
    from: the one of `mode` a model carries (`umt export --lm`), or an LM run or checkpoint.
    `sizes` holds the flags given (None: not given): without a base they replace LMConfig's
    defaults; with one, its sizes stay (a different size given is refused) and only the
    dropout may change. Returns (config, start: {"model", "path", "step"} or None)."""
    given = {name: value for name, value in sizes.items() if value is not None}
    if base is None:
        cfg = LMConfig(codebooks, codebook_size, mode, **given)
        cfg.check()
        return cfg, None
    state = load_checkpoint(base)
    if state.get("kind") != LM_KIND:  # a model, whose carried LMs are read from the same load
        carried = state.get("lm") or {}
        if mode not in carried:
            raise UserError(f"{base}: carries no {mode} token LM (a model gets one with `umt export --lm`)")
        state = carried[mode]
    cfg = LMConfig(**state["config"])
    if cfg.mode != mode:
        raise UserError(f"{base}: a {cfg.mode} token LM, not --mode {mode}")
    if (cfg.codebooks, cfg.codebook_size) != (codebooks, codebook_size):
        raise UserError(
            f"{base}: an LM of {cfg.codebooks} codebooks of {cfg.codebook_size}; the tokens are of "
            f"{codebooks} of {codebook_size}"
        )
    for name in ARCHITECTURE:
        if name in given and given[name] != getattr(cfg, name):
            raise UserError(f"--{name} {given[name]}: the LM of {base} has {getattr(cfg, name)}, and --from keeps it")
    if "dropout" in given:
        cfg.dropout = given["dropout"]
    cfg.check()
    return cfg, {"model": state["model"], "path": str(base), "step": state.get("step")}


LM_RUN = {"batch": 16, "val_every": 250}  # a new LM run's defaults of the settings its checkpoints keep


def train_lm(
    tokens: Tokens,
    out: Path,
    cfg: LMConfig | None,
    steps: int,
    batch: int | None = None,
    lr: float = 1e-3,
    seed: int = 0,
    val_every: int | None = None,
    state: dict | None = None,
    patience: int = 0,
    start: dict | None = None,
    device: torch.device = CPU,
) -> dict:
    """Train a token LM in `out` (last.pt, best.pt) on `tokens` (train and val splits; test, if
    there, scores best.pt at the end) for `steps` steps, or until `patience` validations in a
    row found no lower val NLL; returns the final scores. A new run starts from `start`'s
    weights if given (starting_lm), else from scratch; with `state` (its last.pt, run_state) a
    run goes on, with its config, optimiser, batch and validation interval unless given."""
    if state is not None:
        cfg = LMConfig(**state["config"])
        start = state.get("started_from")
        kept = state.get("settings")
        if kept is None and (batch is None or val_every is None):
            raise UserError(
                f"{out}: its checkpoint does not say the run's batch size and validation interval (older than "
                "they are kept): pass --batch-size and --val-every as the run started"
            )
        batch, val_every = batch or kept["batch"], val_every or kept["val_every"]
    batch, val_every = batch or LM_RUN["batch"], val_every or LM_RUN["val_every"]
    if (cfg.codebooks, cfg.codebook_size) != (tokens.codebooks, tokens.codebook_size):
        raise UserError(
            f"{out}: an LM of {cfg.codebooks} codebooks of {cfg.codebook_size}; the tokens are of "
            f"{tokens.codebooks} of {tokens.codebook_size}"
        )
    missing = [name for name in ("train", "val") if not tokens.splits.get(name)]
    if missing:
        raise UserError(f"{tokens.source}: no {' or '.join(missing)} files")
    torch.manual_seed(seed)
    solver = LMSolver(TokenLM(cfg).to(device), out, steps, lr, val_every, batch, patience)
    if state is not None:
        solver.restore(state)
    elif start is not None:
        solver.lm.load_state_dict(start["model"])
    solver.started_from = None if start is None else {"path": start["path"], "step": start["step"]}
    train_files, solver.val_files = tokens.splits["train"], tokens.splits["val"]
    length = cfg.context + solver.lm.margin()
    if not any(f.shape[0] >= length for f in train_files):
        raise UserError(f"no training file is as long as one LM window ({length} frames); use a shorter --context")
    generator = torch.Generator().manual_seed(seed + solver.step)
    batches = (_random_batch(train_files, length, batch, generator) for _ in range(solver.step, steps))
    solver.lm.train()
    solver.progress = Progress(steps - solver.step, f"token LM ({cfg.mode})", "step")
    solver.fit(batches)
    scores = {"val_bits": solver.best}
    if tokens.splits.get("test"):
        best_state = load_lm_state(out / "best.pt")
        solver.lm.load_state_dict(best_state["model"])
        scores["test_bits"] = nll_bits(solver.lm, tokens.splits["test"], batch, solver.device)
        save_checkpoint(out / "best.pt", {**best_state, **scores})
    return scores


class LMSolver(Solver):
    """The token LM's training: AdamW on the NLL of random windows; last.pt at each validation."""

    def __init__(self, lm: TokenLM, out: Path, steps: int, lr: float, val_every: int, batch: int, patience: int = 0):
        super().__init__(out, steps, checkpoint_every=val_every, val_every=val_every, patience=patience)
        self.lm, self.device, self.batch = lm, next(lm.parameters()).device, batch
        self.optimizer = torch.optim.AdamW(lm.parameters(), lr=lr, weight_decay=0.01)
        self.val_files: list[torch.Tensor] = []
        self.progress: Progress | None = None  # set when it starts: the steps left
        self.started_from: dict | None = None  # the LM a run started from ({"path", "step"}), kept in its checkpoints
        self.loss = math.nan
        self.tic = time.perf_counter()

    def restore(self, state: dict) -> None:
        self.lm.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.best = state["step"], state["best_val_bits"]
        self.since_best = state.get("since_best", 0)

    def run_step(self, batch: torch.Tensor) -> dict[str, float]:
        loss = self.lm.loss(batch.to(self.device))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.lm.parameters(), 1.0)
        self.optimizer.step()
        self.loss = loss.item()
        return {"loss": self.loss}

    def log_step(self, stats: dict[str, float]) -> None:
        self.progress.update()

    def validate(self) -> float:
        val = nll_bits(self.lm, self.val_files, self.batch, self.device)
        rate = self.val_every / (time.perf_counter() - self.tic)
        self.line(
            f"step {self.step}: train {self.loss / math.log(2):.3f} bits/frame, val {val:.3f} ({rate:.1f} steps/s)"
        )
        self.tic = time.perf_counter()
        return val

    def state(self) -> dict:
        return {"kind": LM_KIND, "config": asdict(self.lm.cfg), "model": self.lm.state_dict(),
                "optimizer": self.optimizer.state_dict(), "step": self.step, "best_val_bits": self.best,
                "since_best": self.since_best, "started_from": self.started_from,
                "settings": {"batch": self.batch, "val_every": self.val_every}}  # fmt: skip

    def line(self, text: str) -> None:
        self.progress.write(text)

    def close(self) -> None:
        self.progress.close()


def load_lm(state: dict) -> TokenLM:
    """A token LM from its checkpoint dict (checkpoint.load_lm_state, or one a model carries)."""
    lm = TokenLM(LMConfig(**state["config"]))
    lm.load_state_dict(state["model"])
    return lm.eval()


def check_fits(lm: TokenLM, cfg: ModelConfig) -> None:
    """Refuse a token LM trained on another tokenizer than the one of a model (its ModelConfig)."""
    if (lm.cfg.codebooks, lm.cfg.codebook_size) != (cfg.tokenizer.codebooks, cfg.tokenizer.codebook_size):
        raise UserError("the token LM was trained on another tokenizer than the model's")


def carried_lm(model_path: Path | str, mode: str) -> TokenLM | None:
    """The token LM of `mode` that a model file carries (`umt export --lm`), if any."""
    carried = load_model_state(model_path).get("lm") or {}
    return load_lm(carried[mode]) if mode in carried else None


# ---------------------------------------------------------------- generation


def continue_prompt(
    translator: Translator,
    lm: TokenLM,
    prompt: np.ndarray,
    seconds: float,
    domain: str,
    temperature: float = 1.0,
    seed: int = 0,
) -> tuple[np.ndarray, dict]:
    """Tokenize a prompt (audio at the model rate), continue it by `seconds` with the LM, and
    render the continuation in `domain` (decoded with the prompt before it as context, then
    cut). Returns the audio and figures: frames, LM seconds, frames per second."""
    cfg = translator.model.cfg
    lm = lm.to(translator.device)
    prompt_codes = translator.tokenize(prompt)
    frames = max(1, round(seconds * cfg.sample_rate / cfg.latent_hop))
    generator = torch.Generator().manual_seed(seed)
    tic = time.perf_counter()
    continuation = lm.continuation(prompt_codes, frames, temperature, generator)
    lm_seconds = time.perf_counter() - tic
    audio = render_continuation(translator, prompt_codes, continuation, domain, f"generate:{seed}")
    return audio, {"frames": frames, "lm_seconds": lm_seconds, "frames_per_second": frames / lm_seconds}


def render_continuation(
    translator: Translator, prompt_codes: torch.Tensor, continuation: torch.Tensor, domain: str, key: str
) -> np.ndarray:
    """The audio of `continuation` (codes [F, K]) after the prompt's codes, in `domain`: decoded
    with the prompt before it as context, then cut where the prompt ends. `key` seeds sampling."""
    cfg = translator.model.cfg
    # A latent of F frames renders F * latent_hop samples; over the spectrum one spectrum frame
    # (pool samples) fewer, its last frame centred on the end. The continuation's audio starts
    # where the prompt's ends.
    latent = translator.from_tokens(torch.cat([prompt_codes, continuation]))
    start = prompt_codes.shape[0] * cfg.latent_hop - (cfg.encoder.input == "spectrum") * cfg.pool
    audio = translator.decode([latent], [start + continuation.shape[0] * cfg.latent_hop], domain, [key])[0]
    return audio[start:]
