# Copyright: fleetserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options shared by modules that talk to an OpenAI-compatible endpoint."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  base_url:
    description:
      - Root URL of the server, without C(/v1), for example C(http://127.0.0.1:8000).
      - The module adds C(/health) and C(/v1/...) itself.
    type: str
    required: true
  api_key:
    description:
      - The key the engine was started with (C(--api-key)), sent as a bearer token in the C(Authorization) header.
      - When set, the module also checks that a request without it gets HTTP 401.
      - Never logged.
    type: str
  validate_certs:
    description:
      - Verify TLS certificates for C(https) URLs.
    type: bool
    default: true
  ca_path:
    description:
      - PEM bundle of the certificate authorities to trust for an C(https) O(base_url), instead of the system
        store; a path on the machine that runs the module.
      - A certificate it did not sign, or one that does not name the address of O(base_url), fails at once
        with reason C(tls_untrusted).
      - Only with an C(https) O(base_url) and O(validate_certs=true).
    type: path
  request_timeout:
    description:
      - Seconds one HTTP request may take (capped by what is left of O(timeout)).
      - Range 0.1 to 86400.0.
    type: float
    default: 120
"""
