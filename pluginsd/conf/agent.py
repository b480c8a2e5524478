from oslo_config import cfg

from pluginsd.conf import base

GROUP = cfg.OptGroup('agent', title='pluginsd-agent options')
OPTS = [
    cfg.ListOpt(
        'roles',
        default=['controller'],
        help='Roles of this node, e.g. controller, compute. They '
        'pick the stage the node runs in and its local.conf.',
    ),
    cfg.StrOpt(
        'dest',
        default='/opt/stack',
        help='Default DEST: plugins are checked out in DEST/<name>. '
        'A DEST set in localrc wins, as in DevStack.',
    ),
    cfg.StrOpt(
        'log_dir',
        default='$state_path/logs',
        help='Full plugin logs: <log_dir>/<run>/<phase>/<plugin>.log.',
    ),
    cfg.ListOpt(
        'allowed_sources',
        default=[],
        help='Plugin sources this node accepts: URL prefixes such as '
        'https://opendev.org/openstack/ or /srv/plugins/. URLs are '
        'compared in canonical form (scheme and host lower-case, '
        'default port dropped) on whole path segments; URLs with '
        '"."/".." segments, encoded dots or slashes, credentials or '
        'an unknown scheme are refused. Reported in heartbeats, so '
        'the daemon refuses a run at plan time. Empty means none.',
    ),
    cfg.IntOpt(
        'heartbeat_interval',
        default=30,
        min=1,
        mutable=True,
        help='Seconds between two heartbeats (Neutron\'s agents report '
        'every 30 s too). Each heartbeat costs the daemon about 2 ms of '
        'CPU in oslo.messaging alone: 500 nodes cost it about 11 % of '
        'a core at 10 s, 4 % at 30 s. Keep [daemon] '
        'agent_down_time at least twice this.',
    ),
    cfg.IntOpt(
        'graceful_shutdown_timeout',
        default=30,
        min=0,
        help='On SIGTERM, seconds to let a running plugin finish '
        'before its process group is killed.',
    ),
    cfg.StrOpt(
        'plugin_source',
        default='daemon',
        choices=['daemon', 'origin'],
        help='Where a node gets plugin code at the pinned commit: '
        '"daemon" downloads the git bundle the daemon built of that '
        'commit, in pieces (nodes need no access to the plugin '
        'origin); "origin" '
        'fetches the commit from the plugin URL.',
    ),
    cfg.IntOpt(
        'result_resend_interval',
        default=5,
        min=1,
        help='Seconds before an unacknowledged result is sent again, or '
        'longer while the daemon takes longer to acknowledge (the mean '
        'delay plus four deviations, as TCP times its resends); each '
        'later resend waits twice as long, up to 8 times this.',
    ),
    cfg.IntOpt(
        'rpc_workers',
        default=2,
        min=1,
        help='RPC threads of the agent, at most. What the daemon asks of '
        'it is quick (a phase is queued, a log read, a ping answered), so '
        'two are enough (oslo.messaging\'s default pool would keep up to '
        'executor_thread_pool_size of them).',
    ),
]


def register_opts(conf):
    base.register_group(conf, GROUP, OPTS)


def list_opts():
    return {GROUP: OPTS}
