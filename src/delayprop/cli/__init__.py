"""Command line: ``delayprop <command> ...``.

Each command lives in its own module with ``register(subparsers)``, which adds a sub-parser whose
``func`` runs the command and returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main", "build_parser"]

COMMANDS = ("train", "eval", "plot", "bench", "data", "export")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="delayprop",
        description="Train spiking networks with learnable delays and exact event-based gradients.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"delayprop.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, ImportError) as err:  # bad input, files, a missing extra
        print(f"delayprop {args.command}: error: {err}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as err:
        if not isinstance(err, MemoryError) and "allocate" not in str(err):
            raise
        print(f"delayprop {args.command}: error: out of memory ({err}); use smaller sizes "
              "(model.hidden, batch sizes) or a larger dt", file=sys.stderr)  # fmt: skip
        return 2


if __name__ == "__main__":
    sys.exit(main())
