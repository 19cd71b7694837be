#!/bin/bash
# PowerView's SFTPGo hook: turns SFTPGo events into parser runs and Grafana playbook runs.
#
# SFTPGo runs this program for the custom actions upload, rename and mkdir
# (SFTPGO_COMMON__ACTIONS__HOOK) and after each SFTP disconnection
# (SFTPGO_COMMON__POST_DISCONNECT_HOOK); deploy/sftpgo.env sets both. It passes the event in
# environment variables only: no arguments, no stdin, its output thrown away.
#
#   event (what SFTPGo sets)                     what this hook does
#   SFTPGO_ACTION=upload, STATUS=1, *.tsv        tsv_parser.py --tsvFile <file> (bounded time)
#   SFTPGO_ACTION=upload, STATUS=2 or 3          tsv_parser.py --reject: the partial file to error/
#   SFTPGO_ACTION=upload, not *.tsv              nothing (logged)
#   SFTPGO_ACTION=rename to *.tsv                as an upload of the target
#   SFTPGO_ACTION=rename of a folder             as a mkdir of the target
#   SFTPGO_ACTION=mkdir <company>/<campaign>     create_grafana_resources.yml, detached
#   SFTPGO_ACTION=mkdir <company>                the same for the company alone, detached
#   SFTPGO_ACTION=mkdir, other depths            nothing (logged)
#   any other SFTPGO_ACTION                      nothing (logged), exit 0
#   SFTPGO_CONNECTION_* set, no SFTPGO_ACTION_*  sweep of <data>/<username>, detached
#
# The two kinds of call are told apart by what SFTPGo itself sets: every variable of a file
# action, SFTPGO_ACTION_PATH included, is present even when empty, and a post-disconnect call
# gets SFTPGO_CONNECTION_* and nothing about a path. SFTPGO_ACTION alone proves nothing: a
# variable set in SFTPGo's command environment reaches the post-disconnect call unchanged.
#
# Before anything runs, every folder name is checked against the parser's allowlist
# (python -m core.names) and every path must lie inside the data folder with no symbolic link
# on the way; anything else is refused with a log line. Names reach Ansible in a JSON file
# (--extra-vars @file), never through a shell string.
#
# SFTPGo kills a hook with SIGKILL after its timeout (deploy/sftpgo.env explains the value
# chosen). The parser run of an upload is bounded below that timeout, and the long jobs
# (playbook, sweep) run detached in their own session with their own log line when they end.
# A hook killed at any point loses nothing: the file stays where it is and the next sweep
# (powerview-sweep.timer) takes it. Hooks for the same file may run at the same time: the
# parser claims a file with flock, so one ingests it and the others report it skipped.
#
# Detached jobs are this script run again with arguments: `on-upload.sh --job playbook
# <company> [<campaign>]` or `--job sweep <company>` (it checks the names again). SFTPGo
# passes no arguments.
#
# Exit status: 0 when the event was handled (done, refused, ignored, left for the sweep, or
# handed to a detached job); 1 when the installation is broken (no virtualenv, no data folder,
# settings or InfluxDB credentials refused) and an operator must act; 2 when run by hand
# without an SFTPGo event. Never put "upload" in SFTPGo's execute_sync: a non-zero exit of a
# synchronous upload hook makes SFTPGo delete the uploaded file.
#
# Settings: the environment, then the POWERVIEW_* lines of .env (plain KEY=value, no
# interpolation), then the defaults below. .env.sample describes each one.
set -euo pipefail

export LC_ALL=C.UTF-8 LANG=C.UTF-8
hook_started=$EPOCHREALTIME

POWERVIEW_ROOT=${POWERVIEW_ROOT:-/srv/powerview}
POWERVIEW_ENV_FILE=${POWERVIEW_ENV_FILE:-$POWERVIEW_ROOT/.env}
export POWERVIEW_ENV_FILE # the parser and the playbooks read the same file

# The hook's own settings found in .env; the environment wins, as in core/settings.py.
HOOK_SETTINGS=(POWERVIEW_DATA_DIR POWERVIEW_HOOK_LOG POWERVIEW_HOOK_OUTPUT_LOG POWERVIEW_VENV
    POWERVIEW_HOOK_PATH POWERVIEW_ANSIBLE_PLAYBOOK POWERVIEW_HOOK_TIMEOUT_S
    POWERVIEW_GRAFANA_INFLUXDB_URL)

