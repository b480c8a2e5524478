# shellcheck shell=bash source-path=SCRIPTDIR
# The __pluginsd_* functions are called by pluginsd/runner/shell.py over the
# command pipe, never from this file.
# shellcheck disable=SC2329
#
# pluginsd's stand-in for stack.sh / unstack.sh / clean.sh.
#
# One bash process per run and node, as in DevStack: every plugin file is
# sourced into it, so variables, functions, the working directory and shell
# options carry over from plugin to plugin and phase to phase. Python sends
# one command per line on fd $PLUGINSD_CMD_FD and reads events, one per
# line, tab-separated, on fd $PLUGINSD_EVT_FD; "ok" ends each command.
# stdin is /dev/null so a plugin can never read our commands.

umask 022
# Standalone mode: pluginsd's own library stands in for DevStack's. In
# devstack_dir mode (PLUGINSD_DEVSTACK_DIR set) DevStack's own functions,
# stackrc and lib/* are sourced with localrc, at the top level, by the
# commands pluginsd/runner/devstack.py builds; nothing of ours is loaded
# but the __pluginsd_* plumbing below.
if [[ -z ${PLUGINSD_DEVSTACK_DIR:-} ]]; then
    source "$PLUGINSD_LIB/stackrc"
    source "$PLUGINSD_LIB/functions"
fi

# Trace lines carry the wall-clock time, as DevStack's logs do, but
# without a fork per traced command: \D{} is a prompt escape and the
# milliseconds come from $EPOCHREALTIME.
PS4='+ \D{%F %T}.${EPOCHREALTIME:(-6):3} ${BASH_SOURCE[0]##*/}:${LINENO}: '

function __pluginsd_evt {
    local IFS=$'\t'
    printf '%s\n' "$*" >&"$PLUGINSD_EVT_FD"
}

# Like stackrc: localrc is sourced before errexit is turned on, and at the
# top level (Python sends "__pluginsd_localrc_begin; source F;
# __pluginsd_localrc_end"), so declare/typeset in it stay global and a stray
# `local` fails with bash's own message.
function __pluginsd_localrc_begin {
    __pluginsd_before_localrc=("$DEST" "$DATA_DIR" "$FILES")
}

function __pluginsd_localrc_end {
    # DevStack derives these from DEST after localrc: follow a moved DEST
    # unless localrc set them itself.
    if [[ $DEST != "${__pluginsd_before_localrc[0]}" ]]; then
        [[ $DATA_DIR == "${__pluginsd_before_localrc[1]}" ]] && DATA_DIR=$DEST/data
        [[ $FILES == "${__pluginsd_before_localrc[2]}" ]] && FILES=$DEST/files
    fi
    unset __pluginsd_before_localrc
    disable_negated_services
}

