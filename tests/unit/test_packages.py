"""pluginsd.runner.packages: package lists and installers (contract, 10)."""

import io
import os
import subprocess

import pytest

from pluginsd import exception
from pluginsd.runner import packages


class TestParsePackageList:
    def test_comments_blank_lines_and_several_per_line(self):
        text = (
            '# a comment line\n'
            '\n'
            '   \n'
            'foo\n'
            'bar baz   # two packages, one comment\n'
            '  indented\n'
            'qux#no space before the hash\n'
        )
        assert packages.parse_package_list(text, 'noble') == [
            'foo',
            'bar',
            'baz',
            'indented',
            'qux',
        ]

    def test_empty(self):
        assert packages.parse_package_list('', 'noble') == []

    @pytest.mark.parametrize(
        'distro, expected',
        [
            ('noble', ['everywhere', 'only-ubuntu']),
            ('jammy', ['everywhere', 'only-ubuntu', 'not-noble']),
            ('bookworm', ['everywhere', 'not-noble']),
        ],
    )
    def test_dist_keeps_only_listed(self, distro, expected):
        text = (
            'everywhere\n'
            'only-ubuntu # dist:noble,jammy\n'
            'not-noble # not:noble,bookworm-x\n'
            'nowhere # dist:noble not:noble\n'
        )
        assert packages.parse_package_list(text, distro) == expected

    def test_not_drops_listed(self):
        text = 'a # not:bookworm,trixie\nb # not:trixie\n'
        assert packages.parse_package_list(text, 'bookworm') == ['b']
        assert packages.parse_package_list(text, 'trixie') == []
        assert packages.parse_package_list(text, 'noble') == ['a', 'b']

    def test_not_wins_over_dist(self):
        text = 'pkg # dist:noble,jammy not:noble\n'
        assert packages.parse_package_list(text, 'noble') == []
        assert packages.parse_package_list(text, 'jammy') == ['pkg']
        assert packages.parse_package_list(text, 'bookworm') == []

    def test_not_before_dist_in_comment(self):
        text = 'pkg # not:jammy dist:noble,jammy\n'
        assert packages.parse_package_list(text, 'noble') == ['pkg']
        assert packages.parse_package_list(text, 'jammy') == []

    @pytest.mark.parametrize(
        'line, distro',
        [
            ('pkg # dist:NOBLE', 'noble'),
            ('pkg # dist:noble', 'Noble'),
            ('pkg # dist:RHEL9,f40', 'rhel9'),
            ('pkg # dist:rhel9,F40', 'f40'),
        ],
    )
    def test_distro_names_case_insensitive(self, line, distro):
        assert packages.parse_package_list(line, distro) == ['pkg']
        assert (
            packages.parse_package_list(line.replace('dist:', 'not:'), distro)
            == []
        )

    def test_whole_name_compare_documented_deviation(self):
        # DevStack's substring test makes dist:noblest match noble; pluginsd
        # compares whole names (documented in the module docstring).
        text = 'a # dist:noblest\nb # not:xnoble\nc # dist:rhel9 \n'
        assert packages.parse_package_list(text, 'noble') == ['b']
        assert packages.parse_package_list(text, 'rhel') == ['b']
        assert packages.parse_package_list(text, 'rhel9') == ['b', 'c']

    def test_noprime_anywhere_drops_line(self):
        text = (
            'a # NOPRIME\n'
            'b NOPRIME\n'
            'c # dist:noble NOPRIME\n'
            'NOPRIME\n'
            'd # noprime is case-sensitive\n'
        )
        assert packages.parse_package_list(text, 'noble') == ['d']

    def test_testonly_is_installed(self):
        text = 'a # testonly\nb # dist:noble testonly\n'
        assert packages.parse_package_list(text, 'noble') == ['a', 'b']
        assert packages.parse_package_list(text, 'jammy') == ['a']

    def test_no_pathname_expansion(self, tmp_path, monkeypatch):
        (tmp_path / 'libfoo-dev').write_text('')
        monkeypatch.chdir(tmp_path)
        assert packages.parse_package_list('libfoo*\n', 'noble') == ['libfoo*']


