# Copyright: fleetserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Load, once in the controller's main process, the plugins every forked worker would otherwise load again."""

from __future__ import annotations

DOCUMENTATION = r"""
name: preload
type: aggregate
short_description: Load the plugins each task's worker needs once, before the workers fork
description:
  - Ansible runs every task of every host in a worker process forked from the main process, and a worker keeps
    nothing it loads. Each worker that templates any filter of this collection imports every filter file of it
    (Ansible resolves a collection filter by importing the whole filter package), and each worker that opens a
    connection parses the connection and shell plugins' documentation again for their settings.
  - At the start of each play this callback loads, in the main process, the filter and test plugins (Ansible's
    own and this collection's), the shell plugin, and the connection plugin of each host of the play. Forked
    workers inherit them, already imported and with their settings read.
  - It prints nothing and changes no result; leaving it out only costs controller CPU.
requirements:
  - Enabled in C(callbacks_enabled) (the collection's C(ansible.cfg) does).
"""

from ansible import constants as C
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.callback import CallbackBase
from ansible.plugins.loader import connection_loader, filter_loader, shell_loader, test_loader
from ansible.utils.display import Display

display = Display()

# Any one filter of this collection: resolving it imports every filter file of the collection.
_COLLECTION_FILTER = "fleetserve.minimax.health_state"


class CallbackModule(CallbackBase):
    """Preloads plugins in the main process (see DOCUMENTATION)."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "fleetserve.minimax.preload"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._filters_loaded = False
        self._connections: set[str] = set()
        self._hosts_seen: set[str] = set()

    def _load(self, what, loader, name, **kwargs):
        """A plugin that cannot be loaded here is left to the worker, which reports it the usual way."""
        try:
            loader.get(name, **kwargs)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            display.vvv(f"fleetserve.minimax.preload: {what} {name} not preloaded: {to_text(exc)}")

    def _load_filters(self):
        if self._filters_loaded:
            return
        self._filters_loaded = True
        self._load("filter", filter_loader, "ansible.builtin.default")
        self._load("test", test_loader, "ansible.builtin.defined")
        self._load("filter", filter_loader, _COLLECTION_FILTER)

    def _load_connections(self, play):
        """The connection plugin of each host of the play not looked at before (plain names only: a templated
        ansible_connection is the worker's to resolve)."""
        variable_manager = play.get_variable_manager()
        inventory = getattr(variable_manager, "_inventory", None)
        if inventory is None:
            return
        for host in inventory.get_hosts(play.hosts):
            if host.name in self._hosts_seen:
                continue
            self._hosts_seen.add(host.name)
            try:
                name = variable_manager.get_vars(play=play, host=host, include_hostvars=False).get("ansible_connection")
            except Exception as exc:  # pylint: disable=broad-exception-caught
                display.vvv(f"fleetserve.minimax.preload: no connection preloaded for {host.name}: {to_text(exc)}")
                continue
            name = name or C.DEFAULT_TRANSPORT
            if isinstance(name, str) and "{" not in name and name not in self._connections:
                self._connections.add(name)
                self._load("connection", connection_loader, name, class_only=True)
        self._load("shell", shell_loader, "sh", class_only=True)

    def v2_playbook_on_play_start(self, play):
        self._load_filters()
        self._load_connections(play)
