# base-service dispatcher: sourced by pluginsd (or DevStack) at every phase.

function base_service_url {
    echo "http://$SERVICE_HOST:$BASE_PORT"
}

function install_base_service {
    mkdir -p "$BASE_DIR"
    cat > "$BASE_DIR/base-api" <<SCRIPT
#!/bin/bash
# A stand-in API: writes a line every second until stopped.
while true; do date +%s > "$BASE_DIR/alive"; sleep 1; done
SCRIPT
    chmod +x "$BASE_DIR/base-api"
}

if is_service_enabled base-api; then
    if [[ "$1" == "stack" && "$2" == "pre-install" ]]; then
        echo_summary "base-service: system packages are in place"
    elif [[ "$1" == "stack" && "$2" == "install" ]]; then
        echo_summary "Installing base-service"
        install_base_service
    elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
        echo_summary "Configuring base-service"
        iniset "$BASE_CONF" DEFAULT port "$BASE_PORT"
        iniset "$BASE_CONF" DEFAULT url "$(base_service_url)"
    elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
        echo_summary "Starting base-api"
        run_process base-api "$BASE_DIR/base-api"
    fi

    if [[ "$1" == "unstack" ]]; then
        stop_process base-api
    fi

    if [[ "$1" == "clean" ]]; then
        rm -rf "$BASE_DIR"
    fi
fi
