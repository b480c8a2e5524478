from oslo_config import cfg

from pluginsd.conf import base

GROUP = cfg.OptGroup('daemon', title='pluginsd daemon options')
OPTS = [
    cfg.StrOpt(
        'plugins_dir',
        default='$state_path/plugins',
        help='Where the daemon clones enabled plugins and pins each '
        'ref to a commit. Agents check out from here.',
    ),
    cfg.ListOpt(
        'role_order',
        default=['controller', '*'],
        help='Stages of a run, in order. Each entry is a role, or '
        'several roles joined with "+"; "*" stands for every '
        'role not named elsewhere. Nodes of one stage run the '
        'whole mode before the next stage starts.',
    ),
    cfg.IntOpt(
        'phase_timeout',
        default=3600,
        min=1,
        mutable=True,
        help='Seconds a node may spend in one phase before its bash '
        'process group is killed and the phase fails.',
    ),
    cfg.IntOpt(
        'agent_down_time',
        default=75,
        min=2,
        mutable=True,
        help='Seconds without a heartbeat after which a node is '
        'declared lost; a run waiting on it fails. At least twice '
        '[agent] heartbeat_interval (30), so that one lost heartbeat '
        'loses no node (Neutron uses the same 75 s). A node that stops '
        'cleanly says so and is left out at once.',
    ),
    cfg.IntOpt(
        'republish_interval',
        default=15,
        min=1,
        mutable=True,
        help='Seconds between two publishes of a phase event that some '
        'node has not answered yet (fanout messages are lost when '
        'the broker restarts; agents ignore duplicates).',
    ),
    cfg.IntOpt(
        'node_wait_timeout',
        default=60,
        min=1,
        mutable=True,
        help='Seconds a run waits for a first node to be up before it '
        'fails. A run takes the nodes that are up when it is '
        'planned.',
    ),
    cfg.BoolOpt(
        'reverse_teardown',
        default=True,
        help='Run the stages of unstack and clean in the reverse of '
        'role_order (computes before the controller they depend on).',
    ),
    cfg.IntOpt(
        'run_lease_time',
        default=10,
        min=2,
        help='Seconds a daemon owns a run after it last renewed its '
        'lease in the database. Several daemons may share one '
        'database: when the owner of a run dies, another takes the '
        'run over once the lease has expired. Keep the clocks of '
        'the daemons in sync (NTP).',
    ),
    cfg.IntOpt(
        'engine_workers',
        default=4,
        min=1,
        help='Threads that advance runs (planning included). A run is '
        'advanced by one thread at a time; no thread waits for a run.',
    ),
    cfg.IntOpt(
        'liveness_workers',
        default=8,
        min=1,
        help='RPC threads for heartbeats and results, a lane of their own '
        'that planning, bundles, logs and long polls never hold up.',
    ),
    cfg.IntOpt(
        'long_call_workers',
        default=16,
        min=1,
        help='RPC threads for the calls that may take long: dry-run '
        'plans, log fetches from nodes and followers\' long polls '
        '(pluginsctl run show --follow, stack). A lane of their own: '
        'when they are all busy, later ones wait, and every other call '
        'is still answered.',
    ),
]


def register_opts(conf):
    base.register_group(conf, GROUP, OPTS)


def list_opts():
    return {GROUP: OPTS}
