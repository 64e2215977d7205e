"""``pleura``: the command-line interface — argument parsing over the pipeline's library functions.

Commands live in one module per group (:mod:`pipeline.cli.scoring`, :mod:`pipeline.cli.training`,
:mod:`pipeline.cli.app`); each parses its arguments, calls one library function and prints the
result. Every command prints one ``error: …`` line on stderr and exits non-zero for a problem the
user can fix (exit 2), never a traceback (``--debug`` shows one). ``pleura batch`` exits 1 when
any case failed (their rows say why) and 0 when all were scored.
"""

from __future__ import annotations

import argparse
import sys

from pipeline import __version__
from pipeline.cli import app, scoring, training
from pipeline.cli._common import EXIT_CASES_FAILED, EXIT_INPUT, EXIT_INTERNAL, EXIT_OK
from pipeline.core.env import Settings
from pipeline.core.env import settings as env_settings

__all__ = ["EXIT_OK", "EXIT_CASES_FAILED", "EXIT_INPUT", "EXIT_INTERNAL", "build_parser", "main"]

_COMMANDS = (scoring.add_score, scoring.add_batch, training.add_synth, training.add_features, training.add_fit,
             scoring.add_verify, app.add_app, training.add_train, training.add_evaluate)
"""Sub-command adders, in the order ``pleura --help`` lists them."""


def build_parser(settings: Settings | None = None) -> argparse.ArgumentParser:
    """The ``pleura`` parser; option defaults from ``settings`` (default: the checked ``PLEURA_*`` environment).

    Raises:
        ConfigError: a ``PLEURA_*`` variable is unusable (read only when ``settings`` is None).
    """
    settings = settings or env_settings()
    p = argparse.ArgumentParser(
        prog="pleura",
        description="PleuraRisk: visceral pleural invasion risk from chest CT + tumour ROI + CEA/CA125/age. "
                    "Research use only; not a medical device.",
    )
    p.add_argument("--version", action="version", version=f"pleurarisk {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks for internal errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in _COMMANDS:
        add(sub, settings)
    return p


def main(argv: list[str] | None = None) -> int:
    from pipeline.core.errors import PleuraRiskError

    try:
        parser = build_parser()
    except PleuraRiskError as err:  # an unusable PLEURA_* setting: one line naming the variable
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INPUT
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except PleuraRiskError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INPUT
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001
        if args.debug:
            raise
        print(f"internal error ({type(exc).__name__}): {exc} — rerun with --debug for details", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
