"""Plugin bundles: built once per commit, read and downloaded in pieces."""

import base64
import os

import pytest

from pluginsd import exception
from pluginsd.plugins import bundles
from pluginsd.plugins import fetch
from pluginsd.plugins.plan import Plugin
from tests.gitrepos import commit
from tests.gitrepos import git
from tests.gitrepos import make_repo


@pytest.fixture(autouse=True)
def small_pieces(monkeypatch):
    monkeypatch.setattr(bundles, 'CHUNK_SIZE', 256 << 10)


@pytest.fixture
def repo(tmp_path):
    path = make_repo(
        str(tmp_path / 'alpha'),
        {
            'devstack/settings': 'define_plugin alpha\n',
            # Incompressible, so that the bundle spans several pieces.
            'data.bin': '',
        },
    )
    with open(os.path.join(path, 'data.bin'), 'wb') as f:
        f.write(os.urandom(int(2.5 * bundles.CHUNK_SIZE)))  # 3 pieces
    git(path, 'add', '-A')
    git(path, 'commit', '-q', '-m', 'data')
    return path


def pinned(repo):
    return Plugin('alpha', repo, 'master', sha=git(repo, 'rev-parse', 'HEAD'))


class TestStore:
    def test_built_once_per_commit(self, repo, tmp_path):
        store = bundles.BundleStore(str(tmp_path / 'store'))
        p = pinned(repo)
        entry = store.build(p, repo)
        assert entry['size'] > 2 * bundles.CHUNK_SIZE
        path = store.path(entry['digest'])
        assert bundles.file_digest(path) == entry['digest']
        mtime = os.stat(path).st_mtime_ns
        # A second run pinning the same commit reuses the bundle.
        assert store.build(p, repo) == entry
        assert os.stat(path).st_mtime_ns == mtime
        assert sorted(os.listdir(store.root)) == sorted(
            ['commits', f'{entry["digest"]}.bundle']
        )
        # Another commit, another bundle.
        p2 = Plugin('alpha', repo, 'master', sha=commit(repo, {'x': 'y'}))
        assert store.build(p2, repo)['digest'] != entry['digest']

    def test_read_chunk_rejects_what_is_not_a_digest(self, tmp_path):
        store = bundles.BundleStore(str(tmp_path / 'store'))
        with pytest.raises(exception.PluginsdException, match='not a bundle'):
            store.read_chunk('../../etc/passwd', 0)
        with pytest.raises(exception.PluginsdException, match='no bundle'):
            store.read_chunk('0' * 64, 0)
        for offset in (-1, '0', None):
            with pytest.raises(exception.PluginsdException, match='offset'):
                store.read_chunk('0' * 64, offset)


class TestDownload:
    def test_pieces_assemble_into_a_checkout(self, repo, tmp_path):
        store = bundles.BundleStore(str(tmp_path / 'store'))
        p = pinned(repo)
        entry = store.build(p, repo)
        calls = []

        def read_chunk(digest, offset):
            calls.append(offset)
            piece = store.read_chunk(digest, offset)
            assert len(piece['data']) < 1.4 * bundles.CHUNK_SIZE
            return piece

        cache = str(tmp_path / 'cache')
        path = bundles.download(
            read_chunk, entry['digest'], entry['size'], cache
        )
        assert len(calls) == 3
        assert bundles.file_digest(path) == entry['digest']
        target = str(tmp_path / 'dest' / 'alpha')
        fetch.ensure_checkout(p, target, p.sha, path, entry['ref'], True)
        assert git(target, 'rev-parse', 'HEAD') == p.sha
        with open(os.path.join(target, 'data.bin'), 'rb') as a:
            with open(os.path.join(repo, 'data.bin'), 'rb') as b:
                assert a.read() == b.read()
        # Downloaded once: a second node sharing the cache reads no piece.
        bundles.download(read_chunk, entry['digest'], entry['size'], cache)
        assert len(calls) == 3

    def test_corrupt_pieces_are_refused(self, repo, tmp_path):
        store = bundles.BundleStore(str(tmp_path / 'store'))
        entry = store.build(pinned(repo), repo)

        def read_chunk(digest, offset):
            piece = store.read_chunk(digest, offset)
            data = bytearray(base64.b64decode(piece['data']))
            data[0] ^= 1
            piece['data'] = base64.b64encode(bytes(data)).decode()
            return piece

        def garbage(digest, offset):
            return {'data': '%%%'}

        cache = str(tmp_path / 'cache')
        with pytest.raises(exception.PluginsdException, match='do not match'):
            bundles.download(read_chunk, entry['digest'], entry['size'], cache)
        with pytest.raises(exception.PluginsdException, match='bad piece'):
            bundles.download(garbage, entry['digest'], entry['size'], cache)
        assert [n for n in os.listdir(cache) if n.endswith('.bundle')] == []

    def test_check_stops_between_pieces(self, repo, tmp_path):
        store = bundles.BundleStore(str(tmp_path / 'store'))
        entry = store.build(pinned(repo), repo)
        calls = []

        def check():
            if calls:
                raise TimeoutError('deadline')

        def read_chunk(digest, offset):
            calls.append(offset)
            return store.read_chunk(digest, offset)

        with pytest.raises(TimeoutError):
            bundles.download(
                read_chunk,
                entry['digest'],
                entry['size'],
                str(tmp_path / 'cache'),
                check,
            )
        assert calls == [0]
