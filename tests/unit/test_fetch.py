"""pluginsd.plugins.fetch against real local git repositories (contract, 2)."""

import os
import re

import pytest

from pluginsd import exception
from pluginsd.plugins import fetch
from pluginsd.plugins.fetch import FetchOptions
from pluginsd.plugins.plan import Plugin
from tests.gitrepos import commit
from tests.gitrepos import git
from tests.gitrepos import make_repo

PLUGIN_FILES = {
    'devstack/plugin.sh': 'echo "alpha $*"\n',
    'devstack/settings': 'define_plugin alpha\n',
}


class Upstream:
    """An upstream plugin repo: master (2 commits), tag v1, branch stable."""

    def __init__(self, path):
        self.path = make_repo(path, PLUGIN_FILES)
        self.first = git(path, 'rev-parse', 'HEAD')
        git(path, 'tag', 'v1')
        git(path, 'branch', 'stable')
        self.master = commit(
            path, {'devstack/settings': 'define_plugin a\n'}, 'second'
        )

    def advance(self, branch='master', text='more\n'):
        git(self.path, 'checkout', '-q', branch)
        sha = commit(self.path, {'CHANGES': text})
        git(self.path, 'checkout', '-q', 'master')
        return sha


@pytest.fixture
def upstream(tmp_path):
    return Upstream(str(tmp_path / 'upstream' / 'alpha'))


@pytest.fixture
def dest(tmp_path):
    path = tmp_path / 'dest'
    path.mkdir()
    return str(path)


def plugin(upstream, ref='master', name='alpha'):
    url = upstream if isinstance(upstream, str) else upstream.path
    return Plugin(name=name, url=url, ref=ref)


def head(path):
    return git(path, 'rev-parse', 'HEAD')


def current_branch(path):
    """The checked-out branch, or 'HEAD' when detached."""
    return git(path, 'rev-parse', '--abbrev-ref', 'HEAD')


def assert_nothing_left(dest):
    assert os.listdir(dest) == []


class TestFreshClone:
    def test_branch(self, upstream, dest):
        target = os.path.join(dest, 'alpha')
        sha = fetch.fetch(plugin(upstream), target, FetchOptions())
        assert sha == upstream.master
        assert head(target) == upstream.master
        assert current_branch(target) == 'HEAD'  # detached
        assert (
            git(
                target,
                'for-each-ref',
                '--format=%(refname:short)',
                'refs/heads',
            )
            == 'master'
        )
        assert os.path.isfile(os.path.join(target, 'devstack', 'plugin.sh'))
        assert git(target, 'status', '--porcelain') == ''
        assert git(target, 'remote', 'get-url', 'origin') == upstream.path
        assert sorted(os.listdir(dest)) == ['alpha']  # no temp dir left

    def test_tag(self, upstream, dest):
        target = os.path.join(dest, 'alpha')
        assert (
            fetch.fetch(plugin(upstream, 'v1'), target, FetchOptions())
            == upstream.first
        )
        assert current_branch(target) == 'HEAD'
        with open(os.path.join(target, 'devstack', 'settings')) as f:
            assert f.read() == 'define_plugin alpha\n'

    def test_other_branch(self, upstream, dest):
        new = upstream.advance('stable')
        target = os.path.join(dest, 'alpha')
        assert (
            fetch.fetch(plugin(upstream, 'stable'), target, FetchOptions())
            == new
        )
        assert current_branch(target) == 'HEAD'

    def test_sha(self, upstream, dest):
        target = os.path.join(dest, 'alpha')
        assert (
            fetch.fetch(
                plugin(upstream, upstream.first), target, FetchOptions()
            )
            == upstream.first
        )
        assert current_branch(target) == 'HEAD'

    def test_gerrit_style_ref(self, upstream, dest):
        git(
            upstream.path,
            'update-ref',
            'refs/changes/12/3456/7',
            upstream.first,
        )
        target = os.path.join(dest, 'alpha')
        assert (
            fetch.fetch(
                plugin(upstream, 'refs/changes/12/3456/7'),
                target,
                FetchOptions(),
            )
            == upstream.first
        )

    def test_git_depth(self, upstream, dest):
        target = os.path.join(dest, 'alpha')
        url = 'file://' + upstream.path
        sha = fetch.fetch(plugin(url), target, FetchOptions(git_depth=1))
        assert sha == upstream.master
        assert git(target, 'rev-list', '--count', 'HEAD') == '1'

    def test_parent_created(self, upstream, tmp_path):
        target = str(tmp_path / 'deep' / 'er' / 'alpha')
        assert (
            fetch.fetch(plugin(upstream), target, FetchOptions())
            == upstream.master
        )

    def test_existing_empty_dir_is_cloned_into(self, upstream, dest):
        target = os.path.join(dest, 'alpha')
        os.mkdir(target)
        assert (
            fetch.fetch(plugin(upstream), target, FetchOptions())
            == upstream.master
        )
        assert sorted(os.listdir(dest)) == ['alpha']


