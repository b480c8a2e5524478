"""pluginsd.git: canonical URLs, allow-list, refs, no option injection."""

import os

import pytest

from pluginsd import exception
from pluginsd import git
from pluginsd import localconf
from pluginsd.plugins import fetch
from pluginsd.plugins import plan as plan_mod
from pluginsd.plugins.plan import Plugin
from tests.gitrepos import make_repo

ALLOWED = (
    'https://opendev.org/openstack/',
    '/srv/plugins',
    'ssh://git@review.example.com:29418/openstack',
)


@pytest.mark.parametrize(
    'url',
    [
        'https://opendev.org/openstack/devstack-plugin-foo',
        'https://opendev.org/openstack/foo.git',
        'HTTPS://OpenDev.ORG/openstack/foo',  # upper-case scheme and host
        'https://opendev.org./openstack/foo',  # trailing dot of the FQDN
        'https://opendev.org:443/openstack/foo',  # default port
        'https://opendev.org//openstack/foo',  # empty segment
        'https://opendev.org/openstack/%66oo',  # %66 is "f"
        '/srv/plugins/alpha',
        'file:///srv/plugins/alpha',
        'file://localhost/srv/plugins/alpha',
        'ssh://git@review.example.com:29418/openstack/foo',
    ],
)
def test_allowed_forms(url):
    assert git.source_allowed(url, ALLOWED)


@pytest.mark.parametrize(
    'url',
    [
        'https://opendev.org/openstack-evil/foo',  # a prefix, not a segment
        '/srv/plugins-evil/alpha',
        'http://opendev.org/openstack/foo',  # another scheme
        'https://opendev.org:8443/openstack/foo',  # another port
        'https://evil.org/openstack/foo',
        'ssh://review.example.com/openstack/foo',  # port 22, not 29418
        'git@evil.org:openstack/foo',  # scp-like ssh elsewhere
    ],
)
def test_not_allowed(url):
    assert git.source_allowed(url, ALLOWED) is None


@pytest.mark.parametrize(
    'url, reason',
    [
        ('file:///srv/plugins/../evil/x', '".." path segment'),
        ('/srv/plugins/../evil/x', '".." path segment'),
        ('https://opendev.org/openstack/../../evil/x', '".." path segment'),
        ('https://opendev.org/openstack/./foo', '"." path segment'),
        ('https://opendev.org/openstack/%2e%2e/evil/x', "percent-encoded '.'"),
        ('https://opendev.org/openstack/%2E%2E/evil', "percent-encoded '.'"),
        ('https://opendev.org/openstack/..%2fevil/x', "percent-encoded '/'"),
        ('/srv/plugins/..%2f..%2fevil', "percent-encoded '/'"),
        ('https://opendev.org/openstack/..%5cevil', "percent-encoded '\\\\'"),
        ('https://user:secret@opendev.org/openstack/foo', 'credentials'),
        ('https://token@opendev.org/openstack/foo', 'credentials'),
        ('https://opendev.org@evil.org/openstack/foo', 'credentials'),
        ('ssh://a@b@evil.org/openstack/foo', 'credentials'),
        ('ext::sh -c touch% /tmp/pwned', 'ext:: and fd::'),
        ('fd::17', 'ext:: and fd::'),
        ('--upload-pack=touch /tmp/pwned', 'may not start with "-"'),
        ('-oProxyCommand=x', 'may not start with "-"'),
        ('gopher://opendev.org/openstack/foo', "unknown scheme 'gopher'"),
        ('https://opendev.org/openstack/foo?x=1', 'query or fragment'),
        ('file://evil.org/srv/plugins/alpha', 'must not name a host'),
        ('https://opendev.org:99999/x', 'cannot be parsed'),
        ('https://open_dev.org/openstack/foo', 'invalid host name'),
        ('relative/path', 'not an absolute path'),
    ],
)
def test_refused(url, reason):
    with pytest.raises(git.GitInputError) as err:
        git.source_allowed(url, ALLOWED)
    assert reason in str(err.value)
    assert 'secret' not in str(err.value)  # credentials never echoed


