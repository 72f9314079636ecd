"""General-MIDI instruments the benchmark corpus can render, with the range each plays well."""

from __future__ import annotations

from dataclasses import dataclass

from umt.errors import UserError


@dataclass(frozen=True)
class Instrument:
    program: int  # General-MIDI program number, 0-based
    low: int  # lowest MIDI key of the instrument's usual range
    high: int  # highest


INSTRUMENTS: dict[str, Instrument] = {
    "piano": Instrument(0, 21, 108),
    "harpsichord": Instrument(6, 29, 89),
    "vibraphone": Instrument(11, 53, 89),
    "marimba": Instrument(12, 45, 96),
    "organ": Instrument(19, 36, 96),  # church organ
    "acoustic_guitar": Instrument(24, 40, 84),  # nylon strings
    "electric_guitar": Instrument(27, 40, 86),  # clean
    "violin": Instrument(40, 55, 100),
    "viola": Instrument(41, 48, 88),
    "cello": Instrument(42, 36, 76),
    "contrabass": Instrument(43, 28, 67),
    "strings": Instrument(48, 28, 100),  # string ensemble
    "choir": Instrument(52, 40, 84),
    "trumpet": Instrument(56, 54, 82),
    "trombone": Instrument(57, 40, 72),
    "tuba": Instrument(58, 28, 58),
    "french_horn": Instrument(60, 34, 77),
    "alto_sax": Instrument(65, 49, 81),
    "oboe": Instrument(68, 58, 91),
    "bassoon": Instrument(70, 34, 75),
    "clarinet": Instrument(71, 50, 94),
    "flute": Instrument(73, 60, 96),
    "recorder": Instrument(74, 72, 98),
}


def canonical_name(name: str) -> str:
    """'Acoustic Guitar', 'acoustic-guitar' and 'acoustic_guitar' are the same instrument."""
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def parse_instruments(text: str) -> list[str]:
    """'piano,violin' -> ['piano', 'violin']; unknown names are a UserError listing the known ones."""
    names = [canonical_name(n) for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in INSTRUMENTS]
    if unknown or not names:
        raise UserError(
            f"--domains: unknown instrument {', '.join(unknown) or '(none)'}; choose from {', '.join(INSTRUMENTS)}"
        )
    return list(dict.fromkeys(names))
