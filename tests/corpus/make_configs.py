"""Writes tests/corpus/configs/*.toml: one bad config per file, first line ``# expect: <text>``.

Run it after changing a case: ``python tests/corpus/make_configs.py``.  The files are
committed so a reader can open each case as a user would have written it.
"""
# ruff: noqa: E501

from __future__ import annotations

from pathlib import Path

OUT = Path(__file__).resolve().parent / "configs"
ISSUER = '''[issuer.le]
type = "acme"
directory = "https://acme.example.net/directory"
contact = ["mailto:postmaster@example.com"]
challenge = { type = "http-01", mode = "standalone", port = 8080 }
'''
HEAD = '[certmgr]\nstate_dir = "state"\n'

def mta(**kw: str | None) -> str:
    fields: dict[str, str | None] = {"hostname": '"mx1.example.com"', "issuer": '"le"'}
    fields.update(kw)
    return "\n[[mta]]\n" + "".join(f"{k} = {v}\n" for k, v in fields.items() if v is not None)

def std(expect: str, *, head: str = HEAD, issuer: str = ISSUER, extra: str = "",
        m: str | None = None) -> tuple[str, str]:
    return expect, head + "\n" + issuer + extra + (m if m is not None else mta())

def q(s: str) -> str:  # a TOML basic string with escapes for non-ASCII/control characters
    out: list[str] = []
    for ch in s:
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) > 0x7e:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'

