"""State after converge, idempotence, check mode and every bad input (side_effect)."""

import re

PINS = {
    "datacenter-gpu-manager-4-core": "1:4.6.0-1",
    "datacenter-gpu-manager-4-cuda13": "1:4.6.0-1",
    "datacenter-gpu-manager-exporter": "4.8.3-1",
}
COUNTERS = "/etc/dcgm-exporter/fleetserve-counters.csv"


def _installed(host):
    out = host.check_output(
        "dpkg-query --show --showformat='${db:Status-Status} ${Package} ${Version}\\n' 'datacenter-gpu-manager-*'"
    )
    return {name: version for status, name, version in (line.split() for line in out.splitlines()) if status == "installed"}


def _metrics(host):
    return host.check_output("curl -fsS http://127.0.0.1:9400/metrics")


def test_exactly_the_paired_packages_at_the_pin(host):
    # 4.6.1 / 4.8.4 are in the repository and newer: only exact pins give the 4.6.0-4.8.3 pair.
    assert _installed(host) == PINS


def test_the_pair_is_held(host):
    assert set(host.check_output("apt-mark showhold").split()) == set(PINS)
    simulated = host.check_output("apt-get --simulate --with-new-pkgs upgrade")
    assert not [p for p in PINS if f"Inst {p} " in simulated]


def test_kept_out_of_unattended_upgrades(host):
    dump = host.check_output("apt-config dump Unattended-Upgrade::Package-Blacklist")
    assert 'Unattended-Upgrade::Package-Blacklist:: "^datacenter-gpu-manager-";' in dump


def test_host_engine_and_exporter_run(host):
    for unit in ("nvidia-dcgm", "nvidia-dcgm-exporter"):
        assert host.service(unit).is_enabled
        assert host.service(unit).is_running
    # The packaged unit, with only its command line replaced: our counters, port and the host engine.
    cmdline = host.check_output("systemctl show -p ExecStart --value nvidia-dcgm-exporter")
    assert f"/usr/bin/dcgm-exporter -f {COUNTERS} -a :9400 -r localhost:5555" in cmdline
    assert host.socket("tcp://0.0.0.0:9400").is_listening


def test_the_port_serves_the_listed_metrics_for_this_hosts_gpus(host):
    text = _metrics(host)
    families = set(re.findall(r"(?m)^# TYPE (DCGM_FI_\w+) ", text))
    listed = {line.split(",")[0] for line in host.file(COUNTERS).content_string.splitlines() if line and line[0] != "#"}
    for field in (
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_FB_USED",
        "DCGM_FI_DEV_GPU_TEMP",
        "DCGM_FI_DEV_POWER_USAGE",
        "DCGM_FI_DEV_XID_ERRORS",
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
        "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL",
    ):
        assert field in listed and field in families
    # Served = the role's CSV: NVIDIA's defaults that it leaves out (encoder, vGPU licence) are not.
    assert families == listed
    assert "DCGM_FI_DEV_ENC_UTIL" not in text
    # One sample per GPU of this host, labelled with the UUIDs its nvidia-smi reports.
    uuids = set(re.findall(r"<uuid>(GPU-[0-9a-f-]+)</uuid>", host.check_output("nvidia-smi -q -x")))
    assert len(uuids) == 2
    assert set(re.findall(r'DCGM_FI_DEV_GPU_UTIL\{gpu="\d",UUID="([^"]+)"', text)) == uuids
