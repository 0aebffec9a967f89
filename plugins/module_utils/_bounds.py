# Copyright: fleetserve maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every number at its bounds: the one check of integer and float options against their stated range.

ansible-core's argument specs check a number's type but have no minimum or maximum, and
ansible-lint's schema of ``meta/argument_specs.yml`` refuses keys it does not know. So each numeric
option states its range once, in its own description, in one machine-readable sentence that
``ansible-doc`` also shows the user::

    description: Engine port. Range 1 to 65535.

The role action ``fleetserve.minimax.check_bounds`` reads a role's argument spec. A module runs on hosts
without PyYAML, so it keeps its ranges in a ``BOUNDS`` dict checked by :func:`bounds_error` from
:class:`BoundedModule` before anything else, and its DOCUMENTATION states the same sentence
(tests/unit/test_bounds.py holds the two equal).
A value of ``None`` (an unset, nullable option) is not checked.
"""

from __future__ import annotations

import math
import re

from ansible.module_utils.basic import AnsibleModule

RANGE_RE = re.compile(r"(?<![\w-])Range (-?[0-9]+(?:\.[0-9]+)?) to (-?[0-9]+(?:\.[0-9]+)?)\.(?!\d)")
NUMERIC_TYPES = ("int", "float")


def _number(text):
    return float(text) if "." in text else int(text)


def _text(description):
    if isinstance(description, (list, tuple)):
        return " ".join(str(line) for line in description)
    return str(description or "")


def range_in(description):
    """``(low, high)`` of the one ``Range LOW to HIGH.`` sentence of a description, or None without one.

    Raises ValueError for two sentences or a low above its high: a spec that says two things.
    """
    found = RANGE_RE.findall(_text(description))
    if not found:
        return None
    if len(found) > 1:
        raise ValueError("states %d ranges (%s); state one" % (len(found), "; ".join(" to ".join(f) for f in found)))
    low, high = _number(found[0][0]), _number(found[0][1])
    if low > high:
        raise ValueError("states Range %s to %s, a low above its high" % found[0])
    return low, high


def spec_ranges(options, prefix=""):
    """``{name: (type, range or None)}`` for every int and float option of an argument spec.

    ``options`` is the ``options`` mapping of a role entry point or module DOCUMENTATION; suboptions
    are named ``parent.child``; a list of numbers (``elements: int``) is checked element by element.
    """
    found = {}
    for name, spec in (options or {}).items():
        spec = spec or {}
        kind = spec.get("type", "str")
        if kind == "list" and spec.get("elements") in NUMERIC_TYPES:
            kind = spec["elements"]
        if kind in NUMERIC_TYPES:
            try:
                bounds = range_in(spec.get("description"))
            except ValueError as exc:
                raise ValueError("%s%s %s" % (prefix, name, exc)) from None
            found[prefix + name] = (kind, bounds)
        if spec.get("options"):
            found.update(spec_ranges(spec["options"], prefix + name + "."))
    return found


def _show(number):
    if isinstance(number, float) and number.is_integer():
        return str(int(number))
    return repr(number) if isinstance(number, float) else str(number)


def describe(kind, bounds):
    """How the valid values read in a message: ``a whole number from 1 to 65535``."""
    low, high = bounds
    return "%s from %s to %s" % ("a whole number" if kind == "int" else "a number", _show(low), _show(high))


def _as_number(kind, value):
    """The value as a number of ``kind``, or None when it is not one (a bool is not a number here)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text) if kind == "int" else float(text)
        except ValueError:
            return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if kind == "int":
            return int(value) if value.is_integer() else None
        return value
    return None


def _lookup(values, dotted):
    """Values of a dotted option name; a list of dicts (suboptions of a list) yields each item's value."""
    current = [values]
    for part in dotted.split("."):
        nxt = []
        for item in current:
            if isinstance(item, dict) and item.get(part) is not None:
                nxt.append(item[part])
        current = nxt
    flat = []
    for item in current:
        flat.extend(item if isinstance(item, list) else [item])
    return flat


def problems(values, ranges):
    """One message per value out of its range (or not a number), in the order of ``ranges``.

    ``values`` maps option names to values (nested dicts for suboptions); ``ranges`` is
    :func:`spec_ranges`' result or a module's ``{name: (type, (low, high))}``. Options without a
    range are not checked here: the test of the specs fails on them instead.
    """
    found = []
    for name, (kind, bounds) in ranges.items():
        if bounds is None:
            continue
        for value in _lookup(values, name):
            number = _as_number(kind, value)
            low, high = bounds
            # Written so that NaN (every comparison false) is refused too.
            if number is not None and low <= number <= high and not (isinstance(number, float) and math.isinf(number)):
                continue
            what = "not a number" if number is None else "out of range"
            found.append("%s is %r, %s: set it to %s" % (name, value, what, describe(kind, bounds)))
    return found


def bounds_error(values, ranges, where=""):
    """The one message for every value out of its range, or None when all are within."""
    found = problems(values, ranges)
    if not found:
        return None
    return "%s%s" % ((where + ": ") if where else "", "; ".join(found))


def ranges_of(bounds):
    """A module's ``BOUNDS`` (``{name: (low, high)}``) as :func:`problems` takes them: whole-number ends mean an
    int option, float ends a float option (``(0.1, 600.0)``)."""
    return {
        name: ("int" if isinstance(low, int) and isinstance(high, int) else "float", (low, high))
        for name, (low, high) in bounds.items()
    }


class BoundedModule(AnsibleModule):
    """An AnsibleModule that checks its ``bounds`` (a module's ``BOUNDS``) on the arguments as given, before
    ansible-core's type check: a string that is no number is refused naming the valid range, where the type
    check would name only the type. Out-of-range values are refused the same way, before any work."""

    def __init__(self, bounds, **kwargs):
        self._fleetserve_ranges = ranges_of(bounds)
        super().__init__(**kwargs)

    def _load_params(self):
        # AnsibleModule's documented hook for reading the arguments; the check runs on them as they came.
        super()._load_params()
        error = bounds_error(self.params, self._fleetserve_ranges)
        if error:
            self.fail_json(msg=error)