load_env_file() {
    local file=$1 line key value known setting
    [[ -f $file && -r $file ]] || return 0
    while IFS= read -r line || [[ -n $line ]]; do
        [[ $line =~ ^[[:space:]]*(export[[:space:]]+)?([A-Z0-9_]+)[[:space:]]*=[[:space:]]*(.*)$ ]] ||
            continue
        key=${BASH_REMATCH[2]}
        value=${BASH_REMATCH[3]}
        known=0
        for setting in "${HOOK_SETTINGS[@]}"; do
            [[ $key == "$setting" ]] && known=1
        done
        [[ $known == 1 && -z ${!key+set} ]] || continue
        if [[ $value =~ ^\"([^\"]*)\" || $value =~ ^\'([^\']*)\' ]]; then
            value=${BASH_REMATCH[1]}
        else
            value=${value%%[[:space:]]#*}
            value=${value%"${value##*[![:space:]]}"}
        fi
        printf -v "$key" '%s' "$value"
    done <"$file"
}
load_env_file "$POWERVIEW_ENV_FILE"

DATA_DIR=${POWERVIEW_DATA_DIR:-/srv/sftpgo/data}
HOOK_LOG=${POWERVIEW_HOOK_LOG:-/srv/sftpgo/logs/uploads.log}
OUTPUT_LOG=${POWERVIEW_HOOK_OUTPUT_LOG:-$(dirname -- "$HOOK_LOG")/hook-output.log}
VENV=${POWERVIEW_VENV:-$POWERVIEW_ROOT/envs/powerview}
PYTHON=$VENV/bin/python
ANSIBLE_PLAYBOOK=${POWERVIEW_ANSIBLE_PLAYBOOK:-$VENV/bin/ansible-playbook}
PLAYBOOK=$POWERVIEW_ROOT/grafana-automation/playbooks/create_grafana_resources.yml
PARSER_TIMEOUT_S=${POWERVIEW_HOOK_TIMEOUT_S:-100}
GRAFANA_INFLUXDB_URL=${POWERVIEW_GRAFANA_INFLUXDB_URL:-}
export PATH=${POWERVIEW_HOOK_PATH:-$VENV/bin:/usr/local/bin:/usr/bin:/bin}

# What the log line says about the event.
user=- shown_path=-
if [[ ${1:-} == --job ]]; then
    event=job:${2:-}
elif [[ -n ${SFTPGO_ACTION_PATH+set} ]]; then
    event=${SFTPGO_ACTION:-empty} user=${SFTPGO_ACTION_USERNAME:-}
elif [[ -n ${SFTPGO_CONNECTION_USERNAME+set} || -n ${SFTPGO_CONNECTION_DURATION+set} ]]; then
    event=post-disconnect user=${SFTPGO_CONNECTION_USERNAME:-}
else
    event=none
fi

mkdir -p -- "$(dirname -- "$HOOK_LOG")" 2>/dev/null || true
[[ -w $HOOK_LOG || (! -e $HOOK_LOG && -w $(dirname -- "$HOOK_LOG")) ]] || HOOK_LOG=/dev/stderr
[[ -w $OUTPUT_LOG || (! -e $OUTPUT_LOG && -w $(dirname -- "$OUTPUT_LOG")) ]] ||
    OUTPUT_LOG=/dev/null

# A value as the log writes it (in REPLY): bare when plain, in double quotes when it holds
# spaces, in bash's $'...' form when it holds a control character, a quote or a backslash, so
# a name with a newline in it cannot forge a log line.
log_value() {
    if [[ -n $1 && $1 =~ ^[A-Za-z0-9_./:@+,-]*$ ]]; then
        REPLY=$1
    elif [[ $1 =~ ^[[:print:]]*$ && $1 != *[\"\\]* ]]; then
        REPLY="\"$1\""
    else
        printf -v REPLY '%q' "$1"
    fi
}

# One line per event, and one per detached job when it ends: time, process, event, SFTPGo
# user, path (relative to the data folder when inside it), outcome, duration, detail.
log_event() {
    local outcome=$1 detail=${2:-} line elapsed_us
    elapsed_us=$((${EPOCHREALTIME/[.,]/} - ${hook_started/[.,]/}))
    line="$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ) pid=$$"
    log_value "$event" && line+=" event=$REPLY"
    log_value "$user" && line+=" user=$REPLY"
    log_value "$shown_path" && line+=" path=$REPLY"
    line+=" outcome=$outcome duration_ms=$((elapsed_us / 1000))"
    log_value "$detail" && line+=" detail=$REPLY"
    printf '%s\n' "$line" >>"$HOOK_LOG" 2>/dev/null || printf '%s\n' "$line" >&2 || true
}

finish() { # outcome detail exit-status
    log_event "$1" "$2"
    exit "$3"
}

# Standard input appended to the output log, each line prefixed with this process's id.
append_output() {
    sed "s/^/pid=$$ /" >>"$OUTPUT_LOG" 2>/dev/null || true
}

names_are_safe() {
    (cd -- "$POWERVIEW_ROOT" && "$PYTHON" -m core.names "$@") 2>/dev/null
}

# Sets `relative` (the path below the data folder) and `parts` (its components) when `path`
# names something that exists inside the data folder with no symbolic link below the data
# folder; returns 1 otherwise, with the reason in `refusal`.
locate_in_data() {
    local path=$1 resolved lexical data_lexical
    relative='' parts=() refusal=''
    if [[ $path != /* ]]; then
        refusal="not an absolute path"
        return 1
    fi
    if [[ /$path/ == */../* || /$path/ == */./* || $path == *//* ]]; then
        refusal="not a clean path ('.', '..' or '//' in it)" # SFTPGo sends clean paths
        return 1
    fi
    if ! resolved=$(realpath -e -- "$path" 2>/dev/null); then
        refusal="does not exist (any more)"
        return 1
    fi
    if [[ $resolved != "$DATA_ROOT"/* ]]; then
        refusal="outside the data folder $DATA_ROOT (links resolved)"
        return 1
    fi
    relative=${resolved#"$DATA_ROOT"/}
    lexical=$(realpath -s -m -- "$path")
    data_lexical=$(realpath -s -m -- "$DATA_DIR")
    if [[ $lexical != "$DATA_ROOT/$relative" && $lexical != "$data_lexical/$relative" ]]; then
        refusal="a symbolic link on the way (leads to $relative)"
        return 1
    fi
    local rest=$relative # split on "/" only: a name may hold any other character
    while [[ $rest == */* ]]; do
        parts+=("${rest%%/*}")
        rest=${rest#*/}
    done
    parts+=("$rest")
    return 0
}

show_path() { # the path as the log shows it: relative to the data folder when inside
    local path=$1
    if [[ -n ${DATA_ROOT:-} && $path == "$DATA_ROOT"/* ]]; then
        shown_path=${path#"$DATA_ROOT"/}
    elif [[ $path == "$DATA_DIR"/* ]]; then
        shown_path=${path#"$DATA_DIR"/}
    else
        shown_path=$path
    fi
}

# -- the parser ------------------------------------------------------------------------------

# The parser's one-line summary ("1 file(s): 1 ok, ..."), else its first error, else its
# last line.
parser_summary() {
    local output=$1 summary
    summary=$(grep -m1 -o 'file(s): .*' <<<"$output" || true)
    [[ -n $summary ]] || summary=$(grep -m1 -o 'error: .*' <<<"$output" || true)
    [[ -n $summary ]] || summary=$(tail -n 1 <<<"$output")
    printf '%s' "$summary"
}

# Ingest (or, with a reason, set aside) the file at $DATA_DIR/$relative; exits.
run_parser_on_file() {
    local reason=${1:-} output status=0 summary outcome
    local file=$DATA_DIR/$relative
    local -a command=("$PYTHON" "$POWERVIEW_ROOT/tsv_parser.py" --dataFolder "$DATA_DIR"
        --tsvFile "$file")
    [[ -z $reason ]] || command+=(--reject "$reason")
    output=$(timeout --kill-after=5 "$PARSER_TIMEOUT_S" "${command[@]}" </dev/null 2>&1) ||
        status=$?
    [[ -z $output ]] || append_output <<<"$output"
    summary=$(parser_summary "$output")
    case $status in
    0)
        if [[ $output == *"taken by another process; not moved"* ]]; then
            outcome=skipped
        elif [[ -n $reason ]]; then
            outcome=set-aside
        elif [[ $summary == *" 0 ok,"* && $summary == *" 1 skipped"* ]] ||
            [[ $summary == *"nothing to do"* ]]; then
            outcome=skipped # another hook or a sweep has it, or had it
        else
            outcome=ingested
        fi
        finish "$outcome" "$summary" 0
        ;;
    1) finish set-aside "bad content, moved to error/: $summary" 0 ;;
    3) finish deferred "InfluxDB unavailable, left for the sweep: $summary" 0 ;;
    124 | 137) finish deferred "parser stopped after ${PARSER_TIMEOUT_S} s, left for the sweep" 0 ;;
    *)
        summary=$(tr -s ' \n' ' ' <<<"$output")
        finish failed "tsv_parser.py exit $status: ${summary:0:400}" 1
        ;;
    esac
}

# -- detached jobs -----------------------------------------------------------------------------

# Start this script again in its own session (SFTPGo's kill after the timeout does not reach
# it) to run one job; it writes its own log line when it ends.
detach() { # job-name args...
    setsid "$BASH" "$SELF" --job "$@" </dev/null >/dev/null 2>&1 &
}

job_playbook() { # company [campaign]
    local company=$1 campaign=${2:-} work status=0 recap
    shown_path=$company${campaign:+/$campaign}
    names_are_safe "$company" ${campaign:+"$campaign"} || finish refused "unsafe name" 0
    work=$(mktemp -d "${TMPDIR:-/tmp}/powerview-playbook.XXXXXX")
    trap 'rm -rf -- "$work"' EXIT
    # A JSON encoder writes the names: they are data, never pasted into a string.
    "$PYTHON" -c '
import json, os, sys
path, company, campaign, influxdb_url = sys.argv[1:5]
names = {"company_name": company}
if campaign:
    names["campaign_name"] = campaign
if influxdb_url:
    names["grafana_influxdb_url"] = influxdb_url
descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
with open(descriptor, "w", encoding="utf-8") as stream:
    json.dump(names, stream)
' "$work/vars.json" "$company" "$campaign" "$GRAFANA_INFLUXDB_URL"
    export ANSIBLE_CONFIG=$POWERVIEW_ROOT/grafana-automation/ansible.cfg
    export ANSIBLE_HOME=$work/ansible ANSIBLE_LOCAL_TEMP=$work/tmp ANSIBLE_NOCOLOR=1
    # One playbook at a time on this machine: a burst of mkdir events queues here instead of
    # starting as many ansible-playbook processes.
    flock -w 1800 "$PLAYBOOK" "$ANSIBLE_PLAYBOOK" "$PLAYBOOK" --extra-vars "@$work/vars.json" \
        </dev/null >"$work/output" 2>&1 || status=$?
    append_output <"$work/output"
    recap=$(grep -o 'ok=[0-9]*.*failed=[0-9]*' "$work/output" | tail -n 1 || true)
    recap=$(tr -s ' ' <<<"$recap")
    rm -rf -- "$work" # before the log line: whoever reads it finds no leftover
    if [[ $status == 0 ]]; then
        finish completed "create_grafana_resources.yml${recap:+: $recap}" 0
    fi
    finish failed "create_grafana_resources.yml exit $status${recap:+: $recap} (see $OUTPUT_LOG)" 1
}

job_sweep() { # company
    local company=$1 status=0
    shown_path=$company
    names_are_safe "$company" || finish refused "unsafe name" 0
    # One sweep per company at a time: the lock is the company folder itself.
    flock -n -E 75 "$DATA_DIR/$company" \
        "$PYTHON" "$POWERVIEW_ROOT/tsv_parser.py" --dataFolder "$DATA_DIR" --company "$company" \
        </dev/null 2>&1 | append_output || status=$?
    case $status in
    0) finish completed "swept $company" 0 ;;
    1) finish completed "swept $company; some files set aside in error/" 0 ;;
    3) finish deferred "InfluxDB unavailable; the timer's sweep retries" 0 ;;
    75) finish skipped "a sweep of $company is already running" 0 ;;
    *) finish failed "tsv_parser.py exit $status (see $OUTPUT_LOG)" 1 ;;
    esac
}

# -- events ------------------------------------------------------------------------------------

on_file() { # path [reason]: an uploaded (or renamed-to) file
    local path=$1 reason=${2:-} name
    show_path "$path"
    name=${path##*/}
    if [[ $name != *.[tT][sS][vV] || $name == .* ]]; then
        finish ignored "not a .tsv file" 0
    fi
    if [[ ! -e $path && ! -L $path ]]; then
        finish skipped "no longer there: taken by another run" 0
    fi
    locate_in_data "$path" || finish refused "$refusal" 0
    shown_path=$relative
    if ((${#parts[@]} != 4)); then
        finish refused "not at <company>/<campaign>/<device>/<file>.tsv" 0
    fi
    names_are_safe "${parts[@]:0:3}" || finish refused "a folder name is not allowed" 0
    run_parser_on_file "$reason"
}

on_folder() { # path: a created (or renamed-to) folder
    local path=$1
    show_path "$path"
    locate_in_data "$path" || finish refused "$refusal" 0
    shown_path=$relative
    [[ -d $DATA_ROOT/$relative ]] || finish ignored "not a folder" 0
    case ${#parts[@]} in
    1 | 2)
        names_are_safe "${parts[@]}" || finish refused "a folder name is not allowed" 0
        detach playbook "${parts[@]}"
        finish started "create_grafana_resources.yml for ${parts[*]}" 0
        ;;
    3) finish ignored "device folder: nothing to create" 0 ;;
    *) finish ignored "below a device folder" 0 ;;
    esac
}

on_upload() {
    local path=${SFTPGO_ACTION_PATH:-} status=${SFTPGO_ACTION_STATUS:-}
    show_path "$path"
    case $status in
    1) on_file "$path" ;;
    2 | 3)
        local name=${path##*/}
        if [[ $name != *.[tT][sS][vV] || $name == .* ]]; then
            finish ignored "not a .tsv file (upload failed, status $status)" 0
        fi
        [[ -e $path ]] || finish ignored "upload failed (status $status), no file left" 0
        on_file "$path" "upload failed: SFTPGo status $status"
        ;;
    *) finish ignored "unknown upload status '$status': left for the sweep" 0 ;;
    esac
}

on_rename() {
    local target=${SFTPGO_ACTION_TARGET:-}
    show_path "$target"
    [[ ${SFTPGO_ACTION_STATUS:-1} == 1 ]] || finish ignored "rename failed" 0
    if [[ -d $target && ! -L $target ]]; then
        on_folder "$target"
    fi
    on_file "$target"
}

on_post_disconnect() {
    local company=${SFTPGO_CONNECTION_USERNAME:-}
    shown_path=$company
    [[ -n $company ]] || finish ignored "no user (closed before login)" 0
    # One SFTPGo user per company, named as the company, whose home is <data>/<company>.
    names_are_safe "$company" || finish refused "user name is not an allowed company name" 0
    locate_in_data "$DATA_DIR/$company" || finish ignored "no company folder: $refusal" 0
    [[ -d $DATA_ROOT/$company && ${#parts[@]} == 1 ]] || finish ignored "no company folder" 0
    detach sweep "$company"
    finish started "sweep of $company" 0
}

# -- main --------------------------------------------------------------------------------------

SELF=$(realpath -e -- "${BASH_SOURCE[0]}")
[[ $DATA_DIR == /* ]] || finish failed "POWERVIEW_DATA_DIR must be an absolute path" 1
[[ -x $PYTHON ]] || finish failed "no Python at $PYTHON (POWERVIEW_VENV)" 1
DATA_ROOT=$(realpath -e -- "$DATA_DIR" 2>/dev/null) ||
    finish failed "no data folder at $DATA_DIR (POWERVIEW_DATA_DIR)" 1
[[ -d $DATA_ROOT ]] || finish failed "$DATA_DIR is not a folder" 1
cd -- "$POWERVIEW_ROOT" || finish failed "no project at $POWERVIEW_ROOT (POWERVIEW_ROOT)" 1

if [[ ${1:-} == --job ]]; then
    case ${2:-} in
    playbook) job_playbook "${@:3}" ;;
    sweep) job_sweep "${3:-}" ;;
    *) finish failed "unknown job '${2:-}'" 2 ;;
    esac
fi

if [[ $event != post-disconnect && $event != none ]]; then
    show_path "${SFTPGO_ACTION_PATH:-}"
    provider=${SFTPGO_ACTION_FS_PROVIDER:-0}
    case ${SFTPGO_ACTION:-} in
    upload | rename | mkdir)
        [[ $provider == 0 ]] || finish ignored "not on the local filesystem (provider $provider)" 0
        ;;
    esac
    case ${SFTPGO_ACTION:-} in
    upload) on_upload ;;
    rename) on_rename ;;
    mkdir) on_folder "${SFTPGO_ACTION_PATH:-}" ;;
    *) finish ignored "action not handled by PowerView" 0 ;;
    esac
elif [[ $event == post-disconnect ]]; then
    on_post_disconnect
fi
printf 'on-upload.sh: run by SFTPGo with an event in SFTPGO_* variables (see the header)\n' >&2
finish ignored "no SFTPGo event in the environment" 2
