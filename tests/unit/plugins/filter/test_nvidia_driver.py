"""The nvidia_* filters: problem filters return the exact message (or ""), the rest raise AnsibleFilterError."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.fleetserve.minimax.plugins.filter.nvidia_driver import FilterModule

pytestmark = pytest.mark.unit

FILTERS = FilterModule().filters()
MADISON = "nvidia-smi | 580.159.04-1 | file:/srv/fake-nvidia-apt ./ Packages\nnvidia-driver | 580.159.04-1 | file:/srv/fake-nvidia-apt ./ Packages\n"


def test_problem_filters_return_message_or_empty():
    assert FILTERS["nvidia_problem_secure_boot"]("SecureBoot disabled", False) == ""
    assert FILTERS["nvidia_problem_secure_boot"]("SecureBoot enabled", False).startswith("Secure Boot is enabled and")
    assert FILTERS["nvidia_problem_running_version"]("580.159.04", "580.159.04") == ""
    assert FILTERS["nvidia_problem_apt_pins"](MADISON, ["nvidia-driver", "nvidia-smi"], "580.159.04", "fix") == ""
    assert FILTERS["nvidia_problem_apt_pins"](
        MADISON, ["nvidia-driver", "nvidia-kernel-dkms"], "580.159.04", "Fix it."
    ) == ("nvidia-kernel-dkms 580.159.04 is not in this host's apt repositories (available: none). Fix it.")


def test_apt_pins_in_package_order():
    assert FILTERS["nvidia_apt_pins"](MADISON, ["nvidia-driver", "nvidia-smi"], "580.159.04", "fix") == [
        "nvidia-driver=580.159.04-1",
        "nvidia-smi=580.159.04-1",
    ]


def test_value_errors_become_filter_errors():
    with pytest.raises(AnsibleFilterError, match=r"^driver version 'abc' is not of the form 580.159.04"):
        FILTERS["nvidia_branch"]("abc")


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_every_filter_is_namespaced(name):
    assert name.startswith("nvidia_")
