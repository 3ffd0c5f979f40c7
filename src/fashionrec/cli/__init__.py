"""The ``fashionrec`` command line: small composable sub-commands over one index directory.

Each sub-command lives in its own module ``fashionrec/cli/<name>_cmd.py`` with a ``register(subparsers)``
function; adding a command is adding a module, nothing else. User mistakes (``FashionrecError``) print one line on stderr and exit 2; only
real bugs keep their traceback. Every ``FASHIONREC_*`` variable that is set is checked before anything else
(``fashionrec.config.check_environment``), so a bad one is such a line too, naming the variable, whatever the command.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sqlite3
import sys
from collections.abc import Sequence

from fashionrec import __version__, runtime
from fashionrec.config import check_environment, read_runtime
from fashionrec.errors import FashionrecError


def _command_modules() -> list[str]:
    """Every ``*_cmd`` module of this package, the core ones first so ``--help`` lists them in pipeline order."""
    core = ["index_cmd", "recommend_cmd", "info_cmd"]
    found = sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.endswith("_cmd"))
    return core + [m for m in found if m not in core]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fashionrec", description="Visual fashion recommendation.")
    parser.add_argument("--version", action="version", version=f"fashionrec {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _command_modules():
        importlib.import_module(f"fashionrec.cli.{name}").register(sub)
    return parser


class _StderrLines(logging.StreamHandler):  # type: ignore[type-arg]
    """One line per record on the current ``sys.stderr`` (looked up per record: it may have been replaced)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)

    def format(self, record: logging.LogRecord) -> str:
        return f"fashionrec: {record.levelname.lower()}: {record.getMessage()}"


def log_to_stderr(level: int = logging.WARNING) -> None:
    """Show fashionrec's own log records (its module loggers, ``fashionrec.*``) on stderr, one line each; other
    libraries' logging is left as it is configured."""
    logger = logging.getLogger("fashionrec")
    if not any(isinstance(h, _StderrLines) for h in logger.handlers):
        handler = _StderrLines()
        handler.setLevel(level)  # the handler filters; the loggers' own levels stay as the application set them
        logger.addHandler(handler)


def main(argv: Sequence[str] | None = None) -> int:
    log_to_stderr()
    try:
        check_environment()
        runtime.configure(read_runtime())  # FASHIONREC_BACKEND / _THREADS: read here once, for the whole process
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except FashionrecError as exc:
        print(f"fashionrec: error: {exc}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as exc:  # damage inside the index database, found only when a page is read
        print(f"fashionrec: error: the index database is damaged ({exc}); rebuild it with `fashionrec index`",
              file=sys.stderr)
        return 2
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        print(f"fashionrec: error: {exc.strerror}: {exc.filename}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fashionrec: interrupted; finished batches are saved, re-run the same command to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
