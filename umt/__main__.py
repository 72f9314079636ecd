from umt.cli import run

run()
