"""fleetserve: drive the fleetserve.minimax Ansible collection across a fleet of GPU servers."""

__version__ = "0.1.0"
