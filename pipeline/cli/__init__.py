"""The ``pleura`` command: argument parsing only; every command calls one library function and
prints its result. Exit codes: 0 ok, 1 some batch cases failed, 2 a user error (bad input or
setting: one sentence, no traceback), 3 an unexpected internal error (``--debug`` re-raises).
"""
