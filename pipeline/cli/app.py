"""``pleura app``: start the Streamlit app (:func:`pipeline.app.launch.launch_app`)."""

from __future__ import annotations

import argparse
import os

from pipeline.cli._common import EXIT_OK


def cmd_app(args: argparse.Namespace) -> int:
    from pipeline.app.launch import launch_app

    launch_app(port=args.port, address=args.address)
    return EXIT_OK  # pragma: no cover - only reached when the exec is replaced (tests)


def add_app(sub: argparse._SubParsersAction) -> None:
    a = sub.add_parser("app", help="start the Streamlit app")
    a.add_argument("--port", type=int, default=int(os.environ.get("PLEURA_PORT", "8501")))
    a.add_argument("--address", default=os.environ.get("PLEURA_ADDRESS", "localhost"))
    a.set_defaults(func=cmd_app)
