# Copyright: fleetserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an engine's health answer means, and one way to ask for it.

The one definition of "healthy" in the collection: the engine wait (engine_health_wait), verify
(openai_endpoint_info, through _openai) and the playbooks (filter fleetserve.minimax.health_state) all judge
an HTTP status with health_state.
"""

from __future__ import annotations

from urllib.error import HTTPError

READY, WARMING_UP, FAILING = "ready", "warming_up", "failing"


def health_state(engine, status):
    """'ready', 'warming_up' or 'failing' for a health answer with HTTP ``status`` (None: no answer).

    200 is ready on every engine. SGLang answers 503 until its warm-up generation has finished (and ranks >= 1 of
    a multi-node job answer 200 from a dummy server); vLLM answers 503 when its engine core is dead."""
    if status == 200:
        return READY
    if engine == "sglang" and status == 503:
        return WARMING_UP
    return FAILING


def probe_status(url, timeout=5.0):
    """GET ``url`` once: its HTTP status, or None when nothing answered (refused, reset, timed out)."""
    # Imported here, not at the top: the filter plugin fleetserve.minimax.health_state imports this file, and
    # Ansible imports every filter file of the collection in each worker process that resolves any of its
    # filters. urls (ssl, cryptography, email) cost about 70 ms of CPU per such worker for a function no filter
    # calls. AnsiballZ still finds this import and ships urls with the modules that probe.
    from ansible.module_utils.urls import open_url  # pylint: disable=import-outside-toplevel

    try:
        return open_url(url, method="GET", timeout=timeout, use_proxy=False, validate_certs=False).getcode()
    except HTTPError as exc:
        return exc.code
    except Exception:  # no answer yet: refused, reset, timed out # pylint: disable=broad-exception-caught
        return None