class TestCloneFailures:
    def test_missing_ref(self, upstream, dest):
        p = plugin(upstream, 'nope')
        target = os.path.join(dest, 'alpha')
        with pytest.raises(exception.FetchError) as err:
            fetch.fetch(p, target, FetchOptions())
        assert str(err.value) == (
            f'plugin alpha ({upstream.path} nope): '
            '"git fetch --quiet -- origin nope" failed: '
            "fatal: couldn't find remote ref nope"
        )
        assert not os.path.exists(target)
        assert_nothing_left(dest)

    def test_missing_ref_then_retry_clones_again(self, upstream, dest):
        target = os.path.join(dest, 'alpha')
        with pytest.raises(exception.FetchError):
            fetch.fetch(plugin(upstream, 'nope'), target, FetchOptions())
        # Unlike DevStack (contract 2.4), nothing half-cloned is reused.
        assert (
            fetch.fetch(plugin(upstream), target, FetchOptions())
            == upstream.master
        )

    def test_bad_url(self, tmp_path, dest):
        url = str(tmp_path / 'no' / 'such' / 'repo')
        target = os.path.join(dest, 'alpha')
        with pytest.raises(exception.FetchError) as err:
            fetch.fetch(plugin(url), target, FetchOptions())
        message = str(err.value)
        pattern = (
            re.escape(
                f'plugin alpha ({url} master): "git clone --quiet '
                f'--no-checkout --no-hardlinks -- {url} {dest}/.alpha.'
            )
            + r'[^/ ]+\.clone" failed: '
            + re.escape(f"fatal: repository '{url}' does not exist")
        )
        assert re.fullmatch(pattern, message), message
        assert not os.path.exists(target)
        assert_nothing_left(dest)

    def test_not_a_plugin(self, tmp_path, dest):
        url = make_repo(
            str(tmp_path / 'upstream' / 'lib'), {'README': 'not a plugin\n'}
        )
        target = os.path.join(dest, 'alpha')
        with pytest.raises(exception.FetchError) as err:
            fetch.fetch(plugin(url), target, FetchOptions())
        assert str(err.value) == (
            f'plugin alpha ({url} master): the repository has no devstack/ '
            'folder at master: not a DevStack plugin'
        )
        assert not os.path.exists(target)
        assert_nothing_left(dest)

    def test_error_on_clone(self, upstream, dest):
        target = os.path.join(dest, 'alpha')
        with pytest.raises(exception.FetchError) as err:
            fetch.fetch(
                plugin(upstream), target, FetchOptions(error_on_clone=True)
            )
        assert str(err.value) == (
            f'plugin alpha ({upstream.path} master): {target} does not exist '
            'and cloning is forbidden by ERROR_ON_CLONE (a gate job must '
            'list the project as required)'
        )
        assert_nothing_left(dest)

    def test_offline(self, upstream, dest):
        target = os.path.join(dest, 'alpha')
        with pytest.raises(exception.FetchError) as err:
            fetch.fetch(plugin(upstream), target, FetchOptions(offline=True))
        assert str(err.value) == (
            f'plugin alpha ({upstream.path} master): {target} does not exist '
            'and OFFLINE forbids cloning'
        )
        assert_nothing_left(dest)

    def test_existing_non_git_dir(self, upstream, dest):
        target = os.path.join(dest, 'alpha')
        os.mkdir(target)
        with open(os.path.join(target, 'precious'), 'w') as f:
            f.write('keep me')
        with pytest.raises(exception.FetchError) as err:
            fetch.fetch(plugin(upstream), target, FetchOptions())
        assert str(err.value) == (
            f'plugin alpha ({upstream.path} master): {target} exists but is '
            'not a git checkout'
        )
        assert os.listdir(target) == ['precious']

    def test_existing_checkout_without_devstack(self, dest):
        target = make_repo(os.path.join(dest, 'alpha'), {'README': 'x\n'})
        with pytest.raises(exception.FetchError) as err:
            fetch.fetch(
                plugin('https://example.invalid/alpha'), target, FetchOptions()
            )
        assert str(err.value) == (
            f'plugin alpha (https://example.invalid/alpha master): {target} '
            'has no devstack/ folder: not a DevStack plugin'
        )


