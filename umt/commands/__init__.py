"""The subcommands of `umt`, in the order `umt --help` lists them: data, training, translation,
evaluation, sharing, tokens, steering, the page."""

from umt.commands import (
    app,
    evaluate,
    export,
    generate,
    judge,
    lm,
    make_bench,
    prepare,
    probe,
    tokenizer,
    train,
    translate,
)

COMMANDS = [prepare, make_bench, train, translate, judge, evaluate, export, tokenizer, lm, generate, probe, app]
