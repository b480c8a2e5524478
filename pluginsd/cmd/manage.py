"""pluginsd-manage: database and keys.

``db upgrade``, ``db version``, ``purge --older-than AGE``, ``key create``,
``key show`` and ``rejected list``.
"""

import os
import sys

from oslo_config import cfg

from pluginsd import service
from pluginsd.db import api as db_api
from pluginsd.extensions import manager as ext_manager


def add_command_parsers(subparsers):
    db = subparsers.add_parser('db', help='database schema')
    db_sub = db.add_subparsers(dest='db_action', required=True)
    db_sub.add_parser('upgrade', help='apply every pending migration')
    db_sub.add_parser('version', help='print the applied revisions')
    purge = subparsers.add_parser(
        'purge',
        help='remove finished runs, their logs, bundles, journal rows and '
        'refs older than AGE',
    )
    purge.add_argument(
        '--older-than',
        required=True,
        metavar='AGE',
        help='30d, 12h, 90m, 45s, or a number of days',
    )
    rejected = subparsers.add_parser(
        'rejected',
        help='wire items the daemon refused on receipt, and why',
    )
    rejected_sub = rejected.add_subparsers(
        dest='rejected_action', required=True
    )
    rejected_sub.add_parser(
        'list', help='one line per refused item: when, who sent it, why'
    )
    key = subparsers.add_parser('key', help='Ed25519 identities')
    key_sub = key.add_subparsers(dest='key_action', required=True)
    create = key_sub.add_parser(
        'create',
        help='make a key pair (private 0600, public beside it as .pub)',
    )
    create.add_argument(
        '--output', help='private key file (default: [security] key_file)'
    )
    create.add_argument(
        '--force', action='store_true', help='replace an existing key'
    )
    show = key_sub.add_parser(
        'show', help='print a public key and its fingerprint'
    )
    show.add_argument(
        '--output', help='private key file (default: [security] key_file)'
    )


def _key(conf):
    from pluginsd import exception
    from pluginsd import keys

    path = os.path.expanduser(conf.command.output or conf.security.key_file)
    if conf.command.key_action == 'create':
        if os.path.exists(path) and not conf.command.force:
            raise exception.PluginsdException(
                f'{path} exists: rotate with --force (see the security '
                'guide: accept the new key before the old one is retired)'
            )
        pair = keys.KeyPair.generate()
        pair.save(path)
        print(f'{path}: created')
    else:
        pair = keys.KeyPair.load(path)
    print(f'public key: {pair.public}')
    print(f'fingerprint: {pair.fingerprint}')
    return 0


def _list_rejected(db):
    import datetime

    for row in db.list_rejected():
        when = datetime.datetime.fromtimestamp(
            row['received_at'], datetime.timezone.utc
        )
        why = row['reason']
        if not why.startswith(row['kind'] + ':'):
            why = f'{row["kind"]}: {why}'
        print(f'{when.isoformat(timespec="seconds")} {row["sender"]} {why}')
    return 0


def _main():
    conf = cfg.ConfigOpts()
    conf.register_cli_opt(
        cfg.SubCommandOpt('command', handler=add_command_parsers)
    )
    conf = _prepare(conf)
    if conf.command.name == 'purge':
        from pluginsd import purge

        counts = purge.purge(conf, purge.parse_age(conf.command.older_than))
        print(', '.join(f'{n} {kind}' for kind, n in counts.items()))
        return 0
    if conf.command.name == 'key':
        return _key(conf)
    db = db_api.Database(conf.database.connection)
    if conf.command.name == 'rejected':
        return _list_rejected(db)
    if conf.command.db_action == 'upgrade':
        # Extensions may bring their own migration branches.
        extensions, _ = ext_manager.load(conf)
        db.upgrade(ext_manager.migration_locations(extensions))
        print('database is up to date')
    else:
        from alembic.runtime import migration

        with db.engine.connect() as connection:
            heads = migration.MigrationContext.configure(
                connection
            ).get_current_heads()
        print(' '.join(heads) or 'empty')
    return 0


def _prepare(conf):
    from oslo_log import log as logging

    from pluginsd import conf as pluginsd_conf

    pluginsd_conf.register_all(conf)
    logging.register_options(conf)
    conf.set_default('use_stderr', True)  # stdout is for the answer
    service.private_files()
    conf(sys.argv[1:], project='pluginsd', prog='pluginsd-manage')
    logging.setup(conf, 'pluginsd')
    return conf


def main():
    service.run_main(_main)
