"""`umt app`: translation in the browser, a Gradio page over the same library as the CLI.

A file dropped or recorded on the page is decoded and checked as `umt translate` checks its
inputs (umt.audio), then translated by umt.translate.convert into the chosen domains; the page
plays each translation, offers it for download, and draws the spectrograms of input and
outputs side by side. One translation runs at a time (the model and its steering hooks are
shared); other requests wait in Gradio's queue, each browser tab gets its own results, and a
tab's Cancel stops its translation at the next rendered block.

Files: everything the page writes lives under one folder (a fresh temporary folder, or
--work), deleted when the app ends; each request writes into a folder of its own with a
random name, and Gradio serves only the files a request returns (and its own cache, in the
same folder), nothing outside it. The server listens on 127.0.0.1 unless told otherwise and
refuses uploads over MAX_UPLOAD.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path

import gradio as gr  # at the top: the page's functions are typed with gr.Request, which Gradio resolves here
import numpy as np
import torch

from umt.audio import AudioError, load_audio, write_audio
from umt.checkpoint import load_model
from umt.errors import UserError
from umt.steering import choose, frame_sites
from umt.translate import Job, convert, estimated_samples
from umt.translator import Translator

MAX_UPLOAD = "100mb"
SILENT = 1e-4  # a peak below this (-80 dBFS) is silence: nothing to translate
KEEP_SECONDS = 3600  # request folders older than this are deleted
MODEL_TEMPERATURE = "the model's"  # the temperature choice that keeps each domain's stored sampling


class Cancelled(Exception):
    """The tab that asked for a translation pressed Cancel."""


@dataclass
class Options:
    """What a request asks for beyond the file and the domains."""

    renderer: str = "sines"  # sines (the preview, seconds) | wavenet (minutes)
    temperature: str = MODEL_TEMPERATURE  # or a number as text
    trait: str = ""  # a probe file's stem in the probes folder; "" = no steering
    alpha: float = 2.0
    tokens: bool = False


class Studio:
    """The page's work: one model, a folder for files, and each tab's cancel flag."""

    def __init__(self, model_path: Path, work: Path, device: torch.device, max_seconds: float,
                 probes: Path | None = None):  # fmt: skip
        self.model = load_model(model_path, device)
        self.device, self.max_seconds, self.work = device, max_seconds, work
        self.probes = {p.stem: p for p in sorted(probes.glob("*.pt"))} if probes else {}
        self.cancels: dict[str, threading.Event] = {}
        self.lock = threading.Lock()  # one translation at a time, whatever the queue does

    @property
    def domains(self) -> list[str]:
        return list(self.model.cfg.domains)

    @property
    def has_tokens(self) -> bool:
        return self.model.tokenizer is not None

    def cancel(self, session: str) -> None:
        self.cancels.setdefault(session, threading.Event()).set()

    def translate(self, source: str | None, domains: list[str], options: Options, session: str,
                  report_progress=None) -> tuple[dict[str, Path], Path]:  # fmt: skip
        """Translate the uploaded file at `source` into `domains`: the output file of each, and
        a figure of the spectrograms. Raises UserError with the reason a user can act on."""
        if not source:
            raise UserError("drop or record an audio file first")
        if not domains:
            raise UserError("choose at least one target instrument")
        unknown = [d for d in domains if d not in self.domains]
        if unknown:
            raise UserError(f"unknown domain {', '.join(unknown)}: this model has {', '.join(self.domains)}")
        rate = self.model.cfg.sample_rate
        path = Path(source)
        known = estimated_samples(path, rate)
        if known > self.max_seconds * rate:  # refused before decoding it
            raise UserError(f"{path.name}: {known / rate:.0f} s long; this page takes up to {self.max_seconds:g} s")
        audio = load_audio(path, rate)  # AudioError (a UserError): not audio, NaN, ...
        if audio.size > self.max_seconds * rate:
            raise UserError(
                f"{path.name}: {audio.size / rate:.0f} s long; this page takes up to {self.max_seconds:g} s"
            )
        if audio.size == 0 or float(np.abs(audio).max()) < SILENT:
            raise UserError(f"{path.name}: silent (no sample above -80 dBFS): nothing to translate")
        self._sweep()
        folder = self.work / "requests" / uuid.uuid4().hex
        write_audio(folder / "input.wav", audio, rate)
        (folder / "out").mkdir()
        flag = self.cancels.setdefault(session, threading.Event())
        flag.clear()

        def listen(share: float) -> None:
            if flag.is_set():
                raise Cancelled
            if report_progress is not None:
                report_progress(share)

        with self.lock:
            translator = self._translator(options)
            steering = self._steering(options, domains)
            with steering.applied() if steering else contextlib.nullcontext():
                report = convert(translator, [Job(folder / "input.wav", Path("input.wav"))], domains,
                                 folder / "out", listener=listen)  # fmt: skip
        if report.failed:
            raise UserError(f"{path.name}: {report.failed[0][1]}")
        outputs = {d: folder / "out" / d / "input.wav" for d in domains}
        return outputs, spectrograms(folder / "input.wav", outputs, folder / "spectrograms.png", rate)

    def _translator(self, options: Options) -> Translator:
        if options.renderer not in ("sines", "wavenet"):
            raise UserError(f"renderer {options.renderer!r}: choose sines or wavenet")
        if options.renderer == "sines" and not self.model.cfg.spectral:
            raise UserError("the sines preview needs a spectral model; choose the WaveNet")
        if options.tokens and not self.has_tokens:
            raise UserError("this model has no tokenizer: translate without tokens")
        temperature = None
        if options.temperature != MODEL_TEMPERATURE:
            temperature = float(options.temperature)
            if not 0 <= temperature <= 2:
                raise UserError(f"temperature {temperature:g}: choose 0 to 2")
        return Translator(self.model, self.device, temperature=temperature, renderer=options.renderer,
                          tokens=options.tokens)  # fmt: skip

    def _steering(self, options: Options, domains: list[str]):
        if not options.trait:
            return None
        if options.trait not in self.probes:
            raise UserError(f"no probe {options.trait!r} (this page has {', '.join(self.probes) or 'none'})")
        groups = [frame_sites(self.model, d) for d in domains]
        return choose([f"{self.probes[options.trait]}:{options.alpha:g}"], groups)

    def _sweep(self) -> None:
        """Delete request folders older than KEEP_SECONDS."""
        requests = self.work / "requests"
        if not requests.is_dir():
            return
        for folder in requests.iterdir():
            with contextlib.suppress(OSError):
                if time.time() - folder.stat().st_mtime > KEEP_SECONDS:
                    shutil.rmtree(folder, ignore_errors=True)


def spectrograms(source: Path, outputs: dict[str, Path], out: Path, rate: int) -> Path:
    """A figure of the log-frequency spectrograms of the input and each output, side by side."""
    import librosa
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = {"input": source, **outputs}
    fig, axes = plt.subplots(1, len(paths), figsize=(3.2 * len(paths), 3.4), squeeze=False, sharey=True)
    for ax, (name, path) in zip(axes[0], paths.items()):
        audio = load_audio(path, rate)
        db = librosa.amplitude_to_db(np.abs(librosa.stft(audio, n_fft=1024, hop_length=256)), ref=np.max, top_db=80)
        ax.imshow(db, origin="lower", aspect="auto", cmap="magma", extent=(0, audio.size / rate, 0, rate / 2000))
        ax.set_ylim(0, min(4.0, rate / 2000))  # where the notes and their first harmonics are
        ax.set_title(name)
        ax.set_xlabel("s")
    axes[0, 0].set_ylabel("kHz")
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def build(studio: Studio) -> gr.Blocks:
    """The Gradio page of a Studio."""
    renderers = ["sines", "wavenet"] if studio.model.cfg.spectral else ["wavenet"]
    # analytics off: the page phones nowhere (and machines without a network do not wait for it)
    with gr.Blocks(title="umt: music translation", delete_cache=(KEEP_SECONDS, KEEP_SECONDS),
                   analytics_enabled=False) as page:  # fmt: skip
        gr.Markdown(
            "# umt: translate music into another instrument\n"
            f"Drop or record a file (any format the `umt` command reads; up to {studio.max_seconds:g} s), "
            "choose the instruments, press **Translate**. The sines preview renders in seconds; the WaveNet, "
            "the model's full sound, takes minutes on a CPU."
        )
        with gr.Row():
            with gr.Column():
                source = gr.Audio(sources=["upload", "microphone"], type="filepath", label="input", elem_id="input")
                domains = gr.CheckboxGroup(studio.domains, value=studio.domains[:1], label="into", elem_id="domains")
                renderer = gr.Radio(renderers, value=renderers[0], label="renderer", elem_id="renderer")
                with gr.Accordion("options", open=False):
                    temperature = gr.Dropdown([MODEL_TEMPERATURE, "0", "0.25", "0.5", "0.75", "1"],
                                              value=MODEL_TEMPERATURE, label="temperature (WaveNet)")  # fmt: skip
                    trait = gr.Dropdown(["", *studio.probes], value="", label="steer towards (a probe)",
                                        visible=bool(studio.probes))  # fmt: skip
                    alpha = gr.Slider(-8, 8, value=2, step=0.5, label="steering alpha", visible=bool(studio.probes))
                    tokens = gr.Checkbox(False, label="through the tokens", visible=studio.has_tokens)
                with gr.Row():
                    go = gr.Button("Translate", variant="primary", elem_id="translate")
                    stop = gr.Button("Cancel", elem_id="cancel")
            with gr.Column():
                players = [gr.Audio(label=d, visible=False, type="filepath", elem_id=f"out-{d}", interactive=False)
                           for d in studio.domains]  # fmt: skip
                figure = gr.Image(label="spectrograms: input and translations", show_label=False, visible=False,
                                  interactive=False)  # fmt: skip

        def run(path, chosen, how, temp, steer, steer_alpha, through_tokens, request: gr.Request,
                progress=gr.Progress()):  # noqa: B008 (how Gradio hands a function its progress bar)  # fmt: skip
            options = Options(how, temp, steer or "", float(steer_alpha), bool(through_tokens))
            session = request.session_hash or "local"
            progress(0.0, desc="translating")
            try:
                outputs, drawn = studio.translate(path, chosen or [], options, session,
                                                  lambda share: progress(share, desc="rendering"))  # fmt: skip
            except Cancelled:
                raise gr.Error("cancelled") from None
            except (UserError, AudioError) as exc:
                raise gr.Error(str(exc)) from None
            except Exception as exc:  # noqa: BLE001 (the page shows one line; the console keeps the traceback)
                traceback.print_exc()
                raise gr.Error(
                    f"the translation failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                ) from None
            updates = [gr.update(value=str(outputs[d]), visible=True) if d in outputs else gr.update(value=None, visible=False)
                       for d in studio.domains]  # fmt: skip
            return [*updates, gr.update(value=str(drawn), visible=True)]

        event = go.click(run, [source, domains, renderer, temperature, trait, alpha, tokens], [*players, figure])

        def cancel(request: gr.Request) -> None:
            studio.cancel(request.session_hash or "local")

        stop.click(cancel, None, None, queue=False, cancels=[event])
    page.queue(default_concurrency_limit=1)
    return page


def serve(model_path: Path, host: str, port: int, device: torch.device, max_seconds: float,
          probes: Path | None = None, work: Path | None = None, block: bool = True):  # fmt: skip
    """Start the page. Without block, return (page, url, folder) at once (the caller closes the page
    and deletes the folder); with block, serve until Ctrl-C, then delete the folder."""
    folder = Path(tempfile.mkdtemp(prefix="umt-app-", dir=work))
    os.environ["GRADIO_TEMP_DIR"] = str(folder / "gradio")  # Gradio's own copies of files live there too
    try:
        page = build(Studio(model_path, folder, device, max_seconds, probes))
        _, url, _ = page.launch(server_name=host, server_port=port, max_file_size=MAX_UPLOAD, prevent_thread_lock=True,
                                show_error=True, quiet=True, footer_links=[])  # fmt: skip
    except BaseException as exc:  # a failed start (or Ctrl-C while loading) leaves nothing behind
        shutil.rmtree(folder, ignore_errors=True)
        if isinstance(exc, OSError):
            raise UserError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port") from None
        raise
    if not block:
        return page, url, folder
    print(f"umt app: {url} (Ctrl-C stops it)", flush=True)
    try:
        page.block_thread()  # returns only when Ctrl-C stopped the server
    finally:
        page.close()
        shutil.rmtree(folder, ignore_errors=True)
    raise KeyboardInterrupt  # the command line ends with 130, as every command stopped by Ctrl-C
