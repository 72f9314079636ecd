"""The page (`umt app`): through Gradio's API client, and in a real browser (Playwright driving
Debian's chromium)."""

import shutil
import socket
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from umt.checkpoint import DEFAULT_MODEL, EXAMPLE_CLIP

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from umt.app import serve

    work = tmp_path_factory.mktemp("app")
    page, url, folder = serve(DEFAULT_MODEL, "127.0.0.1", free_port(), torch.device("cpu"), 30.0, work=work,
                              block=False)  # fmt: skip
    yield url, folder
    page.close()


def test_the_api_translates_the_example_and_refuses_bad_files(app, tmp_path: Path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    url, folder = app
    client = Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
    outputs = client.predict(handle_file(str(EXAMPLE_CLIP)), ["violin"], "sines", "the model's", "", 2, False,
                             api_name="/run")  # fmt: skip
    players, figure = outputs[:-1], outputs[-1]
    shown = [p for p in players if p.get("visible")]
    assert len(shown) == 1 and figure["visible"]
    audio, rate = sf.read(shown[0]["value"])
    expected = sf.info(EXAMPLE_CLIP).duration
    assert rate == 16000 and abs(audio.size / rate - expected) < 0.05
    assert np.isfinite(audio).all() and 0.01 < np.abs(audio).max() < 1.0
    assert Path(folder).is_dir() and any((Path(folder) / "requests").iterdir())  # its files stay in its folder

    (tmp_path / "notes.wav").write_text("not audio at all")
    sf.write(tmp_path / "silence.wav", np.zeros(16000, dtype=np.float32), 16000)
    sf.write(tmp_path / "long.wav", 0.1 * np.ones(16000 * 31, dtype=np.float32), 16000)
    for name, reason in (("notes.wav", "notes.wav"), ("silence.wav", "silent"), ("long.wav", "up to 30 s")):
        with pytest.raises(AppError, match=reason):
            client.predict(handle_file(str(tmp_path / name)), ["violin"], "sines", "the model's", "", 2, False,
                           api_name="/run")  # fmt: skip
    with pytest.raises(AppError, match="at least one"):
        client.predict(handle_file(str(EXAMPLE_CLIP)), [], "sines", "the model's", "", 2, False, api_name="/run")
    # two tabs at once: the queue runs one translation at a time, and each gets its own
    jobs = [Client(url, verbose=False, download_files=str(tmp_path / f"tab{i}")).submit(
        handle_file(str(EXAMPLE_CLIP)), [domain], "sines", "the model's", "", 2, False, api_name="/run")
        for i, domain in enumerate(("organ", "piano"))]  # fmt: skip
    for job, domain in zip(jobs, ("organ", "piano")):
        (shown,) = [p for p in job.result()[:-1] if p.get("visible")]
        assert Path(shown["value"]).parent.parent.name.startswith("tab") and sf.info(shown["value"]).frames > 16000
    for path in ("/etc/passwd", str(Path("README.md").resolve())):  # nothing outside its folder is served
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{url}gradio_api/file={path}")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium: setup.sh installs Debian's where it runs as root with apt")
def test_a_browser_uploads_translates_and_plays(app, tmp_path: Path):
    playwright = pytest.importorskip("playwright.sync_api")
    url, _ = app
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(url)
        page.locator("#input input[type=file]").set_input_files(str(EXAMPLE_CLIP))
        page.get_by_label("sines").check()
        page.get_by_role("button", name="Translate").click()
        # the first domain is chosen by default; its player plays the file as a blob it fetched
        player = page.locator("#out-flute audio[src]")
        player.wait_for(state="attached", timeout=120_000)
        head = page.evaluate(
            "async src => Array.from(new Uint8Array(await (await fetch(src)).arrayBuffer()).slice(0, 4))",
            player.get_attribute("src"),
        )
        assert bytes(head) == b"RIFF"  # what the audio element plays is a WAV file
        download = page.locator("#out-flute a[download]").get_attribute("href")
        response = page.request.get(download)
        assert response.ok and response.body()[:4] == b"RIFF" and len(response.body()) > 16000 * 2 * 5
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        browser.close()
    assert (tmp_path / "page.png").stat().st_size > 10_000


def test_cancel_stops_only_its_own_tab(tiny_spectral_checkpoint: Path, tmp_path: Path):
    from umt.app import Cancelled, Options, Studio

    studio = Studio(tiny_spectral_checkpoint, tmp_path, torch.device("cpu"), 30.0)
    t = np.arange(16000 * 2) / 16000
    sf.write(tmp_path / "tone.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    seen = []

    def press_cancel(share: float) -> None:  # the tab presses Cancel while its translation renders
        seen.append(share)
        studio.cancel("tab-a")

    with pytest.raises(Cancelled):
        studio.translate(str(tmp_path / "tone.wav"), ["high"], Options(renderer="wavenet"), "tab-a", press_cancel)
    assert len(seen) == 1 and seen[0] < 1.0  # stopped at the next rendered block, not at the end
    outputs, figure = studio.translate(
        str(tmp_path / "tone.wav"), ["high", "low"], Options(renderer="wavenet"), "tab-b"
    )
    assert set(outputs) == {"high", "low"} and figure.is_file()  # another tab is not cancelled
    outputs, _ = studio.translate(str(tmp_path / "tone.wav"), ["low"], Options(renderer="sines"), "tab-a")
    assert sf.info(outputs["low"]).frames == t.size  # a new request of the cancelled tab runs


def test_bad_flags_get_one_line(tmp_path: Path, capsys):
    from umt.cli import main

    for argv, reason in ((["--port", "0"], "--port 0"), (["--max-seconds", "-1"], "--max-seconds -1"),
                         (["--probes", str(tmp_path / "none")], "not a folder")):  # fmt: skip
        assert main(["app", *argv]) == 2
        assert reason in capsys.readouterr().err


def test_steering_from_the_page_changes_the_translation(tiny_spectral_checkpoint: Path, tmp_path: Path):
    from umt.app import Options, Studio
    from umt.checkpoint import load_model
    from umt.errors import UserError
    from umt.steering import Probe, frame_sites, save_probes

    width = load_model(tiny_spectral_checkpoint).cfg.frames.channels
    site = frame_sites(load_model(tiny_spectral_checkpoint), "high")[0].name
    probe = Probe(site, torch.ones(width), 0.0, spread=1.0, accuracy=0.9)
    (tmp_path / "probes").mkdir()
    save_probes(tmp_path / "probes" / "bright.pt", "bright", [probe], str(tiny_spectral_checkpoint))
    studio = Studio(tiny_spectral_checkpoint, tmp_path / "work", torch.device("cpu"), 30.0, tmp_path / "probes")
    assert list(studio.probes) == ["bright"]
    t = np.arange(16000) / 16000
    sf.write(tmp_path / "tone.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    plain, _ = studio.translate(str(tmp_path / "tone.wav"), ["high"], Options(renderer="sines"), "tab")
    steered, _ = studio.translate(
        str(tmp_path / "tone.wav"), ["high"], Options("sines", trait="bright", alpha=8), "tab"
    )
    a, b = sf.read(plain["high"])[0], sf.read(steered["high"])[0]
    assert a.shape == b.shape and np.abs(a - b).max() > 1e-3  # the nudge reached the frame network's output
    with pytest.raises(UserError, match="no probe 'dark'"):
        studio.translate(str(tmp_path / "tone.wav"), ["high"], Options("sines", trait="dark"), "tab")