class TestExistingCheckout:
    @pytest.fixture
    def target(self, upstream, dest):
        target = os.path.join(dest, 'alpha')
        fetch.fetch(plugin(upstream), target, FetchOptions())
        return target

    def test_reused_untouched(self, upstream, target):
        with open(os.path.join(target, 'devstack', 'plugin.sh'), 'a') as f:
            f.write('# local edit\n')
        upstream.advance()
        # Even a changed ref is ignored (contract 2.3).
        for ref in ('master', 'v1', 'stable'):
            assert (
                fetch.fetch(plugin(upstream, ref), target, FetchOptions())
                == upstream.master
            )
        assert git(target, 'status', '--porcelain') == ('M devstack/plugin.sh')

    def test_error_on_clone_and_offline_accept_existing(
        self, upstream, target
    ):
        upstream.advance()
        for options in (
            FetchOptions(error_on_clone=True),
            FetchOptions(offline=True),
            FetchOptions(offline=True, reclone=True),
        ):
            assert (
                fetch.fetch(plugin(upstream), target, options)
                == upstream.master
            )

    def test_reclone_follows_branch(self, upstream, target):
        new = upstream.advance()
        assert (
            fetch.fetch(plugin(upstream), target, FetchOptions(reclone=True))
            == new
        )
        assert current_branch(target) == 'master'
        newer = upstream.advance(text='again\n')
        assert (
            fetch.fetch(plugin(upstream), target, FetchOptions(reclone=True))
            == newer
        )

    def test_reclone_discards_local_edits(self, upstream, target):
        with open(os.path.join(target, 'devstack', 'plugin.sh'), 'a') as f:
            f.write('# local edit\n')
        new = upstream.advance()
        assert (
            fetch.fetch(plugin(upstream), target, FetchOptions(reclone=True))
            == new
        )
        assert git(target, 'status', '--porcelain') == ''

    def test_reclone_remote_only_branch(self, upstream, target):
        new = upstream.advance('stable')
        assert (
            fetch.fetch(
                plugin(upstream, 'stable'), target, FetchOptions(reclone=True)
            )
            == new
        )
        assert current_branch(target) == 'stable'
        newer = upstream.advance('stable', 'again\n')
        assert (
            fetch.fetch(
                plugin(upstream, 'stable'), target, FetchOptions(reclone=True)
            )
            == newer
        )
        assert current_branch(target) == 'stable'

    def test_reclone_follows_moved_tag(self, upstream, target):
        new = upstream.advance()
        git(upstream.path, 'tag', '-f', 'v1', new)
        assert (
            fetch.fetch(
                plugin(upstream, 'v1'), target, FetchOptions(reclone=True)
            )
            == new
        )
        assert current_branch(target) == 'HEAD'

    def test_reclone_resets_origin_url(self, upstream, target, tmp_path):
        moved = str(tmp_path / 'moved')
        os.rename(upstream.path, moved)
        new = commit(moved, {'CHANGES': 'x\n'})
        assert (
            fetch.fetch(plugin(moved), target, FetchOptions(reclone=True))
            == new
        )
        assert git(target, 'remote', 'get-url', 'origin') == moved

    def test_reclone_removes_pyc(self, upstream, target):
        pyc = os.path.join(target, 'devstack', '__pycache__', 'x.cpython.pyc')
        os.makedirs(os.path.dirname(pyc))
        with open(pyc, 'w') as f:
            f.write('')
        fetch.fetch(plugin(upstream), target, FetchOptions(reclone=True))
        assert not os.path.exists(pyc)

    def test_reclone_sha_is_an_error(self, upstream, target):
        with pytest.raises(exception.FetchError) as err:
            fetch.fetch(
                plugin(upstream, upstream.first),
                target,
                FetchOptions(reclone=True),
            )
        assert str(err.value) == (
            f'plugin alpha ({upstream.path} {upstream.first}): RECLONE: '
            f'{upstream.first} is neither a branch nor a tag'
        )

    def test_gerrit_ref_always_refetched(self, upstream, dest):
        ref = 'refs/changes/12/3456/7'
        git(upstream.path, 'update-ref', ref, upstream.first)
        target = os.path.join(dest, 'alpha')
        assert (
            fetch.fetch(plugin(upstream, ref), target, FetchOptions())
            == upstream.first
        )
        git(upstream.path, 'update-ref', ref, upstream.master)
        assert (
            fetch.fetch(plugin(upstream, ref), target, FetchOptions())
            == upstream.master
        )
        # ... but not when OFFLINE.
        git(upstream.path, 'update-ref', ref, upstream.first)
        assert (
            fetch.fetch(
                plugin(upstream, ref), target, FetchOptions(offline=True)
            )
            == upstream.master
        )


