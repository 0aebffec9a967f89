"""engine-sim: a GPU-free stand-in for the vLLM and SGLang OpenAI-compatible servers.

A test tool (in the spirit of llm-d's inference-sim): it accepts each engine's own command line,
mirrors each engine's readiness behaviour, and answers the OpenAI routes with MiniMax output shapes
(``<think>`` tags, ``<minimax:tool_call>`` XML parsed into ``tool_calls``). Standard library only, so it
runs inside the lab's plain Debian image and inside a bare venv.
"""

__version__ = "1.0.0"
