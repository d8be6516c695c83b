# bash completion for postino(1).
# Install: copy to /usr/share/bash-completion/completions/postino (or
# ~/.local/share/bash-completion/completions/postino).

_postino_accounts()
{
	local cfg=${XDG_CONFIG_HOME:-$HOME/.config}/postino/config i
	for ((i = 1; i < COMP_CWORD; i++)); do
		[[ ${COMP_WORDS[i]} == --config ]] && cfg=${COMP_WORDS[i+1]}
	done
	[[ -r $cfg ]] && awk '$1 == "account" { print $2 }' "$cfg"
}

_postino()
{
	local cur prev cmd
	_init_completion -n = 2>/dev/null || {
		cur=${COMP_WORDS[COMP_CWORD]}
		prev=${COMP_WORDS[COMP_CWORD-1]}
	}
	cmd=${COMP_WORDS[1]}
	if ((COMP_CWORD == 1)); then
		COMPREPLY=($(compgen -W 'fetch list stat read --help --version' -- "$cur"))
		return
	fi
	case $prev in
	--cafile|--config|--mbox|--lmtp)
		COMPREPLY=($(compgen -f -- "$cur")); return ;;
	--maildir)
		COMPREPLY=($(compgen -d -- "$cur")); return ;;
	--mda|--password-command|--token-command)
		COMPREPLY=($(compgen -c -- "$cur")); return ;;
	--user|--lmtp-recipient|--tls-fingerprint|--timeout|--keep-days|--max-size|--max-messages|--daemon)
		return ;;
	esac
	case $cur in
	--tls=*)
		COMPREPLY=($(compgen -W 'stls implicit no' -- "${cur#--tls=}")); return ;;
	--auth=*)
		COMPREPLY=($(compgen -W 'scram-sha-256-plus scram-sha-256 apop cram-md5 plain login user oauthbearer xoauth2' -- "${cur#--auth=}")); return ;;
	-*)
		local opts='--tls= --cafile --tls-fingerprint --auth= -4 -6 --user
		    --password-command --token-command --config --timeout --verbose --quiet
		    --help --version'
		[[ $cmd == fetch ]] && opts+=' --maildir --mbox --mda --keep
		    --keep-days --max-size --delete-oversized --max-messages
		    --all --rebuild-state --daemon --received-header
		    --lmtp --lmtp-recipient'
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
		[[ ${COMPREPLY[0]} == *= ]] && compopt -o nospace 2>/dev/null
		return ;;
	esac
	COMPREPLY=($(compgen -W "$(_postino_accounts)" -- "$cur"))
}
complete -F _postino postino
