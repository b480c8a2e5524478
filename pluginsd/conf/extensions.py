from oslo_config import cfg

from pluginsd.conf import base

GROUP = cfg.OptGroup('extensions', title='Extensions (stevedore)')
OPTS = [
    cfg.ListOpt(
        'enabled',
        default=[],
        help='Extensions to load, in this order, by entry point name '
        '(namespace pluginsd.extensions). Empty: every installed '
        'extension.',
    ),
    cfg.BoolOpt(
        'fail_on_error',
        default=False,
        help='Refuse to start when an extension cannot be loaded '
        '(default: log it, show it as failed, go on).',
    ),
]


def register_opts(conf):
    base.register_group(conf, GROUP, OPTS)


def list_opts():
    return {GROUP: OPTS}
