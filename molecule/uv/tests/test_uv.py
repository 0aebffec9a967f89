"""uv is installed at the pinned version by either method, and bad input left nothing behind."""

import pytest

PINNED = "0.13.9"  # roles/uv/defaults/main.yml


def test_uv_runs_at_the_pinned_version(host):
    assert host.check_output("/usr/local/bin/uv --version").split()[1] == PINNED
    assert host.check_output("/usr/local/bin/uvx --version").split()[1] == PINNED


def test_uv_is_on_path_for_unprivileged_users(host):
    assert host.run("su nobody -s /bin/sh -c 'uv --version'").rc == 0


def test_uv_can_build_a_venv(host):
    out = host.check_output("uv venv --python /usr/bin/python3 /tmp/probe-venv >/dev/null 2>&1 && /tmp/probe-venv/bin/python -c 'print(42)'")
    assert out == "42"


@pytest.mark.parametrize("name", ["uv", "uvx"])
def test_links_point_at_the_install(host, name):
    link = host.file(f"/usr/local/bin/{name}")
    assert link.is_symlink
    if host.backend.get_hostname() == "fs-uv-release":
        assert link.linked_to == f"/opt/fleetserve/uv/{PINNED}/{name}"
    else:
        assert link.linked_to == f"/opt/fleetserve/uv/venv/bin/{name}"


def test_failed_verification_left_nothing(host):
    if host.backend.get_hostname() != "fs-uv-release":
        pytest.skip("the release host only")  # the pypi host never ran the side effect
    assert not host.file("/opt/fleetserve/uv/9.9.9").exists
    assert not host.file("/opt/fleetserve/uv/9.9.8").exists
    assert not host.file("/opt/fleetserve/uv/downloads/uv-x86_64-unknown-linux-gnu-9.9.9.tar.gz").exists
