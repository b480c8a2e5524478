from oslo_config import cfg

from pluginsd.conf import base

GROUP = cfg.OptGroup('upgrade_levels', title='RPC version pins')
OPTS = [
    cfg.StrOpt(
        'agent',
        help='Highest agent RPC API version the daemon sends '
        '(pin it during a rolling upgrade).',
    ),
    cfg.StrOpt(
        'daemon',
        help='Highest daemon RPC API version agents and the CLI send.',
    ),
]


def register_opts(conf):
    base.register_group(conf, GROUP, OPTS)


def list_opts():
    return {GROUP: OPTS}