class TestPluginPackages:
    @pytest.fixture
    def plugin_dir(self, tmp_path):
        files = {
            'devstack/files/debs/alpha': 'deb-a\ndeb-b # dist:bookworm\n',
            'devstack/files/debs/other': 'not-mine\n',
            'devstack/files/debs/alpha-extra': 'not-mine-either\n',
            'devstack/files/rpms/alpha': 'rpm-a\nrpm-b # not:rhel9\n',
            'devstack/files/rpms-suse/alpha': 'suse\n',
        }
        for rel, text in files.items():
            path = tmp_path / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return str(tmp_path)

    def test_debs_by_enable_name(self, plugin_dir):
        assert packages.plugin_packages(plugin_dir, 'alpha', 'noble') == [
            'deb-a'
        ]
        assert packages.plugin_packages(
            plugin_dir, 'alpha', 'bookworm', 'deb'
        ) == ['deb-a', 'deb-b']

    def test_other_names_ignored(self, plugin_dir):
        assert packages.plugin_packages(plugin_dir, 'beta', 'noble') == []

    def test_rpms(self, plugin_dir):
        assert packages.plugin_packages(plugin_dir, 'alpha', 'f40', 'rpm') == [
            'rpm-a',
            'rpm-b',
        ]
        assert packages.plugin_packages(
            plugin_dir, 'alpha', 'rhel9', 'rpm'
        ) == ['rpm-a']

    def test_no_devstack_files(self, tmp_path):
        assert packages.plugin_packages(str(tmp_path), 'alpha', 'noble') == []

    def test_package_dir(self):
        assert packages.package_dir('deb') == 'debs'
        assert packages.package_dir('rpm') == 'rpms'
        assert packages.package_dir('rpm', 'opensuse-15.5') == 'rpms-suse'


OS_RELEASE = {
    'debian-bookworm': '''\
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
''',
    'ubuntu-noble': '''\
PRETTY_NAME="Ubuntu 24.04.1 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
VERSION="24.04.1 LTS (Noble Numbat)"
VERSION_CODENAME=noble
ID=ubuntu
ID_LIKE=debian
UBUNTU_CODENAME=noble
''',
    'rhel-9': '''\
NAME="Red Hat Enterprise Linux"
VERSION="9.4 (Plow)"
ID="rhel"
ID_LIKE="fedora"
VERSION_ID="9.4"
PLATFORM_ID="platform:el9"
''',
    'rocky-9': '''\
NAME="Rocky Linux"
VERSION="9.4 (Blue Onyx)"
ID="rocky"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.4"
PLATFORM_ID="platform:el9"
''',
    'centos-stream-9': '''\
NAME="CentOS Stream"
VERSION="9"
ID="centos"
ID_LIKE="rhel fedora"
VERSION_ID="9"
PLATFORM_ID="platform:el9"
''',
    'fedora-40': '''\
NAME="Fedora Linux"
VERSION="40 (Server Edition)"
ID=fedora
VERSION_ID=40
VERSION_CODENAME=""
PLATFORM_ID="platform:f40"
''',
}


def _os_release(tmp_path, name):
    path = tmp_path / 'os-release'
    path.write_text(OS_RELEASE[name])
    return str(path)