C: dict[str, tuple[str, str]] = {}
# --- syntax, malformed types and values ---------------------------------------
C["toml_syntax_unterminated"] = ("not valid TOML", HEAD + ISSUER + '\n[[mta]]\nhostname = "mx1.example.com\nissuer = "le"\n')
C["toml_duplicate_key"] = ("not valid TOML", HEAD + ISSUER + '\n[[mta]]\nhostname = "mx1.example.com"\nhostname = "mx2.example.com"\nissuer = "le"\n')
C["hostname_integer"] = std("must be a string", m=mta(hostname="42"))
C["hostname_list"] = std("must be a string", m=mta(hostname='["mx1.example.com"]'))
C["names_integers"] = std("must be a list of non-empty strings", m=mta(names="[1, 2]"))
C["names_empty_string"] = std("must be a list of non-empty strings", m=mta(names='[""]'))
C["names_table"] = std("must be a list or a string", m=mta(names='{ a = "mail.example.com" }'))
C["key_integer"] = std("must be a string or a list", m=mta(key="2048"))
C["key_empty_list"] = std("must name at least one key type", m=mta(key="[]"))
C["key_list_of_integers"] = std("must be a key type string", m=mta(key="[2048]"))
C["key_unsupported"] = std("is not a supported key type", m=mta(key='"ed25519"'))
C["key_two_rsa"] = std("lists two RSA keys", m=mta(key='["rsa-2048", "rsa-4096"]'))
C["renew_before_negative"] = std("between 0 and 365", m=mta(renew_before="-1"))
C["renew_before_string"] = std("must be int or float", m=mta(renew_before='"30d"'))
C["reuse_key_string"] = std("must be bool", m=mta(reuse_key='"yes"'))
C["smtp_port_out_of_range"] = std("port must be 1-65535", m=mta(smtp='"mx1.example.com:99999"'))
C["smtp_integer"] = std("must be a string", m=mta(smtp="25"))
C["concurrency_zero"] = std("between 1 and 256", head=HEAD + "concurrency = 0\n")
C["concurrency_string"] = std("must be int", head=HEAD + 'concurrency = "16"\n')
C["concurrency_bool"] = std("concurrency: must be int, got True", head=HEAD + "concurrency = true\n")
C["critical_above_warning"] = std("must be between 0 and warning_days", head=HEAD + "warning_days = 7\ncritical_days = 14\n")
C["state_dir_integer"] = std("must be a string", head="[certmgr]\nstate_dir = 1\n")
C["database_directory_missing"] = std("does not exist; create it", head=HEAD + 'database = "sqlite:////nonexistent/certmgr/certmgr.db"\n')
C["renew_before_over_a_year"] = std("between 0 and 365", m=mta(renew_before="400"))
C["resolver_bad_ipv6"] = std("must be host, host:port or [IPv6]:port", head=HEAD + 'resolver = "fe80::1::2"\n')
C["smtp_brackets_not_ipv6"] = std("is not an IPv6 address", m=mta(smtp='"[fe80::1::2]:25"'))
C["notify_to_crlf"] = std("not an e-mail address", extra='\n[notify.ops]\ntype = "email"\nsmtp = "smtp.example.com:587"\nfrom = "certmgr@example.com"\nto = ["ops@example.com\\r\\nBcc: all@example.com"]\n')
C["notify_to_two_in_one"] = std("one address per list item", extra='\n[notify.ops]\ntype = "email"\nsmtp = "smtp.example.com:587"\nfrom = "certmgr@example.com"\nto = ["ops@example.com, all@example.com"]\n')
C["deploy_group_missing"] = std("does not exist on this machine", extra='\n[deploy.edge]\ntype = "postfix"\nconfig_dir = "/etc/postfix"\ngroup = "certmgr-no-such-group"\n', m=mta(deploy='["edge"]'))
C["deploy_group_injection"] = std("is not a group name", extra='\n[deploy.edge]\ntype = "postfix"\nconfig_dir = "/etc/postfix"\ngroup = "mail; reboot"\n', m=mta(deploy='["edge"]'))
C["issuer_directory_no_host"] = std("names no host", issuer=ISSUER.replace('"https://acme.example.net/directory"', '"https:///directory"'))
C["issuer_directory_bad_port"] = std("is not a valid URL", issuer=ISSUER.replace('"https://acme.example.net/directory"', '"https://acme.example.net:99999/directory"'))
C["issuer_directory_space"] = std("white space", issuer=ISSUER.replace('"https://acme.example.net/directory"', '"https://acme.example.net/dir ectory"'))
C["issuer_contact_two_addresses"] = std("one address", issuer=ISSUER.replace("mailto:postmaster@example.com", "mailto:postmaster@example.com,ops@example.com"))
C["issuer_contact_empty_address"] = std("one address", issuer=ISSUER.replace("mailto:postmaster@example.com", "mailto:"))
C["issuer_ca_bundle_not_pem"] = std("is not a PEM file of CA certificates", issuer=ISSUER + 'ca_bundle = "/etc/passwd"\n')
C["deploy_cert_dir_relative"] = std("must be an absolute path on the MTA host", extra='\n[deploy.edge]\ntype = "exim"\ncert_dir = "exim4/certmgr"\n', m=mta(deploy='["edge"]'))
C["database_bad_scheme"] = std("must be a sqlite", head=HEAD + 'database = "mysql://db.example.com/certmgr"\n')
C["trust_file_missing"] = std("does not exist", head=HEAD + 'trust = "/nonexistent/certmgr-roots.pem"\n')
C["daemon_interval_zero"] = std("between 1 and 604800", extra="\n[daemon]\nrenew_interval = 0\n")
C["daemon_metrics_listen_injection"] = std("must be host or host:port", extra='\n[daemon]\nmetrics_listen = "127.0.0.1:9420;reboot"\n')
C["mta_as_table"] = ("must be an array of tables", HEAD + ISSUER + '\n[mta]\nhostname = "mx1.example.com"\nissuer = "le"\n')
C["certmgr_not_a_table"] = ("must be a table", 'certmgr = "yes"\n' + ISSUER + mta())
C["provider_name_bad_characters"] = std("name may hold only letters", issuer=ISSUER.replace("[issuer.le]", '[issuer."le;reboot"]'), m=mta(issuer='"le;reboot"'))
C["issuer_directory_not_url"] = std("must be an http(s) URL", issuer=ISSUER.replace('"https://acme.example.net/directory"', '"acme.example.net/directory"'))
C["issuer_directory_integer"] = std("must be a non-empty string", issuer=ISSUER.replace('"https://acme.example.net/directory"', "443"))
C["issuer_contact_not_mailto"] = std("must start with mailto:", issuer=ISSUER.replace("mailto:postmaster@example.com", "postmaster@example.com"))
C["issuer_timeout_zero"] = std("must be at least 1", issuer=ISSUER + "timeout = 0\n")
C["challenge_port_out_of_range"] = std("port", issuer=ISSUER.replace("port = 8080", "port = 70000"))
C["challenge_mode_unknown"] = std("mode", issuer=ISSUER.replace('mode = "standalone"', 'mode = "magic"'))
C["challenge_type_unknown"] = std("tls-alpn-01", issuer=ISSUER.replace('type = "http-01"', 'type = "tls-alpn-01"'))
C["challenge_not_a_table"] = std("must be a table", issuer=ISSUER.replace('challenge = { type = "http-01", mode = "standalone", port = 8080 }', 'challenge = "http-01"'))
C["issuer_type_unknown"] = std("unknown issuer type", issuer=ISSUER.replace('type = "acme"', 'type = "acme2"'))
C["notify_reminders_out_of_range"] = std("whole days between 0 and 365", extra='\n[notify.ops]\ntype = "email"\nsmtp = "smtp.example.com:587"\nfrom = "certmgr@example.com"\nto = ["ops@example.com"]\nreminders = [400]\n')
C["notify_calendar_not_bool"] = std("must be true or false", extra='\n[notify.ops]\ntype = "email"\nsmtp = "smtp.example.com:587"\nfrom = "certmgr@example.com"\nto = ["ops@example.com"]\ncalendar = "yes"\n')
# --- unknown keys ------------------------------------------------------------------
C["unknown_key_mta_typo"] = std("unknown key", m=mta(hostnmae='"mx2.example.com"'))
C["unknown_key_certmgr"] = std("unknown key", head=HEAD + 'statedir = "/tmp"\n')
C["unknown_key_issuer"] = std("unknown key", issuer=ISSUER + 'directroy = "https://acme.example.net/directory"\n')
C["unknown_key_challenge"] = std("unknown key", issuer=ISSUER.replace("port = 8080", "port = 8080, prot = 80"))
C["unknown_key_daemon"] = std("unknown key", extra="\n[daemon]\nrenew_every = 600\n")
C["unknown_top_level_table"] = std("unknown table", extra='\n[deployer.edge]\ntype = "postfix"\n')
# --- weak keys ---------------------------------------------------------------------
for k in ("rsa-512", "rsa-1024", "rsa-1536", "ecdsa-p192", "ecdsa-p224", "dsa-2048"):
    C["weak_key_" + k.replace("-", "_")] = std("weaker than certmgr allows", m=mta(key=f'"{k}"'))
