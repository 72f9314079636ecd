"""The WaveNet sampler: fast autoregressive generation for the WaveNet decoders (not to be
confused with `umt generate`, which continues token sequences with the token LM).

A training-style forward pass recomputes the whole receptive field for every new sample
(65,533 samples for the paper decoder). Here each layer keeps a ring buffer of its past
inputs, so a new sample costs one pass through the layers, and that pass is a handful of
large matrix multiplies over the whole batch:

  per layer   h = cond[frame] + [x(t - d), x(t)] @ W_conv      one matmul, both taps at once
              z = tanh(h_a) * sigmoid(h_b)
              x' = x + [z, 1] @ [W_res; b_res]                  written straight into the next layer's input
  after all   skip = [z_1, 1, ..., z_L, 1] @ [W_skip_1; b_1; ...]  one matmul for every skip 1x1
              logits = (relu(relu(skip) @ W_hid + cond_head[frame])) @ W_out + b_out

The conditioning of every layer and of the head (latent projection plus biases) is
computed once per latent frame for the whole batch before the loop; every buffer is
allocated up front, so the loop allocates nothing. Sampling (umt.outputs: a mu-law code by
its inverse CDF, or a value of a logistic mixture) uses noise drawn per batch row from that
row's own seeded generator, so a chunk's output depends on its seed, not on which other
chunks share its batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch

from umt.modules.wavenet import Decoder
from umt.outputs import LOG_SCALE_MIN, LogisticMixture, MuLaw

NOISE_BLOCK = 1024  # steps of uniform numbers drawn at once


class PackedDecoder:
    """One decoder's weights rearranged for sample-by-sample generation (shared by every Stream)."""

    def __init__(self, decoder: Decoder, pool: int, dtype: torch.dtype = torch.float32):
        r, s = decoder.residual_channels, decoder.skip_channels
        self.r, self.s, self.pool, self.dtype = r, s, pool, dtype
        self.dilations = list(decoder.dilations)
        self.n_layers = len(self.dilations)
        self.output = decoder.output
        self.device = decoder.head_out.weight.device
        # a logistic mixture's mean and scale are computed in float32 whatever the layers' dtype
        self.head_dtype = dtype if isinstance(self.output, MuLaw) else torch.float32
        with torch.no_grad():
            self._pack(decoder)

    def _pack(self, decoder: Decoder) -> None:
        r = self.r
        f32 = lambda t: t.detach().float()
        # The residual biases are carried as offsets: the stream holds x_i - c_i with c_i the sum
        # of the residual biases below layer i, so the residual update is a bare matmul. The
        # offset re-enters through each conv's conditioning (W_conv @ [c_i, c_i]), and "x = 0
        # before the start" becomes rings filled with -c_i.
        convs, res_skips = [layer.conv for layer in decoder.layers], [layer.res_skip for layer in decoder.layers]
        res_bias = torch.stack([f32(rs.bias[:r]) for rs in res_skips])
        self.offsets = torch.cat([torch.zeros(1, r, device=self.device), res_bias.cumsum(0)[:-1]])  # c_i
        # The gate tanh(a) * sigmoid(b) becomes sigmoid(b) - 2 sigmoid(-2a) sigmoid(b): one sigmoid
        # over all of h and one fused multiply-add, with the tanh half's weights scaled by -2.
        gate_scale = torch.cat([torch.full((r,), -2.0), torch.ones(r)]).to(self.device)
        conv_w = [f32(c.weight) * gate_scale[:, None] for c in convs]  # [2R_out, 2R_in], taps (t - d, t)
        self.gate_bias = torch.stack(
            [f32(c.bias) * gate_scale + w @ torch.cat([c_i, c_i]) for c, w, c_i in zip(convs, conv_w, self.offsets)]
        )  # [L, 2R]
        self.gate_scale = gate_scale
        self.head_bias = f32(decoder.head_hidden.bias)
        self.condition = decoder.condition
        as_rhs = lambda t, dtype=self.dtype: t.t().to(dtype).contiguous()
        if isinstance(self.output, MuLaw):  # a table row per code
            self.embed = decoder.embed.weight.detach().to(self.dtype).contiguous()
        else:  # value * weight + bias (umt.outputs.ValueEmbedding)
            self.embed, self.b_embed = (
                f32(decoder.embed.proj.weight[:, 0]).to(self.dtype),
                f32(decoder.embed.proj.bias).to(self.dtype),
            )
        self.w_conv = [as_rhs(w) for w in conv_w]
        self.w_res = [as_rhs(f32(rs.weight[:r])) for rs in res_skips]
        self.w_skip = torch.cat([as_rhs(f32(rs.weight[r:])) for rs in res_skips])  # [L * R, S]
        self.b_skip = sum(f32(rs.bias[r:]) for rs in res_skips).to(self.dtype)
        self.w_hid = as_rhs(f32(decoder.head_hidden.weight), self.head_dtype)
        self.w_out = as_rhs(f32(decoder.head_out.weight), self.head_dtype)
        self.b_out = f32(decoder.head_out.bias).to(self.head_dtype)
        # an excited decoder adds excitation(t) @ W_excite to the embedding of sample t - 1
        self.w_excite = as_rhs(f32(decoder.excite.weight)) if decoder.excite is not None else None

    def state_bytes_per_row(self) -> int:
        """Memory of one row's generation state (mostly the ring buffers)."""
        return sum(d + 2 for d in self.dilations) * self.r * torch.finfo(self.dtype).bits // 8

    @property
    def flops_per_sample(self) -> int:
        """Multiply-adds x 2 of one generated sample (the per-frame conditioning excluded)."""
        r, s, n = self.r, self.s, self.n_layers
        return 2 * (n * 4 * r * r + (n - 1) * r * r + n * r * s + s * s + s * self.output.width)

    def conditioning(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per latent frame, for the whole batch at once: every layer's gate conditioning
        [F, L, B, 2R] (latent projection + biases) and the head's [F, B, S]."""
        r, n = self.r, self.n_layers
        with torch.no_grad():
            cond = self.condition(latent.to(self.device, self.condition.weight.dtype))  # [B, F, L*2R + S]
            gates = cond[..., : 2 * r * n].unflatten(-1, (n, 2 * r)) * self.gate_scale + self.gate_bias
            head = cond[..., 2 * r * n :] + self.head_bias
        return gates.permute(1, 2, 0, 3).to(self.dtype), head.permute(1, 0, 2).to(self.head_dtype)


class Stream:
    """The generation state of a batch of rows: ring buffers, work buffers, the step."""

    def __init__(self, packed: PackedDecoder):
        self.p = packed
        self.batch = 0

    def start(self, gate_cond: torch.Tensor, head_cond: torch.Tensor) -> None:
        """Reset for a batch of rows with conditioning from PackedDecoder.conditioning."""
        b = gate_cond.shape[2]
        if b != self.batch:
            self._allocate(b)
        # Each (frame, layer) block contiguous for addmm, and viewed once here, not per step.
        self.gate_cond = [list(per_frame) for per_frame in gate_cond.contiguous()]
        self.head_cond = list(head_cond.contiguous())
        for ring, c in zip(self.rings, self.p.offsets):
            ring.copy_((-c).to(self.p.dtype).expand_as(ring))  # x = 0 before the start
        self.t = 0

    def _allocate(self, b: int) -> None:
        """Buffers and views for batch size b (kept while b stays the same).

        Layer i keeps x of its last d + 1 steps in a ring [B, d + 2, R]: x(t) lives in slot
        1 + (-t mod (d + 1)), so x(t - d) sits just before it and [x(t - d), x(t)] is one
        [B, 2R] view, the conv's input without any copy. Slot 0 mirrors slot d + 1 so the
        pair is adjacent at the wrap-around too.
        """
        p = self.p
        r, s, n = p.r, p.s, p.n_layers
        new = lambda *shape: torch.zeros(*shape, device=p.device, dtype=p.dtype)
        self.batch = b
        self.rings = [new(b, d + 2, r) for d in p.dilations]
        # windows[i][q]: [x(t - d), x(t)] as [B, 2R] when -t mod (d + 1) == q; slots[i][q]: where x(t) goes
        self.windows = [
            [ring[:, q : q + 2].flatten(1) for q in range(d + 1)] for ring, d in zip(self.rings, p.dilations)
        ]
        self.slots = [[ring[:, q + 1] for q in range(d + 1)] for ring, d in zip(self.rings, p.dilations)]
        self.mirrors = [ring[:, 0] for ring in self.rings]
        self.z = new(b, n, r)  # every layer's gate output, for the one skip matmul
        self.z_layers = [self.z[:, i] for i in range(n)]
        self.z_flat = self.z.view(b, n * r)
        self.first = new(b, r)  # the embedding of an excited decoder, before its excitation is added
        self.previous = new(b, 1)  # a logistic output's previous value, in the layers' dtype
        self.h = new(b, 2 * r)
        self.h_tanh, self.h_sigmoid = self.h[:, :r], self.h[:, r:]
        self.skip = new(b, s)
        head = lambda *shape: torch.zeros(*shape, device=p.device, dtype=p.head_dtype)
        self.skip_head = self.skip if p.head_dtype == p.dtype else head(b, s)
        self.hidden = head(b, s)
        self.logits = head(b, p.output.width)

    def step(self, previous: torch.Tensor, excitation: torch.Tensor | None = None) -> torch.Tensor:
        """Feed sample t - 1 as the output codes it [B] (and an excited decoder's excitation [B, E]
        at t), return the output's parameters [B, width] for sample t (a view, reused)."""
        p, t = self.p, self.t
        frame = t // p.pool
        gate_cond, h, h_a, h_b = self.gate_cond[frame], self.h, self.h_tanh, self.h_sigmoid
        dilations, last, w_conv, w_res = p.dilations, p.n_layers - 1, p.w_conv, p.w_res
        q = -t % (dilations[0] + 1)
        embedded = self.slots[0][q] if excitation is None else self.first
        if isinstance(p.output, MuLaw):
            torch.index_select(p.embed, 0, previous, out=embedded)
        else:
            self.previous.copy_(previous.unsqueeze(1))
            torch.addcmul(p.b_embed, self.previous, p.embed, out=embedded)
        if excitation is not None:
            torch.addmm(self.first, excitation, p.w_excite, out=self.slots[0][q])
        for i, d in enumerate(dilations):
            if q == d:  # x(t) sits in the last slot: mirror it into slot 0 for step t + d
                self.mirrors[i].copy_(self.slots[i][q])
            torch.addmm(gate_cond[i], self.windows[i][q], w_conv[i], out=h)
            h.sigmoid_()
            torch.addcmul(h_b, h_a, h_b, value=-2.0, out=self.z_layers[i])  # tanh(a) * sigmoid(b)
            if i < last:  # the last layer's residual output is never used
                q_next = -t % (dilations[i + 1] + 1)
                torch.addmm(self.slots[i][q], self.z_layers[i], w_res[i], out=self.slots[i + 1][q_next])
                q = q_next
        torch.addmm(p.b_skip, self.z_flat, p.w_skip, out=self.skip).relu_()
        if self.skip_head is not self.skip:
            self.skip_head.copy_(self.skip)
        torch.addmm(self.head_cond[frame], self.skip_head, p.w_hid, out=self.hidden).relu_()
        self.t += 1
        return torch.addmm(p.b_out, self.hidden, p.w_out, out=self.logits)

    @torch.no_grad()
    def sample(
        self,
        gate_cond: torch.Tensor,
        head_cond: torch.Tensor,
        codes: torch.Tensor,
        seeds: list[int],
        temperature: float,
        progress: Callable[[int], None] | None = None,
        excitation: torch.Tensor | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        """Generate into codes [T, B] (T = frames * pool; the output's codes or values): temperature
        0 is greedy (mu-law: the likeliest code; logistic: the likeliest component's mean),
        otherwise a sample of the output's distribution at that temperature, row i's
        randomness seeded by seeds[i]. An excited decoder takes its excitation as [T, B, E].
        Returns early, leaving the codes unfinished, once `cancel` is set."""
        self.start(gate_cond, head_cond)
        b = codes.shape[1]
        output = self.p.output
        if isinstance(output, LogisticMixture):
            sampler = MixtureSampler(seeds, temperature, self.p.device, output.mixtures)
        else:
            sampler = InverseCdfSampler(seeds, temperature, self.p.device, output.width) if temperature else None
        previous = torch.full((b,), output.silence, dtype=output.dtype, device=self.p.device)
        logits32 = torch.empty(b, output.width, device=self.p.device) if self.p.head_dtype != torch.float32 else None
        if excitation is not None:
            excitation = excitation.to(self.p.device, self.p.dtype)
        for t in range(codes.shape[0]):
            if cancel is not None and cancel.is_set():
                return
            logits = self.step(previous, None if excitation is None else excitation[t])
            if logits32 is not None:  # sample in fp32 whatever the arithmetic of the layers
                logits = logits32.copy_(logits)
            if sampler is None:
                previous = torch.argmax(logits, dim=1, out=codes[t])
            else:
                previous = sampler.sample(logits, out=codes[t])
            if progress is not None and (t + 1) % self.p.pool == 0:
                progress(b * self.p.pool)


class InverseCdfSampler:
    """Samples a code per row from softmax(logits / temperature) with one uniform number per
    row and step: the code where the cumulative distribution passes it. Row i's uniforms come
    from its own generator seeded with seeds[i], so a row's samples do not depend on the
    batch it sits in. Allocation-free: every buffer is made once."""

    def __init__(self, seeds: list[int], temperature: float, device: torch.device, classes: int = MuLaw().width):
        b = len(seeds)
        self.generators = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]
        self.inverse_t = 1.0 / temperature
        self.uniforms = torch.empty(NOISE_BLOCK, b, 1, device=device)
        self.used = NOISE_BLOCK
        self.peak = torch.empty(b, 1, device=device)
        self.cdf = torch.empty(b, classes, device=device)
        self.threshold = torch.empty(b, 1, device=device)

    def sample(self, logits: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Codes [B] into `out` (destroys `logits`)."""
        if self.used == NOISE_BLOCK:
            for row, gen in enumerate(self.generators):
                self.uniforms[:, row].uniform_(generator=gen)
            self.used = 0
        if self.inverse_t != 1.0:
            logits.mul_(self.inverse_t)
        torch.amax(logits, dim=1, keepdim=True, out=self.peak)
        torch.cumsum(logits.sub_(self.peak).exp_(), dim=1, out=self.cdf)
        torch.mul(self.cdf[:, -1:], self.uniforms[self.used], out=self.threshold)
        self.used += 1
        index = out.unsqueeze(1)
        torch.searchsorted(self.cdf, self.threshold, right=True, out=index)
        return index.clamp_max_(self.cdf.shape[1] - 1).squeeze(1)


class MixtureSampler:
    """Samples a value per row from a logistic mixture (umt.outputs.LogisticMixture) at
    temperature T: the component argmax(logits + T * Gumbel noise), then its mean plus T times
    its scale times logistic noise; T = 0 gives the likeliest component's mean. Row i's noise
    comes from its own generator seeded with seeds[i], as in InverseCdfSampler. Allocation-free
    but for each block of noise."""

    def __init__(self, seeds: list[int], temperature: float, device: torch.device, mixtures: int):
        b = len(seeds)
        self.generators = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]
        self.temperature, self.k = temperature, mixtures
        self.noise = torch.empty(NOISE_BLOCK, b, mixtures + 1, device=device)  # Gumbel per component, logistic
        self.used = NOISE_BLOCK
        self.scores = torch.empty(b, mixtures, device=device)
        self.choice = torch.empty(b, 1, dtype=torch.long, device=device)
        self.mean, self.scale, self.value = (torch.empty(b, 1, device=device) for _ in range(3))

    def _draw(self) -> None:
        for row, gen in enumerate(self.generators):
            self.noise[:, row].uniform_(generator=gen)
        u = self.noise.clamp_(1e-7, 1 - 1e-7)
        gumbel = -torch.log(-torch.log(u[..., : self.k]))
        logistic = torch.log(u[..., self.k :]) - torch.log1p(-u[..., self.k :])
        self.noise = torch.cat([gumbel, logistic], dim=-1).mul_(self.temperature)
        self.used = 0

    def sample(self, params: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Values [B] into `out` from params [B, 3k] (laid out as LogisticMixture's)."""
        if self.used == NOISE_BLOCK:
            self._draw()
        noise = self.noise[self.used]
        self.used += 1
        k = self.k
        torch.add(params[:, :k], noise[:, :k], out=self.scores)
        torch.argmax(self.scores, dim=1, keepdim=True, out=self.choice)
        torch.gather(params[:, k : 2 * k], 1, self.choice, out=self.mean)
        torch.gather(params[:, 2 * k :], 1, self.choice, out=self.scale).clamp_min_(LOG_SCALE_MIN).exp_()
        torch.addcmul(self.mean, self.scale, noise[:, k:], out=self.value).clamp_(-1.0, 1.0)
        return out.copy_(self.value[:, 0])


def default_streams(device: torch.device) -> int:
    """One stream per core on the CPU, one on a GPU."""
    return max(1, torch.get_num_threads()) if device.type == "cpu" else 1


@torch.no_grad()
def generate(
    packed: PackedDecoder,
    latent: torch.Tensor,
    temperature: float = 1.0,
    seeds: list[int] | None = None,
    streams: int | None = None,
    progress: Callable[[int], None] | None = None,
    excitation: torch.Tensor | None = None,
) -> torch.Tensor:
    """Generate F * pool codes for each row of latent [B, F, C] (an excited decoder's
    excitation [B, F * pool, E] beside it); returns codes [B, F * pool].

    On the CPU the rows are split into one stream per core, each stepped by its own thread
    with single-threaded kernels: the per-step work is too small to share out inside a
    matrix multiply, and while one thread runs elementwise code the other multiplies.
    """
    b, frames, _ = latent.shape
    seeds = list(range(b)) if seeds is None else seeds
    gate_cond, head_cond = packed.conditioning(latent)
    if (excitation is None) != (packed.w_excite is None):
        raise ValueError("an excited decoder needs its excitation, and only it takes one")
    codes = torch.empty(frames * packed.pool, b, dtype=packed.output.dtype, device=packed.device)
    per_step = excitation.transpose(0, 1) if excitation is not None else None  # [T, B, E]
    n = min(b, streams or default_streams(packed.device))
    jobs = [
        (Stream(packed), gate_cond[:, :, rows], head_cond[:, rows], codes[:, rows], seeds[rows],
         None if per_step is None else per_step[:, rows])
        for rows in _row_blocks(b, n)
    ]  # fmt: skip
    if n == 1:
        stream, *args, exc = jobs[0]
        stream.sample(*args, temperature=temperature, progress=progress, excitation=exc)
    else:
        _run_threads(jobs, temperature, progress)
    return codes.t().contiguous()


def _row_blocks(b: int, n: int) -> list[slice]:
    """n contiguous, nearly equal blocks of rows."""
    bounds = [round(i * b / n) for i in range(n + 1)]
    return [slice(bounds[i], bounds[i + 1]) for i in range(n)]


def _run_threads(jobs: list, temperature: float, progress: Callable[[int], None] | None) -> None:
    """Each job's stream on its own thread. If the caller is interrupted (Ctrl-C) or a thread
    fails, the others are told to stop and joined before the exception goes on: no thread
    outlives the call (one left running at exit aborts the interpreter)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    errors: list[BaseException] = []
    cancel = threading.Event()

    def work(stream, gate_cond, head_cond, codes, seeds, excitation):
        try:
            stream.sample(gate_cond, head_cond, codes, seeds=seeds, temperature=temperature, progress=progress,
                          excitation=excitation, cancel=cancel)  # fmt: skip
        except BaseException as exc:  # noqa: BLE001 (re-raised in the caller)
            errors.append(exc)
            cancel.set()

    workers = [threading.Thread(target=work, args=job) for job in jobs]
    try:
        for w in workers:
            w.start()
        for w in workers:
            while w.is_alive():
                w.join(0.1)  # a bounded wait, so that a signal reaches this thread at once
    except BaseException:
        cancel.set()
        for w in workers:
            if w.ident is not None:
                w.join()
        raise
    finally:
        torch.set_num_threads(threads)
    if errors:
        raise errors[0]
