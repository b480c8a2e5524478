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
