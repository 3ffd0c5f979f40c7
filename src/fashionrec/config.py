"""Defaults for every command, each overridable by an environment variable, and what each variable accepts.

Flags win over environment variables, which win over these defaults. Nothing here is mutated at run time:
``env_default`` is read once when a parser is built, so there is no hidden global state.

Every value is checked where it is read: a bad one raises :class:`ConfigError` (a ``FashionrecError``) whose
one-line message names the variable and what it accepts, so the CLI prints one line and exits 2 instead of
failing later with a traceback. An empty value means "unset" only for the variables whose default is empty; for
the others it is refused like any bad value. ``check_environment`` checks every variable that is set, which the
CLI does first, before any sub-command reads anything.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from fashionrec.errors import FashionrecError
from fashionrec.runtime import Runtime

_HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
_INTEGER = re.compile(r"[0-9]{1,12}")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+")
_SHOWN = 60
"""Characters of a bad value quoted back in the error message."""


class ConfigError(FashionrecError):
    """An environment variable holds a value its reader cannot use."""


def _integer(low: int, high: int) -> Callable[[str], bool]:
    return lambda v: bool(_INTEGER.fullmatch(v.strip())) and low <= int(v) <= high


def _number(low: float, high: float) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        try:
            number = float(value)
        except ValueError:
            return False
        return math.isfinite(number) and low <= number <= high

    return check


def _one_of(*choices: str) -> Callable[[str], bool]:
    return lambda v: v in choices


def _printable(value: str) -> bool:
    return bool(value) and value.isprintable() and value.strip() == value


def _host(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:  # a host name, whose last label is not all digits (that would be a mistyped IP address)
        return bool(_HOSTNAME.fullmatch(value)) and not value.rsplit(".", 1)[-1].isdigit()
    return True


def _origins(value: str) -> bool:
    return all(_ORIGIN.fullmatch(o.strip()) or o.strip() == "*" for o in value.split(",") if o.strip())


def _model(value: str) -> bool:
    from fashionrec.embedders import available_models  # here: embedders import this module

    return value in available_models()


def _model_names() -> str:
    from fashionrec.embedders import available_models

    return "one of " + ", ".join(available_models())


@dataclass(frozen=True)
class Variable:
    """One ``FASHIONREC_*`` variable: its default (``""``: none), a check of a set value, and what it accepts."""

    default: str
    check: Callable[[str], bool]
    accepts: str | Callable[[], str]
    secret: bool = False
    """A value never quoted back in an error message (an API key)."""

    def describe(self) -> str:
        return self.accepts if isinstance(self.accepts, str) else self.accepts()


VARIABLES: dict[str, Variable] = {
    "FASHIONREC_INDEX_DIR": Variable("index", _printable, "a directory path (printable, no surrounding spaces)"),
    "FASHIONREC_MODEL": Variable("fashion", _model, _model_names),
    "FASHIONREC_BACKEND": Variable("auto", _one_of("auto", "onnx", "torch"), "one of auto, onnx, torch"),
    "FASHIONREC_PRECISION": Variable("fp32", _one_of("fp32", "int8"), "one of fp32, int8"),
    "FASHIONREC_BATCH_SIZE": Variable("32", _integer(1, 4096), "an integer from 1 to 4096"),
    "FASHIONREC_THREADS": Variable("", _integer(1, 1024), "an integer from 1 to 1024 (unset: the usable CPUs)"),
    "FASHIONREC_STORE": Variable("faiss", _one_of("faiss", "milvus"), "one of faiss, milvus"),
    "FASHIONREC_MILVUS_URI": Variable("", _printable, "a Milvus URI (http://HOST:19530) or a Milvus Lite file"),
    "FASHIONREC_MILVUS_COLLECTION": Variable(
        "fashionrec", lambda v: bool(_IDENTIFIER.fullmatch(v)),
        "a collection name: letters, digits and _, not starting with a digit, at most 255 characters"),
    "FASHIONREC_ENGINE": Variable("local", _one_of("local", "ray"), "one of local, ray"),
    "FASHIONREC_HOST": Variable("127.0.0.1", _host, "an IP address or a host name such as localhost"),
    "FASHIONREC_PORT": Variable("8000", _integer(0, 65535), "an integer from 0 to 65535"),
    "FASHIONREC_MAX_UPLOAD_MB": Variable("10", _number(0.01, 1024), "a number of MiB from 0.01 to 1024"),
    "FASHIONREC_MAX_PIXELS": Variable("40000000", _integer(1, 10**10), "an integer from 1 to 10000000000"),
    "FASHIONREC_CORS_ORIGINS": Variable(
        "", _origins, "comma-separated origins such as https://shop.example (or *)"),
    "FASHIONREC_BODY_TIMEOUT": Variable("60", _number(0.1, 3600), "a number of seconds from 0.1 to 3600"),
    "FASHIONREC_HEADER_TIMEOUT": Variable("10", _number(0.1, 3600), "a number of seconds from 0.1 to 3600"),
    "FASHIONREC_HYBRID_WEIGHT": Variable("0.1", _number(0, 10), "a number from 0 to 10"),
    "FASHIONREC_CONSENSUS_WEIGHT": Variable("0", _number(0, 10), "a number from 0 to 10 (0: off)"),
    "FASHIONREC_CONSENSUS_COLUMN": Variable("", lambda v: not v or _printable(v),
                                            "a metadata column name (empty: the index's label column)"),
    "FASHIONREC_LOCALISE": Variable("0", lambda v: v.strip() in ("0", "1"), "0 or 1"),
    "FASHIONREC_STEER_KIND": Variable("1", lambda v: v.strip() in ("0", "1"), "0 or 1"),
    "FASHIONREC_API_KEY": Variable(
        "", lambda v: _printable(v) and len(v) >= 16,
        "a secret of at least 16 printable characters, no surrounding spaces (unset: the write routes are off)",
        secret=True),
}

DEFAULTS: dict[str, str] = {name: variable.default for name, variable in VARIABLES.items()}


def check_variable(name: str, value: str) -> str:
    """``value`` of variable ``name`` if it is acceptable, else a :class:`ConfigError`."""
    variable = VARIABLES[name]
    if value == "" and variable.default == "":
        return value
    try:
        ok = variable.check(value)
    except (ValueError, OverflowError):
        ok = False
    if not ok:
        shown = value if len(value) <= _SHOWN else value[:_SHOWN] + "..."
        got = f"got {len(value)} characters (not shown)" if variable.secret else f"got {shown!r}"
        raise ConfigError(f"{name} must be {variable.describe()}, {got}")
    return value


def env_default(name: str, environ: Mapping[str, str] | None = None) -> str:
    """The value of ``name`` from ``environ`` (default: the process environment), checked, or its built-in
    default."""
    value = (os.environ if environ is None else environ).get(name)
    return VARIABLES[name].default if value is None else check_variable(name, value)


def check_environment(environ: Mapping[str, str] | None = None) -> None:
    """Check every known variable set in ``environ`` (default: the process environment); the first bad one raises."""
    environ = os.environ if environ is None else environ
    for name in VARIABLES:
        if name in environ:
            check_variable(name, environ[name])


def read_runtime(environ: Mapping[str, str] | None = None) -> Runtime:
    """The process's runtime options from ``FASHIONREC_BACKEND`` and ``FASHIONREC_THREADS`` (else an explicit
    ``OMP_NUM_THREADS``) of ``environ`` (default: the process environment), checked: a bad value is one error
    naming the variable."""
    backend = env_default("FASHIONREC_BACKEND", environ)
    threads = env_default("FASHIONREC_THREADS", environ).strip()
    if not threads:  # OpenMP's own variable is honoured when set explicitly (not one of fashionrec's)
        threads = (os.environ if environ is None else environ).get("OMP_NUM_THREADS", "").strip()
        if threads and not _integer(1, 1024)(threads):
            raise ConfigError(f"OMP_NUM_THREADS must be an integer from 1 to 1024, got {threads!r}")
    return Runtime(backend=backend, threads=int(threads) if threads else None)
