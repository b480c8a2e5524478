from oslo_config import cfg

from pluginsd.conf import base

GROUP = cfg.OptGroup(
    'security', title='Identities: keys, enrollment, operators'
)
OPTS = [
    cfg.StrOpt(
        'key_file',
        default='$state_path/keys/pluginsd.key',
        help='Private Ed25519 key of this daemon or agent (mode 0600; its '
        'public key is <key_file>.pub). Made at first start, or with '
        '"pluginsd-manage key create".',
    ),
    cfg.ListOpt(
        'daemon_public_keys',
        default=['$state_path/keys/daemon.pub'],
        help='Agents: public key files of the daemon. An agent acts only '
        'on messages signed by one of these keys; list two while the '
        'daemon key is rotated.',
    ),
    cfg.StrOpt(
        'accepted_keys_dir',
        default='$state_path/accepted-keys',
        help='Daemon: a directory of <host>.pub node keys that are '
        'accepted without "pluginsctl node accept" (automation). Any '
        'other new node shows as pending until an admin accepts it.',
    ),
    cfg.ListOpt(
        'operator_keys',
        default=[],
        help='Daemon: operators as ROLE:PUBLIC_KEY_FILE entries, ROLE '
        'being reader (list, show, logs, report) or admin (also stack, '
        'unstack, clean, retry, cancel, delete, node accept/reject/'
        'delete). The operator is named after the file.',
    ),
    cfg.StrOpt(
        'operator_key_file',
        default='~/.config/pluginsd/operator.key',
        help='pluginsctl: the operator private key that signs requests '
        '(make one with "pluginsd-manage key create --output PATH" and '
        'list PATH.pub in the daemon\'s operator_keys).',
    ),
    cfg.IntOpt(
        'max_message_age',
        default=300,
        min=1,
        help='Seconds after which a signed message is stale and rejected. '
        'Replays are refused at any age (sequence numbers).',
    ),
]


def register_opts(conf):
    base.register_group(conf, GROUP, OPTS)


def list_opts():
    return {GROUP: OPTS}
