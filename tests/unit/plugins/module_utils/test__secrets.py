"""One rule for every secret: what is refused (never echoed), and how each file format writes what passes."""

from __future__ import annotations

import pytest
import yaml

from ansible_collections.fleetserve.minimax.plugins.module_utils import _secrets

pytestmark = pytest.mark.unit

# Hostile but valid: each would break a naive writer of one of the file formats.
HOSTILE = [
    'a"b',
    "$HOME",
    "back\\slash",
    "100%",
    "with space",
    "'single'",
    "#hash",
    "${PATH}x",
    "`id`",
    "tail\\",
    "=eq",
]
SECRET = "sk-TOPSECRET"


@pytest.mark.parametrize(
    "value, what",
    [
        (SECRET + "\nLD_PRELOAD=/tmp/x.so", "a newline at position 13"),
        (SECRET + "\r", "a carriage return"),
        (SECRET + "\x00", "a NUL byte"),
        ("\t" + SECRET, "a tab at position 1"),
        (SECRET + "\x7f", "a control character"),
        (SECRET + "\u00e9", "a non-ASCII character"),
        (" " + SECRET, "starts or ends with a space"),
        (SECRET + " ", "starts or ends with a space"),
    ],
)
def test_a_secret_that_could_break_a_file_is_refused_without_echo(value, what):
    with pytest.raises(_secrets.SecretError) as refused:
        _secrets.check_secret("fleetserve_api_key", value)
    message = str(refused.value)
    assert message.startswith("fleetserve_api_key ") and what in message
    assert "TOPSECRET" not in message


@pytest.mark.parametrize("writer", ["docker", "systemd", "yaml", "raw"])
def test_every_writer_refuses_before_writing(writer):
    write = {
        "docker": lambda v: _secrets.docker_env_line("K", v, "fleetserve_api_key"),
        "systemd": lambda v: _secrets.systemd_env_line("K", v, "fleetserve_api_key"),
        "yaml": lambda v: _secrets.yaml_config({"api-key": v}, {"api-key": "fleetserve_api_key"}),
        "raw": lambda v: _secrets.key_file(v, "fleetserve_api_key"),
    }[writer]
    with pytest.raises(_secrets.SecretError, match="^fleetserve_api_key holds a newline"):
        write("a\nb")


def test_a_non_string_is_refused():
    with pytest.raises(_secrets.SecretError, match="must be a string"):
        _secrets.check_secret("fleetserve_api_key", 12345)


@pytest.mark.parametrize("key", HOSTILE)
def test_writers_keep_every_byte(key):
    assert _secrets.docker_env_line("K", key) == f"K={key}\n"  # docker: verbatim to the end of the line
    assert yaml.safe_load(_secrets.yaml_config({"api-key": key})) == {"api-key": key}
    assert _secrets.key_file(key) == key + "\n"
    # systemd's double-quote rules (checked against systemd itself in tests/integration/test_secret_bytes.py)
    quoted = _secrets.systemd_quote(key)
    unescaped, i = [], 1
    while i < len(quoted) - 1:
        if quoted[i] == "\\" and quoted[i + 1] in '\\"`$':
            unescaped.append(quoted[i + 1])
            i += 2
        else:
            assert quoted[i] not in '"`$', quoted
            unescaped.append(quoted[i])
            i += 1
    assert "".join(unescaped) == key


@pytest.mark.parametrize("value", ["true", "0x1f", "~", "null", "1e3", "- a", "{a: b}"])
def test_yaml_reads_back_a_string_whatever_it_looks_like(value):
    assert yaml.safe_load(_secrets.yaml_config({"api-key": value})) == {"api-key": value}


@pytest.mark.parametrize(
    "host, keyed, allowed, refused",
    [
        ("0.0.0.0", False, False, True),
        ("::", False, False, True),
        ("10.0.0.5", False, False, True),
        ("gpu-1.example", False, False, True),
        ("0.0.0.0", True, False, False),
        ("0.0.0.0", False, True, False),
        ("127.0.0.1", False, False, False),
        ("127.0.0.2", False, False, False),
        ("::1", False, False, False),
        ("[::1]", False, False, False),
        ("localhost", False, False, False),
    ],
)
def test_exposure(host, keyed, allowed, refused):
    if refused:
        with pytest.raises(_secrets.SecretError, match=f"would listen on {host} without an API key") as exc:
            _secrets.check_exposure("The router", host, keyed, allowed, "fleetserve_api_key")
        assert "fleetserve_allow_unauthenticated: true" in str(exc.value) and "fleetserve_api_key" in str(exc.value)
    else:
        _secrets.check_exposure("The router", host, keyed, allowed, "fleetserve_api_key")
