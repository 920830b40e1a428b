"""How long the two test tiers take on this machine: `python3 dev.py test` (the fast
tier) and `python3 dev.py test --all` (everything, as CI runs it), each timed from the
command to its exit with the environment already installed.

    python benchmarks/test_tiers.py --out docs/results/test_tiers.json
    python benchmarks/test_tiers.py --tiers fast --out docs/results/test_tiers.json
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
TIERS = {"fast": ["test", "-q"], "all": ["test", "--all", "-q"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiers", nargs="+", choices=sorted(TIERS), default=["fast", "all"])
    parser.add_argument("--out", default="runs/test_tiers.json")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    # A tier measured before is kept when this run does not measure it again.
    result = json.loads(out.read_text()) if out.exists() else {}
    for tier in args.tiers:
        start = time.time()
        run = subprocess.run([sys.executable, str(ROOT / "dev.py"), *TIERS[tier]], cwd=ROOT)
        seconds = time.time() - start
        if run.returncode != 0:
            print(f"the {tier} tier failed (exit {run.returncode}): not recorded")
            return run.returncode
        result[tier] = {"seconds": seconds, "minutes": round(seconds / 60, 1),
                        "command": " ".join(["python3", "dev.py", *TIERS[tier]]),
                        "date": time.strftime("%Y-%m-%d"),
                        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs"}
        print(f"{tier}: {seconds / 60:.1f} min")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
