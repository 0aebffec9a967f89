#!/usr/bin/python
# Copyright: fleetserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: openai_endpoint_info
short_description: Prove that an OpenAI-compatible LLM endpoint can actually serve
version_added: 0.1.0
description:
  - Waits for an endpoint under one deadline, then verifies it in stages and fails at the first
    stage that does not hold. Nothing on the target changes.
  - C(tcp) the port accepts connections.
  - C(health) the engine is ready (O(engine=vllm) C(/health) 200; O(engine=sglang) C(/health) 503
    means warming up, 200 ready). TCP and health are polled every O(sleep) seconds.
  - C(models) C(/v1/models) lists O(served_model_name) (sent with O(api_key)).
  - C(auth) when O(api_key) is set, C(/v1/models) without it answers 401.
  - C(chat) the MiniMax guides' chat request (system and user content as lists of text parts)
    returns a non-empty choice.
  - C(shape) the reply has the shape of the engine's reasoning parser (O(expect_reasoning)).
  - C(tool_call) optionally, a C(get_weather) tool call round trip.
  - C(stream) optionally, a streamed reply, measuring time to first token and tokens per second;
    streams may end with or without a C(data) C([DONE]) event.
  - Only node 0 of a multi-node engine serves the API (SGLang workers answer C(/health) with a dummy
    200), so point O(base_url) at node 0; the C(fleetserve.minimax.verify) role does that.
author: fleetserve maintainers (@fleetserve)
extends_documentation_fragment:
  - fleetserve.minimax.openai_endpoint
attributes:
  check_mode:
    support: full
    description: Runs the same read-only requests in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to diff.
  idempotent:
    support: full
    description: Only reads; sends chat requests that leave no state on the server.
options:
  served_model_name:
    description: The model name the engine serves (its C(--served-model-name)).
    type: str
    required: true
  engine:
    description:
      - How to read the health endpoint. V(generic) treats any non-200 as not ready.
    type: str
    choices: [vllm, sglang, generic]
    default: generic
  health_path:
    description: Path of the health route.
    type: str
    default: /health
  timeout:
    description:
      - One deadline in seconds for everything, the wait for readiness included. Size it to the
        model load time.
      - Range 0.1 to 604800.0.
    type: float
    default: 600
  sleep:
    description: Seconds between readiness polls; it bounds how late readiness is noticed. Range 0.01 to 5.0.
    type: float
    default: 0.2
  expect_reasoning:
    description:
      - Output shape of the reasoning parser.
      - V(append_think) C(content) carries C(</think>) (SGLang C(minimax-append-think), vLLM
        C(minimax_m2_append_think)).
      - V(separate) C(reasoning_content) is non-empty and C(content) has no C(<think>) (SGLang
        C(minimax), vLLM C(minimax_m2)).
      - V(none) no shape check beyond a non-empty reply.
    type: str
    choices: [none, append_think, separate]
    default: none
  max_tokens:
    description: C(max_tokens) of each chat request; reasoning models need room to close C(</think>).
      Range 1 to 1048576.
    type: int
    default: 1024
  tool_call:
    description: Also check a tool call round trip (C(tool_calls[0].function.name) and JSON arguments).
    type: bool
    default: false
  stream:
    description: Also check a streamed reply and measure it.
    type: bool
    default: false
  stream_idle_timeout:
    description: Seconds without any stream data after which the stream counts as stalled. Range 0.1 to 86400.0.
    type: float
    default: 30
  skip_checks:
    description:
      - Checks of what the model wrote to leave out, for a model that cannot pass them, such as a random-weight
        test checkpoint (it never closes C(</think>) nor calls a tool).
      - V(shape) the chat reply is still required, only its reasoning shape (O(expect_reasoning)) is not checked.
      - V(tool_call) with O(tool_call=true) the tool request is still sent and must answer one choice, but no
        tool call is required and no follow-up turn is sent.
      - Skipped stages appear in RV(stages) with C(skipped=true) and are listed in RV(skipped).
    type: list
    elements: str
    choices: [shape, tool_call]
    default: []
notes:
  - HTTP goes through C(ansible.module_utils.urls); the target needs no extra Python packages.
  - Proxies are not used; the endpoint is expected on the host or its network.
seealso:
  - module: ansible.builtin.uri
  - module: ansible.builtin.wait_for
"""

EXAMPLES = r"""
- name: Verify | Prove the SGLang endpoint serves MiniMax-M2.5 with append-think output
  fleetserve.minimax.openai_endpoint_info:
    base_url: http://127.0.0.1:8000
    api_key: "{{ fleetserve_api_key }}"
    served_model_name: MiniMax-M2.5
    engine: sglang
    expect_reasoning: append_think
    tool_call: true
    stream: true
    timeout: 1800
  no_log: "{{ fleetserve_secure_logging | default(true) }}"
  register: verify_result

- name: Verify | Wait for a plain OpenAI-compatible server
  fleetserve.minimax.openai_endpoint_info:
    base_url: http://127.0.0.1:18080
    served_model_name: local-org/tiny-llama
    timeout: 60
