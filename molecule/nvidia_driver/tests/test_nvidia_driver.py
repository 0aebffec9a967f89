"""State after converge, idempotence, check mode and every bad input (side_effect): one table per host."""

DRIVER = {"nvidia-driver": "580.159.04-1", "nvidia-kernel-open-dkms": "580.159.04-1", "nvidia-smi": "580.159.04-1"}
FABRIC = {"nvidia-fabricmanager-580": "580.159.04-1", "libnvidia-nscq-580": "580.159.04-1"}
NONE = {}

EXPECTED = {
    "fs-prereq-driver-pcie": {"driver": NONE, "fabric": NONE},
    "fs-prereq-driver-hgx": {"driver": NONE, "fabric": FABRIC},
    "fs-prereq-driver-install": {"driver": DRIVER, "fabric": NONE},
}
ALL = set(DRIVER) | set(FABRIC)


def _expected(host):
    return EXPECTED[host.backend.get_hostname()]


def _installed(host):
    out = host.check_output(
        "dpkg-query --show --showformat='${db:Status-Status} ${Package} ${Version}\\n' "
        + " ".join(sorted(ALL))
        + " 2>/dev/null || true"
    )
    return {
        name: version
        for status, name, version in (line.split() for line in out.splitlines() if line.count(" ") == 2)
        if status == "installed"
    }


def test_exactly_the_pinned_packages_and_nothing_else(host):
    want = {**_expected(host)["driver"], **_expected(host)["fabric"]}
    # 580.172.08 is in the repository and newer: only an exact pin gives 580.159.04.
    assert _installed(host) == want


def test_pinned_packages_are_held(host):
    want = {**_expected(host)["driver"], **_expected(host)["fabric"]}
    held = set(host.check_output("apt-mark showhold").split())
    assert held == set(want)


def test_apt_upgrade_would_not_move_them(host):
    simulated = host.check_output("apt-get --simulate --with-new-pkgs upgrade")
    for package in ALL:
        assert f"Inst {package} " not in simulated


def test_unattended_upgrades_blacklist(host):
    dump = host.check_output("apt-config dump Unattended-Upgrade::Package-Blacklist")
    entries = [
        line.split(" ", 1)[1].strip('";')
        for line in dump.splitlines()
        if line.startswith("Unattended-Upgrade::Package-Blacklist:: ")
    ]
    want = []
    if _expected(host)["driver"]:
        want += ["nvidia-", "libnvidia-", "cuda-drivers", "xserver-xorg-video-nvidia"]
    if _expected(host)["fabric"]:
        want += ["^nvidia-fabricmanager-580$", "^libnvidia-nscq-580$"]
    assert entries == want


def test_nouveau_blacklisted_only_where_installed(host):
    conf = host.file("/etc/modprobe.d/blacklist-nouveau.conf")
    if _expected(host)["driver"]:
        assert conf.content_string.splitlines()[1:] == ["blacklist nouveau", "options nouveau modeset=0"]
        assert conf.mode == 0o644
    else:
        assert not conf.exists


def test_fabric_manager_service(host):
    service = host.service("nvidia-fabricmanager")
    if _expected(host)["fabric"]:
        assert service.is_enabled
        assert service.is_running
    else:
        assert not host.file("/lib/systemd/system/nvidia-fabricmanager.service").exists
