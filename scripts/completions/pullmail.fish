# fish completion for pullmail(1). Installed by `cmake --install` into
# share/fish/vendor_completions.d. Account names come from
# `pullmail [-f FILE] --list-accounts`. tests/integration/test_completions.py
# checks that every option of `pullmail --help` is listed here.

function __pullmail_accounts
    set -l tokens (commandline -opc)
    set -l file
    for i in (seq (count $tokens))
        if contains -- $tokens[$i] -f --file; and test $i -lt (count $tokens)
            set file -f $tokens[(math $i + 1)]
        end
    end
    $tokens[1] $file --list-accounts 2>/dev/null
end

# True while no word that is not an option (or an option's value) has been
# typed: the place of a subcommand.
function __pullmail_first_word
    set -l tokens (commandline -opc)
    set -l skip 0
    for t in $tokens[2..-1]
        if test $skip -eq 1
            set skip 0
        else if contains -- $t -f --file --state-dir -j --jobs --repair-state --shard -d --url --user --deliver \
                --password-command --ca-file --folder --tls --auth --deliver-user --deliver-ca-file \
                --deliver-password-command
            set skip 1
        else if not string match -q -- '-*' $t
            return 1
        end
    end
    return 0
end

function __pullmail_importing
    contains -- import-fetchmailrc (commandline -opc)
end

complete -c pullmail -f
complete -c pullmail -n 'not __pullmail_importing' -a '(__pullmail_accounts)' -d account
complete -c pullmail -n '__pullmail_first_word' -a adopt -d 'mark what is on the server as seen, without fetching it'
complete -c pullmail -n '__pullmail_first_word' -a import-fetchmailrc -d 'convert a fetchmailrc to a pullmail configuration'
complete -c pullmail -n '__pullmail_importing' -F
complete -c pullmail -s f -l file -r -F -d 'Configuration file'
complete -c pullmail -s k -l keep -d 'Keep fetched messages on the server'
complete -c pullmail -s K -l no-keep -d 'Delete delivered messages from the server'
complete -c pullmail -s a -l all -d 'Fetch messages already seen, too'
complete -c pullmail -s c -l check -d 'Only count new messages'
complete -c pullmail -s n -l dry-run -d 'Say what would be fetched, change nothing'
complete -c pullmail -s v -l verbose -d 'More output'
complete -c pullmail -s q -l quiet -d 'Only warnings and errors'
complete -c pullmail -l state-dir -x -a '(__fish_complete_directories)' -d 'Directory of the state files'
complete -c pullmail -l json -d 'JSON summary on stdout'
complete -c pullmail -s j -l jobs -x -d 'Accounts fetched in parallel'
complete -c pullmail -l wait-lock -d 'Wait for a busy account'
complete -c pullmail -l device -d 'pullmail auth: device-code flow'
complete -c pullmail -l daemon -d 'Keep running: push and polling'
complete -c pullmail -s d -x -d 'Daemon with this default poll interval (seconds)'
complete -c pullmail -l browser -d 'pullmail auth: browser on this machine'
complete -c pullmail -l paste -d 'pullmail auth: paste the redirect address'
complete -c pullmail -n '__pullmail_first_word' -a auth -d 'sign an account in with OAuth2'
complete -c pullmail -l repair-state -x -a '(__pullmail_accounts)' -d 'Rebuild the damaged state file of an account'
complete -c pullmail -l shard -x -d 'Run only shard K of N (K/N)'
complete -c pullmail -l daemon -d 'Keep running: push and polling until SIGTERM'
complete -c pullmail -s d -x -d 'Daemon with this default poll interval in seconds'
complete -c pullmail -l progress -d 'Live progress lines even when stderr is not a terminal'
complete -c pullmail -l no-progress -d 'No live progress lines'
complete -c pullmail -s V -l version -d 'Print the version'
complete -c pullmail -s h -l help -d 'Print the help'
complete -c pullmail -l url -x -a 'pop3s:// imaps:// pop3:// imap://' -d 'One-off account: server URL'
complete -c pullmail -l user -x -d 'One-off account: user name'
complete -c pullmail -l deliver -x -a 'maildir: maildir++: mbox: mda: imaps://' -d 'One-off account: delivery target'
complete -c pullmail -l password-command -x -d 'Command printing the password'
complete -c pullmail -l ca-file -r -F -d 'Extra trusted CA certificate (PEM)'
complete -c pullmail -l folder -x -d 'IMAP folder (repeatable)'
complete -c pullmail -l tls -x -a 'off starttls implicit' -d 'TLS mode'
complete -c pullmail -l auth -x -a 'PLAIN LOGIN CRAM-MD5 XOAUTH2 EXTERNAL' -d 'SASL mechanism'
complete -c pullmail -l deliver-user -x -d 'User on the IMAP delivery target'
complete -c pullmail -l deliver-ca-file -r -F -d 'Extra trusted CA certificate for the IMAP target'
complete -c pullmail -l deliver-password-command -x -d 'Password command for the IMAP target'
