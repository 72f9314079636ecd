#!/usr/bin/env python3
"""`python train.py PREP --out RUN ...` is `umt train PREP --out RUN ...`."""

import sys

from umt.cli import run

if __name__ == "__main__":
    run(["train", *sys.argv[1:]])
