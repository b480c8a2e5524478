"""Functional tests of pluginsd's bash library (runner/lib/).

Every test runs real bash (`bash --noprofile --norc -c ...`) that sources the
library, and checks what the DevStack-compatible functions actually do.
"""

import os
from pathlib import Path
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

REPO = Path(__file__).resolve().parents[2]
LIB = REPO / "pluginsd" / "runner" / "lib"
STACKRC = LIB / "stackrc"
FUNCTIONS = LIB / "functions"


def make_env(tmp_path, extra=None):
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home),
        "LC_ALL": "C",
        "PLUGINSD_DEST": str(tmp_path / "dest"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }
    if extra:
        env.update(extra)
    return env


def bash(script, tmp_path, env=None, strict=True, source=True, timeout=120):
    """Run `script` in a fresh bash that sourced stackrc and functions.

    strict=True turns on `set -eu` before sourcing, as a careful runner would.
    """
    head = "set -eu\n" if strict else ""
    if source:
        head += f'source "{STACKRC}"\nsource "{FUNCTIONS}"\n'
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-c", head + script],
        env=make_env(tmp_path, env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ok(result):
    assert result.returncode == 0, (
        f"rc={result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result.stdout


def lines(result):
    return ok(result).splitlines()


# --- loading -----------------------------------------------------------------


def test_sources_under_set_eu_and_functions_survive_strict_mode(tmp_path):
    out = ok(
        bash(
            """
        trueorfalse False NOT_SET_ANYWHERE
        if is_service_enabled nothing; then echo wrong; fi
        get_python_exec_prefix
        database_connection_url nova
        echo_summary "summary line"
        is_neutron_legacy_enabled
        if is_ssl_enabled_service anything; then echo wrong; fi
        define_plugin foo
        plugin_requires foo bar
        iniget /nonexistent/file s o
        use_library_from_git oslo.config || true
        time_start t; time_stop t
        get_or_create_service svc type desc >/dev/null
        configure_keystone_authtoken_middleware /dev/null svc
        async_wait never-started
        echo END
        """,
            tmp_path,
        )
    )
    assert out.splitlines() == [
        "False",
        "/usr/local/bin",
        f"sqlite:///{tmp_path}/dest/data/nova.db",
        "summary line",
        "pluginsd: no job named never-started was started; "
        "nothing to wait for",
        "END",
    ]


def test_global_arrays_are_associative_and_survive_resourcing(tmp_path):
    out = ok(
        bash(
            f"""
        GITREPO[alpha]=a; GITREPO[beta]=b; PROJECT_VENV[x]=/v
        source "{FUNCTIONS}"
        source "{STACKRC}"
        echo "${{#GITREPO[@]}} ${{GITREPO[alpha]}} ${{GITREPO[beta]}}" \\
            "${{PROJECT_VENV[x]}}"
        for a in GITREPO GITDIR GITBRANCH PROJECT_VENV; do
            declare -p $a | cut -d' ' -f2
        done
        """,
            tmp_path,
        )
    )
    assert out.splitlines() == ["2 a b /v", "-A", "-A", "-A", "-A"]


def test_library_spawns_no_process_at_source_time(tmp_path):
    # With an empty PATH any external command at source time would fail.
    out = ok(
        bash(
            f"""
        PATH=/nonexistent
        source "{FUNCTIONS}"
        echo loaded
        """,
            tmp_path,
            source=False,
        )
    )
    assert out.strip() == "loaded"


def test_plugin_definitions_replace_library_functions(tmp_path):
    out = ok(
        bash(
            """
        function echo_summary { echo "plugin: $*"; }
        echo_summary hello
        """,
            tmp_path,
        )
    )
    assert out.strip() == "plugin: hello"


# --- stackrc -----------------------------------------------------------------


def test_stackrc_defaults_and_environment_rules(tmp_path):
    out = ok(
        bash(
            """
        # One row per echo, fields joined with "|".
        row() { local IFS='|'; echo "$*"; }
        row "$DEST" "$DATA_DIR" "$FILES" "$TOP_DIR" "$SERVICE_PROTOCOL" \\
            "$GIT_BASE" "$REGION_NAME"
        row "$ENABLE_DEBUG_LOG_LEVEL" "$SERVICE_TIMEOUT" "$SYSLOG" \\
            "$LOG_COLOR" "$TARGET_BRANCH"
        row "$USE_VENV" "$GLOBAL_VENV" "$RECLONE" "$ERROR_ON_CLONE" \\
            "$OFFLINE" "$GIT_DEPTH" "$GIT_TIMEOUT"
        row "[$LIBS_FROM_GIT]" "$SERVICE_PROJECT_NAME" "[$ENABLED_SERVICES]" \\
            "[$DISABLED_SERVICES]" "[$DEVSTACK_PLUGINS]"
        row "$DATABASE_TYPE" "$DATABASE_BACKENDS" "$SERVICE_HOST" "$HOST_IP"
        me=$( (( EUID == 0 )) && echo stack || id -un)
        [[ $STACK_USER == "$me" ]] && echo user-ok
        """,
            tmp_path,
            env={
                "DEST": "/exported/dest/is/ignored",
                "TOP_DIR": "/ignored",
                "DISABLED_SERVICES": "x",
            },
        )
    )
    d = tmp_path / "dest"
    rows = out.splitlines()
    assert (
        rows[0]
        == f"{d}|{d}/data|{d}/files|{LIB}|http|https://opendev.org|RegionOne"
    )
    assert rows[1] == "True|60|False|False|master"
    assert rows[2] == "False|False|False|False|False|0|0"
    assert rows[3] == "[]|service|[]|[]|[]"
    database, backends, service_host, host_ip = rows[4].split("|")
    assert (database, backends) == ("sqlite", "mysql postgresql")
    assert service_host == host_ip and re.fullmatch(
        r"\d+\.\d+\.\d+\.\d+", host_ip
    )
    assert rows[5] == "user-ok"


def test_stackrc_lets_environment_win_where_devstack_does(tmp_path):
    out = ok(
        bash(
            'echo "$DATA_DIR|$RECLONE|$OFFLINE|$SYSLOG|$SERVICE_HOST|'
            '$HOST_IP|[$ENABLED_SERVICES]|$TOP_DIR|$FILES"',
            tmp_path,
            env={
                "DATA_DIR": "/custom/data",
                "RECLONE": "yes",
                "OFFLINE": "TRUE",
                "SYSLOG": "maybe",  # not a boolean spelling -> the default
                "HOST_IP": "10.1.2.3",
                "ENABLED_SERVICES": "",  # set but empty is kept
                "TOP_DIR": "/devstack",  # the library's own directory wins
            },
        )
    )
    assert (
        out.strip() == "/custom/data|True|True|False|10.1.2.3|10.1.2.3|[]|"
        f"{LIB}|{tmp_path}/dest/files"
    )


def test_stackrc_alone_loads_the_functions(tmp_path):
    out = ok(
        bash(
            f'set -eu; source "{STACKRC}"; trueorfalse True X; '
            'declare -F enable_plugin >/dev/null && echo has',
            tmp_path,
            source=False,
        )
    )
    assert out.split() == ["True", "has"]


@pytest.mark.parametrize(
    "os_release, expected",
    [
        (
            'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n'
            'NAME="Debian GNU/Linux"\n',
            "Debian|12|bookworm|deb|bookworm|ubuntu",
        ),
        (
            'NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n'
            'VERSION_CODENAME=noble\n',
            "Ubuntu|24.04|noble|deb|noble|ubuntu",
        ),
        (
            'NAME="Fedora Linux"\nID=fedora\nVERSION_ID=40\n',
            "Fedora|40|n/a|rpm|f40|fedora",
        ),
        (
            'NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\n'
            'VERSION_ID="9.4"\n',
            "RockyLinux|9.4|n/a|rpm|rhel9|fedora",
        ),
        (
            # no final newline
            'NAME="CentOS Stream"\nID="centos"\nID_LIKE="rhel fedora"\n'
            'VERSION_ID="9"',
            "CentOSStream|9|n/a|rpm|rhel9|fedora",
        ),
    ],
)
def test_os_facts_and_distro(tmp_path, os_release, expected):
    release = tmp_path / "os-release"
    release.write_text(os_release)
    out = ok(
        bash(
            """
        fam=none
        if is_ubuntu; then fam=ubuntu; fi
        if is_fedora; then fam=fedora; fi
        if is_suse; then fam=suse; fi
        echo "$os_VENDOR|$os_RELEASE|$os_CODENAME|$os_PACKAGE|$DISTRO|$fam"
        """,
            tmp_path,
            env={"PLUGINSD_OS_RELEASE_FILE": str(release)},
        )
    )
    assert out.strip() == expected


# --- flow --------------------------------------------------------------------


TRUE_SPELLINGS = ["1", "yes", "Yes", "YES", "true", "True", "TRUE"]
FALSE_SPELLINGS = ["0", "no", "No", "NO", "false", "False", "FALSE"]
OTHER_SPELLINGS = ["", "yES", "tRUE", "2", "on", "y", "maybe"]


def test_trueorfalse_table(tmp_path):
    values = TRUE_SPELLINGS + FALSE_SPELLINGS + OTHER_SPELLINGS
    env = {f"V{i}": v for i, v in enumerate(values)}
    script = "".join(
        f'echo "$(trueorfalse Dflt V{i})"\n' for i in range(len(values))
    )
    script += 'echo "$(trueorfalse True UNSET_VARIABLE)"\n'
    out = lines(bash(script, tmp_path, env=env))
    expected = (
        ["True"] * 7
        + ["False"] * 7
        + ["Dflt"] * len(OTHER_SPELLINGS)
        + ["True"]
    )
    assert out == expected


def test_trueorfalse_without_variable_name_dies(tmp_path):
    result = bash("x=$(trueorfalse True)\necho not-reached", tmp_path)
    assert result.returncode == 1
    assert "not-reached" not in result.stdout
    assert "trueorfalse" in result.stderr


def test_die_reports_caller_location_and_exits(tmp_path):
    script = tmp_path / "plugin.sh"
    script.write_text('echo before\n\ndie "first form"\necho after\n')
    result = bash(f'source "{script}"', tmp_path)
    assert result.returncode == 1
    assert result.stdout == "before\n"
    assert f"[ERROR] {script}:3 first form" in result.stderr

    script.write_text("die 42 numbered form\necho after\n")
    result = bash(f'source "{script}"', tmp_path)
    assert result.returncode == 1
    assert f"[ERROR] {script}:42 numbered form" in result.stderr
    assert "after" not in result.stdout


def test_err_and_warn_report_without_exiting(tmp_path):
    result = bash(
        """
        err "soft error"
        warn 7 "a warning"
        if ! (false || err "propagates"); then echo propagated; fi
        echo still-running
        """,
        tmp_path,
    )
    assert ok(result).split() == ["propagated", "still-running"]
    assert "[ERROR] main:" in result.stderr and "soft error" in result.stderr
    assert "[WARNING] main:7 a warning" in result.stderr


def test_die_if_not_set(tmp_path):
    result = bash(
        'FOO=x; die_if_not_set $LINENO FOO "no foo"; echo fine; '
        'die_if_not_set $LINENO BAR "BAR missing"; echo no',
        tmp_path,
    )
    assert result.returncode == 1
    assert result.stdout == "fine\n"
    assert "BAR missing" in result.stderr


def test_function_exists(tmp_path):
    out = ok(
        bash(
            """
        function my_fn { :; }
        function_exists my_fn && echo yes
        function_exists not_there || echo no
        """,
            tmp_path,
        )
    )
    assert out.split() == ["yes", "no"]


# --- services ----------------------------------------------------------------


def check_enabled(tmp_path, enabled, queries, prelude=""):
    script = prelude + f'ENABLED_SERVICES="{enabled}"\n'
    for q in queries:
        script += f"if is_service_enabled {q}; then echo T; else echo F; fi\n"
    return "".join(lines(bash(script, tmp_path)))


def test_is_service_enabled_exact_match_no_regex(tmp_path):
    result = check_enabled(
        tmp_path,
        "axb,foo-bar,p,q,key",
        [
            "foo-bar",
            "axb",
            "a.b",
            "'.'",
            "'a|zz'",
            "'p,q'",
            "'a.*'",
            "fo",  # codespell:ignore fo
            "foo",
            "ke",
            "'*'",
            "",
            "nope foo-bar",
            "nope other",
        ],
    )
    assert result == "TTFFFFFFFFFFTF"


def test_is_service_enabled_hooks(tmp_path):
    prelude = """
    function is_aodh_enabled { [[ ,${ENABLED_SERVICES}, == *,aodh-* ]]; }
    function is_off_enabled { return 1; }
    function is_barbican-svc_enabled { return 0; }
    """
    result = check_enabled(
        tmp_path,
        "aodh-api,off",
        ["aodh", "off", "barbican-svc", "'off aodh'", "ceilometer"],
        prelude,
    )
    # "off" is listed, so it is enabled whatever its hook says.
    assert result == "TTTTF"
    result = check_enabled(tmp_path, "x", ["aodh"], prelude)
    assert result == "F"


def test_is_service_enabled_legacy_families(tmp_path):
    assert (
        check_enabled(
            tmp_path,
            "n-api,g-reg,q-svc,tr-api,s-proxy",
            ["nova", "glance", "neutron", "trove", "swift"],
        )
        == "TTTTT"
    )
    assert (
        check_enabled(
            tmp_path,
            "key,novax,qq,swiftly",
            [
                "nova",
                "glance",
                "neutron",
                "trove",
                "swift",
                "n-",
                "q",
                "s-",
                "s-proxy",
            ],
        )
        == "FFFFFFFFF"
    )
    assert (
        check_enabled(
            tmp_path,
            "swift,n-cpu",
            ["s-proxy", "s-object", "n-cpu-ironic", "n-api"],
        )
        == "TTTF"
    )


def test_enable_disable_negation_and_stickiness(tmp_path):
    result = bash(
        """
        ENABLED_SERVICES=a,b
        enable_service c a "d,e"
        echo "1:$ENABLED_SERVICES"
        disable_service b x
        echo "2:$ENABLED_SERVICES|$DISABLED_SERVICES"
        enable_service b y
        echo "3:$ENABLED_SERVICES"
        ENABLED_SERVICES+=",-c,f,c,c"
        disable_negated_services
        echo "4:$ENABLED_SERVICES"
        enable_service c
        echo "5:$ENABLED_SERVICES"
        enable_service -a
        echo "6:$ENABLED_SERVICES"
        disable_all_services
        echo "7:[$ENABLED_SERVICES]"
        enable_service b bb
        echo "8:[$ENABLED_SERVICES]"
        """,
        tmp_path,
    )
    assert lines(result) == [
        "1:a,b,c,d,e",
        "2:a,c,d,e|b,x",
        "3:a,c,d,e,y",
        "4:a,d,e,y,f",
        "5:a,d,e,y,f,c",  # a negation is not sticky
        "6:d,e,y,f,c",
        "7:[]",
        "8:[bb]",  # disable_service is sticky, and exact
    ]
    assert "enable_service b when it has been disabled" in result.stderr
    assert "enable_service y" not in result.stderr


def test_verify_disabled_services_dies_naming_the_service(tmp_path):
    result = bash(
        """
        ENABLED_SERVICES=a,b,bb
        disable_service b
        verify_disabled_services
        echo passed
        ENABLED_SERVICES+=",b"
        verify_disabled_services
        echo not-reached
        """,
        tmp_path,
    )
    assert result.returncode == 1
    assert result.stdout == "passed\n"
    assert "'b'" in result.stderr and "ENABLED_SERVICES" in result.stderr


# --- plugins -----------------------------------------------------------------


def test_enable_plugin_defaults_and_dest_at_call_time(tmp_path):
    out = ok(
        bash(
            """
        enable_plugin alpha https://example.org/alpha
        DEST=/elsewhere
        enable_plugin beta https://example.org/beta stable/2024.1
        enable_plugin a.b https://example.org/ab ''
        echo "$DEVSTACK_PLUGINS"
        echo "${GITREPO[alpha]}|${GITBRANCH[alpha]}|${GITDIR[alpha]}"
        echo "${GITREPO[beta]}|${GITBRANCH[beta]}|${GITDIR[beta]}"
        echo "${GITBRANCH[a.b]}"
        for p in alpha a.b axb al; do
            if is_plugin_enabled $p; then echo "$p:T"; else echo "$p:F"; fi
        done
        """,
            tmp_path,
        )
    )
    assert out.splitlines() == [
        ",alpha,beta,a.b",
        f"https://example.org/alpha|master|{tmp_path}/dest/alpha",
        "https://example.org/beta|stable/2024.1|/elsewhere/beta",
        "master",
        "alpha:T",
        "a.b:T",
        "axb:F",
        "al:F",
    ]


def test_enable_plugin_twice_dies_with_name_url_ref_and_line(tmp_path):
    localrc = tmp_path / "localrc"
    localrc.write_text(
        "# plugins\n"
        "enable_plugin alpha https://example.org/alpha\n"
        "enable_plugin beta https://example.org/beta\n"
        "enable_plugin alpha https://example.org/alpha-fork feature/x\n"
        "echo SHOULD-NOT-RUN\n"
    )
    result = bash(f'source "{localrc}"', tmp_path)
    assert result.returncode == 1
    assert "SHOULD-NOT-RUN" not in result.stdout
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"[ERROR] {localrc}:4 ")
    for word in ("alpha", "https://example.org/alpha-fork", "feature/x"):
        assert word in first


@pytest.mark.parametrize("locale", ["C", "C.UTF-8"])
@pytest.mark.parametrize(
    "name", ["a b", "a/b", "../x", "a*", "a;b", "$x", "é", "ß"]
)
def test_enable_plugin_rejects_bad_names(tmp_path, name, locale):
    localrc = tmp_path / "localrc"
    localrc.write_text(
        'enable_plugin good https://example.org/good\nenable_plugin "$NAME" https://example.org/x\n'
    )
    result = bash(
        f'source "{localrc}"\necho not-reached',
        tmp_path,
        env={"NAME": name, "LC_ALL": locale},
    )
    assert result.returncode == 1
    assert "not-reached" not in result.stdout
    assert f"'{name}'" in result.stderr
    assert f"[ERROR] {localrc}:2 " in result.stderr


def test_enable_plugin_missing_arguments(tmp_path):
    for call in ("enable_plugin", "enable_plugin onlyname"):
        result = bash(f"{call}\necho not-reached", tmp_path)
        assert result.returncode == 1
        assert "usage: enable_plugin <name> <giturl> [gitref]" in result.stderr


# --- packages ----------------------------------------------------------------


def test_install_package_noop(tmp_path):
    out = ok(
        bash(
            """
        install_package foo "bar baz"
        uninstall_package old
        yum_install rpmthing
        apt_get install -y x
        install_package
        PLUGINSD_PACKAGE_INSTALLER=noop install_package explicit
        """,
            tmp_path,
        )
    )
    assert out.splitlines() == [
        "pluginsd: would install: foo bar baz",
        "pluginsd: would uninstall: old",
        "pluginsd: would install: rpmthing",
        "pluginsd: would run: apt-get install -y x",
        "pluginsd: would install: explicit",
    ]


def test_install_package_unknown_installer_dies(tmp_path):
    result = bash(
        "install_package foo\necho no",
        tmp_path,
        env={"PLUGINSD_PACKAGE_INSTALLER": "brew"},
    )
    assert result.returncode == 1
    assert "'brew'" in result.stderr and result.stdout == ""


def test_is_package_installed_is_a_real_query(tmp_path):
    if not shutil.which("dpkg") and not shutil.which("rpm"):
        pytest.skip("no package database")
    out = ok(
        bash(
            """
        if is_package_installed bash; then echo yes; fi
        if ! is_package_installed pluginsd-no-such-package-xyz; then
            echo no
        fi
        if ! is_package_installed; then echo none; fi
        """,
            tmp_path,
        )
    )
    assert out.split() == ["yes", "no", "none"]


# --- INI ---------------------------------------------------------------------


@pytest.fixture(params=["awk", "mawk"])
def awk_env(request, tmp_path):
    """Run the INI tests with the default awk and with mawk as `awk`."""
    if request.param == "awk":
        return {}
    mawk = shutil.which("mawk")
    if not mawk:
        pytest.skip("mawk not installed")
    bindir = tmp_path / "mawk-bin"
    bindir.mkdir()
    (bindir / "awk").symlink_to(mawk)
    return {"PATH": f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}"}


AWKWARD = [
    "http://user:p@ss@host:5672/vhost?a=1&b=2",
    "a|b|c",
    "with spaces = and equals",
    r"back\slash \1 \n & \&",
    "$HOME `id` $(id) 'single' \"double\"",
    "/",
    "&",
    "",
    "#not a comment",
    "[not a section]",
    "tab\tinside",
]


def test_iniset_iniget_round_trip_awkward_values(tmp_path, awk_env):
    conf = (
        tmp_path / "etc" / "svc" / "svc.conf"
    )  # directory does not exist yet
    env = dict(awk_env, CONF=str(conf))
    env.update({f"V{i}": v for i, v in enumerate(AWKWARD)})
    script = ""
    for i in range(len(AWKWARD)):
        script += f'iniset "$CONF" sec opt{i} "$V{i}"\n'
        script += (
            f'iniset "$CONF" sec opt{i} "$V{i}"\n'  # replacing keeps one line
        )
    for i in range(len(AWKWARD)):
        script += f'printf "<%s>\\n" "$(iniget "$CONF" sec opt{i})"\n'
    out = lines(bash(script, tmp_path, env=env))
    assert out == [f"<{v}>" for v in AWKWARD]
    text = conf.read_text()
    assert text.startswith("[sec]\nopt0 = http://")
    assert text.count("\n") == len(AWKWARD) + 1


def test_iniset_replaces_value_and_leaves_the_rest_alone(tmp_path, awk_env):
    conf = tmp_path / "a.conf"
    conf.write_text(
        "[DEFAULT]\n"
        "# debug = commented\n"
        "debug = False\n"
        "other=1\n"
        "  continuation = not an option\n"
        "\n"
        "[database]\n"
        "debug = keep\n"
        "connection = x\n"
    )
    ok(
        bash(
            """
        iniset "$CONF" DEFAULT debug True
        iniset "$CONF" DEFAULT other 2
        iniset "$CONF" DEFAULT newopt v
        iniset "$CONF" newsec a "b c"
        iniset -sudo "$CONF" database connection "sqlite:////tmp/x.db?a=1&b=2"
        """,
            tmp_path,
            env=dict(awk_env, CONF=str(conf)),
        )
    )
    assert conf.read_text() == (
        "[DEFAULT]\n"
        "# debug = commented\n"
        "debug = True\n"
        "other=2\n"
        "  continuation = not an option\n"
        "newopt = v\n"
        "\n"
        "[database]\n"
        "debug = keep\n"
        "connection = sqlite:////tmp/x.db?a=1&b=2\n"
        "\n"
        "[newsec]\n"
        "a = b c\n"
    )


def test_ini_multiline_add_comment_delete(tmp_path, awk_env):
    conf = tmp_path / "m.conf"
    conf.write_text(
        "[s]\nkeep = 1\nmulti = old1\nmulti = old2\n\n[t]\nmulti = other\n"
    )
    result = bash(
        """
        iniset_multiline "$CONF" s multi "a b" "c&d" "e|f"
        iniget_multiline "$CONF" s multi
        cp "$CONF" "$CONF.1"
        iniadd "$CONF" s multi "g/h"
        iniget_multiline "$CONF" s multi
        iniset_multiline "$CONF" new multi x y
        inicomment "$CONF" s keep
        if ! ini_has_option "$CONF" s keep; then echo keep-commented; fi
        cp "$CONF" "$CONF.2"
        iniuncomment "$CONF" s keep
        if ini_has_option "$CONF" s keep; then echo keep-back; fi
        iniget "$CONF" s keep
        inidelete "$CONF" s multi
        if ! ini_has_option "$CONF" s multi; then echo multi-gone; fi
        iniget "$CONF" t multi
        """,
        tmp_path,
        env=dict(awk_env, CONF=str(conf)),
    )
    assert lines(result) == [
        "a b c&d e|f",
        "a b c&d e|f g/h",
        "keep-commented",
        "keep-back",
        "1",
        "multi-gone",
        "other",
    ]
    assert Path(f"{conf}.1").read_text() == (
        "[s]\nkeep = 1\nmulti = a b\nmulti = c&d\nmulti = e|f\n\n"
        "[t]\nmulti = other\n"
    )
    assert "#keep = 1\n" in Path(f"{conf}.2").read_text()
    assert (
        conf.read_text() == "[s]\nkeep = 1\n\n[t]\nmulti = other\n\n"
        "[new]\nmulti = x\nmulti = y\n"
    )


def test_iniuncomment_handles_spaced_comments(tmp_path, awk_env):
    conf = tmp_path / "c.conf"
    conf.write_text("[a]\n#  opt = 1\n# optional = 2\n[b]\n# opt = 3\n")
    ok(
        bash(
            'iniuncomment "$CONF" a opt',
            tmp_path,
            env=dict(awk_env, CONF=str(conf)),
        )
    )
    assert conf.read_text() == "[a]\nopt = 1\n# optional = 2\n[b]\n# opt = 3\n"


def test_ini_edge_cases(tmp_path, awk_env):
    result = bash(
        """
        printf "[%s]\\n" "$(iniget /does/not/exist s o)"
        if ! ini_has_option /does/not/exist s o; then echo no-file; fi
        inidelete /does/not/exist s o && echo delete-ok
        if ! iniset "$CONF" "" opt v 2>/dev/null; then echo no-section; fi
        iniset "$CONF" s empty ""
        printf "[%s]\\n" "$(iniget "$CONF" s empty)"
        printf "[%s]\\n" "$(iniget "$CONF" s absent)"
        """,
        tmp_path,
        env=dict(awk_env, CONF=str(tmp_path / "e.conf")),
    )
    assert lines(result) == [
        "[]",
        "no-file",
        "delete-ok",
        "no-section",
        "[]",
        "[]",
    ]
    assert (tmp_path / "e.conf").read_text() == "[s]\nempty = \n"


def test_iniset_rpc_backend(tmp_path):
    conf = tmp_path / "rpc.conf"
    out = ok(
        bash(
            """
        iniset_rpc_backend svc "$CONF"
        [[ -e $CONF ]] || echo nothing-written
        enable_service rabbit
        RABBIT_PASSWORD='s3cr/t&x'; RABBIT_HOST=10.0.0.5
        iniset_rpc_backend svc "$CONF"
        iniget "$CONF" DEFAULT transport_url
        """,
            tmp_path,
            env={"CONF": str(conf)},
        )
    )
    assert out.splitlines() == [
        "nothing-written",
        "rabbit://stackrabbit:s3cr/t&x@10.0.0.5:5672/",
    ]


# --- git ---------------------------------------------------------------------


def git(cwd, *args, env):
    return subprocess.run(
        [
            "git",
            "-c",
            "user.email=test@example.com",
            "-c",
            "user.name=Test",
            *args,
        ],
        cwd=cwd,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture
def upstream(tmp_path):
    """A local repository.

    master A-B, tag v1 at A, branch stable A-C, change ref D.
    """
    env = make_env(tmp_path)
    src = tmp_path / "upstream"
    git(tmp_path, "init", "-q", "-b", "master", str(src), env=env)
    (src / "devstack").mkdir()

    def commit(message):
        (src / "devstack" / "plugin.sh").write_text(f"# {message}\n")
        git(src, "add", "-A", env=env)
        git(src, "commit", "-q", "-m", message, env=env)
        return git(src, "rev-parse", "HEAD", env=env)

    shas = {"A": commit("A")}
    git(src, "tag", "v1", env=env)
    git(src, "checkout", "-q", "-b", "stable", env=env)
    shas["C"] = commit("C")
    git(src, "checkout", "-q", "master", env=env)
    shas["B"] = commit("B")
    git(src, "checkout", "-q", "--detach", env=env)
    shas["D"] = commit("D")
    git(src, "update-ref", "refs/changes/01/1/1", shas["D"], env=env)
    git(src, "checkout", "-q", "master", env=env)
    # Serve any commit id, as the contract's "commit id" case assumes.
    git(src, "config", "uploadpack.allowAnySHA1InWant", "true", env=env)

    def add_commit(message, branch="master"):
        git(src, "checkout", "-q", branch, env=env)
        sha = commit(message)
        git(src, "checkout", "-q", "master", env=env)
        return sha

    return {"path": src, "sha": shas, "env": env, "add_commit": add_commit}


def head(path, env):
    return git(path, "rev-parse", "HEAD", env=env)


def on_branch(path, env):
    r = subprocess.run(
        ["git", "symbolic-ref", "-q", "--short", "HEAD"],
        cwd=path,
        env=env,
        capture_output=True,
        text=True,
    )
    return r.stdout.strip() or None


@pytest.mark.parametrize(
    "ref, commit",
    [("stable", "C"), ("v1", "A"), ("master", "B"), ("", "B"), ("SHA:B", "B")],
)
def test_git_clone_fresh(tmp_path, upstream, ref, commit):
    if ref.startswith("SHA:"):
        ref = upstream["sha"][ref[4:]]
    dest = tmp_path / "checkout" / "plugin"
    ok(bash(f'git_clone "{upstream["path"]}" "{dest}" "{ref}"', tmp_path))
    env = upstream["env"]
    assert head(dest, env) == upstream["sha"][commit]
    assert on_branch(dest, env) is None  # detached at FETCH_HEAD
    assert git(
        dest, "show-ref", "--verify", "refs/heads/master", env=env
    )  # the clone's default branch
    assert not list(dest.parent.glob("*pluginsd-clone*"))


def test_git_clone_existing_is_left_alone_unless_reclone(tmp_path, upstream):
    env = upstream["env"]
    dest = tmp_path / "plugin"
    ok(bash(f'git_clone "{upstream["path"]}" "{dest}" master', tmp_path))
    (dest / "local-edit").write_text("mine")
    newer = upstream["add_commit"]("E")

    ok(bash(f'git_clone "{upstream["path"]}" "{dest}" stable', tmp_path))
    assert head(dest, env) == upstream["sha"]["B"]
    assert (dest / "local-edit").exists()

    ok(
        bash(
            f'git_clone "{upstream["path"]}" "{dest}" master',
            tmp_path,
            env={"RECLONE": "yes"},
        )
    )
    assert head(dest, env) == newer
    assert on_branch(dest, env) == "master"

    ok(
        bash(
            f'git_clone "{upstream["path"]}" "{dest}" stable',
            tmp_path,
            env={"RECLONE": "True"},
        )
    )
    assert head(dest, env) == upstream["sha"]["C"]
    assert on_branch(dest, env) == "stable"

    ok(
        bash(
            f'git_clone "{upstream["path"]}" "{dest}" v1',
            tmp_path,
            env={"RECLONE": "1"},
        )
    )
    assert head(dest, env) == upstream["sha"]["A"]

    result = bash(
        f'git_clone "{upstream["path"]}" "{dest}" {upstream["sha"]["B"]}',
        tmp_path,
        env={"RECLONE": "True"},
    )
    assert result.returncode == 1
    assert "neither branch nor tag" in result.stderr


def test_git_clone_gerrit_ref_is_always_fetched(tmp_path, upstream):
    env = upstream["env"]
    dest = tmp_path / "plugin"
    ok(bash(f'git_clone "{upstream["path"]}" "{dest}" master', tmp_path))
    ok(
        bash(
            f'git_clone "{upstream["path"]}" "{dest}" refs/changes/01/1/1',
            tmp_path,
        )
    )
    assert head(dest, env) == upstream["sha"]["D"]

    fresh = tmp_path / "fresh"
    ok(
        bash(
            f'git_clone "{upstream["path"]}" "{fresh}" refs/changes/01/1/1',
            tmp_path,
        )
    )
    assert head(fresh, env) == upstream["sha"]["D"]


def test_git_clone_error_on_clone(tmp_path, upstream):
    dest = tmp_path / "missing-plugin"
    result = bash(
        f'git_clone "{upstream["path"]}" "{dest}" master\necho not-reached',
        tmp_path,
        env={"ERROR_ON_CLONE": "True"},
    )
    assert result.returncode == 1
    assert "not-reached" not in result.stdout
    assert str(dest) in result.stderr
    assert (
        "ERROR_ON_CLONE" in result.stderr
        and "required-projects" in result.stderr
    )
    assert not dest.exists()

    ok(bash(f'git_clone "{upstream["path"]}" "{dest}" master', tmp_path))
    ok(
        bash(
            f'git_clone "{upstream["path"]}" "{dest}" master',
            tmp_path,
            env={"ERROR_ON_CLONE": "True"},
        )
    )


def test_git_clone_offline(tmp_path, upstream):
    env = upstream["env"]
    dest = tmp_path / "plugin"
    result = bash(
        f'git_clone "{upstream["path"]}" "{dest}" master',
        tmp_path,
        env={"OFFLINE": "True"},
    )
    assert result.returncode == 1
    assert "OFFLINE" in result.stderr and str(dest) in result.stderr
    assert not dest.exists()

    ok(bash(f'git_clone "{upstream["path"]}" "{dest}" master', tmp_path))
    upstream["add_commit"]("E")
    ok(
        bash(
            f'git_clone "{upstream["path"]}" "{dest}" master',
            tmp_path,
            env={"OFFLINE": "True", "RECLONE": "True"},
        )
    )
    assert head(dest, env) == upstream["sha"]["B"]


def test_git_clone_unknown_ref_dies_quoting_git_and_leaves_nothing(
    tmp_path, upstream
):
    dest = tmp_path / "plugins" / "plugin"
    result = bash(
        f'git_clone "{upstream["path"]}" "{dest}" no-such-ref\n'
        'echo not-reached',
        tmp_path,
    )
    assert result.returncode == 1
    assert re.search(
        r"git call failed: \[git -C \S+ fetch origin no-such-ref\]",
        result.stderr,
    )
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []


def test_git_clone_by_name(tmp_path, upstream):
    out = ok(
        bash(
            f"""
        enable_plugin myplugin "{upstream['path']}" stable
        git_clone_by_name myplugin >/dev/null 2>&1
        git -C "$DEST/myplugin" rev-parse HEAD
        """,
            tmp_path,
        )
    )
    assert out.strip() == upstream["sha"]["C"]


# --- processes ---------------------------------------------------------------


def group_members(pgid):
    """Live (non-zombie) processes of a process group, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def process_fds(pid):
    fds = {}
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            fds[int(fd.name)] = os.readlink(fd)
        except OSError:
            pass
    return fds


def test_run_process_and_stop_process(tmp_path):
    svc_dir = tmp_path / "services"
    held = tmp_path / "held-by-runner"
    env = {"PLUGINSD_SERVICE_DIR": str(svc_dir), "HELD": str(held)}
    out = ok(
        bash(
            """
        ENABLED_SERVICES=mysvc
        exec 7>"$HELD" 9>"$HELD" 12>"$HELD"
        run_process mysvc \\
            "echo service-started; echo on-stderr >&2; exec sleep 1000"
        run_process notenabled "sleep 1000"
        cat "$PLUGINSD_SERVICE_DIR/mysvc.pid"
        """,
            tmp_path,
            env=env,
        )
    )
    pid = int(out.splitlines()[-1])
    try:
        assert not (svc_dir / "notenabled.pid").exists()
        deadline = time.time() + 10
        while (
            time.time() < deadline
            and "on-stderr" not in (svc_dir / "mysvc.log").read_text()
        ):
            time.sleep(0.05)
        log = (svc_dir / "mysvc.log").read_text()
        assert "service-started" in log and "on-stderr" in log
        members = group_members(pid)
        assert members, "service is not running"
        assert os.getsid(pid) == pid  # its own session
        for member in members:
            fds = process_fds(member)
            assert not [fd for fd in fds if 3 <= fd], f"inherited fds: {fds}"
            assert str(held) not in fds.values()
        assert any(
            b"sleep" in Path(f"/proc/{m}/cmdline").read_bytes()
            for m in members
        )

        ok(
            bash(
                "stop_process mysvc; stop_process notenabled",
                tmp_path,
                env=env,
            )
        )
        assert group_members(pid) == []
        assert not (svc_dir / "mysvc.pid").exists()
    finally:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("runuser"),
    reason="needs root and runuser",
)
def test_run_process_switches_user(tmp_path):
    svc_dir = tmp_path / "services"
    svc_dir.mkdir()
    env = {"PLUGINSD_SERVICE_DIR": str(svc_dir)}
    out = ok(
        bash(
            """
        enable_service asuser
        run_process asuser "id -un; exec sleep 1000" "" nobody
        cat "$PLUGINSD_SERVICE_DIR/asuser.pid"
        """,
            tmp_path,
            env=env,
        )
    )
    pid = int(out.splitlines()[-1])
    try:
        deadline = time.time() + 10
        while (
            time.time() < deadline
            and "nobody" not in (svc_dir / "asuser.log").read_text()
        ):
            time.sleep(0.05)
        assert "nobody" in (svc_dir / "asuser.log").read_text()
        ok(bash("stop_process asuser", tmp_path, env=env))
        assert group_members(pid) == []
    finally:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass


def test_safe_chmod_and_chown(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    target.chmod(0o644)
    uid, gid = os.getuid(), os.getgid()
    ok(
        bash(
            f'safe_chmod 600 "{target}"; safe_chown {uid}:{gid} "{target}"',
            tmp_path,
        )
    )
    assert target.stat().st_mode & 0o777 == 0o600
    result = bash(f'safe_chmod 600 "{tmp_path}/missing"; echo no', tmp_path)
    assert (
        result.returncode != 0
    )  # a real chmod ran and failed, as in DevStack


def test_stop_process_kills_what_ignores_term(tmp_path):
    svc_dir = tmp_path / "services"
    terms = tmp_path / "terms"
    env = {
        "PLUGINSD_SERVICE_DIR": str(svc_dir),
        "PLUGINSD_STOP_TIMEOUT": "1",
        "TERMS": str(terms),
    }
    out = ok(
        bash(
            """
        enable_service stubborn
        run_process stubborn "trap 'echo got-term >> $TERMS' TERM
            while :; do sleep 0.1; done"
        cat "$PLUGINSD_SERVICE_DIR/stubborn.pid"
        """,
            tmp_path,
            env=env,
        )
    )
    pid = int(out.splitlines()[-1])
    try:
        assert group_members(pid)
        ok(bash("stop_process stubborn", tmp_path, env=env))
        assert group_members(pid) == []
        # TERM was tried first: the service saw it (and ignored it).
        assert "got-term" in terms.read_text()
    finally:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass


def test_async_jobs_run_and_report_failure(tmp_path):
    result = bash(
        """
        function job_ok { echo "ok-ran"; MARK=set; }
        function job_fail { echo "fail-start"; false; echo "after-false"; }
        async_runfunc job_ok
        async_runfunc job_fail
        async_run shell_job "echo from-command"
        echo "survived"
        async_wait job_ok shell_job && echo "wait-ok"
        if ! async_wait job_fail; then echo "wait-failed"; fi
        """,
        tmp_path,
    )
    out = ok(result)
    assert "ok-ran" in out and "fail-start" in out and "from-command" in out
    assert "after-false" not in out  # errexit still applies inside the job
    assert (
        out.index("survived") < out.index("wait-ok") < out.index("wait-failed")
    )
    assert "job_fail failed" in result.stderr


def test_stack_install_service(tmp_path):
    out = ok(
        bash(
            """
        function install_foo {
            echo "installing foo venv=[${PIP_VIRTUAL_ENV:-}]"
        }
        stack_install_service foo
        USE_VENV=True; PROJECT_VENV[foo]=/tmp/venv-foo
        stack_install_service foo
        echo "after=[${PIP_VIRTUAL_ENV:-}]"
        """,
            tmp_path,
        )
    )
    assert out.splitlines() == [
        "installing foo venv=[]",
        "pluginsd: would create virtualenv /tmp/venv-foo",
        "installing foo venv=[/tmp/venv-foo]",
        "after=[]",
    ]
    result = bash("stack_install_service bar\necho not-reached", tmp_path)
    assert result.returncode == 1
    assert "install_bar" in result.stderr + result.stdout
    assert "not-reached" not in result.stdout


def test_wait_for_service_times_out(tmp_path):
    if not shutil.which("curl"):
        pytest.skip("curl missing")
    result = bash(
        "if ! wait_for_service 2 http://127.0.0.1:9/; then echo timed-out; fi",
        tmp_path,
    )
    assert ok(result).strip() == "timed-out"
    assert "http://127.0.0.1:9/ did not answer within 2s" in result.stderr


# --- python and helpers ------------------------------------------------------


def test_python_helpers_and_pip_noop(tmp_path):
    out = ok(
        bash(
            """
        LIBS_FROM_GIT="oslo.config,python-fooclient"
        for l in oslo.config python-fooclient oslo oslo_config foo; do
            if use_library_from_git $l; then echo "$l:T"; else echo "$l:F"; fi
        done
        LIBS_FROM_GIT=ALL; use_library_from_git anything && echo all:T
        get_rootwrap_location nova
        GLOBAL_VENV=True; get_python_exec_prefix; GLOBAL_VENV=False
        GITDIR[libx]=/src/libx
        pip_install -U "foo>=1"
        setup_develop /src/proj test
        setup_dev_lib libx
        setup_package /src/other
        """,
            tmp_path,
        )
    )
    assert out.splitlines() == [
        "oslo.config:T",
        "python-fooclient:T",
        "oslo:F",
        "oslo_config:F",
        "foo:F",
        "all:T",
        "/usr/local/bin/nova-rootwrap",
        f"{tmp_path}/dest/data/venv/bin",
        "pluginsd: would pip install: -U foo>=1",
        "pluginsd: would pip install: -e /src/proj[test]",
        "pluginsd: would pip install: -e /src/libx",
        "pluginsd: would pip install: /src/other",
    ]


def test_pip_install_gr_uses_pinned_spec(tmp_path):
    req = tmp_path / "req"
    req.mkdir()
    (req / "global-requirements.txt").write_text(
        "# pins\nfoo-bar>=2.0  # Apache\nfoo>=1.5,!=1.6\n"
    )
    out = ok(
        bash(
            "pip_install_gr foo; pip_install_gr Foo-Bar; "
            "pip_install_gr unknown",
            tmp_path,
            env={"REQUIREMENTS_DIR": str(req)},
        )
    )
    assert out.splitlines() == [
        "pluginsd: would pip install: foo>=1.5,!=1.6",
        "pluginsd: would pip install: foo-bar>=2.0",
        "pluginsd: would pip install: unknown",
    ]


def test_small_helpers(tmp_path):
    out = ok(
        bash(
            """
        ipv6_unquote "[2001:db8::1]"
        ipv6_unquote 10.0.0.1
        printf '+----+------+\\n| ID | Name |\\n| 42 | foo  |\\n' \\
            | get_field 1 | tail -1
        printf '| 42 | foo bar |\\n' | get_field -1
        printf '| 42 | foo bar |\\n' | get_field 2
        DATABASE_TYPE=mysql DATABASE_PASSWORD=pw DATABASE_HOST=db \\
            database_connection_url keystone
        a=$(get_or_create_service heat orchestration "Heat")
        b=$(get_or_create_service heat orchestration "Heat")
        [[ $a == "$b" && $a =~ ^[0-9a-f]{32}$ ]] && echo stable-id
        admin=$(get_or_create_role admin)
        [[ $admin != $(get_or_create_role member) ]] && echo distinct-ids
        neutron_service_plugin_class_add router
        neutron_service_plugin_class_add qos
        neutron_service_plugin_class_add router
        echo "$Q_SERVICE_PLUGIN_CLASSES"
        plugin_agent_add_l2_agent_extension qos; echo "$L2_AGENT_EXTENSIONS"
        neutron_server_config_add /etc/a.ini
        neutron_server_config_add /etc/b.ini
        echo "${_Q_PLUGIN_EXTRA_CONF_FILES_ABS[*]}"
        apache_site_config_for keystone
        time_start t1; time_stop t1; echo "timer=${_PLUGINSD_TIME_TOTAL[t1]}"
        """,
            tmp_path,
            env={"PLUGINSD_OS_RELEASE_FILE": "/nonexistent"},
        )
    )
    assert out.splitlines()[:12] == [
        "2001:db8::1",
        "10.0.0.1",
        "42",
        "foo bar",
        "foo bar",
        "mysql+pymysql://root:pw@db/keystone?charset=utf8",
        "stable-id",
        "distinct-ids",
        "router,qos",
        "qos",
        "/etc/a.ini /etc/b.ini",
        "/etc/apache2/sites-available/keystone.conf",
    ]
    assert re.fullmatch(r"timer=\d+", out.splitlines()[12])


def test_timers_die_on_misuse(tmp_path):
    result = bash("time_start a; time_start a", tmp_path)
    assert result.returncode == 1 and "already started" in result.stderr
    result = bash("time_stop never", tmp_path)
    assert result.returncode == 1 and "never started" in result.stderr


def test_test_with_retry_and_get_extra_file(tmp_path):
    src = tmp_path / "payload.tar.gz"
    src.write_text("data")
    result = bash(
        f"""
        p=$(get_extra_file "file://{src}")
        echo "$p"; cat "$p"; echo
        test_with_retry "[[ -e {src} ]]" "never fails" 2 0.1 && echo retry-ok
        test_with_retry "false" "gave up waiting" 1 0.1
        echo not-reached
        """,
        tmp_path,
    )
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{tmp_path}/dest/files/payload.tar.gz",
        "data",
        "retry-ok",
    ]
    assert "gave up waiting" in result.stderr


def test_exit_distro_not_supported(tmp_path):
    result = bash(
        'exit_distro_not_supported "frobnication"\necho no', tmp_path
    )
    assert result.returncode == 1
    assert "frobnication" in result.stderr and result.stdout == ""


def test_system_services_noop_and_missing_manager(tmp_path):
    out = ok(
        bash(
            "restart_service apache2",
            tmp_path,
            env={"PLUGINSD_SYSTEM_SERVICES": "noop"},
        )
    )
    assert out.strip() == "pluginsd: would restart system service apache2"
    # Neither systemd nor `service` on PATH: a warning, status 0.
    result = (
        bash("PATH=/nonexistent; start_service foo; echo continued", tmp_path)
        if not Path("/run/systemd/system").is_dir()
        else None
    )
    if result is not None:
        assert ok(result).strip() == "continued"
        assert "cannot start foo" in result.stderr


# --- DevStack's service hooks and the neutron/nova helpers -------------------


def test_service_hooks_as_devstack_defines_them(tmp_path):
    out = ok(
        bash(
            """
        check() {
            local s r=""
            for s in placement keystone neutron nova glance cinder swift; do
                if is_service_enabled $s; then r+=" $s"; fi
            done
            echo "[$r ]"
        }
        ENABLED_SERVICES=placement-api,key,neutron-api,n-cpu,g-api
        ENABLED_SERVICES+=,c-vol,s-proxy
        check
        ENABLED_SERVICES=placement-client,key-other,q-svc
        check
        disable_service neutron
        if is_neutron_enabled; then echo on; else echo off; fi
        check
        """,
            tmp_path,
        )
    )
    assert out.splitlines() == [
        "[ placement keystone neutron nova glance cinder swift ]",
        "[ neutron ]",  # placement-client is not the API, key-other not key
        "off",  # disabling neutron turns its hook off...
        "[ neutron ]",  # ...but q-* still counts, as in DevStack
    ]


def test_populate_ml2_config_and_stand_ins(tmp_path):
    conf = tmp_path / "ml2.ini"
    result = bash(
        f"""
        opt="network_vlan_ranges=phys:1:9 x"
        populate_ml2_config {conf} ml2_type_vlan "$opt"
        populate_ml2_config {conf} ml2 ""
        start_neutron_service_and_check
        start_nova_compute
        install_libvirt
        init_ovn; start_ovn
        source "$TOP_DIR/lib/neutron_plugins/ovs_source"
        stop_new_ovs
        echo END
        """,
        tmp_path,
    )
    assert ok(result).splitlines() == ["END"]
    assert "network_vlan_ranges = phys:1:9\n" in conf.read_text()
    said = result.stderr.splitlines()
    assert said[0] == (
        "pluginsd: start_neutron_service_and_check is a stand-in and did "
        "nothing: to start neutron-server and wait for its API it needs "
        "DevStack's lib/neutron ([runner] devstack_dir)"
    )
    names = [line.split()[1] for line in said]
    assert names == [
        "start_neutron_service_and_check",
        "start_nova_compute",
        "install_libvirt",
        "init_ovn",
        "start_ovn",
        "stop_new_ovs",
    ]


def test_install_bindep_installs_what_bindep_says_is_missing(tmp_path):
    bindep_file = tmp_path / "bindep.txt"
    bindep_file.write_text(
        "bash\npluginsd-missing-pkg [platform:dpkg platform:rpm]\n"
        "pluginsd-test-only [test]\n"
    )
    result = bash(
        f"""
        install_bindep {bindep_file}
        install_bindep {bindep_file} test
        install_bindep {tmp_path}/none.txt
        """,
        tmp_path,
        env={
            "PLUGINSD_PACKAGE_INSTALLER": "noop",
            "PLUGINSD_PYTHON": sys.executable,
        },
    )
    out = ok(result).splitlines()
    assert out == [
        "pluginsd: would install: pluginsd-missing-pkg",
        "pluginsd: would install: pluginsd-missing-pkg pluginsd-test-only",
    ]
    assert f"Can not find bindep file: {tmp_path}/none.txt" in result.stderr
