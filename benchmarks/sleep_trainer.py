"""The overhead benchmark's script-mode trainer: sleep, then print one objective line.

It imports only `sys` and `time`, so its process costs a Python start-up and nothing of its
own: what the benchmark then measures over the sleep is the tuner's overhead. Arguments come
as SageMaker passes hyperparameters, `--name value`; `--sleep` is the seconds to sleep, and
`--x`/`--y` (in [0, 1]) shape the objective so a searcher has something to find.
"""

import sys
import time


def main(argv: list[str]) -> None:
    args = dict(zip(argv[::2], argv[1::2], strict=False))
    time.sleep(float(args.get("--sleep", 1.0)))
    x, y = float(args.get("--x", 0.5)), float(args.get("--y", 0.5))
    print(f"validation: accuracy={1.0 - (x - 0.3) ** 2 - (y - 0.6) ** 2:.6f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