class TestEnsureCheckout:
    URL = 'https://example.invalid/alpha'

    def test_clones_sha_from_local_source(self, upstream, dest):
        target = os.path.join(dest, 'alpha')
        p = Plugin(name='alpha', url=self.URL, ref='master')
        fetch.ensure_checkout(p, target, upstream.first, upstream.path)
        assert head(target) == upstream.first
        assert current_branch(target) == 'HEAD'
        assert git(target, 'remote', 'get-url', 'origin') == self.URL
        assert git(target, 'status', '--porcelain') == ''
        assert sorted(os.listdir(dest)) == ['alpha']

    def test_moves_existing_checkout(self, upstream, dest):
        target = os.path.join(dest, 'alpha')
        p = Plugin(name='alpha', url=self.URL, ref='master')
        fetch.ensure_checkout(p, target, upstream.first, upstream.path)
        new = upstream.advance()
        fetch.ensure_checkout(p, target, new, upstream.path)
        assert head(target) == new
        assert current_branch(target) == 'HEAD'
        fetch.ensure_checkout(p, target, upstream.first, upstream.path)
        assert head(target) == upstream.first

    def test_existing_at_sha_left_alone(self, upstream, dest, tmp_path):
        target = os.path.join(dest, 'alpha')
        p = Plugin(name='alpha', url=self.URL, ref='master')
        fetch.ensure_checkout(p, target, upstream.master, upstream.path)
        with open(os.path.join(target, 'local'), 'w') as f:
            f.write('x')
        # The source is not even read.
        fetch.ensure_checkout(
            p, target, upstream.master, str(tmp_path / 'gone')
        )
        assert os.path.exists(os.path.join(target, 'local'))

    def test_unknown_sha(self, upstream, dest):
        target = os.path.join(dest, 'alpha')
        p = Plugin(name='alpha', url=self.URL, ref='master')
        missing = '0123456789abcdef0123456789abcdef01234567'
        with pytest.raises(exception.FetchError) as err:
            fetch.ensure_checkout(p, target, missing, upstream.path)
        message = str(err.value)
        assert message.startswith(
            f'plugin alpha ({self.URL} master): "git fetch --quiet -- '
            f'{upstream.path} {missing}" failed: '
        ), message
        assert not os.path.exists(target)
        assert_nothing_left(dest)


