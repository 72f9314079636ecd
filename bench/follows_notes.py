#!/usr/bin/env python3
"""Does a translation follow the notes of its input? Chroma similarity and pyin pitch-class
agreement between an input and each of its translations.

    python bench/follows_notes.py umt/assets/example.flac out/example/*/example.wav

Both are computed as `umt evaluate` does (umt.evaluate); against the input itself they are 1.
A clip of unrelated music scores about 0.4-0.6 in chroma and 0.0-0.25 in pitch-class agreement.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from umt.audio import load_audio
from umt.measures import chroma_similarity, pitch_class_agreement, pitch_classes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", type=Path)
    parser.add_argument("translations", type=Path, nargs="+")
    parser.add_argument("--sample-rate", type=int, default=16000)
    args = parser.parse_args()
    source = load_audio(args.input, args.sample_rate)
    source_track = pitch_classes(source, args.sample_rate)
    print(f"{'translation':<40} chroma  pitch-class agreement")
    for path in args.translations:
        audio = load_audio(path, args.sample_rate)
        agreement = pitch_class_agreement(pitch_classes(audio, args.sample_rate), source_track)
        shown = "n/a (nothing voiced)" if agreement is None else f"{agreement:.3f}"
        print(f"{path!s:<40} {chroma_similarity(audio, source, args.sample_rate):.3f}   {shown}")


if __name__ == "__main__":
    main()
