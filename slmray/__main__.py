"""`python -m slmray`: no command of its own; one line naming the commands (a new user's first try)."""

import sys

COMMANDS = ("tune", "train", "analysis", "recommend", "data", "cluster", "predict.profile")

if __name__ == "__main__":
    print(f"error: slmray's commands are python -m slmray.{{{','.join(COMMANDS)}}} (each has --help); "
          "start with: python -m slmray.tune search_spaces/smoke.py", file=sys.stderr)
    sys.exit(2)
