#!/usr/bin/env bash
# Install or remove busviewer's desktop entry and icon for this user (freedesktop, XDG_DATA_HOME):
#   packaging/desktop.sh install [--exec COMMAND]   # default COMMAND: busviewer (on PATH)
#   packaging/desktop.sh uninstall
# The entry runs `COMMAND %F`: files or folders dropped on it / opened with it are imported
# and the first patient opened (`busviewer PATH...`). Give the bundle's executable, e.g.
# --exec "$PWD/dist/cpu/busviewer/busviewer", when busviewer is not on PATH.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
DATA="${XDG_DATA_HOME:-$HOME/.local/share}"
APPS="$DATA/applications"
ICONS="$DATA/icons/hicolor/scalable/apps"
ENTRY="$APPS/busviewer.desktop"
ICON="$ICONS/busviewer.svg"

refresh() {  # the caches are optional: desktops also rescan these folders
    command -v update-desktop-database >/dev/null && update-desktop-database -q "$APPS" 2>/dev/null || true
    command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t "$DATA/icons/hicolor" 2>/dev/null || true
}

quote() {  # a desktop-entry Exec argument: double-quoted unless it is only [A-Za-z0-9_./+-]
    if [[ "$1" =~ ^[A-Za-z0-9_./+-]+$ ]]; then printf '%s' "$1"; else printf '"%s"' "$1"; fi
}

case "${1:-}" in
install)
    EXEC=busviewer
    if [ "${2:-}" = --exec ]; then EXEC="${3:?--exec needs a command}"; fi
    case "$EXEC" in *[\"\`\$\\]*) echo "unsupported character (\" \` \$ \\) in $EXEC" >&2; exit 2 ;; esac
    mkdir -p "$APPS" "$ICONS"
    while IFS= read -r line; do
        case "$line" in Exec=*) printf 'Exec=%s %%F\n' "$(quote "$EXEC")" ;; *) printf '%s\n' "$line" ;; esac
    done < "$HERE/busviewer.desktop" > "$ENTRY.tmp"
    mv "$ENTRY.tmp" "$ENTRY"
    cp "$HERE/../resources/busviewer.svg" "$ICON"
    if command -v desktop-file-validate >/dev/null; then desktop-file-validate "$ENTRY"; fi
    refresh
    echo "installed $ENTRY (Exec=$(grep '^Exec=' "$ENTRY" | cut -d= -f2-)) and $ICON"
    ;;
uninstall)
    rm -f "$ENTRY" "$ICON"
    refresh
    echo "removed $ENTRY and $ICON"
    ;;
*)
    echo "usage: $0 install [--exec COMMAND] | uninstall" >&2
    exit 2
    ;;
esac
