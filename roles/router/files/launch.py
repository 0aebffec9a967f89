"""Start the SGLang Model Gateway with its API key taken from the environment.

The gateway reads --api-key only from its command line, which every local user can read in `ps` and
/proc/<pid>/cmdline. systemd loads FLEETSERVE_ROUTER_API_KEY from a root-only 0600 EnvironmentFile;
this launcher removes it from the environment and hands it to the gateway's own argument parser inside
the process, so the key never appears in argv, the unit, or `systemctl cat`.
"""

import os
import sys

from smg.launch_router import launch_router, parse_router_args


def main():
    key = os.environ.pop("FLEETSERVE_ROUTER_API_KEY", "")
    argv = sys.argv[1:] + (["--api-key", key] if key else [])
    launch_router(parse_router_args(argv))


if __name__ == "__main__":
    main()
