# bash completion for pullmail(1). Installed by `cmake --install` into
# share/bash-completion/completions; by hand: source this file.
#
# Options come from `pullmail --help` itself, so every option the binary
# has is completed; account names from `pullmail [-f FILE] --list-accounts`
# (the configuration the command line names, else the default one).

_pullmail_accounts() {
    local i file=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
            -f | --file) file=(-f "${COMP_WORDS[i + 1]}") ;;
            --file=*) file=(-f "${COMP_WORDS[i]#--file=}") ;;
        esac
    done
    "${COMP_WORDS[0]}" "${file[@]}" --list-accounts 2>/dev/null
}

_pullmail_options() {
    # "  -f,--file TEXT   Configuration ..." -> -f --file (only the options
    # part of --help, not the examples below it)
    "${COMP_WORDS[0]}" --help 2>/dev/null |
        awk '/^Examples:/ { exit } /^ +-/ { n = split($1, o, ","); for (i = 1; i <= n; i++) print o[i] }'
}

_pullmail() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    COMPREPLY=()
    case $prev in
        -f | --file | --ca-file | --deliver-ca-file)
            compopt -o filenames 2>/dev/null
            COMPREPLY=($(compgen -f -- "$cur"))
            return ;;
        --state-dir)
            compopt -o filenames 2>/dev/null
            COMPREPLY=($(compgen -d -- "$cur"))
            return ;;
        --tls)
            COMPREPLY=($(compgen -W "off starttls implicit" -- "$cur"))
            return ;;
        --repair-state)
            COMPREPLY=($(compgen -W "$(_pullmail_accounts)" -- "$cur"))
            return ;;
        --deliver)
            compopt -o nospace 2>/dev/null
            COMPREPLY=($(compgen -W "maildir: maildir++: mbox: mda: imaps:// imap://" -- "$cur"))
            return ;;
        -d | -j | --jobs | --shard | --url | --user | --password-command | --folder | --auth | --deliver-user | \
            --deliver-password-command)
            return ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(_pullmail_options)" -- "$cur"))
        return
    fi
    # The first word that is not an option (or an option's value) may be a
    # subcommand; import-fetchmailrc takes a file.
    local i first=
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
            -f | --file | --state-dir | -j | --jobs | --repair-state | --shard | --url | --user | --deliver | \
                --password-command | --ca-file | --folder | --tls | --auth | --deliver-user | --deliver-ca-file | \
                --deliver-password-command) ((i++)) ;;
            -*) ;;
            *) first=${COMP_WORDS[i]}; break ;;
        esac
    done
    if [[ $first == import-fetchmailrc ]]; then
        compopt -o filenames 2>/dev/null
        COMPREPLY=($(compgen -f -- "$cur"))
    elif [[ -z $first ]]; then
        COMPREPLY=($(compgen -W "adopt auth import-fetchmailrc $(_pullmail_accounts)" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$(_pullmail_accounts)" -- "$cur"))
    fi
}

complete -F _pullmail pullmail
