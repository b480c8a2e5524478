"""What a node reports for each plugin and phase."""

import dataclasses

STACK_PHASES = (
    'pre-install',
    'install',
    'post-config',
    'extra',
    'test-config',
)
# clean.sh runs unstack.sh first, in its own process: so does pluginsd.
MODE_PHASES = {
    'stack': STACK_PHASES,
    'unstack': ('unstack',),
    'clean': ('unstack', 'clean'),
}
NODE = ''  # the plugin name of a node's whole-phase result

OK, FAILED, TIMEOUT, CANCELLED, SKIPPED, KILLED = (
    'ok',
    'failed',
    'timeout',
    'cancelled',
    'skipped',
    'killed',
)


ACK_FIELDS = ('run_id', 'node', 'plugin', 'mode', 'phase', 'attempt')


def ack_key(result):
    """The key an agent's journal and the daemon's acknowledgement share:
    the stored key plus the attempt (a retry is a new result).
    """
    return '|'.join(
        [
            result['run_id'],
            result['node'],
            result['plugin'],
            result['mode'],
            result['phase'],
            str(result['attempt']),
        ]
    )


def pack_acks(keys_by_host):
    """``{host: [ack key]}`` packed to ride on a fanout the nodes get anyway.

    Each run, mode, phase and attempt is written once, the node's name is
    its key: ``{'run|mode|phase|attempt': {host: [plugin, ...]}}``, about a
    third of the keys' size. Returns (packed, {host: [keys left out]}):
    a key that is not one of the host's own result keys cannot be packed.
    """
    packed, left = {}, {}
    for host, keys in keys_by_host.items():
        for key in keys:
            fields = key.split('|')
            if len(fields) != len(ACK_FIELDS) or fields[1] != host:
                left.setdefault(host, []).append(key)
                continue
            run_id, _, plugin, mode, phase, attempt = fields
            group = '|'.join([run_id, mode, phase, attempt])
            packed.setdefault(group, {}).setdefault(host, []).append(plugin)
    return packed, left


def unpack_acks(packed, host):
    """The ack keys of ``host`` in what :func:`pack_acks` made (parts that
    are not in its shape are skipped).
    """
    keys = []
    if not isinstance(packed, dict):
        return keys
    for group, hosts in packed.items():
        fields = group.split('|')
        plugins = hosts.get(host) if isinstance(hosts, dict) else None
        if len(fields) != 4 or not isinstance(plugins, list):
            continue
        run_id, mode, phase, attempt = fields
        keys.extend(
            '|'.join([run_id, host, plugin, mode, phase, attempt])
            for plugin in plugins
            if isinstance(plugin, str)
        )
    return keys


@dataclasses.dataclass
class Result:
    run_id: str
    node: str
    plugin: str
    mode: str
    phase: str
    status: str
    exit_code: int = None
    started_at: float = None
    ended_at: float = None
    log_path: str = ''
    tail: str = ''
    message: str = ''

    @property
    def key(self):
        return (self.run_id, self.node, self.plugin, self.mode, self.phase)

    def to_dict(self):
        return dataclasses.asdict(self)
