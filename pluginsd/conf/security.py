from oslo_config import cfg

GROUP = cfg.OptGroup('security', title='Message signing')
OPTS = [
    cfg.StrOpt('shared_key', secret=True, default='',
               help='Key for the HMAC that signs every phase event and result. '
                    'Must be the same on the daemon and every agent.'),
    cfg.IntOpt('max_message_age', default=300, min=1,
               help='Seconds after which a signed message is stale and '
                    'rejected (also bounds the replay cache).'),
]


def register_opts(conf):
    # A fresh OptGroup per ConfigOpts: oslo.config keeps overrides on the
    # group object, so a shared one would leak them between configs.
    conf.register_group(cfg.OptGroup(GROUP.name, title=GROUP.title))
    conf.register_opts(OPTS, group=GROUP.name)


def list_opts():
    return {GROUP: OPTS}
