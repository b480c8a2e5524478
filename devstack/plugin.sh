#!/bin/bash
#
# pluginsd's DevStack plugin dispatcher.  Sourced (not executed) by DevStack
# or pluginsd with `stack <phase>`, `unstack` or `clean`; the variables come
# from devstack/settings.

# Create DIR owned by the user the services run as; sudo only where the user
# may not write (e.g. /etc), so it also works as root without sudo.
function pluginsd_make_dir {
    local dir=$1
    if ! mkdir -p "$dir" 2>/dev/null; then
        sudo install -d -o "$(id -un)" "$dir"
    fi
}

# Remove DIR; refuses "" and "/" so an empty variable cannot wipe the host.
function pluginsd_remove_dir {
    local dir=${1%/}
    if [[ -z $dir ]]; then
        return 0
    fi
    if ! rm -rf "$dir" 2>/dev/null || [[ -e $dir ]]; then
        sudo rm -rf "$dir"
    fi
}

function install_pluginsd {
    # A noop (only printed) when the runner's pip installer is noop.
    setup_develop "$PLUGINSD_DIR"
}

# Keys (pluginsd-manage key create, files 0600): the node's own, used by the
# daemon and the agent of this host; on the daemon's node also an admin key
# for the local pluginsctl, and this node's key pre-seeded as accepted.
# Agent-only nodes trust PLUGINSD_DAEMON_PUBLIC_KEY (the daemon node's
# $PLUGINSD_STATE_DIR/keys/pluginsd.key.pub) and show as pending until an
# admin runs "pluginsctl node accept HOST" on the controller.
function configure_pluginsd_keys {
    local keys=$PLUGINSD_STATE_DIR/keys manage="$PLUGINSD_BIN_DIR/pluginsd-manage"
    pluginsd_make_dir "$keys"
    chmod 0700 "$keys"
    [[ -f $keys/pluginsd.key ]] || "$manage" key create --output "$keys/pluginsd.key" >/dev/null
    iniset "$PLUGINSD_CONF" security key_file "$keys/pluginsd.key"
    if is_service_enabled pluginsd; then
        [[ -f $keys/operator.key ]] || "$manage" key create --output "$keys/operator.key" >/dev/null
        pluginsd_make_dir "$keys/accepted"
        cp "$keys/pluginsd.key.pub" "$keys/accepted/$PLUGINSD_HOSTNAME.pub"
        iniset "$PLUGINSD_CONF" security accepted_keys_dir "$keys/accepted"
        iniset "$PLUGINSD_CONF" security operator_keys "admin:$keys/operator.key.pub"
        iniset "$PLUGINSD_CONF" security operator_key_file "$keys/operator.key"
        iniset "$PLUGINSD_CONF" security daemon_public_keys "$keys/pluginsd.key.pub"
    else
        if [[ -z $PLUGINSD_DAEMON_PUBLIC_KEY ]]; then
            die $LINENO "PLUGINSD_DAEMON_PUBLIC_KEY is empty: set it in localrc to the" \
                "content of the daemon node's $keys/pluginsd.key.pub"
        fi
        echo "$PLUGINSD_DAEMON_PUBLIC_KEY" > "$keys/daemon.pub"
        iniset "$PLUGINSD_CONF" security daemon_public_keys "$keys/daemon.pub"
    fi
}

function configure_pluginsd {
    pluginsd_make_dir "$PLUGINSD_CONF_DIR"
    pluginsd_make_dir "$PLUGINSD_STATE_DIR"
    pluginsd_make_dir "$PLUGINSD_LOG_DIR"

    # Start from an empty file: a value left by an earlier stack must not
    # survive a change of localrc.
    rm -f "$PLUGINSD_CONF"
    iniset "$PLUGINSD_CONF" DEFAULT transport_url "$PLUGINSD_TRANSPORT_URL"
    iniset "$PLUGINSD_CONF" DEFAULT state_path "$PLUGINSD_STATE_DIR"
    iniset "$PLUGINSD_CONF" DEFAULT host "$PLUGINSD_HOSTNAME"
    iniset "$PLUGINSD_CONF" DEFAULT log_dir "$PLUGINSD_LOG_DIR"
    iniset "$PLUGINSD_CONF" DEFAULT debug "${ENABLE_DEBUG_LOG_LEVEL:-True}"

    iniset "$PLUGINSD_CONF" agent roles "$PLUGINSD_ROLES"
    iniset "$PLUGINSD_CONF" agent dest "$PLUGINSD_AGENT_DEST"
    iniset "$PLUGINSD_CONF" agent allowed_sources "$PLUGINSD_ALLOWED_SOURCES"

    iniset "$PLUGINSD_CONF" daemon role_order "$PLUGINSD_ROLE_ORDER"

    configure_pluginsd_keys

    # Measured on RabbitMQ (docs/rabbitmq-and-oslo-messaging.md): durable
    # queues keep queued results across a broker restart, and a flat 1-2 s
    # reconnect interval brings the services back within a second of the
    # broker instead of up to 30 s later.
    iniset "$PLUGINSD_CONF" oslo_messaging_rabbit amqp_durable_queues True
    iniset "$PLUGINSD_CONF" oslo_messaging_rabbit rabbit_retry_interval 1
    iniset "$PLUGINSD_CONF" oslo_messaging_rabbit rabbit_retry_backoff 0
    iniset "$PLUGINSD_CONF" oslo_messaging_rabbit rabbit_interval_max 2
    iniset "$PLUGINSD_CONF" oslo_messaging_rabbit kombu_reconnect_delay 0.5
    iniset "$PLUGINSD_CONF" oslo_messaging_rabbit heartbeat_timeout_threshold 10

    # Only the daemon owns a database; the daemon would also migrate it at
    # start, but a broken schema is clearer here than in a service log.
    if is_service_enabled pluginsd; then
        "$PLUGINSD_BIN_DIR/pluginsd-manage" --config-file "$PLUGINSD_CONF" db upgrade
    fi
}

