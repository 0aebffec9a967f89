"""Stand-in for the real `sglang` package in tests: `python -m sglang.launch_server` runs engine-sim."""

try:
    from importlib.metadata import version as _version

    __version__ = _version("sglang")
except Exception:  # noqa: BLE001 - running from a source tree, not an installed wheel
    __version__ = "0.0.0"
