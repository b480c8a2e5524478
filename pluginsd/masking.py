"""Mask the values of secret-looking localrc variables in what leaves a node.

Result tails, messages and logs sent to the daemon (``pluginsctl logs``,
``show``, the HTML report) have the values of localrc variables named like
``*PASSWORD*``, ``*SECRET*``, ``*TOKEN*`` or ``*_KEY`` replaced by
``******``, as DevStack users expect from a shared console. The files on
the node keep the real text (they are 0600).
"""

import re
import shlex

MASK = '******'
SECRET_NAME = re.compile(r'PASSWORD|SECRET|TOKEN|_KEY$')
_ASSIGNMENT = re.compile(
    r'^\s*(?:export\s+|declare\s+(?:-\w+\s+)?)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$'
)
MIN_LENGTH = 3  # masking "1" or "no" everywhere would wreck every log


def secret_values(localrc):
    """The values assigned to secret-looking names in ``localrc`` text."""
    values = set()
    for line in localrc.splitlines():
        match = _ASSIGNMENT.match(line)
        if not match or not SECRET_NAME.search(match.group(1)):
            continue
        raw = match.group(2)
        try:
            words = shlex.split(raw, comments=True)
        except ValueError:
            words = [raw.strip()]
        value = words[0] if words else ''
        if len(value) >= MIN_LENGTH and '$' not in value:
            values.add(value)
    return values


def mask(text, values):
    """``text`` with every value of ``values`` replaced by MASK."""
    if not text or not values:
        return text
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, MASK)
    return text