C["weak_key_in_dual_list"] = std("weaker than certmgr allows", m=mta(key='["ecdsa-p256", "rsa-1024"]'))
# --- bad hostnames ------------------------------------------------------------------
H = {
    "ipv4": ("192.0.2.25", "is an IP address"),
    "ipv6": ("[2001:db8::25]", "is an IP address"),
    "wildcard": ("*.example.com", "is a wildcard"),
    "single_label": ("mx1", "not fully qualified"),
    "two_trailing_dots": ("mx1.example.com..", "ends with more than one dot"),
    "empty_label": ("mx1..example.com", "empty label"),
    "leading_dot": (".mx1.example.com", "empty label"),
    "label_64_chars": ("a" * 64 + ".example.com", "longer than 63 characters"),
    "name_254_chars": (".".join(["a" * 63] * 3 + ["b" * 61]) + ".com", "longer than 253 characters"),
    "underscore": ("mx_1.example.com", "may hold only letters"),
    "leading_hyphen": ("-mx1.example.com", "may hold only letters"),
    "trailing_hyphen": ("mx1-.example.com", "may hold only letters"),
    "numeric_tld": ("mx1.example.123", "numeric label"),
    "leading_space": (" mx1.example.com", "white space"),
    "newline": ("mx1.example.com\nreboot", "may hold only letters"),
    "inject_semicolon": ("mx1.example.com;rm -rf /", "may hold only letters"),
    "inject_subshell": ("$(reboot).example.com", "may hold only letters"),
    "inject_backticks": ("`reboot`.example.com", "may hold only letters"),
    "inject_pipe": ("mx1.example.com|sh", "may hold only letters"),
    "inject_ampersand": ("mx1.example.com&&reboot", "may hold only letters"),
    "inject_path": ("../../etc/passwd", "empty label"),
    "inject_slash": ("mx1.example.com/../../x", "may hold only letters"),
    "homograph_cyrillic_a": ("p\u0430ypal.example.com", "mixes scripts"),
    "homograph_greek_o": ("g\u03bfogle.example.com", "mixes scripts"),
    "homograph_punycode": ("xn--pypal-4ve.example.com", "mixes scripts"),
    "xn_garbage": ("xn--zz.example.com", "not a valid internationalized name"),
    "xn_empty": ("xn--.example.com", "not a valid internationalized name"),
    "xn_not_round_trip": ("xn--mx1-.example.com", "not a valid internationalized name"),
    "zero_width_space": ("mx1\u200b.example.com", "invisible character"),
    "zero_width_joiner": ("mx1\u200d.example.com", "invisible character"),
    "soft_hyphen": ("mx\u00ad1.example.com", "invisible character"),
    "byte_order_mark": ("\ufeffmx1.example.com", "invisible character"),
    "bidi_override": ("mx1\u202e.example.com", "invisible character"),
    "bidi_mixed_rtl": ("\u05d0mx.example.com", "not a valid internationalized name"),
    "fullwidth_dot": ("mx1\uff0eexample\u3002com;x", "not a valid internationalized name"),
}
for name, (host, expect) in H.items():
    C["hostname_" + name] = std(expect, m=mta(hostname=q(host)))