"""

RETURN = r"""
elapsed_s:
  description: Seconds from the start to the end of the last stage (also on failure).
  returned: always
  type: float
  sample: 42.13
stages:
  description:
    - Each stage that passed, in order, with C(elapsed_s) and details (C(attempts), C(status)).
    - C(tcp) counts from the start, C(health) from the moment TCP opened.
  returned: always
  type: dict
  sample: {"tcp": {"elapsed_s": 0.01, "attempts": 1}, "health": {"elapsed_s": 31.2, "status": 200, "attempts": 157}}
models:
  description: Model ids listed by C(/v1/models).
  returned: success
  type: list
  elements: str
  sample: ["MiniMax-M2.5"]
reply:
  description: Excerpts of the chat reply.
  returned: success
  type: dict
  sample: {"content": "<think>The user asks...</think>The Los Angeles Dodgers.", "reasoning_content": null,
           "finish_reason": "stop"}
tool_call:
  description: The parsed tool call and the finish reason of the follow-up turn.
  returned: success and O(tool_call=true)
  type: dict
  sample: {"name": "get_weather", "arguments": {"location": "San Francisco"}, "final_finish_reason": "stop"}
stream:
  description: Streaming measurements.
  returned: success and O(stream=true)
  type: dict
  sample: {"ttft_s": 0.21, "tokens": 96, "tokens_counted_from": "usage", "tokens_per_s": 58.3, "chunks": 98,
           "done_marker": true, "finish_reason": "stop", "elapsed_s": 1.85}
skipped:
  description: The stages whose checks O(skip_checks) left out.
  returned: success and O(skip_checks) set
  type: list
  elements: str
  sample: ["shape", "tool_call"]
reason:
  description:
    - Stable failure code, for example V(tcp_unreachable), V(health_warming_up), V(model_not_listed),
      V(shape_mismatch); V(invalid_option) when an option was rejected before any request.
  returned: failure
  type: str
  sample: health_warming_up
stage:
  description: The stage that failed.
  returned: failure
  type: str
  sample: health
url:
  description: The URL of the failing request.
  returned: failure
  type: str
  sample: http://127.0.0.1:8000/health
status:
  description: HTTP status of the failing answer, when there was one.
  returned: failure
  type: int
  sample: 503
body:
  description: The start of the failing answer's body.
  returned: failure
  type: str
  sample: '{"error": "Unauthorized"}'
"""

from ansible_collections.fleetserve.minimax.plugins.module_utils import _secrets
from ansible_collections.fleetserve.minimax.plugins.module_utils._bounds import BoundedModule
from ansible_collections.fleetserve.minimax.plugins.module_utils._openai import (
    BOUNDS as OPTION_BOUNDS,
    ENDPOINT_ARGSPEC,
    ENGINES,
    REASONING_SHAPES,
    SKIPPABLE_CHECKS,
    HttpClient,
    Verifier,
    VerifyError,
    check_options,
)

# The ranges DOCUMENTATION states; check_options enforces them before the first request.
BOUNDS = OPTION_BOUNDS

ARGUMENT_SPEC = dict(
    ENDPOINT_ARGSPEC,
    served_model_name=dict(type="str", required=True),
    engine=dict(type="str", choices=list(ENGINES), default="generic"),
    health_path=dict(type="str", default="/health"),
    timeout=dict(type="float", default=600.0),
    sleep=dict(type="float", default=0.2),
    expect_reasoning=dict(type="str", choices=list(REASONING_SHAPES), default="none"),
    max_tokens=dict(type="int", default=1024, no_log=False),  # a count of tokens, not a secret
    tool_call=dict(type="bool", default=False),
    stream=dict(type="bool", default=False),
    stream_idle_timeout=dict(type="float", default=30.0),
    skip_checks=dict(type="list", elements="str", choices=list(SKIPPABLE_CHECKS), default=[]),
)


def verify(module):
    try:
        base_url = check_options(module.params)[0]
        _secrets.check_secret("api_key (fleetserve_api_key)", module.params["api_key"] or "")
    except ValueError as exc:
        module.fail_json(msg=str(exc), reason="invalid_option", stage="options", stages={}, elapsed_s=0.0)
    client = HttpClient(base_url, module.params["api_key"], module.params["validate_certs"], module.params["ca_path"])
    verifier = Verifier(module.params, client)
    try:
        result = verifier.run()
    except VerifyError as exc:
        module.fail_json(
            msg="%s stage failed: %s" % (exc.stage, exc.message),
            reason=exc.reason,
            stage=exc.stage,
            url=exc.url,
            status=exc.status,
            body=exc.body,
            elapsed_s=verifier.elapsed(),
            stages=verifier.stages,
        )
    module.exit_json(changed=False, **result)


def main():
    module = BoundedModule(BOUNDS, argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    verify(module)


if __name__ == "__main__":
    main()
