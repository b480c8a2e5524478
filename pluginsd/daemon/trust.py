"""Who may ask the daemon what: node keys, operator keys, roles.

Nodes: a node is known by the key an admin accepted for its host
(``pluginsctl node accept``, or a ``<host>.pub`` file in ``[security]
accepted_keys_dir``). A heartbeat signed by a key nobody accepted records
that key as *pending* and does nothing else. A key is only ever good for
its own host.

Operators: ``[security] operator_keys`` lists ROLE:FILE entries; a reader
may read (runs, nodes, logs, reports), an admin may also change things.
"""

import logging
import os

from pluginsd import exception
from pluginsd import keys
from pluginsd.rpc import signing

LOG = logging.getLogger(__name__)
READER, ADMIN = 'reader', 'admin'
ROLES = (READER, ADMIN)
MAX_PENDING = 1000  # pending keys kept, in all

# method -> who may call it: 'node', 'daemon', or an operator role.
POLICY = {
    'heartbeat': 'node',
    'report_results': 'node',
    'pending_work': 'node',
    'get_bundle_chunk': 'node',
    'get_localconf': 'node',
    'probe': 'daemon',
    'get_run': READER,
    'wait_run': READER,
    'list_runs': READER,
    'list_nodes': READER,
    'get_log': READER,
    'list_extensions': READER,
    'start_run': ADMIN,
    'plan': ADMIN,  # sources localrc on the daemon: code
    'retry_run': ADMIN,
    'cancel_run': ADMIN,
    'delete_run': ADMIN,
    'accept_node': ADMIN,
    'reject_node': ADMIN,
    'delete_node': ADMIN,
}
# What changes nothing on the daemon: a replay of one of these re-reads
# what the bus carried already (a node's local.conf is sealed to its key).
# Their replay marks are not written one by one before the answer but
# with the heartbeats', once a second (NodeTracker.flush): the 500 nodes
# of a run all ask for their local.conf at once, and one database write
# each queued them behind the run's own writes. A replay is still refused
# at once in memory; only one stored within the last second before a
# crash could be answered again after the restart.
READ_ONLY = frozenset(
    {
        'pending_work',
        'get_bundle_chunk',
        'get_localconf',
        'get_run',
        'wait_run',
        'list_runs',
        'list_nodes',
        'get_log',
        'list_extensions',
    }
)


def parse_operator_keys(entries):
    """{fingerprint: (name, role, VerifyKey)} from ROLE:FILE entries."""
    operators = {}
    for entry in entries:
        role, sep, path = entry.partition(':')
        if not sep or role not in ROLES or not path:
            raise exception.ConfigError(
                reason=f'[security] operator_keys entry {entry!r}: expected '
                f'ROLE:PUBLIC_KEY_FILE with ROLE one of {", ".join(ROLES)}'
            )
        key = keys.load_public(path)
        name = os.path.basename(path)
        for suffix in ('.pub', '.key'):
            name = name.removesuffix(suffix)
        operators[keys.fingerprint(key)] = (name, role, key)
    return operators


class DaemonKeyring:
    def __init__(self, conf, db, own_key):
        self.db = db
        self.own_key = own_key
        self.accepted_dir = conf.security.accepted_keys_dir
        self.operators = parse_operator_keys(conf.security.operator_keys)
        # {(host, fingerprint)} of the accepted node keys, read again by
        # reload() every second (the node watch) and after each change made
        # here: a key revoked through any daemon stops working within a
        # second, and a message needs no read of its own. A key missing
        # from it is looked up in the database.
        self._accepted = frozenset()

    def reload(self):
        self._accepted = frozenset(self.db.accepted_node_keys())

    def _refuse(self, sender, fingerprint, reason):
        raise exception.SignatureError(
            sender=sender, reason=reason, key=fingerprint
        )

    def identify(self, sender, verify_key, fingerprint, op):
        kind, _, name = sender.partition(':')
        if kind == 'daemon' and fingerprint == self.own_key.fingerprint:
            return signing.Identity('daemon', 'daemon', '', fingerprint, None)
        if kind == 'operator':
            known = self.operators.get(fingerprint)
            if not known:
                self._refuse(
                    sender,
                    fingerprint,
                    'not a key in [security] operator_keys',
                )
            return signing.Identity(
                'operator', known[0], known[1], fingerprint, verify_key
            )
        if kind == 'node' and name:
            return self._node(sender, name, verify_key, fingerprint, op)
        self._refuse(sender, fingerprint, 'unknown sender')

    def _node(self, sender, host, verify_key, fingerprint, op):
        if (host, fingerprint) in self._accepted:
            return signing.Identity('node', host, '', fingerprint, verify_key)
        row = self.db.get_node_key(host, fingerprint)
        if row is None and self._preseeded(host, fingerprint):
            row = self.db.add_node_key(
                host, fingerprint, keys.encode_public(verify_key), 'accepted'
            )
            LOG.debug(
                'Node %s: key %s accepted from %s',
                host,
                fingerprint,
                self.accepted_dir,
            )
        if row is not None and row['state'] == 'accepted':
            return signing.Identity('node', host, '', fingerprint, verify_key)
        owner = row is None and self._owner(fingerprint)
        if owner:
            self._refuse(
                sender,
                fingerprint,
                f'the key of node {owner} signed for node {host}',
            )
        if row is None and op == 'heartbeat':
            # Bounded: a flood of made-up nodes cannot fill the database.
            pending = [
                k for k in self.db.list_node_keys() if k['state'] == 'pending'
            ]
            if (
                len(pending) < MAX_PENDING
                and len([k for k in pending if k['host'] == host]) < 5
            ):
                self.db.add_node_key(
                    host,
                    fingerprint,
                    keys.encode_public(verify_key),
                    'pending',
                )
                LOG.warning(
                    'Node %s: new key %s is pending; accept it with '
                    '"pluginsctl node accept %s" if it is that node',
                    host,
                    fingerprint,
                    host,
                )
            row = {'state': 'pending'}
        state = row['state'] if row else 'unknown'
        self._refuse(
            sender,
            fingerprint,
            f'the key of node {host} is {state}, not accepted'
            + (' (pluginsctl node accept)' if state == 'pending' else ''),
        )

    def _owner(self, fingerprint):
        """The host a key is recorded for, if any: a key has one host."""
        for key in self.db.list_node_keys():
            if key['fingerprint'] == fingerprint:
                return key['host']
        return None

    def _preseeded(self, host, fingerprint):
        path = os.path.join(self.accepted_dir, f'{host}.pub')
        if '/' in host or host.startswith('.') or not os.path.exists(path):
            return False
        try:
            return keys.fingerprint(keys.load_public(path)) == fingerprint
        except exception.PluginsdException as e:
            LOG.warning('Ignoring %s: %s', path, e)
            return False


def authorize(identity, op):
    """Raise NotAuthorized unless ``identity`` may call ``op``."""
    needed = POLICY.get(op)
    if needed is None:
        allowed = False
    elif needed in ('node', 'daemon'):
        allowed = identity.kind == needed
    else:
        allowed = identity.kind == 'operator' and (
            identity.role == ADMIN or needed == READER
        )
    if not allowed:
        who = (
            f'operator {identity.name} (role {identity.role})'
            if identity.kind == 'operator'
            else f'{identity.kind} {identity.name}'
        )
        raise exception.NotAuthorized(
            who=who, op=op, needed=needed or 'nobody'
        )