for name in ("inject_semicolon", "inject_subshell", "homograph_cyrillic_a", "zero_width_space", "ipv4", "two_trailing_dots"):
    host, expect = H[name]
    C["names_" + name] = std(expect, m=mta(names=f'["mail.example.com", {q(host)}]'))
C["names_wildcard_inner"] = std("not a whole leftmost label", m=mta(names='["mail.*.example.com"]'))
C["smtp_injection"] = std("must be host or host:port", m=mta(smtp='"mx1.example.com:25;reboot"'))
C["smtp_subshell"] = std("must be host or host:port", m=mta(smtp='"$(reboot):25"'))
C["duplicate_hostname"] = std("duplicate hostname", m=mta() + mta(hostname='"MX1.example.com."'))
# --- commands: lists only, never a shell ------------------------------------------------
C["exec_challenge_command_string"] = std("run without a shell",
    issuer=ISSUER.replace('challenge = { type = "http-01", mode = "standalone", port = 8080 }',
                          'challenge = { type = "dns-01", provider = "exec", command = "/usr/local/bin/hook $(reboot)" }'))
C["exec_challenge_command_integers"] = std("must be a list of arguments",
    issuer=ISSUER.replace('challenge = { type = "http-01", mode = "standalone", port = 8080 }',
                          'challenge = { type = "dns-01", provider = "exec", command = [1, 2] }'))
C["deploy_string_injection"] = std("which is not defined", extra='\n[deploy.edge]\ntype = "postfix"\nconfig_dir = "/etc/postfix"\n',
    m=mta(deploy='"edge; reboot"'))
for kind, key in (("postfix", "reload_command"), ("exim", "reload_command"), ("exec", "command")):
    extra = {"postfix": 'config_dir = "/etc/postfix"\n', "exim": 'cert_dir = "/etc/exim4/certmgr"\n',
             "exec": 'cert_dir = "/srv/certs"\n'}[kind]
    C[f"deploy_{kind}_{key}_string"] = std("run without a shell", extra=(
        f'\n[deploy.edge]\ntype = "{kind}"\n{extra}{key} = "/usr/sbin/postfix reload; reboot"\n'),
        m=mta(deploy='["edge"]'))
