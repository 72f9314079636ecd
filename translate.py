#!/usr/bin/env python3
"""`python translate.py --model CKPT --to violin in.wav -o OUT` is `umt translate ...`."""

import sys

from umt.cli import run

if __name__ == "__main__":
    run(["translate", *sys.argv[1:]])