class TestHead:
    def test_detached(self, upstream, dest):
        target = os.path.join(dest, 'alpha')
        fetch.fetch(plugin(upstream, 'v1'), target, FetchOptions())
        assert fetch.head(target) == upstream.first

    def test_on_a_branch(self, upstream):
        assert fetch.head(upstream.path) == upstream.master
        git(upstream.path, 'checkout', '-q', 'stable')
        assert fetch.head(upstream.path) == upstream.first

    def test_on_a_packed_branch(self, upstream):
        git(upstream.path, 'pack-refs', '--all')
        assert not os.path.exists(
            os.path.join(upstream.path, '.git', 'refs', 'heads', 'master')
        )
        assert fetch.head(upstream.path) == upstream.master

    def test_not_a_checkout(self, tmp_path):
        assert fetch.head(str(tmp_path)) is None
        assert fetch.head(str(tmp_path / 'missing')) is None

    def test_unborn_branch(self, tmp_path):
        path = str(tmp_path / 'empty')
        os.mkdir(path)
        git(path, 'init', '-q', '-b', 'main')
        assert fetch.head(path) is None


class TestBundle:
    URL = 'https://example.invalid/alpha'

    def test_checkout_from_bundle(self, upstream, dest, tmp_path):
        out = str(tmp_path / 'alpha.bundle')
        p = Plugin(name='alpha', url=self.URL, ref='master', sha='')
        ref = fetch.commit_bundle(upstream.path, upstream.first, out, p)
        assert ref == f'refs/pluginsd/{upstream.first}'
        # The commit alone: one commit, no history.
        heads = git(str(tmp_path), 'bundle', 'list-heads', out)
        assert heads == f'{upstream.first} {ref}'
        target = os.path.join(dest, 'alpha')
        fetch.ensure_checkout(p, target, upstream.first, out, ref, True)
        assert head(target) == upstream.first
        assert git(target, 'remote', 'get-url', 'origin') == self.URL
        assert git(target, 'rev-list', '--count', 'HEAD') == '1'
        assert git(target, 'fsck', '--no-progress') == ''
        # An existing checkout moves to another commit from a bundle.
        ref = fetch.commit_bundle(upstream.path, upstream.master, out, p)
        fetch.ensure_checkout(p, target, upstream.master, out, ref, True)
        assert head(target) == upstream.master
        assert sorted(os.listdir(dest)) == ['alpha']
        # The cache it was built from is left as it was: no refs added.
        assert git(upstream.path, 'for-each-ref', 'refs/pluginsd') == ''


class TestDryRun:
    """What a fetch would pin, with nothing a later run uses changed."""

    def test_absent_checkout_is_cloned_aside(self, upstream, dest, tmp_path):
        target = os.path.join(dest, 'alpha')
        scratch = str(tmp_path / 'scratch' / 'alpha')
        sha, path = fetch.fetch(
            plugin(upstream), target, FetchOptions(), dry_run_dir=scratch
        )
        assert (sha, path) == (upstream.master, scratch)
        assert_nothing_left(dest)

    def test_reused_checkout_is_read_in_place(self, upstream, dest, tmp_path):
        target = os.path.join(dest, 'alpha')
        fetch.fetch(plugin(upstream), target, FetchOptions())
        upstream.advance()
        scratch = str(tmp_path / 'scratch' / 'alpha')
        sha, path = fetch.fetch(
            plugin(upstream), target, FetchOptions(), dry_run_dir=scratch
        )
        assert (sha, path) == (upstream.master, target)
        assert not os.path.exists(scratch)

    def test_reclone_finds_the_new_commit_and_leaves_the_checkout(
        self, upstream, dest, tmp_path
    ):
        target = os.path.join(dest, 'alpha')
        fetch.fetch(plugin(upstream), target, FetchOptions())
        newer = upstream.advance()
        scratch = str(tmp_path / 'scratch' / 'alpha')
        # ERROR_ON_CLONE does not stop it: the real fetch would not clone.
        options = FetchOptions(reclone=True, error_on_clone=True)
        sha, path = fetch.fetch(
            plugin(upstream), target, options, dry_run_dir=scratch
        )
        assert (sha, path) == (newer, scratch)
        assert head(target) == upstream.master