# --- missing required keys ----------------------------------------------------------
C["missing_hostname"] = std("is required", m=mta(hostname=None))
C["missing_issuer"] = std("is required", m=mta(issuer=None))
C["missing_issuer_type"] = std("is required", issuer=ISSUER.replace('type = "acme"\n', ""))
C["missing_directory"] = std("directory", issuer=ISSUER.replace('directory = "https://acme.example.net/directory"\n', ""))
C["missing_challenge"] = std("challenge", issuer=ISSUER.replace('challenge = { type = "http-01", mode = "standalone", port = 8080 }\n', ""))
C["missing_challenge_type"] = std("is required: http-01 or dns-01", issuer=ISSUER.replace('type = "http-01", ', ""))
C["missing_postfix_config_dir"] = std("config_dir", extra='\n[deploy.edge]\ntype = "postfix"\n', m=mta(deploy='["edge"]'))
C["missing_rfc2136_server"] = std("server", issuer=ISSUER.replace('challenge = { type = "http-01", mode = "standalone", port = 8080 }',
    'challenge = { type = "dns-01", provider = "rfc2136", tsig_key_file = "/nonexistent/tsig.key" }'))
# --- dangling references -------------------------------------------------------------
C["dangling_issuer"] = std("[issuer.letsencrypt], which is not defined", m=mta(issuer='"letsencrypt"'))
C["dangling_deploy"] = std("[deploy.edge], which is not defined", m=mta(deploy='["edge"]'))
C["dangling_notify"] = std("[notify.mailops], which is not defined", m=mta(notify='["mailops"]'))
C["dangling_eab_hmac_key_file"] = std("cannot read /nonexistent/eab.key", issuer=ISSUER + 'eab_kid = "kid-1"\neab_hmac_key_file = "/nonexistent/eab.key"\n')
C["dangling_tsig_key_file"] = std("does not exist", issuer=ISSUER.replace('challenge = { type = "http-01", mode = "standalone", port = 8080 }',
    'challenge = { type = "dns-01", provider = "rfc2136", server = "127.0.0.1:53", tsig_key_file = "/nonexistent/tsig.key" }'))
C["dangling_eab_hmac_key_env"] = std("is not set", issuer=ISSUER + 'eab_kid = "kid-1"\neab_hmac_key_env = "CERTMGR_CORPUS_UNSET_VARIABLE"\n')
C["eab_kid_without_hmac"] = std("eab_hmac_key_file", issuer=ISSUER + 'eab_kid = "kid-1"\n')
# --- inline secrets ----------------------------------------------------------------------
SECRET = "c2VjcmV0LWRvLW5vdC1wcmludA"
C["inline_eab_hmac_key"] = std("secrets are not accepted inline", issuer=ISSUER + f'eab_kid = "kid-1"\neab_hmac_key = "{SECRET}"\n')
C["inline_tsig_secret"] = std("secrets are not accepted inline", issuer=ISSUER.replace('challenge = { type = "http-01", mode = "standalone", port = 8080 }',
    f'challenge = {{ type = "dns-01", provider = "rfc2136", server = "127.0.0.1:53", tsig_secret = "{SECRET}" }}'))
C["inline_tsig_key"] = std("secrets are not accepted inline", issuer=ISSUER.replace('challenge = { type = "http-01", mode = "standalone", port = 8080 }',
    f'challenge = {{ type = "dns-01", provider = "rfc2136", server = "127.0.0.1:53", tsig_key = "{SECRET}" }}'))
