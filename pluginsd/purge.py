"""``pluginsd-manage purge --older-than AGE``: drop what old runs left.

Run it where the state is: on the daemon's host it removes finished runs
(and their results) from the database, their planning directories, the
bundles no remaining run pins and the ``refs/pluginsd/*`` refs of the
plugin cache; on a node (or an all-in-one state dir) it removes old plugin
logs, downloaded bundles and acknowledged journal rows. Nothing an active
run or a kept run still uses is touched; what exists only on one side is
skipped on the other.
"""

import json
import os
import re
import shutil
import time

from pluginsd import exception
from pluginsd import git
from pluginsd.agent import journal as journal_mod
from pluginsd.db import api as db_api
from pluginsd.plugins import bundles

FINISHED = ('completed', 'failed', 'cancelled')
_AGE = re.compile(r'^(\d+(?:\.\d+)?)([smhd]?)$')
_UNITS = {'s': 1, 'm': 60, 'h': 3600, 'd': 86400, '': 86400}
_RUN_ID = re.compile(r'^[0-9a-f-]{36}$')


def parse_age(text):
    """``30d``, ``12h``, ``90m``, ``45s`` or a plain number of days."""
    match = _AGE.match(str(text).strip())
    if not match:
        raise exception.PluginsdException(
            f'--older-than {text!r}: expected a number of days, or a number '
            'with s, m, h or d (e.g. 30d, 12h)'
        )
    return float(match.group(1)) * _UNITS[match.group(2)]


def _database(conf):
    url = conf.database.connection
    if url.startswith('sqlite:///') and not os.path.exists(url[10:]):
        return None  # a node: its daemon keeps the runs
    return db_api.Database(url)


def _older(path, cutoff):
    try:
        return os.lstat(path).st_mtime < cutoff
    except FileNotFoundError:
        return False


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def purge(conf, older_than, now=None):
    """Remove what is older than ``older_than`` seconds; counts by kind."""
    cutoff = (now or time.time()) - older_than
    counts = dict.fromkeys(('runs', 'logs', 'bundles', 'journal', 'refs'), 0)
    db = _database(conf)
    kept, pinned, purged = set(), set(), set()
    if db is not None:
        for run in db.list_runs():
            if run['state'] in FINISHED and run['updated_at'] < cutoff:
                db.delete_run(run['id'])
                purged.add(run['id'])
                counts['runs'] += 1
                continue
            kept.add(run['id'])
            for plan in run['plans'].values():
                pinned.update(p['sha'] for p in plan['plugins'] if p['sha'])
        db.engine.dispose()
    # Per-run directories: the daemon's planning dirs, a node's logs (a
    # node knows no runs: there, age decides).
    for base in (os.path.join(conf.state_path, 'runs'), conf.agent.log_dir):
        for name in _names(base):
            path = os.path.join(base, name)
            if not _RUN_ID.match(name) or name in kept:
                continue
            if name in purged or _older(path, cutoff):
                _remove(path)
                counts['logs'] += 1
    plans = os.path.join(conf.state_path, 'plans')
    for name in _names(plans):
        if _older(os.path.join(plans, name), cutoff):
            _remove(os.path.join(plans, name))
    counts['bundles'] += _purge_store(conf, cutoff, pinned, db is not None)
    counts['bundles'] += _purge_downloads(bundles.cache_dir(conf), cutoff)
    journal = os.path.join(conf.state_path, 'agent', 'journal.sqlite')
    if os.path.exists(journal):
        j = journal_mod.Journal(journal)
        try:
            counts['journal'] += j.purge(cutoff)
        finally:
            j.close()
    if db is not None:
        counts['refs'] += _purge_refs(conf.daemon.plugins_dir, pinned)
    return counts


def _names(path):
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _purge_store(conf, cutoff, pinned, have_runs):
    """The daemon's bundles no kept run pins, unused since ``cutoff``."""
    store = bundles.BundleStore(bundles.store_dir(conf))
    if not have_runs or not os.path.isdir(store.commits):
        return 0
    in_use, stale = set(), []
    for name in _names(store.commits):
        path = os.path.join(store.commits, name)
        try:
            with open(path) as f:
                entry = json.load(f)
        except (OSError, ValueError):
            _remove(path)
            continue
        if entry.get('sha') in pinned or not _older(path, cutoff):
            in_use.add(entry['digest'])
        else:
            stale.append((path, entry['digest']))
    removed = 0
    for path, digest in stale:
        _remove(path)
        if digest not in in_use:
            _remove(store.path(digest))
            removed += 1
    for name in _names(store.root):  # builds a crash left behind
        if name.startswith('.') and _older(
            os.path.join(store.root, name), cutoff
        ):
            _remove(os.path.join(store.root, name))
    return removed


def _purge_downloads(cache, cutoff):
    """A node's downloaded bundles, unused since ``cutoff``."""
    removed = 0
    for name in _names(cache):
        path = os.path.join(cache, name)
        if not _older(path, cutoff):
            continue
        _remove(path)
        if name.endswith('.bundle'):
            removed += 1
    return removed


def _purge_refs(plugins_dir, pinned):
    """Drop ``refs/pluginsd/<sha>`` of commits no kept run pins.

    Earlier versions made one in the plugin cache per bundle.
    """
    removed = 0
    for role in _names(plugins_dir):
        for name in _names(os.path.join(plugins_dir, role)):
            checkout = os.path.join(plugins_dir, role, name)
            if not os.path.isdir(os.path.join(checkout, '.git')):
                continue
            for ref in git.list_refs(checkout, 'refs/pluginsd/'):
                if ref.rsplit('/', 1)[-1] not in pinned:
                    git.delete_ref(checkout, ref)
                    removed += 1
    return removed
