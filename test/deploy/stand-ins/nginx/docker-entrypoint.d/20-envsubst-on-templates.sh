#!/bin/sh
# As in the official image: every $NGINX_ENVSUBST_TEMPLATE_DIR/**/*$NGINX_ENVSUBST_TEMPLATE_SUFFIX
# (default /etc/nginx/templates, .template) becomes $NGINX_ENVSUBST_OUTPUT_DIR/** (default
# /etc/nginx/conf.d) with only the environment's variables substituted (nginx's own $host etc.
# stay), optionally only those matching NGINX_ENVSUBST_FILTER (a regular expression). Stream
# templates (*.stream-template -> /etc/nginx/stream-conf.d, included from a `stream` block added
# to nginx.conf) likewise.
# shellcheck disable=SC3043,SC2046 # dash has `local`; the variable names are meant to split
set -e
ME=$(basename "$0")
entrypoint_log() { if [ -z "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ]; then echo "$@"; fi; }

add_stream_block() {
    local conffile="/etc/nginx/nginx.conf"
    if grep -q -E "\s*stream\s*\{" "$conffile"; then
        entrypoint_log "$ME: $conffile contains a stream block; include $stream_output_dir/*.conf to enable stream templates"
    else
        if [ -w "$conffile" ]; then
            entrypoint_log "$ME: Appending stream block to $conffile to include $stream_output_dir/*.conf"
            cat << END >> "$conffile"
# added by "$ME" on "$(date)"
stream {
  include $stream_output_dir/*.conf;
}
END
        else
            entrypoint_log "$ME: $conffile is not writable, not appending a stream block"
        fi
    fi
}

auto_envsubst() {
    local template_dir="${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}"
    local suffix="${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}"
    local output_dir="${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}"
    local stream_suffix="${NGINX_ENVSUBST_STREAM_TEMPLATE_SUFFIX:-.stream-template}"
    local stream_output_dir="${NGINX_ENVSUBST_STREAM_OUTPUT_DIR:-/etc/nginx/stream-conf.d}"
    local filter="${NGINX_ENVSUBST_FILTER:-}"
    local template defined_envs relative_path output_path subdir

    defined_envs=$(printf '${%s} ' $(awk "END { for (name in ENVIRON) { print ( name ~ /${filter}/ ) ? name : \"\" } }" < /dev/null))
    [ -d "$template_dir" ] || return 0
    if [ ! -w "$output_dir" ]; then
        entrypoint_log "$ME: ERROR: $template_dir exists, but $output_dir is not writable"
        return 0
    fi
    find "$template_dir" -follow -type f -name "*$suffix" -print | while read -r template; do
        relative_path="${template#"$template_dir/"}"
        output_path="$output_dir/${relative_path%"$suffix"}"
        subdir=$(dirname "$relative_path")
        mkdir -p "$output_dir/$subdir"
        entrypoint_log "$ME: Running envsubst on $template to $output_path"
        envsubst "$defined_envs" < "$template" > "$output_path"
    done

    if [ -n "$(find "$template_dir" -name "*$stream_suffix" -print -quit)" ]; then
        mkdir -p "$stream_output_dir"
        if [ ! -w "$stream_output_dir" ]; then
            entrypoint_log "$ME: ERROR: $template_dir exists, but $stream_output_dir is not writable"
            return 0
        fi
        add_stream_block
        find "$template_dir" -follow -type f -name "*$stream_suffix" -print | while read -r template; do
            relative_path="${template#"$template_dir/"}"
            output_path="$stream_output_dir/${relative_path%"$stream_suffix"}"
            subdir=$(dirname "$relative_path")
            mkdir -p "$stream_output_dir/$subdir"
            entrypoint_log "$ME: Running envsubst on $template to $output_path"
            envsubst "$defined_envs" < "$template" > "$output_path"
        done
    fi
}

auto_envsubst
exit 0