C["inline_smtp_password"] = std("secrets are not accepted inline", extra=f'\n[notify.ops]\ntype = "email"\nsmtp = "smtp.example.com:587"\nfrom = "certmgr@example.com"\nto = ["ops@example.com"]\nusername = "certmgr"\npassword = "{SECRET}"\n')
C["inline_webhook_token"] = std("secrets are not accepted inline", extra=f'\n[notify.hook]\ntype = "webhook"\nurl = "https://hooks.example.com/x"\ntoken = "{SECRET}"\n')
C["inline_api_key"] = std("secrets are not accepted inline", extra=f'\n[deploy.edge]\ntype = "postfix"\nconfig_dir = "/etc/postfix"\napi_key = "{SECRET}"\n')
C["inline_database_password"] = std("inline password", head=HEAD + f'database = "postgresql+psycopg://certmgr:{SECRET}@db.example.com/certmgr"\n')

# --- more [deploy.*] and [[mta]] values ---------------------------------------------------
C["deploy_postfix_cert_dir_with_space"] = std("contains whitespace or a comma", extra='\n[deploy.edge]\ntype = "postfix"\nconfig_dir = "/etc/postfix"\ncert_dir = "/etc/postfix/mail certs"\n', m=mta(deploy='["edge"]'))
C["mta_protocol_unknown"] = ("must be one of smtp, smtps, imap, imaps, pop3, pop3s", HEAD + '[issuer.corp]\ntype = "manual"\n' + mta(issuer='"corp"', smtp='"mx1.example.com:4190"', protocol='"sieve"'))
# --- [monitor] ---------------------------------------------------------------------------
MONITOR = HEAD + "\n[monitor]\n"
C["monitor_log_relative_path"] = ("path must be an absolute file name", MONITOR + 'logs = [{ type = "postfix", path = "mail.log" }]\n')
C["monitor_log_type_unknown"] = ("type must be one of postfix, exim", MONITOR + 'logs = [{ type = "sendmail", path = "/var/log/mail.log" }]\n')
C["monitor_report_every_hourly"] = ("every must be one of daily, weekly, off", MONITOR + 'report = { every = "hourly" }\n')
C["monitor_report_notify_dangling"] = ("is not a [notify.*] table", MONITOR + 'report = { notify = ["mailops"] }\n')
C["monitor_tls_share_percent"] = ("tls_share must be a number from 0 to 1", MONITOR + "alerts = { tls_share = 90 }\n")
C["monitor_tlsrpt_listen_without_cert"] = ("needs cert", MONITOR + 'tlsrpt = { listen = "127.0.0.1:9421" }\n')
# --- [[partner]] -------------------------------------------------------------------------
PARTNER_BASE = ('[issuer.corp]\ntype = "manual"\n\n[deploy.edge]\ntype = "postfix"\nconfig_dir = "/etc/postfix"\n'
                '\n[deploy.imap]\ntype = "dovecot"\ncert_dir = "/etc/dovecot/certmgr"\n' + mta(issuer='"corp"'))
C["partner_deploy_not_an_mta"] = ("is a dovecot deployer", PARTNER_BASE + '\n[[partner]]\ndomain = "bank.example"\ndeploy = ["imap"]\n')
C["partner_domain_ip"] = ("IP address", PARTNER_BASE + '\n[[partner]]\ndomain = "192.0.2.1"\n')
C["partner_duplicate_domain"] = ("duplicate partner bank.example", PARTNER_BASE + '\n[[partner]]\ndomain = "bank.example"\n\n[[partner]]\ndomain = "BANK.example."\n')
C["partner_not_an_array"] = ("must be an array of tables", PARTNER_BASE + '\n[partner]\ndomain = "bank.example"\n')
C["partner_require_unknown"] = ("must be one of encrypt, verify, secure, dane, dane-only", PARTNER_BASE + '\n[[partner]]\ndomain = "bank.example"\nrequire = "mandatory"\n')

for stale in OUT.glob("*.toml"):
    stale.unlink()
for name, (expect, body) in sorted(C.items()):
    assert "\n" not in expect
    (OUT / f"{name}.toml").write_text(f"# expect: {expect}\n{body}", encoding="utf-8")
print(len(C))
