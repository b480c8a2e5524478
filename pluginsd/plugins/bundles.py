"""Plugin code for nodes: one git bundle per pinned commit, in pieces.

The daemon builds a bundle when a run pins a commit (at plan time), once:
the store names it by the sha256 of its bytes and remembers which commit
it holds, so a later run that pins the same commit reuses it. A bundle
holds that commit alone (``git bundle`` of a ``--depth 1`` fetch: tree and
blobs, no history), which is all a node needs to check it out; a git
bundle rather than a tar of the tree, because the node ends up with a real
checkout (``git -C $DEST/<name> rev-parse HEAD`` works, pbr finds its
version) and git verifies every object on the way in.

Nodes download a bundle in pieces of ``CHUNK_SIZE`` bytes over the daemon
RPC API (``get_bundle_chunk``), so no message comes near the broker's
limit (RabbitMQ refuses messages above ``max_message_size``, 128 MiB by
default since 3.8; a piece is 1 MiB, about 1.4 MB once base64-encoded) and
a plugin of any size travels. The digest and size come in the signed phase
event: the node checks the bytes it assembled against them, so the pieces
themselves need no signature.
"""

import base64
import fcntl
import hashlib
import json
import logging
import os
import re
import tempfile
import time

from pluginsd import exception
from pluginsd.plugins import fetch

LOG = logging.getLogger(__name__)
CHUNK_SIZE = 4 << 20
_DIGEST = re.compile(r'^[0-9a-f]{64}$')
_SHA = re.compile(r'^[0-9a-f]{40}([0-9a-f]{24})?$')


def store_dir(conf):
    """The daemon's bundles."""
    return os.path.join(conf.state_path, 'bundles')


def cache_dir(conf):
    """A node's downloaded bundles (shared by the nodes of one process)."""
    return os.path.join(conf.state_path, 'agent', 'bundles')


def check_digest(digest):
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise exception.PluginsdException(f'{digest!r} is not a bundle digest')
    return digest


def file_digest(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(CHUNK_SIZE), b''):
            h.update(block)
    return h.hexdigest()


class BundleStore:
    """The daemon's bundles: ``<root>/<digest>.bundle``, and per commit
    ``<root>/commits/<sha>.json`` saying which bundle holds it.
    """

    def __init__(self, root):
        self.root = root
        self.commits = os.path.join(root, 'commits')

    def path(self, digest):
        return os.path.join(self.root, f'{check_digest(digest)}.bundle')

    def _index(self, sha):
        if not _SHA.match(sha or ''):
            raise exception.PluginsdException(f'{sha!r} is not a commit id')
        return os.path.join(self.commits, f'{sha}.json')

    def lookup(self, sha):
        """What the store knows of commit ``sha``, or None."""
        try:
            with open(self._index(sha)) as f:
                entry = json.load(f)
        except (OSError, ValueError):
            return None
        if not os.path.isfile(self.path(entry['digest'])):
            return None
        return entry

    def build(self, plugin, checkout):
        """Make sure a bundle of ``plugin.sha`` exists; its entry.

        The entry (``digest``, ``size``, ``ref``) goes into the plan, hence
        into every phase event of the run.
        """
        entry = self.lookup(plugin.sha)
        if entry:
            os.utime(self._index(plugin.sha))  # last used: purge reads it
            return entry
        os.makedirs(self.commits, exist_ok=True)
        started = time.monotonic()
        fd, tmp = tempfile.mkstemp(prefix='.build-', dir=self.root)
        os.close(fd)
        os.unlink(tmp)  # git bundle create wants to make the file itself
        try:
            ref = fetch.commit_bundle(checkout, plugin.sha, tmp, plugin)
            digest = file_digest(tmp)
            entry = {
                'digest': digest,
                'size': os.path.getsize(tmp),
                'ref': ref,
                'sha': plugin.sha,
            }
            # Same digest, same bytes: a concurrent build of the same
            # commit replaces the file with an identical one.
            os.replace(tmp, self.path(digest))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        index = self._index(plugin.sha)
        with open(index + '.tmp', 'w') as f:
            json.dump(entry, f)
        os.replace(index + '.tmp', index)
        LOG.info(
            'Plugin %s: bundle of %s built (%d bytes, %.1f s)',
            plugin.name,
            plugin.sha[:12],
            entry['size'],
            time.monotonic() - started,
        )
        return entry

    def read_chunk(self, digest, offset):
        """Up to CHUNK_SIZE bytes of bundle ``digest`` from ``offset``."""
        path = self.path(digest)
        if not isinstance(offset, int) or offset < 0:
            raise exception.PluginsdException(
                f'bundle {digest[:12]}: offset {offset!r} is not a '
                'position in it'
            )
        try:
            with open(path, 'rb') as f:
                size = os.fstat(f.fileno()).st_size
                f.seek(offset)
                data = f.read(CHUNK_SIZE)
        except FileNotFoundError:
            raise exception.PluginsdException(
                f'no bundle {digest}: it was purged, or this daemon did '
                'not plan the run'
            ) from None
        return {
            'offset': offset,
            'size': size,
            'data': base64.b64encode(data).decode(),
        }


def download(read_chunk, digest, size, cache_dir, check=None):
    """On a node: the path of bundle ``digest``, downloading it if needed.

    ``read_chunk(digest, offset)`` returns a piece (``get_bundle_chunk``);
    ``check()`` runs between pieces and raises to stop (deadline, cancel).
    Bundles are kept by digest in ``cache_dir``: agents that share it (or
    nodes simulated in one process) download a bundle once. A file named
    by its digest is complete and verified: pieces go to a ``.part`` file
    that is renamed only once the whole file matches the digest.
    """
    check_digest(digest)
    os.makedirs(cache_dir, mode=0o700, exist_ok=True)
    path = os.path.join(cache_dir, f'{digest}.bundle')
    with open(path + '.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one download per bundle
        if os.path.isfile(path):
            os.utime(path)
            return path
        part = path + '.part'
        try:
            _fetch_pieces(read_chunk, digest, size, part, check)
        except BaseException:
            if os.path.exists(part):
                os.unlink(part)
            raise
        os.replace(part, path)
    return path


def _fetch_pieces(read_chunk, digest, size, part, check):
    h = hashlib.sha256()
    offset = 0
    with open(part, 'wb') as out:
        while offset < size:
            if check:
                check()
            piece = read_chunk(digest, offset)
            try:
                data = base64.b64decode(piece['data'], validate=True)
            except (KeyError, TypeError, ValueError) as e:
                raise exception.PluginsdException(
                    f'bundle {digest[:12]}: a bad piece at {offset}: {e}'
                ) from None
            if not data:
                break
            out.write(data)
            h.update(data)
            offset += len(data)
    if offset != size or h.hexdigest() != digest:
        raise exception.PluginsdException(
            f'bundle {digest[:12]}: received {offset} bytes that do not '
            f'match the {size} bytes the run pinned'
        )
