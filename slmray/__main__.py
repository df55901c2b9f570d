"""`python -m slmray`: no command of its own; one line naming the commands (a new user's first try).
Asked for help (`--help`, `-h`) it is the answer, on stdout with exit 0; anything else is an error."""

import sys

COMMANDS = ("tune", "train", "analysis", "recommend", "data", "cluster", "predict.profile")

if __name__ == "__main__":
    names = (f"slmray's commands are python -m slmray.{{{','.join(COMMANDS)}}} (each has --help); "
             "start with: python -m slmray.tune search_spaces/smoke.py")
    if sys.argv[1:] in (["--help"], ["-h"]):
        print(names)
        sys.exit(0)
    print(f"error: {names}", file=sys.stderr)
    sys.exit(2)
