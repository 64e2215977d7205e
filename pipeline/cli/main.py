"""``pleura``: the command-line interface — argument parsing over the pipeline's library functions.

Commands live in one module per group (:mod:`pipeline.cli.scoring`, :mod:`pipeline.cli.training`,
:mod:`pipeline.cli.app`, :mod:`pipeline.cli.pacs`); each parses its arguments, calls one library function and prints the
result. Every command prints one ``error: …`` line on stderr and exits non-zero for a problem the
user can fix (exit 2), never a traceback (``--debug`` shows one). ``pleura batch`` exits 1 when
any case failed (their rows say why) and 0 when all were scored.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from pipeline import __version__
from pipeline.cli import app, pacs, scoring, segment, training
from pipeline.cli._common import EXIT_CASES_FAILED, EXIT_INPUT, EXIT_INTERNAL, EXIT_OK
from pipeline.core.env import Settings
from pipeline.core.env import settings as env_settings
from pipeline.core.textsafe import printable

__all__ = ["EXIT_OK", "EXIT_CASES_FAILED", "EXIT_INPUT", "EXIT_INTERNAL", "build_parser", "main"]

_COMMANDS = (scoring.add_score, segment.add_segment, scoring.add_batch, training.add_synth, training.add_features,
             training.add_fit, scoring.add_verify, scoring.add_sign, app.add_app, training.add_train,
             training.add_evaluate, pacs.add_pacs)
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
    terminated = []

    def on_sigterm(signum: int, _frame: object) -> None:
        terminated.append(signum)
        raise KeyboardInterrupt  # unwinds like Ctrl-C: workers stopped, results so far kept

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_sigterm)
    try:
        return int(args.func(args))
    except (PleuraRiskError, ValueError) as err:  # ConfigError is both; argparse-level values too
        print(f"error: {printable(str(err))}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        resume = " (finished cases are kept: run the same command again to resume)" if args.command == "batch" else ""
        print(f"interrupted{resume}", file=sys.stderr)
        return 128 + signal.SIGTERM if terminated else 130
    except Exception as exc:  # noqa: BLE001
        if args.debug:
            raise
        # an OSError's text names its file, which may carry a patient's name: keep only the reason
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else printable(str(exc))
        print(f"internal error ({type(exc).__name__}): {detail} — rerun with --debug for details", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
