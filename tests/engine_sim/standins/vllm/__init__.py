"""Stand-in for the real `vllm` package in tests: its entrypoints run engine-sim."""

try:
    from importlib.metadata import version as _version

    __version__ = _version("vllm")
except Exception:  # noqa: BLE001 - not installed as a wheel (e.g. copied into the test image)
    import os

    __version__ = os.environ.get("FLEETSERVE_SIM_VERSION", "0.0.0")