class TestOsFacts:
    @pytest.mark.parametrize(
        'name, expected',
        [
            ('debian-bookworm', ('bookworm', 'deb')),
            ('ubuntu-noble', ('noble', 'deb')),
            ('rhel-9', ('rhel9', 'rpm')),
        ],
    )
    def test_os_facts(self, tmp_path, name, expected):
        assert packages.os_facts(_os_release(tmp_path, name)) == expected

    @pytest.mark.parametrize(
        'name, expected',
        [
            ('rocky-9', ('rhel9', 'rpm')),
            ('centos-stream-9', ('rhel9', 'rpm')),
            ('fedora-40', ('f40', 'rpm')),
        ],
    )
    def test_os_facts_devstack_distro_names(self, tmp_path, name, expected):
        assert packages.os_facts(_os_release(tmp_path, name)) == expected

    def test_missing_file(self, tmp_path):
        assert packages.os_facts(str(tmp_path / 'nope')) == ('', 'deb')

    def test_suse_and_others_named_as_bash_names_them(self, tmp_path):
        path = tmp_path / 'os-release'
        path.write_text(
            'ID="opensuse-leap"\nID_LIKE="suse"\nVERSION_ID=15.5\n'
        )
        assert packages.os_facts(str(path)) == ('opensuse-15.5', 'rpm')
        path.write_text('NAME="Arch Linux"\nID=arch\nVERSION_ID=1\n')
        assert packages.os_facts(str(path)) == ('ArchLinux-1', 'deb')

    def test_honours_the_file_bash_reads(self, tmp_path, monkeypatch):
        monkeypatch.setenv(
            'PLUGINSD_OS_RELEASE_FILE', _os_release(tmp_path, 'fedora-40')
        )
        assert packages.os_facts() == ('f40', 'rpm')


class TestInstallers:
    def test_noop(self):
        installer = packages.get_installer('noop')
        assert isinstance(installer, packages.NoopInstaller)
        assert installer.name == 'noop'
        log = io.BytesIO()
        assert installer.install(['python3-dev', 'libffi-dev'], log) == 0
        assert log.getvalue() == (
            b'pluginsd: would install: python3-dev libffi-dev\n'
        )

    def test_noop_nothing_to_install_writes_nothing(self):
        log = io.BytesIO()
        assert packages.get_installer('noop').install([], log) == 0
        assert log.getvalue() == b''

    def test_bogus(self):
        with pytest.raises(exception.ConfigError) as err:
            packages.get_installer('bogus')
        assert str(err.value) == (
            "configuration: [runner] package_installer = 'bogus' cannot be "
            "loaded (NoMatches); known installers: apt, dnf, noop, zypper"
        )

    @pytest.mark.parametrize(
        'name, os_package, cls',
        [
            ('', 'deb', packages.AptInstaller),
            (None, 'rpm', packages.DnfInstaller),
            ('', 'other', packages.AptInstaller),
            ('zypper', 'deb', packages.ZypperInstaller),
            ('dnf', 'deb', packages.DnfInstaller),
            ('apt', 'rpm', packages.AptInstaller),
        ],
    )
    def test_default_and_named(self, name, os_package, cls):
        installer = packages.get_installer(name, os_package)
        assert type(installer) is cls

    def test_real_installer_builds_command(self, monkeypatch):
        calls = []

        def fake_call(cmd, **kwargs):
            calls.append((cmd, kwargs))
            return 100

        monkeypatch.setattr(packages.process, 'call', fake_call)
        log = io.BytesIO()
        apt = packages.AptInstaller()
        assert apt.install(['a', 'b'], log) == 100
        assert apt.install(['e'], log) == 100  # the index is fresh now
        assert packages.DnfInstaller().install(['c'], log) == 100
        assert packages.ZypperInstaller().install(['d'], log) == 100
        assert [c for c, _ in calls] == [
            ['apt-get', 'update', '-qq'],
            ['apt-get', 'install', '-y', '--no-install-recommends', 'a', 'b'],
            ['apt-get', 'install', '-y', '--no-install-recommends', 'e'],
            ['dnf', 'install', '-y', 'c'],
            ['zypper', '--non-interactive', 'install', 'd'],
        ]
        kwargs = calls[1][1]
        assert kwargs['stdout'] is log
        assert kwargs['stderr'] == subprocess.STDOUT
        assert kwargs['stdin'] == subprocess.DEVNULL
        assert kwargs['env']['DEBIAN_FRONTEND'] == 'noninteractive'
        assert kwargs['env']['PATH'] == os.environ['PATH']

    def test_real_installer_nothing_to_install_runs_nothing(self, monkeypatch):
        monkeypatch.setattr(
            packages.process,
            'call',
            lambda *a, **k: pytest.fail('ran a command'),
        )
        assert packages.AptInstaller().install([], io.BytesIO()) == 0
