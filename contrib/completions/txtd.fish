complete -c txtd -s l -l listen -d 'Address to listen on, repeatable; `[::1]:8080` for IPv6, port 0 picks a free port [default: 127.0.0.1:8080]' -r
complete -c txtd -s w -l workers -d 'Number of worker processes [default: the number of CPUs]' -r
complete -c txtd -s c -l config -d 'TOML configuration file with the same keys as these flags; flags win' -r -F
complete -c txtd -l pid-file -d 'Write the master\'s pid to this file' -r -F
complete -c txtd -l access-log -d 'Access log, written in 64 KiB blocks at least once a second; `-` for stdout [default: off]' -r -F
complete -c txtd -l access-log-format -d 'Access log format: `combined` (Apache and nginx\'s Combined Log Format) or `json` (one JSON object per line) [default: combined]' -r -f -a "combined\t'The Combined Log Format'
json\t'One JSON object per line'"
complete -c txtd -l admin-listen -d 'Address of the admin interface (/healthz, /metrics, /status), answered by the workers; loopback only unless --admin-allow-remote [default: off]' -r
complete -c txtd -l error-log -d 'Error log [default: stderr]' -r -F
complete -c txtd -l drain-timeout -d 'How long a graceful stop waits for requests in flight [default: 30s]' -r
complete -c txtd -l header-timeout -d 'Time allowed to receive a request head [default: 10s]' -r
complete -c txtd -l keepalive-timeout -d 'Idle time allowed between requests on a connection [default: 5s]' -r
complete -c txtd -l send-timeout -d 'Time allowed without send progress [default: 30s]' -r
complete -c txtd -l watchdog-timeout -d 'A worker whose heartbeat (once a second) is older than this is killed and replaced; at least 2s [default: 10s]' -r
complete -c txtd -l page-cache-valid -d 'How long a cached page is served before its file is checked again (a changed file shows within this time); 0s checks on every request [default: 1s]' -r
complete -c txtd -l max-conns -d 'Connection slots per worker [default: 512]' -r
complete -c txtd -l backlog -d 'Listen backlog, clamped by the kernel to net.core.somaxconn [default: 4096]' -r
complete -c txtd -l max-request-line -d 'Longest request line in bytes (longer: 414) [default: 8190]' -r
complete -c txtd -l max-header-bytes -d 'Largest request head in bytes (larger: 431) [default: 32768]' -r
complete -c txtd -l max-headers -d 'Most header fields in a request (more: 431) [default: 128]' -r
complete -c txtd -l user -d 'Run the workers as this user (needs root; the master stays root)' -r
complete -c txtd -l group -d 'Run the workers with this group [default: the user\'s primary group]' -r
complete -c txtd -l print-completions -d 'Print the completion script for SHELL and exit' -r -f -a "bash\t''
elvish\t''
fish\t''
powershell\t''
zsh\t''"
complete -c txtd -l admin-allow-remote -d 'Allow --admin-listen on an address that is not loopback (the admin interface has no authentication: firewall it)'
complete -c txtd -l check-config -d 'Validate the configuration and exit'
complete -c txtd -l print-man -d 'Print the man page (roff, from these flags) and exit'
complete -c txtd -s h -l help -d 'Print help (see more with \'--help\')'
complete -c txtd -s V -l version -d 'Print version'
