from oslo_config import cfg

from pluginsd.conf import base

GROUP = cfg.OptGroup('security', title='Message signing')
OPTS = [
    cfg.StrOpt(
        'shared_key',
        secret=True,
        default='',
        help='Key for the HMAC that signs every phase event and result. '
        'Must be the same on the daemon and every agent.',
    ),
    cfg.IntOpt(
        'max_message_age',
        default=300,
        min=1,
        help='Seconds after which a signed message is stale and '
        'rejected (also bounds the replay cache).',
    ),
]


def register_opts(conf):
    base.register_group(conf, GROUP, OPTS)


def list_opts():
    return {GROUP: OPTS}