function start_pluginsd {
    # run_process does nothing for a service that is not enabled.
    run_process pluginsd "$PLUGINSD_BIN_DIR/pluginsd --config-file $PLUGINSD_CONF"
    run_process pluginsd-agent "$PLUGINSD_BIN_DIR/pluginsd-agent --config-file $PLUGINSD_CONF"
}

# Wait until the daemon lists this node as up: proves the broker, the key and
# both services work together before later plugins rely on them.  On an
# agent-only node this needs the controller's daemon, which stacks first.
function wait_for_pluginsd {
    if ! is_service_enabled pluginsd; then
        # Only an admin may list nodes; this node has no admin key.
        echo "pluginsd: accept this node on the controller:" \
            "pluginsctl node accept $PLUGINSD_HOSTNAME ($("$PLUGINSD_BIN_DIR/pluginsd-manage" \
            --config-file "$PLUGINSD_CONF" key show | sed -n 's/^fingerprint: //p'))"
        return 0
    fi
    local deadline nodes call_timeout=5 left
    deadline=$((SECONDS + PLUGINSD_START_TIMEOUT))
    while true; do
        # A call sent before the daemon has declared its queue is dropped
        # and pluginsctl would wait 60 s for the reply: bound each call, a
        # little longer each time in case the host is just slow.
        left=$((deadline - SECONDS))
        if [[ $call_timeout -gt $left ]]; then
            call_timeout=$((left > 1 ? left : 1))
        fi
        nodes=$(timeout "$call_timeout" "$PLUGINSD_BIN_DIR/pluginsctl" \
            --config-file "$PLUGINSD_CONF" nodes -f value -c Host -c State 2>/dev/null) || nodes=""
        if [[ $'\n'$nodes$'\n' == *$'\n'"$PLUGINSD_HOSTNAME up"$'\n'* ]]; then
            echo "pluginsd: node $PLUGINSD_HOSTNAME is up"
            return 0
        fi
        if ((SECONDS >= deadline)); then
            die $LINENO "pluginsd-agent $PLUGINSD_HOSTNAME is not up in the pluginsd" \
                "daemon after ${PLUGINSD_START_TIMEOUT}s: check that the daemon (service" \
                "pluginsd, on the controller) runs, that PLUGINSD_TRANSPORT_URL reaches" \
                "its broker, that the node's key is accepted, and the logs in" \
                "$PLUGINSD_LOG_DIR"
        fi
        call_timeout=$((call_timeout < 20 ? call_timeout + 5 : 20))
        sleep 1
    done
}

function stop_pluginsd {
    # Agent first: on SIGTERM it flushes its last results to the daemon.
    stop_process pluginsd-agent
    stop_process pluginsd
}

function cleanup_pluginsd {
    pluginsd_remove_dir "$PLUGINSD_STATE_DIR"
    pluginsd_remove_dir "$PLUGINSD_CONF_DIR"
}

if is_service_enabled pluginsd pluginsd-agent; then
    if [[ "$1" == "stack" && "$2" == "install" ]]; then
        echo_summary "Installing pluginsd"
        install_pluginsd
    elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
        echo_summary "Configuring pluginsd"
        configure_pluginsd
    elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
        echo_summary "Starting pluginsd"
        start_pluginsd
        wait_for_pluginsd
    fi

    if [[ "$1" == "unstack" ]]; then
        stop_pluginsd
    fi

    if [[ "$1" == "clean" ]]; then
        cleanup_pluginsd
    fi
fi

# The status of the last command is the status of the sourced file, and a
# non-zero one fails the phase (contract 7.3): end on a command that is 0.
true
