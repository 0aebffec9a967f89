"""After converge (twice) and a check-mode run, the preflight role has changed nothing on the host."""


def test_nothing_written_after_prepare(host):
    changed = host.run(
        "find /etc /srv /usr/local /opt /var/lib -xdev -newer /var/tmp/fs-preflight-prepared "
        "-not -path '/var/lib/systemd/*' -not -path '/etc/ld.so.cache' -print"
    )
    assert changed.rc == 0
    assert changed.stdout.strip() == ""


def test_port_still_free(host):
    assert not host.socket("tcp://0.0.0.0:8000").is_listening


def test_stub_replays_the_recording(host):
    assert host.run("nvidia-smi -q -x").stdout.count("<product_name>NVIDIA H200</product_name>") == 2
