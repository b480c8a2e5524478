# app-service dispatcher.

if is_service_enabled app-api; then
    if [[ "$1" == "stack" && "$2" == "install" ]]; then
        echo_summary "Installing app-service"
        mkdir -p "$APP_DIR"
    elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
        echo_summary "Configuring app-service against $APP_BASE_URL"
        # base_service_url was defined by base-service's plugin.sh, which ran
        # earlier in this same shell.
        iniset "$APP_CONF" DEFAULT base_url "$(base_service_url)"
        iniset "$APP_CONF" DEFAULT workers "$APP_WORKERS"
    elif [[ "$1" == "stack" && "$2" == "test-config" ]]; then
        echo_summary "Checking app-service configuration"
        [[ "$(iniget "$APP_CONF" DEFAULT base_url)" == "$APP_BASE_URL" ]] || \
            die $LINENO "app.conf does not point at base-service"
    fi

    if [[ "$1" == "clean" ]]; then
        rm -rf "$APP_DIR"
    fi
fi