def test_canonical_form():
    assert (
        git.format_url(git.canonical_url('HTTPS://OpenDev.ORG.:443//a/b/'))
        == 'https://opendev.org/a/b'
    )
    assert git.format_url(git.canonical_url('git@Host.example:x/y')) == (
        'ssh://git@host.example/x/y'
    )


@pytest.mark.parametrize(
    'ref',
    [
        'master',
        'stable/2024.1',
        'refs/changes/45/12345/6',
        '1.0.0',
        '0123456789abcdef0123456789abcdef01234567',
    ],
)
def test_good_refs(ref):
    assert git.check_ref(ref) == ref


@pytest.mark.parametrize(
    'ref',
    [
        '--upload-pack=touch /tmp/x',
        '-b',
        'a..b',
        'a b',
        'a~1',
        'a^',
        'a:b',
        'a?',
        'a*',
        'a[',
        'a\\b',
        'a@{1}',
        '@',
        'a/',
        '/a',
        'a.',
        'a//b',
        '.hidden',
        'x/.y',
        'a.lock',
        '',
        'a\tb',
    ],
)
def test_bad_refs(ref):
    with pytest.raises(git.GitInputError):
        git.check_ref(ref)


def test_env_fixes_protocols():
    env = git.env()
    assert env['GIT_ALLOW_PROTOCOL'] == 'file:git:http:https:ssh'
    assert 'ext' not in env['GIT_ALLOW_PROTOCOL'].split(':')


def test_git_refuses_ext_transport_even_unchecked(tmp_path):
    """The protocol allow-list holds even for a call that skipped checks."""
    canary = tmp_path / 'canary'
    proc = git.run(
        ['ls-remote', '--', f'ext::sh -c touch% {canary}'], check=False
    )
    assert proc.returncode
    assert "transport 'ext' not allowed" in proc.stderr
    assert not canary.exists()


class TestInjection:
    """A ref or URL that git would read as an option never reaches git."""

    def test_ref_upload_pack(self, tmp_path):
        repo = make_repo(
            str(tmp_path / 'repo'), {'devstack/plugin.sh': 'true\n'}
        )
        canary = tmp_path / 'canary'
        p = Plugin(
            name='alpha', url=repo, ref=f'--upload-pack=touch {canary};git'
        )
        with pytest.raises(exception.FetchError) as err:
            fetch.fetch(
                p, str(tmp_path / 'dest' / 'alpha'), fetch.FetchOptions()
            )
        assert 'git ref' in str(err.value)
        assert 'may not start with "-"' in str(err.value)
        assert not canary.exists()
        assert not (tmp_path / 'dest').exists()  # nothing cloned either

    def test_url_option(self, tmp_path):
        canary = tmp_path / 'canary'
        p = Plugin(
            name='alpha', url=f'--upload-pack=touch {canary}', ref='master'
        )
        with pytest.raises(exception.FetchError) as err:
            fetch.fetch(
                p, str(tmp_path / 'dest' / 'alpha'), fetch.FetchOptions()
            )
        assert 'may not start with "-"' in str(err.value)
        assert not canary.exists()

    def test_plan_names_the_local_conf_line(self, tmp_path):
        repo = make_repo(
            str(tmp_path / 'repo'),
            {
                'devstack/plugin.sh': 'true\n',
                'devstack/settings': 'true\n',
            },
        )
        canary = tmp_path / 'canary'
        path = tmp_path / 'local.conf'
        path.write_text(
            '[[local|localrc]]\n'
            'DEST=' + str(tmp_path / 'dest') + '\n'
            f'enable_plugin alpha {repo} "--upload-pack=touch {canary};git"\n'
        )
        conf = localconf.parse(path.read_text(), str(path))
        with pytest.raises(exception.LocalConfError) as err:
            plan_mod.make_plan(conf, str(tmp_path / 'work'))
        message = str(err.value)
        assert message.startswith(f'{path}:3: enable_plugin alpha: ')
        assert 'may not start with "-"' in message
        assert not canary.exists()
        assert not os.path.exists(tmp_path / 'dest' / 'alpha')
