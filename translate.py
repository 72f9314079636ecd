#!/usr/bin/env python3
"""`python translate.py --model CKPT --to violin in.wav -o OUT` is `umt translate ...`."""

import sys

from umt.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["translate", *sys.argv[1:]]))
