#!/usr/bin/env python3
"""`python train.py PREP --out RUN ...` is `umt train PREP --out RUN ...`."""

import sys

from umt.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["train", *sys.argv[1:]]))
