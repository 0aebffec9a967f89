"""Stand-in for a vLLM source checkout (tests): Python code only, the compiled parts come from the image."""

from vllm.version import __version__  # noqa: F401
