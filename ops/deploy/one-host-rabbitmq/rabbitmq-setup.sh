#!/bin/sh
# Create the RabbitMQ vhost and user mailpipe uses (run once, as root, on the broker host).
# The password must match broker_url in /etc/mailpipe/mailpipe.toml.
set -eu
VHOST=${VHOST:-mailpipe}
RMQ_USER=${RMQ_USER:-mailpipe}
RMQ_PASSWORD=${RMQ_PASSWORD:?set RMQ_PASSWORD}
rabbitmqctl add_vhost "$VHOST" || true
rabbitmqctl add_user "$RMQ_USER" "$RMQ_PASSWORD" 2>/dev/null || rabbitmqctl change_password "$RMQ_USER" "$RMQ_PASSWORD"
rabbitmqctl set_permissions -p "$VHOST" "$RMQ_USER" '.*' '.*' '.*'
echo "vhost $VHOST ready for user $RMQ_USER"