function __pluginsd_plugin_dirs {
    local plugin
    for plugin in ${DEVSTACK_PLUGINS//,/ }; do
        __pluginsd_evt dir "$plugin" "${GITDIR[$plugin]}" "${GITREPO[$plugin]}" "${GITBRANCH[$plugin]}" "${_PLUGINSD_ENABLED_AT[$plugin]:-}"
    done
}

function __pluginsd_print_vars {
    local name
    for name in "$@"; do
        __pluginsd_evt var "$name" "${!name-}"
    done
}

# The daemon pins the order (declared order corrected by plugin_requires);
# plugins that read DEVSTACK_PLUGINS see the order they really run in.
function __pluginsd_set_order {
    local name
    DEVSTACK_PLUGINS=""
    for name in "$@"; do
        DEVSTACK_PLUGINS+=",$name"
    done
}

function __pluginsd_extras {
    local i
    [[ -n "${PLUGINSD_EXTRAS_DIR:-}" && -d "$PLUGINSD_EXTRAS_DIR" ]] || return 0
    for i in "$PLUGINSD_EXTRAS_DIR"/[0-9][0-9]-*.sh; do
        [[ -r "$i" ]] || continue
        __pluginsd_evt step extras "$i"
        # shellcheck source=/dev/null
        source "$i" "$@"
    done
}

function __pluginsd_override_defaults {
    local plugin dir
    __pluginsd_extras override_defaults
    for plugin in ${DEVSTACK_PLUGINS//,/ }; do
        dir=${GITDIR[$plugin]}
        if [[ -f $dir/devstack/override-defaults ]]; then
            __pluginsd_evt step override-defaults "$plugin"
            echo "$plugin has overridden the defaults (devstack/override-defaults):"
            echo "$(<"$dir/devstack/override-defaults")"
            # shellcheck source=/dev/null
            source "$dir/devstack/override-defaults"
        fi
    done
}

function __pluginsd_load_settings {
    local plugin dir
    __pluginsd_extras source
    for plugin in ${DEVSTACK_PLUGINS//,/ }; do
        dir=${GITDIR[$plugin]}
        if [[ -f $dir/devstack/settings ]]; then
            __pluginsd_evt step settings "$plugin"
            # shellcheck source=/dev/null
            source "$dir/devstack/settings"
        fi
    done
}

# Hypervisor plugins (seed 003): on a node where n-cpu is enabled, the file
# hypervisor-$VIRT_DRIVER - from an enabled plugin's devstack/lib/nova_plugins
# or devstack/nova_plugins, else from pluginsd's own lib/nova_plugins - is sourced
# after the settings, and its functions are called where DevStack calls them.
__PLUGINSD_HYPERVISOR=""

function __pluginsd_load_hypervisor {
    local plugin file
    is_service_enabled n-cpu || return 0
    [[ -n "${VIRT_DRIVER:-}" ]] || return 0
    for plugin in ${DEVSTACK_PLUGINS//,/ }; do
        for file in "${GITDIR[$plugin]}/devstack/lib/nova_plugins/hypervisor-$VIRT_DRIVER" \
                "${GITDIR[$plugin]}/devstack/nova_plugins/hypervisor-$VIRT_DRIVER"; do
            if [[ -r $file ]]; then
                __PLUGINSD_HYPERVISOR=$file
                break 2
            fi
        done
    done
    if [[ -z $__PLUGINSD_HYPERVISOR && -r $PLUGINSD_LIB/lib/nova_plugins/hypervisor-$VIRT_DRIVER ]]; then
        __PLUGINSD_HYPERVISOR=$PLUGINSD_LIB/lib/nova_plugins/hypervisor-$VIRT_DRIVER
    fi
    if [[ -n $__PLUGINSD_HYPERVISOR ]]; then
        __pluginsd_evt step hypervisor "$__PLUGINSD_HYPERVISOR"
        # shellcheck source=/dev/null
        source "$__PLUGINSD_HYPERVISOR"
    else
        echo "pluginsd: WARNING: n-cpu is enabled but no enabled plugin nor" \
            "pluginsd provides hypervisor-$VIRT_DRIVER; no hypervisor functions run"
    fi
}

# Logs and the saved stack env are pluginsd's state: 0600 whatever the
# umask plugins run with (022, as stack.sh sets).
function __pluginsd_private_file {
    [[ -e $1 ]] || (umask 077 && : >>"$1")
}

# Run one hypervisor function as its own result, named hypervisor-<driver>.
function __pluginsd_hypervisor_call {
    local name=hypervisor-$VIRT_DRIVER
    [[ -n $__PLUGINSD_HYPERVISOR ]] || return 0
    __pluginsd_evt start "$name" "$EPOCHREALTIME"
    __pluginsd_private_file "$2/$name.log"
    { "$1"; } >>"$2/$name.log" 2>&1
    __pluginsd_evt end "$name" "$?" "$EPOCHREALTIME"
}

function __pluginsd_err_trap {
    local failed=${BASH_COMMAND//[$'\t\n']/ }
    __pluginsd_evt err "${BASH_SOURCE[1]}" "${BASH_LINENO[0]}" "$1" "$failed"
}

# Planning only: report what settings declare instead of ignoring it.
function __pluginsd_record_metadata {
    function define_plugin {
        __pluginsd_evt define "$plugin" "${1:-}" "${BASH_SOURCE[1]}" "${BASH_LINENO[0]}"
    }
    function plugin_requires {
        __pluginsd_evt requires "$plugin" "${1:-}" "${2:-}" "${BASH_SOURCE[1]}" "${BASH_LINENO[0]}"
    }
    # Say which file and line failed: bash under errexit exits silently.
    set -o errtrace
    trap '__pluginsd_err_trap $?' ERR
    eval "function __pluginsd_enable_service_impl $(declare -f enable_service | tail -n +2)"
    function enable_service {
        __pluginsd_evt enables "${plugin:-}" "$@"
        __pluginsd_enable_service_impl "$@"
    }
}

# DevStack's save_stackenv: the variables of STACK_ENV_VARS (DevStack's list
# when its functions-common is loaded), as NAME=value lines. Plain
# assignments, so that sourcing the file from a function sets globals.
__PLUGINSD_STACK_ENV_VARS="BASE_SQL_CONN DATA_DIR DEST ENABLED_SERVICES HOST_IP \
    KEYSTONE_SERVICE_URI LOGFILE OS_CACERT SERVICE_HOST STACK_USER TLS_IP \
    HOST_IPV6 SERVICE_IP_VERSION TUNNEL_ENDPOINT_IP TUNNEL_IP_VERSION"

function __pluginsd_save_stackenv {
    local name
    __pluginsd_private_file "$1"
    {
        echo "# saved by pluginsd after the settings of a stack run"
        for name in ${STACK_ENV_VARS:-$__PLUGINSD_STACK_ENV_VARS} SERVICE_PROTOCOL; do
            if [[ -n ${!name+set} ]]; then
                printf '%s=%q\n' "$name" "${!name}"
            fi
        done
    } > "$1"
}

function __pluginsd_load_stackenv {
    if [[ -r "$1" ]]; then
        # shellcheck source=/dev/null
        source "$1"
    fi
}

# DevStack's run_phase + run_plugins. The loop variables mode, phase,
# plugin and dir are visible to plugin.sh, as in DevStack; $phase is left
# unquoted so that unstack and clean get exactly one argument.
function __pluginsd_run_phase {
    local mode=$1
    local phase=${2:-}
    local logs=$3
    local plugin dir
    # DevStack installs, configures and starts nova-compute (and so the
    # hypervisor) before the plugins of install, post-config and extra, and
    # stops and cleans it after the plugins of unstack and clean.
    case "$mode $phase" in
        "stack install") __pluginsd_hypervisor_call install_nova_hypervisor "$logs" ;;
        "stack post-config") __pluginsd_hypervisor_call configure_nova_hypervisor "$logs" ;;
        "stack extra") __pluginsd_hypervisor_call start_nova_hypervisor "$logs" ;;
    esac
    # shellcheck disable=SC2086  # $phase unquoted on purpose (see above)
    __pluginsd_extras $mode $phase
    for plugin in ${DEVSTACK_PLUGINS//,/ }; do
        dir=${GITDIR[$plugin]}
        if [[ ! -f $dir/devstack/plugin.sh ]]; then
            __pluginsd_evt skip "$plugin" "$EPOCHREALTIME"
            continue
        fi
        __pluginsd_evt start "$plugin" "$EPOCHREALTIME"
        __pluginsd_private_file "$logs/$plugin.log"
        # shellcheck disable=SC2086,SC1091  # $phase unquoted on purpose
        { source "$dir/devstack/plugin.sh" $mode $phase; } >>"$logs/$plugin.log" 2>&1
        __pluginsd_evt end "$plugin" "$?" "$EPOCHREALTIME"
    done
    case $mode in
        unstack) __pluginsd_hypervisor_call stop_nova_hypervisor "$logs" ;;
        clean) __pluginsd_hypervisor_call cleanup_nova_hypervisor "$logs" ;;
    esac
}

# Expand a [[group|file]] file name with the session's variables.
function __pluginsd_expand {
    local __value
    eval "__value=\"$1\""
    __pluginsd_evt value "$__value"
}

function __pluginsd_merge_option {
    local file=$1
    mkdir -p "$(dirname "$file")"
    if [[ $# -gt 4 ]]; then
        iniset_multiline "$@"
    else
        iniset "$@"
    fi
}

exec </dev/null
while IFS= read -r -u "$PLUGINSD_CMD_FD" __pluginsd_line; do
    eval "$__pluginsd_line"
    __pluginsd_evt ok
done
